//! TAP ports against the real kernel: two TAPs, each moved into a namespace
//! this test creates, wired together by a PMD thread.
//!
//! Needs root (CAP_NET_ADMIN, namespaces) and `/dev/net/tun`; fails
//! without them.
//! Traffic goes only between the namespaces the test made; every namespace
//! is deleted by its guard, and every TAP disappears with its fd, even when
//! a test fails.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::RawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pmd::netns::{in_netns, unique_name, NetnsGuard};
use pmd::tap::TapPort;
use pmd::thread::{Ctx, Engine, Pipeline, PmdThread, PollMode, ThreadReport};
use pmd::{Frame, Pool, PoolConfig, Port, PortCounters, PortId};
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket,
    UdpPacket,
};

/// Fails the test without root or `/dev/net/tun` (true only where
/// skipping is allowed).
fn skip() -> bool {
    !test_support::require_tun("TAP ports")
}

/// A wire: what comes in on port 0 goes out on port 1 and back.
struct Wire;

impl Pipeline for Wire {
    fn process(&mut self, ctx: &mut Ctx<'_>, burst: &mut Vec<Frame>) {
        for f in burst.drain(..) {
            let out = PortId(1 - f.in_port.0.min(1));
            ctx.send(out, f);
        }
    }
}

/// What a [`Watched`] port saw.
#[derive(Default)]
struct Seen {
    rx_max: AtomicUsize,
    rx_over_1514: AtomicU64,
    tx_frames: AtomicU64,
    tx_max: AtomicUsize,
    tx_tcp_checked: AtomicU64,
    tx_bad_checksum: AtomicU64,
    tx_offload_left: AtomicU64,
}

/// A port wrapper that records frame sizes and, on transmit, checks every
/// frame's IP and L4 checksums (after the thread's software offload ran).
struct Watched<P> {
    inner: P,
    seen: Arc<Seen>,
}

impl<P: Port> Port for Watched<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn rx_burst(&mut self, pool: &mut Pool, out: &mut Vec<Frame>, max: usize) -> usize {
        let start = out.len();
        let n = self.inner.rx_burst(pool, out, max);
        for f in &out[start..] {
            self.seen.rx_max.fetch_max(f.len(), Ordering::Relaxed);
            if f.len() > 1514 {
                self.seen.rx_over_1514.fetch_add(1, Ordering::Relaxed);
            }
        }
        n
    }

    fn tx_burst(&mut self, pool: &mut Pool, frames: &mut Vec<Frame>) {
        for f in frames.iter() {
            let s = &self.seen;
            s.tx_frames.fetch_add(1, Ordering::Relaxed);
            s.tx_max.fetch_max(f.len(), Ordering::Relaxed);
            if !self.inner.accepts_offload() {
                if !f.offload.is_plain() {
                    s.tx_offload_left.fetch_add(1, Ordering::Relaxed);
                }
                match verify(pool.data(f)) {
                    Some(true) => {
                        s.tx_tcp_checked.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(false) => {
                        s.tx_bad_checksum.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {}
                }
            }
        }
        self.inner.tx_burst(pool, frames)
    }

    fn maintain(&mut self, pool: &mut Pool) {
        self.inner.maintain(pool)
    }

    fn counters(&self) -> &Arc<PortCounters> {
        self.inner.counters()
    }

    fn rx_fds(&self) -> Vec<RawFd> {
        self.inner.rx_fds()
    }

    fn accepts_offload(&self) -> bool {
        self.inner.accepts_offload()
    }

    fn release(&mut self, pool: &mut Pool) {
        self.inner.release(pool)
    }
}

/// For a TCP frame: whether its IP and TCP checksums are valid (UDP frames
/// are checked too but not counted); `None` for anything else.
fn verify(bytes: &[u8]) -> Option<bool> {
    let eth = EthernetFrame::new_checked(bytes).ok()?;
    let (src, dst, proto, l4, ip_ok) = match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            (
                IpAddress::Ipv4(ip.src_addr()),
                IpAddress::Ipv4(ip.dst_addr()),
                ip.next_header(),
                ip.payload().to_vec(),
                ip.verify_checksum(),
            )
        }
        EthernetProtocol::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            (
                IpAddress::Ipv6(ip.src_addr()),
                IpAddress::Ipv6(ip.dst_addr()),
                ip.next_header(),
                ip.payload().to_vec(),
                true,
            )
        }
        _ => return None,
    };
    match proto {
        IpProtocol::Tcp => {
            let tcp = TcpPacket::new_checked(&l4[..]).ok()?;
            Some(ip_ok && tcp.verify_checksum(&src, &dst))
        }
        IpProtocol::Udp => {
            let udp = UdpPacket::new_checked(&l4[..]).ok()?;
            if !(ip_ok && udp.verify_checksum(&src, &dst)) {
                return Some(false);
            }
            None
        }
        _ => None,
    }
}

