//! AF_XDP ports on veth pairs, end to end. Needs root (namespaces, XDP,
//! AF_XDP); every test fails without it.
//!
//! Topology of each test, all in namespaces the test creates and deletes:
//!
//! ```text
//!   netns A: pa (10.231.N.1/24) <-veth-> sa   netns S (the switch)
//!   netns B: pb (10.231.N.2/24) <-veth-> sb   netns S
//! ```
//!
//! The switch runs inside S (the pool's UMEM socket and the XDP attach must
//! be in the interfaces' namespace), so nothing touches the host namespace.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use pmd::afxdp::{remove_stale_program, AfXdpPort, L4Ports, L4Proto, StaleOutcome, XdpFilter};
use pmd::netns::{in_netns, unique_name, NetnsGuard};
use pmd::thread::{Ctx, Engine, Pipeline, PmdThread, PollMode};
use pmd::{Frame, Pool, PoolConfig, Port, PortId};
use test_support::ip;

/// Fails the test when not root (true only where skipping is allowed).
fn skip_unless_root(test: &str) -> bool {
    !test_support::require_root(test)
}

/// Two "containers" A and B, each wired by a veth to the switch namespace S.
struct Topo {
    // Field order: namespaces are deleted (with their veths) on drop.
    s: NetnsGuard,
    a: NetnsGuard,
    b: NetnsGuard,
    sa: String,
    sb: String,
    pa: String,
    pb: String,
    net: u8,
}

impl Topo {
    fn new(net: u8) -> Topo {
        Topo::with_queues(net, 1)
    }

    /// Like `new`, with `queues` rx and tx queues on every veth (veth's
    /// default is one in use, `numrxqueues` (one per CPU) at most).
    fn with_queues(net: u8, queues: u32) -> Topo {
        let s = NetnsGuard::new("pds").expect("netns S");
        let a = NetnsGuard::new("pda").expect("netns A");
        let b = NetnsGuard::new("pdb").expect("netns B");
        let (sa, pa) = (unique_name("sa"), unique_name("pa"));
        let (sb, pb) = (unique_name("sb"), unique_name("pb"));
        assert!(
            sa.len() <= 15 && pb.len() <= 15,
            "interface names fit IFNAMSIZ"
        );
        for (sw, peer, ns, host) in [(&sa, &pa, &a, 1), (&sb, &pb, &b, 2)] {
            let q = queues.to_string();
            ip(&[
                "link",
                "add",
                sw,
                "netns",
                s.name(),
                "numrxqueues",
                &q,
                "numtxqueues",
                &q,
                "type",
                "veth",
                "peer",
                "name",
                peer,
                "netns",
                ns.name(),
                "numrxqueues",
                &q,
                "numtxqueues",
                &q,
            ])
            .expect("veth pair");
            ns.exec(
                "ip",
                &[
                    "addr",
                    "add",
                    &format!("10.231.{net}.{host}/24"),
                    "dev",
                    peer,
                ],
            )
            .expect("address");
            ns.exec("ip", &["link", "set", peer, "up"])
                .expect("peer up");
            s.exec("ip", &["link", "set", sw, "up"])
                .expect("switch end up");
        }
        Topo {
            s,
            a,
            b,
            sa,
            sb,
            pa,
            pb,
            net,
        }
    }

    fn addr(&self, host: u8) -> String {
        format!("10.231.{}.{host}", self.net)
    }
}

/// Forwards every frame from port 0 to port 1 and back: a patch cable.
/// Forwards port 0 to port 1 and back, as a switch would: a frame whose
/// checksum the sender left partial is marked so, and the engine completes
/// it before the other AF_XDP port sends it.
struct Cross;

impl Pipeline for Cross {
    fn process(&mut self, ctx: &mut Ctx<'_>, burst: &mut Vec<Frame>) {
        for mut f in burst.drain(..) {
            if let Ok(meta) = pmd::meta::parse(ctx.pool.data(&f)) {
                pmd::partial_csum::resolve_frame(ctx.pool, &mut f, &meta);
            }
            let out = if f.in_port == PortId(0) {
                PortId(1)
            } else {
                PortId(0)
            };
            ctx.send(out, f);
        }
    }
}

