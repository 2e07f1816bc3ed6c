//! Network namespaces: run a closure inside one, and a guard that creates a
//! uniquely named namespace and deletes it on drop (`podswitch demo`,
//! `podbench tcp` and the tests).
//!
//! Namespace setup is control-path work, so it shells out to iproute2's `ip`
//! where that is clearer than netlink; entering a namespace is `setns(2)`.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Path of a namespace given as an `ip netns` name or an absolute path.
pub fn netns_path(name_or_path: &str) -> PathBuf {
    if name_or_path.starts_with('/') {
        PathBuf::from(name_or_path)
    } else {
        PathBuf::from("/run/netns").join(name_or_path)
    }
}

/// Runs `f` on a new thread that has entered the namespace, and returns its
/// result. The calling thread's namespace is untouched.
pub fn in_netns<T: Send + 'static>(
    name_or_path: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let path = netns_path(name_or_path);
    let file = File::open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("opening netns {}: {e}", path.display())))?;
    std::thread::spawn(move || -> io::Result<T> {
        // SAFETY: setns on a valid namespace fd affects only this thread
        // (CLONE_NEWNET), which ends when the closure returns.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(f())
    })
    .join()
    .map_err(|_| io::Error::other("netns thread panicked"))?
}

/// Runs `ip ARGS`, returning stderr as the error on failure.
pub fn ip(args: &[&str]) -> io::Result<()> {
    run("ip", args)
}

/// Runs a command, returning stderr as the error on failure.
pub fn run(cmd: &str, args: &[&str]) -> io::Result<()> {
    let out = Command::new(cmd).args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A namespace made for a test or lab, deleted (with its interfaces) on drop.
#[derive(Debug)]
pub struct NetnsGuard {
    name: String,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call, `{prefix}{pid}{n}`, at most 15
/// characters so it also fits an interface name.
pub fn unique_name(prefix: &str) -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id() % 100_000;
    let mut s = format!("{prefix}{pid}x{n}");
    s.truncate(15);
    s
}

impl NetnsGuard {
    /// Creates a namespace with a unique name starting with `prefix`, with
    /// loopback up.
    pub fn new(prefix: &str) -> io::Result<NetnsGuard> {
        let name = unique_name(prefix);
        ip(&["netns", "add", &name])?;
        let guard = NetnsGuard { name };
        guard.exec("ip", &["link", "set", "lo", "up"])?;
        Ok(guard)
    }

    /// Adopts an existing namespace: it is deleted on drop.
    pub fn adopt(name: &str) -> NetnsGuard {
        NetnsGuard {
            name: name.to_string(),
        }
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs a command inside the namespace and waits for it.
    pub fn exec(&self, cmd: &str, args: &[&str]) -> io::Result<()> {
        let mut full = vec!["netns", "exec", &self.name, cmd];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// A `Command` that runs inside the namespace.
    pub fn command(&self, cmd: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, cmd]);
        c
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        // End whatever a test left running inside, by PID, then delete.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    // SAFETY: kill(2) with a PID read from this namespace;
                    // no memory is involved.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// A veth pair (or any link) deleted on drop, for links left in the
/// namespace podswitch runs in.
#[derive(Debug)]
pub struct LinkGuard {
    name: String,
}

impl LinkGuard {
    /// Creates a veth pair `a` <-> `b` in the current namespace, both up.
    pub fn veth(a: &str, b: &str) -> io::Result<LinkGuard> {
        ip(&["link", "add", a, "type", "veth", "peer", "name", b])?;
        let guard = LinkGuard {
            name: a.to_string(),
        };
        ip(&["link", "set", a, "up"])?;
        ip(&["link", "set", b, "up"])?;
        Ok(guard)
    }

    /// Adopts an existing link: deleted on drop.
    pub fn adopt(name: &str) -> LinkGuard {
        LinkGuard {
            name: name.to_string(),
        }
    }
}

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.name]);
    }
}

/// True when the process runs as root (the demo and podbench refuse to
/// start otherwise, saying why).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