/// Stops the engine when dropped, so a failing assertion does not leave a
/// PMD thread holding the TAPs.
struct Running(Option<Engine>);

impl Running {
    fn stop(mut self) -> Vec<ThreadReport> {
        self.0.take().map(Engine::stop).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(e) = self.0.take() {
            e.stop();
        }
    }
}

/// Two namespaces with a TAP each (as eth0, 10.S.N.1/24 and .2/24, up).
struct Lab {
    a: NetnsGuard,
    b: NetnsGuard,
    ip_a: String,
    ip_b: String,
}

impl Lab {
    fn new(tap_a: &TapPort, tap_b: &TapPort, n: u8) -> Lab {
        let a = NetnsGuard::new("pta").expect("creating namespace a");
        let b = NetnsGuard::new("ptb").expect("creating namespace b");
        let s = 20 + std::process::id() % 200;
        let ip_a = format!("10.{s}.{n}.1");
        let ip_b = format!("10.{s}.{n}.2");
        for (tap, ns, ip) in [(tap_a, &a, &ip_a), (tap_b, &b, &ip_b)] {
            test_support::ip(&["link", "set", tap.name(), "netns", ns.name()])
                .expect("moving the TAP");
            ns.exec("ip", &["link", "set", tap.name(), "name", "eth0"])
                .expect("renaming the TAP");
            ns.exec("ip", &["addr", "add", &format!("{ip}/24"), "dev", "eth0"])
                .expect("adding the address");
            ns.exec("ip", &["link", "set", "eth0", "up"])
                .expect("bringing eth0 up");
        }
        Lab { a, b, ip_a, ip_b }
    }
}

fn taps(plain_b: bool) -> (TapPort, TapPort) {
    let a = TapPort::create(&unique_name("tpa"), PortId(0)).expect("creating TAP a");
    let name_b = unique_name("tpb");
    let b = if plain_b {
        TapPort::create_plain(&name_b, PortId(1))
    } else {
        TapPort::create(&name_b, PortId(1))
    }
    .expect("creating TAP b");
    (a, b)
}

/// The default poll mode, or `Adaptive` with `PMD_IDLE_US` microseconds of
/// spinning (to measure how spinning competes with iperf3 on small hosts).
fn poll_mode() -> PollMode {
    match std::env::var("PMD_IDLE_US")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(idle_us) => PollMode::Adaptive {
            idle_us,
            max_sleep_ms: 50,
        },
        None => PollMode::default(),
    }
}

fn start(a: impl Port + 'static, b: impl Port + 'static) -> (Running, Vec<Arc<PortCounters>>) {
    let counters = vec![a.counters().clone(), b.counters().clone()];
    let th = PmdThread {
        core: None,
        mode: poll_mode(),
        pool: Pool::new(PoolConfig::default()).expect("pool"),
        ports: vec![(PortId(0), Box::new(a)), (PortId(1), Box::new(b))],
        pipeline: Box::new(Wire),
    };
    let engine = Engine::start(vec![th]).expect("starting the engine");
    (Running(Some(engine)), counters)
}