/// Sends 3 ICMP echo requests from inside `ns` to `to` (a raw socket, so
/// the test needs no ping binary); true when at least one reply came back.
fn ping(ns: &NetnsGuard, to: &str) -> bool {
    let dst: std::net::Ipv4Addr = to.parse().expect("IPv4 address");
    in_netns(ns.name(), move || icmp_echo(dst, 3, Duration::from_secs(2))).unwrap_or(false)
}

fn icmp_echo(dst: std::net::Ipv4Addr, count: u16, wait: Duration) -> bool {
    // SAFETY: a raw ICMP socket, closed at the end of this function.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    if fd < 0 {
        return false;
    }
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: tv lives for the call; the option takes a timeval.
    unsafe {
        libc::setsockopt(
            fd,
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
    let id = (std::process::id() as u16) ^ 0x5044;
    let mut replies = 0;
    for seq in 0..count {
        let mut pkt = [0u8; 64];
        pkt[0] = 8; // echo request
        pkt[4..6].copy_from_slice(&id.to_be_bytes());
        pkt[6..8].copy_from_slice(&seq.to_be_bytes());
        let sum = pmd_csum(&pkt);
        pkt[2..4].copy_from_slice(&sum.to_be_bytes());
        // SAFETY: pkt and addr live for the call.
        unsafe {
            libc::sendto(
                fd,
                pkt.as_ptr().cast(),
                pkt.len(),
                0,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            let mut buf = [0u8; 1500];
            // SAFETY: buf is writable for its length.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 28 {
                continue;
            }
            let ihl = ((buf[0] & 0xf) as usize) * 4;
            let icmp = &buf[ihl..n as usize];
            if buf[12..16] == dst.octets()
                && icmp.len() >= 8
                && icmp[0] == 0
                && icmp[4..6] == id.to_be_bytes()
                && icmp[6..8] == seq.to_be_bytes()
            {
                replies += 1;
                break;
            }
        }
    }
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    replies > 0
}

fn pmd_csum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn link_show(ns: &NetnsGuard, dev: &str) -> String {
    let out = ns
        .command("ip")
        .args(["-d", "link", "show", dev])
        .output()
        .expect("ip link show");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A deterministic byte stream (xorshift), so both ends agree without
/// sharing a buffer.
struct Pattern(u64);

impl Pattern {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}

/// Sends `total` bytes from A to B over TCP and checks every byte on B.
fn tcp_transfer(topo: &Topo, total: usize) {
    let dst: SocketAddr = format!("{}:5201", topo.addr(2)).parse().unwrap();
    let listener = in_netns(topo.b.name(), move || TcpListener::bind(dst))
        .expect("enter B")
        .expect("listen in B");
    let server = std::thread::spawn(move || -> Result<usize, String> {
        let (mut conn, _) = listener.accept().map_err(|e| e.to_string())?;
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let mut want = Pattern(0x9e37_79b9_7f4a_7c15);
        let mut buf = vec![0u8; 65536];
        let mut expect = vec![0u8; 65536];
        let mut got = 0usize;
        loop {
            let n = conn
                .read(&mut buf)
                .map_err(|e| format!("read at {got}: {e}"))?;
            if n == 0 {
                return Ok(got);
            }
            want.fill(&mut expect[..n]);
            if buf[..n] != expect[..n] {
                return Err(format!("payload differs in bytes {got}..{}", got + n));
            }
            got += n;
        }
    });
    let mut client = in_netns(topo.a.name(), move || {
        TcpStream::connect_timeout(&dst, Duration::from_secs(5))
    })
    .expect("enter A")
    .expect("connect from A to B through the switch");
    client
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut gen = Pattern(0x9e37_79b9_7f4a_7c15);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut sent = 0;
    while sent < total {
        let n = chunk.len().min(total - sent);
        gen.fill(&mut chunk[..n]);
        client.write_all(&chunk[..n]).expect("send");
        sent += n;
    }
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let got = server.join().expect("server thread").expect("server");
    assert_eq!(got, total, "B received every byte A sent");
}

fn umem_pool() -> Pool {
    Pool::new(PoolConfig {
        chunks: 4096,
        large: 4,
        umem: true,
    })
    .expect("UMEM pool (root has CAP_IPC_LOCK)")
}

#[test]
fn two_afxdp_ports_forward_ping_and_a_byte_exact_tcp_stream_and_give_every_frame_back() {
    if skip_unless_root("afxdp forwarding") {
        return;
    }
    forward_through_two_ports(Topo::new(11), 1);
}

#[test]
fn a_port_binds_a_socket_on_every_rx_queue_and_forwards_from_all_of_them() {
    if skip_unless_root("afxdp multi-queue forwarding") {
        return;
    }
    forward_through_two_ports(Topo::with_queues(15, 2), 2);
}

fn forward_through_two_ports(topo: Topo, queues: usize) {
    // Both senders keep veth's default tx checksum offload: their TCP
    // leaves with only the pseudo-header sum, which veth hands to XDP as it
    // is and AF_XDP carries without saying so (the `Cross` pipeline finds
    // out, the engine completes it).
    for (ns, dev) in [(&topo.a, &topo.pa), (&topo.b, &topo.pb)] {
        assert!(
            test_support::tx_checksum_offload_on(ns.name(), dev),
            "{dev} keeps its default offloads"
        );
    }
    let (sa, sb) = (topo.sa.clone(), topo.sb.clone());
    let (pool, p0, p1) = in_netns(topo.s.name(), move || {
        let mut pool = umem_pool();
        let p0 = AfXdpPort::open(&sa, PortId(0), &mut pool, XdpFilter::All).expect("port sa");
        let p1 = AfXdpPort::open(&sb, PortId(1), &mut pool, XdpFilter::All).expect("port sb");
        (pool, p0, p1)
    })
    .expect("enter S");
    assert_eq!(p0.queue_count(), queues, "one socket per rx queue in use");
    assert!(p0.kernel_held() > 0, "fill ring is stocked");
    assert_eq!(
        pool.in_flight(),
        p0.kernel_held() + p1.kernel_held(),
        "every frame out of the pool is on a fill ring"
    );
    println!(
        "sa: {} rx queues, XDP {:?}; sb: {} rx queues",
        p0.queue_count(),
        p0.xdp().map(|x| x.mode()),
        p1.queue_count()
    );
    assert!(link_show(&topo.s, &topo.sa).contains("prog/xdp"));
    let counters = [p0.counters().clone(), p1.counters().clone()];
    let engine = Engine::start(vec![PmdThread {
        core: None,
        mode: PollMode::default(),
        pool,
        ports: vec![(PortId(0), Box::new(p0)), (PortId(1), Box::new(p1))],
        pipeline: Box::new(Cross),
    }])
    .expect("engine");

    let ab = ping(&topo.a, &topo.addr(2));
    let ba = ping(&topo.b, &topo.addr(1));
    let tcp = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tcp_transfer(&topo, 10 * 1024 * 1024)
    }));

    let reports = engine.stop();
    let c0 = counters[0].snapshot();
    let c1 = counters[1].snapshot();
    println!("sa {c0:?}\nsb {c1:?}\nreports {reports:?}");
    assert!(ab, "ping A -> B through the switch");
    assert!(ba, "ping B -> A through the switch");
    if let Err(e) = tcp {
        std::panic::resume_unwind(e);
    }
    assert!(c0.rx_packets > 7000, "the stream crossed port 0");
    assert_eq!(c0.rx_packets, c1.tx_packets + c1.total_drops());
    assert_eq!(reports[0].leaked, 0, "every frame came back to the pool");
    for dev in [&topo.sa, &topo.sb] {
        let shown = link_show(&topo.s, dev);
        assert!(
            !shown.contains("prog/xdp"),
            "no XDP program left on {dev}: {shown}"
        );
    }
}

