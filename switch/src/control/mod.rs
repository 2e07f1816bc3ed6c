//! The control socket: its life cycle (at start, refuse when another
//! instance listens on it and remove a stale file a killed instance left;
//! at stop, remove it), its server (`server`), the JSON-lines protocol
//! (`protocol`) and `podswitch ctl`, its client (`client`).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{bail, Context, Result};

use crate::runtime::Runtime;

pub mod client;
pub mod protocol;
mod server;

/// A bound control socket, removed on drop.
pub struct ControlSocket {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Checks that no live instance owns `path`; removes a stale socket file.
pub fn claim(path: &Path) -> Result<()> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            bail!(
                "another podswitch is running on control socket {} (stop it first)",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing stale control socket {}", path.display()))?;
        tracing::info!("removed stale control socket {}", path.display());
    }
    Ok(())
}

impl ControlSocket {
    /// Binds the socket (mode 0600) and serves `runtime` on it.
    pub fn bind(path: &Path, runtime: &Arc<Runtime>) -> Result<ControlSocket> {
        claim(path)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).ok();
        }
        let listener = UnixListener::bind(path)
            .with_context(|| format!("binding control socket {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let server = server::Server::new(listener, Arc::downgrade(runtime), stop.clone());
        let thread = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || server.run())?;
        Ok(ControlSocket {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}