fn ping(from: &NetnsGuard, to: &str) {
    let dst: std::net::Ipv4Addr = to.parse().unwrap();
    let replies = in_netns(from.name(), move || icmp_echo(dst, 3))
        .expect("entering namespace")
        .unwrap_or_else(|e| panic!("ping {to} from {}: {e}", from.name()));
    assert!(
        replies > 0,
        "no echo reply from {to} (namespace {})",
        from.name()
    );
}

/// Sends `count` ICMP echo requests to `dst` from a raw socket (no `ping`
/// binary needed) and counts the replies; each waits up to 2 s.
fn icmp_echo(dst: std::net::Ipv4Addr, count: u16) -> std::io::Result<u32> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: socket(2) has no memory preconditions; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let tv = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    // SAFETY: SO_RCVTIMEO reads a timeval from a live local of that size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(dst.octets()),
        },
        sin_zero: [0; 8],
    };
    let id = (std::process::id() as u16) ^ 0x5a5a;
    let mut replies = 0;
    for seq in 0..count {
        let mut req = [0u8; 64];
        req[0] = 8; // echo request
        req[4..6].copy_from_slice(&id.to_be_bytes());
        req[6..8].copy_from_slice(&seq.to_be_bytes());
        let c = pmd::wire::checksum::checksum(&req);
        req[2..4].copy_from_slice(&c.to_be_bytes());
        // SAFETY: buffer and address are live locals of the sizes given.
        let rc = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                req.as_ptr().cast(),
                req.len(),
                0,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            let mut buf = [0u8; 256];
            // SAFETY: recv writes at most buf.len() bytes into a live local.
            let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                break; // timed out
            }
            let n = n as usize;
            // A raw socket returns the IPv4 header too.
            let ihl = (buf[0] & 0x0f) as usize * 4;
            if n >= ihl + 8
                && buf[12..16] == dst.octets()
                && buf[ihl] == 0 // echo reply
                && buf[ihl + 4..ihl + 6] == id.to_be_bytes()
                && buf[ihl + 6..ihl + 8] == seq.to_be_bytes()
            {
                replies += 1;
                break;
            }
        }
    }
    Ok(replies)
}

/// Pseudo-random bytes (xorshift), so a reordered or repeated segment
/// cannot go unnoticed.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Sends `data` over TCP from namespace `from` to `to_ip` in namespace
/// `to`, and returns what the server read.
fn transfer(from: &str, to: &str, to_ip: &str, data: Arc<Vec<u8>>) -> Vec<u8> {
    let listener = in_netns(to, || TcpListener::bind("0.0.0.0:0"))
        .expect("entering namespace")
        .expect("binding the server");
    let port = listener.local_addr().unwrap().port();
    let len = data.len();
    let server = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
        let (mut s, _) = listener.accept()?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut v = Vec::with_capacity(len);
        s.read_to_end(&mut v)?;
        Ok(v)
    });
    let addr: SocketAddr = format!("{to_ip}:{port}").parse().unwrap();
    let mut stream = in_netns(from, move || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(5))
    })
    .expect("entering namespace")
    .expect("connecting through the switch");
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(&data).expect("sending");
    stream.shutdown(Shutdown::Write).unwrap();
    server.join().unwrap().expect("receiving")
}

