//! The Docker network plugin at `[switch] docker_plugin`: libnetwork's
//! remote network driver (`driver`) and IPAM driver (`ipam`) protocols,
//! HTTP/1.1 POSTs with JSON bodies (`http`) on a Unix socket, served by
//! one std thread while `podswitch run` is up. Docker finds the plugin by
//! the socket's file name (`/run/docker/plugins/podswitch.sock` is driver
//! `podswitch`) the first time a network uses the driver.
//!
//! Requests are served one at a time, in order: Docker's calls for one
//! container depend on each other, and every one of them takes the
//! runtime's lock anyway.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::runtime::Runtime;

pub mod driver;
pub mod http;
pub mod ipam;

/// How long one client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The serving plugin; stopped, and its socket removed, on drop.
pub struct DockerPlugin {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// What the plugin answers, apart from the socket.
pub struct Plugin {
    runtime: Weak<Runtime>,
    driver: driver::Driver,
    pools: ipam::Pools,
}

impl Plugin {
    /// A plugin with no networks, serving `runtime`.
    pub fn new(runtime: Weak<Runtime>) -> Plugin {
        Plugin {
            runtime,
            driver: driver::Driver::default(),
            pools: ipam::Pools::default(),
        }
    }

    /// The status line and JSON body that answer a POST to `path`.
    pub fn answer(&mut self, path: &str, body: &[u8]) -> (&'static str, Value) {
        let reply = match path.trim_start_matches('/').split_once('.') {
            Some(("Plugin", "Activate")) => {
                Some(Ok(json!({"Implements": ["NetworkDriver", "IpamDriver"]})))
            }
            Some(("IpamDriver", method)) => self.pools.handle(method, body),
            Some(("NetworkDriver", method)) if driver::METHODS.contains(&method) => {
                match self.runtime.upgrade() {
                    Some(rt) => self.driver.handle(&rt, method, body),
                    None => Some(Err("podswitch is stopping".into())),
                }
            }
            _ => None,
        };
        match reply {
            Some(Ok(v)) => ("200 OK", v),
            Some(Err(e)) => {
                tracing::warn!("docker plugin {path}: {e}");
                ("500 Internal Server Error", json!({ "Err": e }))
            }
            None => (
                "404 Not Found",
                json!({ "Err": format!("{path} is not a method of podswitch's Docker plugin") }),
            ),
        }
    }
}

impl DockerPlugin {
    /// Binds `path` (mode 0600; a stale file a killed podswitch left is
    /// removed, a live plugin refused) and serves `runtime` on it.
    pub fn bind(path: &Path, runtime: &Arc<Runtime>) -> Result<DockerPlugin> {
        crate::control::claim(path)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let listener = UnixListener::bind(path)
            .with_context(|| format!("binding the Docker plugin socket {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let mut plugin = Plugin::new(Arc::downgrade(runtime));
        let thread = std::thread::Builder::new()
            .name("docker-plugin".into())
            .spawn(move || {
                while !stop2.load(Ordering::Acquire) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            if let Err(e) = serve(conn, &mut plugin) {
                                tracing::debug!("docker plugin request: {e}");
                            }
                        }
                        // Nothing pending: look at the stop flag again soon.
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })?;
        Ok(DockerPlugin {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for DockerPlugin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(mut conn: UnixStream, plugin: &mut Plugin) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    conn.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let (status, body) = match http::read_request(&mut conn) {
        Err(e) => (e.status(), json!({ "Err": e.to_string() })),
        Ok(r) if r.method != "POST" => (
            "405 Method Not Allowed",
            json!({ "Err": format!("{} {}: the plugin protocol is POST only", r.method, r.path) }),
        ),
        Ok(r) => {
            tracing::debug!(
                "docker plugin {}: {}",
                r.path,
                String::from_utf8_lossy(&r.body)
            );
            plugin.answer(&r.path, &r.body)
        }
    };
    http::write_reply(&mut conn, status, &body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activate_names_both_drivers_and_an_unknown_path_is_a_404_with_an_err() {
        let mut p = Plugin::new(Weak::new());
        let (status, v) = p.answer("/Plugin.Activate", b"{}");
        assert_eq!(status, "200 OK");
        assert_eq!(v, json!({"Implements": ["NetworkDriver", "IpamDriver"]}));
        let (status, v) = p.answer("/NetworkDriver.Frobnicate", b"{}");
        assert_eq!(status, "404 Not Found");
        assert!(v["Err"].as_str().unwrap().contains("Frobnicate"));
        let (status, _) = p.answer("/nothing", b"");
        assert_eq!(status, "404 Not Found");
        let (status, v) = p.answer("/IpamDriver.RequestPool", b"[1,2");
        assert_eq!(status, "500 Internal Server Error");
        assert!(v["Err"].as_str().unwrap().starts_with("bad request body"));
    }
}