#[test]
fn release_returns_every_frame_the_kernel_held() {
    if skip_unless_root("afxdp release") {
        return;
    }
    let topo = Topo::new(12);
    let sa = topo.sa.clone();
    let (in_flight_open, held, in_flight_after, shown_while) = in_netns(topo.s.name(), move || {
        let mut pool = umem_pool();
        let mut port = AfXdpPort::open(&sa, PortId(0), &mut pool, XdpFilter::All).unwrap();
        let held = port.kernel_held();
        let open = pool.in_flight();
        let shown = Command::new("ip")
            .args(["-d", "link", "show", &sa])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        port.release(&mut pool);
        let after = pool.in_flight();
        drop(port);
        // libxdp cannot put a new socket on a UMEM whose sockets all closed.
        let again = AfXdpPort::open(&sa, PortId(0), &mut pool, XdpFilter::All);
        assert!(
            matches!(again, Err(pmd::afxdp::AfXdpError::UmemRetired { .. })),
            "{again:?}"
        );
        (open, held, after, shown)
    })
    .unwrap();
    assert!(shown_while.contains("prog/xdp"), "attached while open");
    assert!(held > 0);
    assert_eq!(in_flight_open, held);
    assert_eq!(in_flight_after, 0, "release gave back every chunk");
    assert!(!link_show(&topo.s, &topo.sa).contains("prog/xdp"));
}