#[test]
fn two_vnet_taps_forward_ping_and_a_byte_exact_tcp_transfer_in_64k_segments() {
    if skip() {
        return;
    }
    let (tap_a, tap_b) = taps(false);
    let lab = Lab::new(&tap_a, &tap_b, 1);
    let seen_a = Arc::new(Seen::default());
    let (running, counters) = start(
        Watched {
            inner: tap_a,
            seen: seen_a.clone(),
        },
        tap_b,
    );

    ping(&lab.a, &lab.ip_b);
    ping(&lab.b, &lab.ip_a);

    let data = Arc::new(pattern(10 << 20));
    let before = counters[0].snapshot();
    let got = transfer(lab.a.name(), lab.b.name(), &lab.ip_b, data.clone());
    assert_eq!(got.len(), data.len(), "bytes received");
    assert!(got == *data, "the 10 MB arrived byte-exact");
    let after = counters[0].snapshot();

    let pkts = after.rx_packets - before.rx_packets;
    let bytes = after.rx_bytes - before.rx_bytes;
    let avg = bytes / pkts.max(1);
    println!(
        "a->b: {pkts} frames, {bytes} bytes, average {avg} B, largest {} B, {} over 1514 B",
        seen_a.rx_max.load(Ordering::Relaxed),
        seen_a.rx_over_1514.load(Ordering::Relaxed)
    );
    assert!(avg > 3000, "GSO frames came from the TAP (average {avg} B)");
    assert!(seen_a.rx_max.load(Ordering::Relaxed) > 1514);

    let reports = running.stop();
    for c in &counters {
        let s = c.snapshot();
        println!("{s:?}");
        assert_eq!(s.total_drops(), 0, "no drops: {s:?}");
    }
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].leaked, 0, "every frame went back to the pool");
    drop(lab);
}

#[test]
fn a_port_without_offloads_gets_only_finished_frames_of_at_most_1514_bytes() {
    if skip() {
        return;
    }
    let (tap_a, tap_b) = taps(true);
    assert!(!tap_b.accepts_offload());
    let lab = Lab::new(&tap_a, &tap_b, 2);
    let seen_a = Arc::new(Seen::default());
    let seen_b = Arc::new(Seen::default());
    let (running, counters) = start(
        Watched {
            inner: tap_a,
            seen: seen_a.clone(),
        },
        Watched {
            inner: tap_b,
            seen: seen_b.clone(),
        },
    );

    ping(&lab.a, &lab.ip_b);
    let data = Arc::new(pattern(10 << 20));
    let got = transfer(lab.a.name(), lab.b.name(), &lab.ip_b, data.clone());
    assert!(got == *data, "the 10 MB arrived byte-exact");
    // And the other way: plain frames into a vnet TAP get a zeroed header.
    let back = Arc::new(pattern(2 << 20));
    let got = transfer(lab.b.name(), lab.a.name(), &lab.ip_a, back.clone());
    assert!(got == *back, "2 MB b->a arrived byte-exact");

    let rx_big = seen_a.rx_over_1514.load(Ordering::Relaxed);
    let tx_max = seen_b.tx_max.load(Ordering::Relaxed);
    let checked = seen_b.tx_tcp_checked.load(Ordering::Relaxed);
    let bad = seen_b.tx_bad_checksum.load(Ordering::Relaxed);
    println!(
        "a rx: largest {} B, {rx_big} frames over 1514 B; b tx: {} frames, largest {tx_max} B, \
         {checked} TCP frames with valid checksums, {bad} bad",
        seen_a.rx_max.load(Ordering::Relaxed),
        seen_b.tx_frames.load(Ordering::Relaxed),
    );
    assert!(
        rx_big > 0,
        "the sender's TAP delivered GSO frames to segment"
    );
    assert!(
        tx_max <= 1514,
        "largest frame out of the plain TAP: {tx_max}"
    );
    assert_eq!(bad, 0, "frames with a bad checksum");
    assert_eq!(seen_b.tx_offload_left.load(Ordering::Relaxed), 0);
    assert!(checked >= (10 << 20) / 1500, "{checked} TCP frames checked");

    let reports = running.stop();
    for c in &counters {
        let s = c.snapshot();
        assert_eq!(s.total_drops(), 0, "no drops: {s:?}");
    }
    assert_eq!(reports[0].leaked, 0, "every frame went back to the pool");
    drop(lab);
}

