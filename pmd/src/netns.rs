//! Network namespaces: create and delete them as `ip netns add`/`del` do
//! (without forking `ip`), run a closure inside one, and a guard that
//! creates a uniquely named namespace and deletes it on drop (`podswitch
//! demo`, labs, `podbench tcp` and the tests).

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::netlink::{LinkChange, Rtnl};

/// Where `ip netns` keeps its names.
pub const NETNS_RUN_DIR: &str = "/run/netns";

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
    // setns(CLONE_NEWNET) moves only this new thread, which ends when the
    // closure returns.
    std::thread::spawn(move || -> io::Result<T> {
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        Ok(f())
    })
    .join()
    .map_err(|_| io::Error::other("netns thread panicked"))?
}

/// Moves the calling thread into the namespace of `ns` (an open namespace
/// file). Only for a thread of the caller's own that ends afterwards or
/// enters each namespace it works in: the thread's sockets and TAPs are
/// made in whichever namespace it is in.
pub fn enter(ns: &File) -> io::Result<()> {
    setns(ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

/// Serialises the one-time set-up of /run/netns between threads that
/// create namespaces in parallel.
static RUN_DIR: Mutex<bool> = Mutex::new(false);

/// Makes /run/netns a shared mount point, as iproute2 does, so a namespace
/// mounted there later is visible in mount namespaces that were copied
/// from this one (containers started afterwards see the same names).
fn prepare_run_dir() -> io::Result<()> {
    let mut ready = RUN_DIR.lock().unwrap_or_else(|p| p.into_inner());
    if *ready {
        return Ok(());
    }
    std::fs::create_dir_all(NETNS_RUN_DIR)
        .map_err(|e| io::Error::new(e.kind(), format!("creating {NETNS_RUN_DIR}: {e}")))?;
    let shared = |dir: &str| {
        mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    if let Err(nix::errno::Errno::EINVAL) = shared(NETNS_RUN_DIR) {
        // Not a mount point yet: bind it onto itself first.
        mount(
            Some(NETNS_RUN_DIR),
            NETNS_RUN_DIR,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| io::Error::other(format!("bind-mounting {NETNS_RUN_DIR}: {e}")))?;
    }
    shared(NETNS_RUN_DIR)
        .map_err(|e| io::Error::other(format!("making {NETNS_RUN_DIR} shared: {e}")))?;
    *ready = true;
    Ok(())
}

/// Creates the namespace `name` under /run/netns with loopback up (as `ip
/// netns add NAME` and `ip -n NAME link set lo up`). Fails if it exists.
pub fn create(name: &str) -> io::Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a namespace name"),
        ));
    }
    prepare_run_dir()?;
    let path = netns_path(name);
    File::options()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", path.display())))?;
    // unshare(CLONE_NEWNET) moves only the calling thread: a thread of its
    // own enters the new namespace, pins it with the bind mount, and ends,
    // so no other thread ever runs in it by accident.
    let pin = |path: &Path| -> io::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|e| io::Error::other(format!("unshare(CLONE_NEWNET): {e}")))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| io::Error::other(format!("bind-mounting onto {}: {e}", path.display())))?;
        Rtnl::open()?.loopback_up()
    };
    let made = std::thread::scope(|s| {
        s.spawn(|| pin(&path))
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")))
    });
    if let Err(e) = made {
        let _ = umount2(&path, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&path);
        return Err(io::Error::new(e.kind(), format!("netns {name}: {e}")));
    }
    Ok(())
}

/// Deletes the namespace `name` (as `ip netns del NAME`): the kernel frees
/// it, with its interfaces, once no process or open file holds it.
pub fn delete(name: &str) -> io::Result<()> {
    let path = netns_path(name);
    // Detach, as iproute2 does: a busy mount must not keep the name.
    let _ = umount2(&path, MntFlags::MNT_DETACH);
    std::fs::remove_file(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("removing netns {name}: {e}")))
}

