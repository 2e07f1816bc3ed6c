//! Helpers for tests that run the `podswitch` binary: a child process that
//! is stopped by PID when the test ends (also on failure), and the root
//! check every such test starts with.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pmd::netns::{unique_name, NetnsGuard};

/// Fails the test when not root. Returns true (the test returns early)
/// only where `PODSWITCH_ALLOW_SKIP=1` allows skipping; `./test.sh` never
/// does.
pub fn skip_unless_root(test: &str) -> bool {
    !test_support::require_root(test)
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
    /// What the daemon wrote to stderr so far.
    log: std::sync::Arc<std::sync::Mutex<String>>,
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
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                log2.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
            let _ = err_tx.send(log2.lock().unwrap().clone());
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
            log,
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

    /// Waits until the daemon's stderr contains `text` (a log line).
    pub fn wait_for_log(&self, text: &str) {
        test_support::wait_until(
            &format!("podswitch logs {text:?}"),
            Duration::from_secs(10),
            || self.log.lock().unwrap().contains(text),
        );
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

impl Daemon {
    /// Stops with SIGTERM, asserts a clean exit and returns stderr (the
    /// final counters).
    pub fn stop_clean(&mut self) -> String {
        let (code, err) = self.stop(libc::SIGTERM);
        assert_eq!(code, Some(0), "clean exit; stderr:\n{err}");
        err
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(libc::SIGTERM);
        // What ctl added is kept for the next start next to the control
        // socket (`[switch] state`); the test's daemon has no next start.
        if let Some(state) =
            state_path(&std::fs::read_to_string(&self.config.path).unwrap_or_default())
        {
            let _ = std::fs::remove_file(state);
        }
    }
}

/// Where the daemon of config `text` keeps its run-time state: its
/// `control` socket's path with the extension `.state`.
pub fn state_path(text: &str) -> Option<PathBuf> {
    let control = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("control = \""))?
        .trim_end_matches('"');
    Some(PathBuf::from(control).with_extension("state"))
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

/// A veth from `host` (`up0`, up, no address: the switch's uplink) into
/// `outside` (`out0`, with `cidr`, up). Both ends keep the offloads the
/// kernel gave them; the outside's are checked.
pub fn uplink_veth(host: &NetnsGuard, outside: &NetnsGuard, cidr: &str) {
    host.exec(
        "ip",
        &[
            "link",
            "add",
            "up0",
            "type",
            "veth",
            "peer",
            "name",
            "out0",
            "netns",
            outside.name(),
        ],
    )
    .unwrap();
    host.exec("ip", &["link", "set", "up0", "up"]).unwrap();
    outside
        .exec("ip", &["addr", "add", cidr, "dev", "out0"])
        .unwrap();
    outside.exec("ip", &["link", "set", "out0", "up"]).unwrap();
    // The outside keeps veth's default offloads (its TCP/UDP checksums
    // reach the AF_XDP uplink partial), as a user's neighbour does.
    assert!(
        test_support::tx_checksum_offload_on(outside.name(), "out0"),
        "out0 keeps its defaults"
    );
}

/// The value of `name N` or `name=N` on the line of the final counters
/// that starts with `prefix` (0 when a drop reason is absent).
pub fn report_counter(stderr: &str, prefix: &str, name: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.trim_start().starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{stderr}"));
    let words: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    if let Some(v) = words
        .iter()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
    {
        return v.parse().unwrap();
    }
    match words.iter().position(|w| *w == name) {
        Some(i) => words[i + 1].parse().unwrap(),
        None => 0,
    }
}

/// The `rx pkts`, `rx bytes`, `tx pkts` and `tx bytes` columns of port
/// `name` in the final counters' port table.
pub fn port_counts(stderr: &str, name: &str) -> [u64; 4] {
    let line = stderr
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no port `{name}` in:\n{stderr}"));
    let w: Vec<&str> = line.split_whitespace().collect();
    [2, 3, 4, 5].map(|i| w[i].parse().unwrap())
}

/// An ARP request (broadcast) from `mac`/`ip` asking for `target`.
pub fn arp_request(mac: [u8; 6], ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0xffu8; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f.resize(60, 0);
    f
}

/// True for an ARP request asking for `target`.
pub fn is_arp_request_for(f: &[u8], target: Ipv4Addr) -> bool {
    f.len() >= 42
        && f[12..14] == [0x08, 0x06]
        && f[20..22] == [0, 1]
        && f[38..42] == target.octets()
}

/// A packet socket on `eth0` inside a namespace, opened before the traffic
/// a test counts: it sees exactly the frames that arrive there, whatever
/// else the kernel sends meanwhile.
pub struct Capture {
    fd: OwnedFd,
    got: Vec<Vec<u8>>,
}

impl Capture {
    /// Opens the socket inside `netns`, bound to its `eth0`.
    pub fn eth0(netns: &str) -> Capture {
        let fd = pmd::netns::in_netns(netns, || {
            let name = std::ffi::CString::new("eth0").unwrap();
            // SAFETY: socket(2) with constant arguments; the fd is owned
            // right away.
            let raw = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    (libc::ETH_P_ALL as u16).to_be() as i32,
                )
            };
            assert!(
                raw >= 0,
                "packet socket: {}",
                std::io::Error::last_os_error()
            );
            // SAFETY: `raw` is a fresh fd nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: sockaddr_ll is plain data; all-zero is valid.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
            // SAFETY: `name` is a NUL-terminated string that outlives the call.
            sll.sll_ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
            assert!(sll.sll_ifindex > 0, "no eth0 in the namespace");
            // SAFETY: `sll` is a valid sockaddr_ll of the stated size.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
            fd
        })
        .unwrap();
        Capture {
            fd,
            got: Vec::new(),
        }
    }

    /// Every frame received on eth0 since the socket opened (not the ones
    /// the namespace sent).
    pub fn frames(&mut self) -> &[Vec<u8>] {
        let mut buf = vec![0u8; 65536];
        loop {
            // SAFETY: sockaddr_ll is plain data; all-zero is valid.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: `buf` and `from` are writable for the lengths given.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                // Nothing waiting (EAGAIN): the caller asks again later.
                return &self.got;
            }
            if from.sll_pkttype != libc::PACKET_OUTGOING {
                self.got.push(buf[..n as usize].to_vec());
            }
        }
    }

    /// How many received frames match `pred`.
    pub fn count(&mut self, pred: impl Fn(&[u8]) -> bool) -> usize {
        self.frames().iter().filter(|f| pred(f)).count()
    }
}

/// `podswitch ctl --socket SOCKET ARGS`, ready to run.
pub fn ctl(socket: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_podswitch"));
    c.args(["ctl", "--socket", socket]).args(args);
    c
}

/// `ctl ARGS` that must succeed: its stdout.
pub fn ctl_ok(socket: &str, args: &[&str]) -> String {
    let out = ctl(socket, args).output().unwrap();
    assert!(
        out.status.success(),
        "ctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `ctl --json ARGS` that must succeed, parsed.
pub fn ctl_json(socket: &str, args: &[&str]) -> serde_json::Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    serde_json::from_str(&ctl_ok(socket, &full)).unwrap()
}