#[test]
fn creating_a_tap_with_a_16_byte_name_fails_with_a_clear_error() {
    let e = TapPort::create("abcdefghijklmnop", PortId(0)).unwrap_err();
    assert!(e.to_string().contains("at most 15 bytes"), "{e}");
    if skip() {
        return;
    }
    let name = unique_name("tpn");
    let tap = TapPort::create(&name, PortId(0)).expect("creating a TAP");
    assert!(std::path::Path::new(&format!("/sys/class/net/{name}")).exists());
    let mac = pmd::wire::MacAddr([0x02, 0, 0, 0x12, 0x34, 0x56]);
    tap.set_mac(mac).expect("setting the MAC");
    assert_eq!(tap.mac().unwrap(), mac);
    drop(tap);
    // Not persistent: the interface goes with the fd.
    assert!(!std::path::Path::new(&format!("/sys/class/net/{name}")).exists());
}

#[test]
fn a_tap_can_be_created_as_eth0_inside_a_namespace_and_drains_frames_it_has_no_buffer_for() {
    if skip() {
        return;
    }
    let ns = NetnsGuard::new("ptn").expect("creating a namespace");
    // The switch's way for endpoints: create the TAP in the endpoint's
    // namespace directly; the fd keeps working from any namespace.
    let mut tap = in_netns(ns.name(), || TapPort::create("eth0", PortId(7)))
        .expect("entering namespace")
        .expect("creating eth0");
    assert_eq!(tap.name(), "eth0");
    ns.exec("ip", &["addr", "add", "10.250.0.1/24", "dev", "eth0"])
        .unwrap();
    ns.exec("ip", &["link", "set", "eth0", "up"]).unwrap();
    // A pool whose only chunk is taken: the port must read and drop.
    let mut pool = Pool::new(PoolConfig {
        chunks: 1,
        large: 1,
        umem: false,
    })
    .unwrap();
    let held = pool.alloc().unwrap();
    // Make the kernel send ARP requests out of eth0 (nobody answers).
    let _ = in_netns(ns.name(), || icmp_echo("10.250.0.2".parse().unwrap(), 1));
    let mut out = Vec::new();
    assert_eq!(tap.rx_burst(&mut pool, &mut out, 32), 0);
    let s = tap.counters().snapshot();
    assert!(
        s.drops_of(pmd::DropReason::NoBuffer) >= 1,
        "frames without a buffer are counted: {s:?}"
    );
    pool.free(held);
    // With a buffer again, the next ARP retry is received, with its header.
    // The kernel retransmits ARP once a second, so wait for it.
    let _ = in_netns(ns.name(), || icmp_echo("10.250.0.2".parse().unwrap(), 1));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(4);
    while out.is_empty() && std::time::Instant::now() < deadline {
        tap.rx_burst(&mut pool, &mut out, 32);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!out.is_empty(), "a frame is received once buffers are back");
    assert!(out.iter().all(|f| f.in_port == PortId(7)));
    for f in out.drain(..) {
        pool.free(f);
    }
    tap.release(&mut pool);
    assert_eq!(pool.in_flight(), 0);
}