/// True when /run/netns has `name`.
pub fn exists(name: &str) -> bool {
    netns_path(name).exists()
}

/// Moves the link `link` of the calling thread's namespace into the
/// namespace `netns` (a name or path) as `new_name`, up, with `addr`
/// (address and prefix length) when given: the container end of a veth.
pub fn move_link(
    link: &str,
    netns: &str,
    new_name: &str,
    addr: Option<(Ipv4Addr, u8)>,
) -> io::Result<()> {
    let ns = File::open(netns_path(netns))
        .map_err(|e| io::Error::new(e.kind(), format!("opening netns {netns}: {e}")))?;
    let mut here = Rtnl::open()?;
    let index = here
        .link_index(link)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no link {link}")))?;
    here.set_link(
        index,
        &LinkChange {
            netns: Some(&ns),
            name: Some(new_name),
            up: true,
            ..LinkChange::default()
        },
    )?;
    if let Some((ip, prefix)) = addr {
        let mut there = Rtnl::open_in(&ns)?;
        let index = there.link_index(new_name)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{new_name} not in {netns}"),
            )
        })?;
        there.add_ipv4(index, ip, prefix)?;
    }
    Ok(())
}

/// PIDs of the processes whose network namespace is the one at `path` (as
/// `ip netns pids`): same device and inode as /proc/PID/ns/net.
pub fn pids(path: &Path) -> io::Result<Vec<i32>> {
    let ns = std::fs::metadata(path)?;
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        // A process may exit between the listing and this look.
        if let Ok(m) = std::fs::metadata(entry.path().join("ns/net")) {
            if m.dev() == ns.dev() && m.ino() == ns.ino() {
                found.push(pid);
            }
        }
    }
    Ok(found)
}

fn output_ok(cmd: &str, args: &[&str], c: &mut Command) -> io::Result<()> {
    let out = c.output()?;
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
        create(&name)?;
        Ok(NetnsGuard { name })
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
        output_ok(cmd, args, self.command(cmd).args(args))
    }

    /// A `Command` that runs inside the namespace: the child enters it
    /// between fork and exec, so its PID is the command's own.
    pub fn command(&self, cmd: &str) -> Command {
        command_in(&netns_path(&self.name), cmd)
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        // End whatever a test left running inside, by PID, then delete.
        if let Ok(found) = pids(&netns_path(&self.name)) {
            for pid in found {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        let _ = delete(&self.name);
    }
}

/// A `Command` for `cmd` that runs in the namespace at `path`. When the
/// namespace cannot be opened the command fails to spawn with that error.
pub fn command_in(path: &Path, cmd: &str) -> Command {
    let mut c = Command::new(cmd);
    match File::open(path) {
        Ok(ns) => {
            // SAFETY: the closure runs in the forked child before exec and
            // makes only the setns(2) system call on a descriptor the child
            // inherited (`ns` moves into the closure and lives as long as
            // the Command); it allocates nothing and takes no lock, which
            // is what a child of a multi-threaded parent may do.
            unsafe {
                use std::os::unix::process::CommandExt;
                c.pre_exec(move || {
                    if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        Err(e) => {
            let kind = e.kind();
            // SAFETY: the closure runs in the forked child before exec and
            // only returns an error built from a kind (no allocation), so
            // spawning fails instead of running outside the namespace.
            unsafe {
                use std::os::unix::process::CommandExt;
                c.pre_exec(move || Err(io::Error::from(kind)));
            }
        }
    }
    c
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
        Rtnl::open()?.add_veth(a, b)?;
        Ok(LinkGuard {
            name: a.to_string(),
        })
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
        if let Ok(mut rtnl) = Rtnl::open() {
            let _ = rtnl.del_link(&self.name);
        }
    }
}

/// True when the process runs as root (the demo and podbench refuse to
/// start otherwise, saying why).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