/// Builds a tiny XDP program named `foreign_xdp` with clang, for the test
/// that the cleanup leaves other people's programs alone.
fn build_foreign_prog() -> Option<String> {
    let dir = std::env::temp_dir().join(unique_name("pdfx"));
    std::fs::create_dir_all(&dir).ok()?;
    let src = dir.join("foreign.c");
    std::fs::write(
        &src,
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n\
         SEC(\"xdp\") int foreign_xdp(struct xdp_md *ctx) { return XDP_PASS; }\n\
         char _license[] SEC(\"license\") = \"GPL\";\n",
    )
    .ok()?;
    let obj = dir.join("foreign.o");
    let ok = Command::new("clang")
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-I/usr/include/x86_64-linux-gnu",
            "-c",
        ])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok.then(|| obj.to_string_lossy().into_owned())
}

#[test]
fn stale_cleanup_removes_a_netlink_attached_pd_xdp_filter_and_leaves_a_foreign_program() {
    if skip_unless_root("afxdp stale cleanup") {
        return;
    }
    let topo = Topo::new(13);
    // A killed run that attached through netlink leaves its program behind;
    // `ip link set xdpdrv` is the same netlink attach.
    let ours = concat!(env!("OUT_DIR"), "/pd_xdp.o");
    topo.s
        .exec(
            "ip",
            &[
                "link", "set", "dev", &topo.sa, "xdpdrv", "obj", ours, "sec", "xdp",
            ],
        )
        .expect("netlink attach of pd_xdp_filter");
    assert!(link_show(&topo.s, &topo.sa).contains("pd_xdp_filter"));
    let foreign = build_foreign_prog().expect("clang builds the foreign program");
    topo.s
        .exec(
            "ip",
            &[
                "link", "set", "dev", &topo.sb, "xdpdrv", "obj", &foreign, "sec", "xdp",
            ],
        )
        .expect("netlink attach of foreign_xdp");

    let (sa, sb) = (topo.sa.clone(), topo.sb.clone());
    let (on_sa, on_sb) = in_netns(topo.s.name(), move || {
        (
            remove_stale_program(&sa).expect("cleanup sa"),
            remove_stale_program(&sb).expect("cleanup sb"),
        )
    })
    .unwrap();
    assert!(
        matches!(on_sa.as_slice(), [StaleOutcome::Removed { .. }]),
        "{on_sa:?}"
    );
    assert!(
        matches!(on_sb.as_slice(), [StaleOutcome::Foreign { name, .. }] if name == "foreign_xdp"),
        "{on_sb:?}"
    );
    assert!(!link_show(&topo.s, &topo.sa).contains("prog/xdp"));
    assert!(link_show(&topo.s, &topo.sb).contains("foreign_xdp"));

    // A live link (another podswitch) is reported busy, not removed, and
    // opening a port on top of a stale netlink program still works.
    topo.s
        .exec("ip", &["link", "set", "dev", &topo.sb, "xdpdrv", "off"])
        .unwrap();
    topo.s
        .exec(
            "ip",
            &[
                "link", "set", "dev", &topo.sb, "xdpdrv", "obj", ours, "sec", "xdp",
            ],
        )
        .unwrap();
    let (sa, sb) = (topo.sa.clone(), topo.sb.clone());
    let (busy, leaked) = in_netns(topo.s.name(), move || {
        let mut pool = umem_pool();
        let mut live = AfXdpPort::open(&sa, PortId(0), &mut pool, XdpFilter::All).unwrap();
        let busy = remove_stale_program(&sa).unwrap();
        // Opening sb removes the stale netlink program first.
        let mut p1 = AfXdpPort::open(&sb, PortId(1), &mut pool, XdpFilter::All).unwrap();
        live.release(&mut pool);
        p1.release(&mut pool);
        (busy, pool.in_flight())
    })
    .unwrap();
    assert!(
        matches!(busy.as_slice(), [StaleOutcome::Busy { .. }]),
        "{busy:?}"
    );
    assert_eq!(leaked, 0);
    for dev in [&topo.sa, &topo.sb] {
        assert!(!link_show(&topo.s, dev).contains("prog/xdp"));
    }
}

