//! The processes a TCP run starts (podswitch daemons, iperf3) and the files
//! they use, each behind a guard that ends or removes it on drop, by PID.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pmd::netns::{unique_name, NetnsGuard};

/// A file removed on drop.
pub struct TempFile(pub PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A child process stopped on drop: SIGTERM, up to `grace` to exit, then
/// SIGKILL; always reaped.
pub struct ChildGuard {
    child: Child,
    grace: Duration,
}

impl ChildGuard {
    pub fn spawn(cmd: &mut Command, grace: Duration) -> std::io::Result<ChildGuard> {
        Ok(ChildGuard {
            child: cmd.spawn()?,
            grace,
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// Waits up to `within` for the child to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM and wait; the exit status, or None if it had to be killed.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(st)) = self.child.try_wait() {
            return Some(st);
        }
        // Our own unreaped child: its PID cannot have been reused.
        let _ = kill(Pid::from_raw(self.pid()), Signal::SIGTERM);
        if let Some(st) = self.wait_exit(self.grace) {
            return Some(st);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Lines of a child's stdout, read on a helper thread.
pub fn lines_of(out: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// All of a child's stdout, read on a helper thread so that a large
/// output never blocks the child on a full pipe.
pub fn all_of(mut out: ChildStdout) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Waits for a line that contains `what`.
pub fn wait_line(rx: &mpsc::Receiver<String>, what: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(what) => return Ok(()),
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => bail!("no {what:?} line within {timeout:?}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("exited before {what:?}"),
        }
    }
}

/// `podswitch run CONFIG` inside a namespace, from `ready` on; stopped
/// with SIGTERM on drop. Its config, log and control socket are removed
/// after it.
pub struct Podswitch {
    child: ChildGuard,
    log: TempFile,
    _config: TempFile,
    _control: TempFile,
}

impl Podswitch {
    /// Writes `config` (with `{control}` replaced by a socket path of its
    /// own), starts the daemon in `ns` and waits for `ready`.
    pub fn start(bin: &Path, ns: &NetnsGuard, config: &str) -> Result<Podswitch> {
        // unique_name cuts at 15 characters: a short prefix keeps the
        // counter whole, so two daemons never share a socket or a config.
        let id = unique_name("pbd");
        let control = TempFile(PathBuf::from(format!("/run/{id}.sock")));
        let cfg = TempFile(std::env::temp_dir().join(format!("{id}.toml")));
        let log = TempFile(std::env::temp_dir().join(format!("{id}.log")));
        let text = config.replace("{control}", &control.0.display().to_string());
        std::fs::write(&cfg.0, text).with_context(|| format!("writing {}", cfg.0.display()))?;
        // `ip netns exec` execs podswitch, so the child's PID (whose CPU
        // time is measured) is podswitch's own.
        let mut child = ChildGuard::spawn(
            ns.command(&bin.display().to_string())
                .arg("run")
                .arg(&cfg.0)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(File::create(&log.0)?),
            Duration::from_secs(6),
        )
        .with_context(|| format!("starting {}", bin.display()))?;
        let rx = lines_of(child.take_stdout().expect("piped stdout"));
        if let Err(e) = wait_line(&rx, "ready", Duration::from_secs(30)) {
            child.stop();
            bail!("podswitch run: {e}; its log:\n{}", read_tail(&log.0));
        }
        Ok(Podswitch {
            child,
            log,
            _config: cfg,
            _control: control,
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.pid()
    }

    /// SIGTERM; an error (with the log's tail) unless it exits 0.
    pub fn stop(mut self) -> Result<()> {
        match self.child.stop() {
            Some(st) if st.success() => Ok(()),
            other => bail!(
                "podswitch did not exit cleanly on SIGTERM ({other:?}); its log:\n{}",
                read_tail(&self.log.0)
            ),
        }
    }
}

fn read_tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
