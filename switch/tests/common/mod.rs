//! Helpers for tests that run the `podswitch` binary: a child process that
//! is stopped by PID when the test ends (also on failure), and a skip
//! notice for machines without root.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pmd::netns::unique_name;

/// Prints why a test is skipped and returns true when not root.
pub fn skip_unless_root(test: &str) -> bool {
    if pmd::netns::is_root() {
        return false;
    }
    eprintln!("SKIPPED {test}: needs root (network namespaces, TAP, XDP)");
    true
}

/// A config file in a temp dir, removed on drop.
pub struct TempConfig {
    pub path: PathBuf,
}

impl TempConfig {
    pub fn new(text: &str) -> TempConfig {
        let path = std::env::temp_dir().join(format!("{}.toml", unique_name("pscfg")));
        std::fs::write(&path, text).unwrap();
        TempConfig { path }
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A unique control socket path.
pub fn control_path() -> String {
    format!("/run/{}.sock", unique_name("pstest"))
}

/// A running `podswitch` child, stopped by PID on drop.
pub struct Daemon {
    child: Option<Child>,
    stderr: mpsc::Receiver<String>,
    pub config: TempConfig,
}

impl Daemon {
    /// Starts `podswitch ARGS CONFIG` and waits for its `ready` line.
    pub fn start_with(args: &[&str], text: &str) -> Daemon {
        Daemon::start_in(None, args, text)
    }

    /// Starts `podswitch ARGS CONFIG` inside `netns` (when given) and waits
    /// for its `ready` line. `ip netns exec` execs podswitch, so the child's
    /// PID is podswitch's.
    pub fn start_in(netns: Option<&str>, args: &[&str], text: &str) -> Daemon {
        let config = TempConfig::new(text);
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_podswitch")]);
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_podswitch")),
        };
        let mut child = cmd
            .args(args)
            .arg(&config.path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting podswitch");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (err_tx, err_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            let _ = err_tx.send(s);
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == "ready" {
                    let _ = tx.send(());
                }
            }
        });
        let mut d = Daemon {
            child: Some(child),
            stderr: err_rx,
            config,
        };
        if rx.recv_timeout(Duration::from_secs(20)).is_err() {
            let (_, err) = d.stop(libc::SIGKILL);
            panic!("podswitch did not print ready; stderr:\n{err}");
        }
        d
    }

    /// `podswitch run CONFIG`.
    pub fn run(text: &str) -> Daemon {
        Daemon::start_with(&["run"], text)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Sends `sig`, waits for exit (at most 10 s, then SIGKILL), and returns
    /// the exit code and stderr.
    pub fn stop(&mut self, sig: i32) -> (Option<i32>, String) {
        let Some(mut child) = self.child.take() else {
            return (None, String::new());
        };
        // SAFETY: kill(2) on the PID of a child this test started.
        unsafe { libc::kill(child.id() as i32, sig) };
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Ok(Some(s)) = child.try_wait() {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let err = self
            .stderr
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default();
        (status.and_then(|s| s.code()), err)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(libc::SIGTERM);
    }
}

/// `ip -d link show` output of the current namespace.
pub fn ip_link_details() -> String {
    let out = Command::new("ip")
        .args(["-d", "link", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Output of `ip ARGS` inside a namespace.
pub fn ip_in(netns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["-n", netns])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// True when `dev` in `netns` checksums TCP/UDP by offload (veth's
/// default), read with `ethtool -k`: the tests check that the peers they
/// build are as users have them.
pub fn tx_checksum_offload_on(netns: &pmd::netns::NetnsGuard, dev: &str) -> bool {
    let out = netns
        .command("ethtool")
        .args(["-k", dev])
        .output()
        .expect("ethtool -k");
    String::from_utf8_lossy(&out.stdout).contains("tx-checksumming: on")
}

/// Received packets on an interface inside a namespace.
pub fn rx_packets(netns: &str, dev: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "cat"])
        .arg(format!("/sys/class/net/{dev}/statistics/rx_packets"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Writes raw frames out of `eth0` in `netns` with a packet socket (to
/// inject malformed or hand-built frames).
pub fn send_raw_frames(netns: &str, frames: Vec<Vec<u8>>) {
    pmd::netns::in_netns(netns, move || {
        // SAFETY: plain socket/bind/send calls on a fd owned here, with
        // pointers to live local buffers of the stated sizes.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(
                fd >= 0,
                "packet socket: {}",
                std::io::Error::last_os_error()
            );
            let name = std::ffi::CString::new("eth0").unwrap();
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
            let rc = libc::bind(
                fd,
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
            for f in &frames {
                libc::send(fd, f.as_ptr() as *const libc::c_void, f.len(), 0);
            }
            libc::close(fd);
        }
    })
    .unwrap();
}