/// What reached the sink's port, in order.
type Seen = std::sync::Mutex<Vec<Vec<u8>>>;

/// Counts what reaches the switch and drops it.
struct Sink(std::sync::Arc<Seen>);

impl Pipeline for Sink {
    fn process(&mut self, ctx: &mut Ctx<'_>, burst: &mut Vec<Frame>) {
        for f in burst.drain(..) {
            self.0.lock().unwrap().push(ctx.pool.data(&f).to_vec());
            ctx.drop_frame(f, pmd::DropReason::NotForUs);
        }
    }
}

/// Opens one filtered port on `sa` with a sink pipeline, runs `traffic`
/// (which may look at what the switch has seen so far), and returns what
/// reached the switch.
fn with_sink_port(topo: &Topo, filter: XdpFilter, traffic: impl FnOnce(&Seen)) -> Vec<Vec<u8>> {
    let sa = topo.sa.clone();
    let (pool, port) = in_netns(topo.s.name(), move || {
        let mut pool = umem_pool();
        let port = AfXdpPort::open(&sa, PortId(0), &mut pool, filter).expect("port");
        (pool, port)
    })
    .unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let counters = [port.counters().clone()];
    let stats = port.xdp_stats_reader().expect("stats reader");
    let engine = Engine::start(vec![PmdThread {
        core: None,
        mode: PollMode::default(),
        pool,
        ports: vec![(PortId(0), Box::new(port))],
        pipeline: Box::new(Sink(seen.clone())),
    }])
    .unwrap();
    traffic(&seen);
    let reports = engine.stop();
    let xdp = stats.read();
    let port = counters[0].snapshot();
    println!("switch counters {port:?}, filter {xdp:?}");
    assert_eq!(reports[0].leaked, 0);
    assert_eq!(
        xdp.to_xsk,
        port.rx_packets + port.drops_of(pmd::DropReason::NoBuffer),
        "every frame the filter redirected reached the port"
    );
    assert!(xdp.pass > 0, "the kernel's own traffic was passed");
    let frames = seen.lock().unwrap().clone();
    frames
}

/// Gives the switch end `sa` a kernel address and starts a one-shot TCP
/// echo on it; returns the address.
fn kernel_address_on_sa(topo: &Topo, host: u8) -> std::net::Ipv4Addr {
    let addr = topo.addr(host);
    topo.s
        .exec(
            "ip",
            &["addr", "add", &format!("{addr}/24"), "dev", &topo.sa],
        )
        .unwrap();
    addr.parse().unwrap()
}

/// TCP from A to the kernel's `addr`:2222, echoed back.
fn tcp_echo_to_kernel(topo: &Topo, addr: std::net::Ipv4Addr) -> bool {
    let listen = SocketAddr::from((addr, 2222));
    let listener = in_netns(topo.s.name(), move || TcpListener::bind(listen))
        .unwrap()
        .unwrap();
    let echo = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().ok()?;
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).ok()?;
        c.write_all(&buf).ok()
    });
    let conn = in_netns(topo.a.name(), move || {
        TcpStream::connect_timeout(&listen, Duration::from_secs(5))
    })
    .unwrap();
    let Ok(mut conn) = conn else {
        return false;
    };
    let mut back = [0u8; 5];
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let ok = conn.write_all(b"hello").is_ok() && conn.read_exact(&mut back).is_ok();
    let _ = echo.join();
    ok && &back == b"hello"
}

fn is_arp_for(f: &[u8], ip: std::net::Ipv4Addr) -> bool {
    f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[38..42] == ip.octets()
}