/// Not a test on its own: the child process of the SIGKILL test below.
/// Creates the TAP named in `PMD_TAP_HELPER`, says so, and waits to die.
#[test]
#[ignore = "the child process of a_tap_disappears_when_its_process_is_killed_with_sigkill"]
fn helper_hold_a_tap_until_killed() {
    let Ok(name) = std::env::var("PMD_TAP_HELPER") else {
        return;
    };
    let _tap = TapPort::create(&name, PortId(0)).expect("helper: creating the TAP");
    println!("holding {name}");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn a_tap_disappears_when_its_process_is_killed_with_sigkill() {
    if skip() {
        return;
    }
    let name = unique_name("tpk");
    let sys = format!("/sys/class/net/{name}");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_hold_a_tap_until_killed",
            "--ignored",
            "--nocapture",
        ])
        .env("PMD_TAP_HELPER", &name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the helper");
    let mut up = false;
    for _ in 0..200 {
        if std::path::Path::new(&sys).exists() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    // Child::kill sends SIGKILL to this child's PID only.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(up, "the helper created {name}");
    let mut gone = false;
    for _ in 0..200 {
        if !std::path::Path::new(&sys).exists() {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(gone, "{name} outlived its killed process");
}

/// iperf3 a->b for 3 s; Gbit/s received, or None without iperf3.
fn iperf(lab: &Lab) -> Option<f64> {
    let mut server = lab
        .b
        .command("iperf3")
        .args(["-s", "-1", "-B", &lab.ip_b])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    test_support::wait_until(
        "iperf3 -s listening in namespace b",
        Duration::from_secs(5),
        || {
            lab.b
                .command("ss")
                .args(["-Hltn", "sport = :5201"])
                .output()
                .is_ok_and(|o| !o.stdout.is_empty())
        },
    );
    let out = lab
        .a
        .command("iperf3")
        .args(["-c", &lab.ip_b, "-t", "3", "-J"])
        .output();
    // End the server we started, by its PID, whether or not it finished.
    let _ = server.kill();
    let _ = server.wait();
    let out = String::from_utf8_lossy(&out.ok()?.stdout).into_owned();
    let tail = &out[out.find("\"sum_received\"")?..];
    let v = &tail[tail.find("\"bits_per_second\":")? + 18..];
    let end = v.find([',', '\n', '}'])?;
    v[..end].trim().parse::<f64>().ok().map(|b| b / 1e9)
}

/// A measurement, not a test: run it by hand with
/// `cargo test -p pmd --test tap -- --ignored measure_iperf3 --nocapture`.
#[test]
#[ignore = "a measurement: run with --ignored measure_iperf3 --nocapture"]
fn measure_iperf3_through_the_tap_forwarder() {
    if skip() || !test_support::require_command("iperf3 measurement", "iperf3") {
        return;
    }
    for (plain, label) in [
        (false, "vnet TAP -> vnet TAP (GSO passed through)"),
        (true, "vnet TAP -> plain TAP (software GSO)"),
    ] {
        let (tap_a, tap_b) = taps(plain);
        let lab = Lab::new(&tap_a, &tap_b, 3);
        let seen = Arc::new(Seen::default());
        let (running, counters) = start(
            Watched {
                inner: tap_a,
                seen: seen.clone(),
            },
            tap_b,
        );
        ping(&lab.a, &lab.ip_b);
        let gbps = iperf(&lab);
        let s = counters[0].snapshot();
        println!(
            "{label}: {} Gbit/s; a rx {} frames, average {} B, largest {} B",
            gbps.map_or("n/a".to_string(), |g| format!("{g:.2}")),
            s.rx_packets,
            s.rx_bytes / s.rx_packets.max(1),
            seen.rx_max.load(Ordering::Relaxed)
        );
        let reports = running.stop();
        assert_eq!(reports[0].leaked, 0);
        drop(lab);
    }
}

#[test]
fn more_taps_than_large_buffers_leave_every_large_buffer_in_the_pool_between_bursts() {
    if skip() {
        return;
    }
    let mut pool = Pool::new(PoolConfig {
        large: 4,
        ..PoolConfig::default()
    })
    .expect("pool");
    let mut ports: Vec<TapPort> = (0..6)
        .map(|i| TapPort::create(&unique_name("tpl"), PortId(i)).expect("creating a TAP"))
        .collect();
    let mut out = Vec::new();
    for port in &mut ports {
        port.rx_burst(&mut pool, &mut out, 32);
        assert_eq!(
            pool.free_large(),
            4,
            "{} kept a large buffer after its burst",
            port.name()
        );
    }
    assert!(out.is_empty(), "down TAPs have nothing to read");
    for port in &mut ports {
        port.release(&mut pool);
    }
}