fn is_udp_to(f: &[u8], ip: std::net::Ipv4Addr, port: u16) -> bool {
    f.len() >= 42
        && f[12..14] == [0x08, 0x00]
        && f[23] == 17
        && f[30..34] == ip.octets()
        && f[14 + 20 + 2..14 + 20 + 4] == port.to_be_bytes()
}

#[test]
fn switch_filter_takes_arp_for_its_own_ip_while_the_kernel_keeps_its_address() {
    if skip_unless_root("afxdp filter mode, owned address") {
        return;
    }
    let topo = Topo::new(14);
    // The host (kernel) owns .3 on sa; the switch owns .2 and the MAC below.
    let host_ip = kernel_address_on_sa(&topo, 3);
    let switch_ip: std::net::Ipv4Addr = topo.addr(2).parse().unwrap();
    let filter = XdpFilter::Switch {
        macs: vec![[0x02, 0x50, 0x44, 0, 0, 0x02]],
        ips: vec![switch_ip],
        shared_ips: vec![],
        l4: L4Ports::default(),
    };
    let mut results = (false, false, true);
    let frames = with_sink_port(&topo, filter, |_| {
        results = (
            ping(&topo.a, &host_ip.to_string()),
            tcp_echo_to_kernel(&topo, host_ip),
            // Nobody answers for the switch's IP in this test; the ARP
            // request is what should reach the switch.
            ping(&topo.a, &switch_ip.to_string()),
        );
    });
    let (host_ping, host_tcp, switch_ping) = results;
    assert!(host_ping, "the kernel answers ping on its own address");
    assert!(
        host_tcp,
        "TCP to the kernel's address works through the filter"
    );
    assert!(!switch_ping, "the sink pipeline answers nothing");
    assert!(
        frames.iter().any(|f| is_arp_for(f, switch_ip)),
        "ARP for the switch's IP reached the switch"
    );
    assert!(
        !frames.iter().any(|f| is_arp_for(f, host_ip)),
        "ARP for the host's IP stayed with the kernel"
    );
}

#[test]
fn on_a_shared_address_only_the_listed_ports_reach_the_switch() {
    if skip_unless_root("afxdp filter mode, shared address") {
        return;
    }
    let topo = Topo::new(16);
    let host_ip = kernel_address_on_sa(&topo, 3);
    let filter = XdpFilter::Switch {
        macs: vec![],
        ips: vec![],
        shared_ips: vec![host_ip],
        l4: L4Ports {
            ports: vec![(L4Proto::Udp, 5353)],
            range: Some((40000, 40100)),
            vxlan_port: Some(4789),
            icmp: false,
        },
    };
    let mut results = (false, false);
    let frames = with_sink_port(&topo, filter, |seen| {
        results = (
            ping(&topo.a, &host_ip.to_string()),
            tcp_echo_to_kernel(&topo, host_ip),
        );
        let to = host_ip;
        // The last probe (to a port in the range) reaches the switch after
        // every earlier one that does: they share the veth's one queue.
        in_netns(topo.a.name(), move || {
            let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            for port in [40050u16, 4789, 5353, 5000, 40101, 40099] {
                sock.send_to(b"probe", (to, port)).unwrap();
            }
        })
        .unwrap();
        test_support::wait_until(
            "the last probe to reach the switch",
            Duration::from_secs(10),
            || seen.lock().unwrap().iter().any(|f| is_udp_to(f, to, 40099)),
        );
    });
    let (host_ping, host_tcp) = results;
    assert!(
        host_ping,
        "ARP and ping for the shared address stay with the kernel"
    );
    assert!(
        host_tcp,
        "TCP to a port outside the rules stays with the kernel"
    );
    for port in [40050, 4789, 5353] {
        assert!(
            frames.iter().any(|f| is_udp_to(f, host_ip, port)),
            "UDP to {port} reached the switch"
        );
    }
    for port in [5000, 40101] {
        assert!(
            !frames.iter().any(|f| is_udp_to(f, host_ip, port)),
            "UDP to {port} stayed with the kernel"
        );
    }
    assert!(
        !frames.iter().any(|f| is_arp_for(f, host_ip)),
        "ARP for a shared address stays with the kernel"
    );
}
