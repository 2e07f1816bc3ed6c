//! The tc flow offload on veth pairs, end to end. Needs root (namespaces,
//! BPF, tcx); every test fails without it.
//!
//! Topology of each test, all in namespaces the test creates and deletes:
//!
//! ```text
//!   netns A: eth0 <-veth-> ma   netns M (the switch's)
//!   netns B: eth0 <-veth-> mb   netns M
//!   netns O: eth0 <-veth-> mo   netns M   ("outside": the uplink's side)
//! ```
//!
//! The program is attached to the M ends. What it does not take needs a
//! slow path through M's kernel, standing in for podswitch: a Linux bridge
//! for the switched test, routing (and nftables SNAT) for the routed ones.
//! The peers keep their defaults (TSO and checksum offload on), so the
//! offloaded frames are 64 KB GSO skbs with CHECKSUM_PARTIAL.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pmd::afpacket::{Binding, PacketFilter, PacketPort};
use pmd::netns::{in_netns, unique_name, NetnsGuard};
use pmd::offload::{
    tcx_ingress_programs, FlowAction, FlowKey, FlowOffload, OffloadError, FLOW_TO_PEER,
};
use pmd::{Frame, Pool, PoolConfig, Port, PortId};
use test_support::{ip, wait_until};

const MB: usize = 1 << 20;

/// Fails the test when not root (true only where skipping is allowed).
fn skip_unless_root(test: &str) -> bool {
    !test_support::require_root(test)
}

/// One peer namespace and the veth joining it to M.
struct Peer {
    ns: NetnsGuard,
    /// The M end's name.
    m_dev: String,
}

struct Topo {
    // Field order: the peers' namespaces go first, then M.
    a: Peer,
    b: Peer,
    o: Peer,
    m: NetnsGuard,
}

impl Topo {
    fn new() -> Topo {
        let m = NetnsGuard::new("pdm").expect("netns M");
        let peer = |prefix: &str| {
            let ns = NetnsGuard::new(prefix).expect("peer netns");
            let m_dev = unique_name("m");
            ip(&[
                "link",
                "add",
                &m_dev,
                "netns",
                m.name(),
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns.name(),
            ])
            .expect("veth pair");
            ns.exec("ip", &["link", "set", "eth0", "up"])
                .expect("peer up");
            m.exec("ip", &["link", "set", &m_dev, "up"])
                .expect("M end up");
            Peer { ns, m_dev }
        };
        let (a, b, o) = (peer("pda"), peer("pdb"), peer("pdo"));
        Topo { a, b, o, m }
    }

    /// A Linux bridge in M joining A and B, the switched slow path (the
    /// redirect, in tc ingress, runs before the bridge's rx handler).
    fn bridge_a_and_b(&self, a_cidr: &str, b_cidr: &str) {
        self.m
            .exec("ip", &["link", "add", "br0", "type", "bridge"])
            .unwrap();
        for d in [&self.a.m_dev, &self.b.m_dev] {
            self.m
                .exec("ip", &["link", "set", d, "master", "br0"])
                .unwrap();
        }
        self.m.exec("ip", &["link", "set", "br0", "up"]).unwrap();
        self.a.addr(a_cidr);
        self.b.addr(b_cidr);
    }

    fn m_name(&self) -> String {
        self.m.name().to_string()
    }
}

impl Peer {
    fn addr(&self, cidr: &str) {
        self.ns
            .exec("ip", &["addr", "add", cidr, "dev", "eth0"])
            .expect("peer address");
    }

    fn route_via(&self, gw: &str) {
        self.ns
            .exec("ip", &["route", "add", "default", "via", gw])
            .expect("peer default route");
    }

    fn mac(&self) -> [u8; 6] {
        in_netns(self.ns.name(), || pmd::netdev::mac("eth0"))
            .expect("enter peer")
            .expect("peer MAC")
            .0
    }

    fn ns_name(&self) -> String {
        self.ns.name().to_string()
    }

    /// The peer's TCP InCsumErrors (/proc/net/snmp).
    fn tcp_in_csum_errors(&self) -> u64 {
        let out = self
            .ns
            .command("cat")
            .arg("/proc/net/snmp")
            .output()
            .expect("cat /proc/net/snmp");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
        let (names, values) = (
            tcp.next().expect("Tcp header"),
            tcp.next().expect("Tcp values"),
        );
        let at = names
            .split_whitespace()
            .position(|n| n == "InCsumErrors")
            .expect("InCsumErrors column");
        values.split_whitespace().nth(at).unwrap().parse().unwrap()
    }

    fn assert_default_offloads(&self) {
        let ns = self.ns_name();
        assert!(test_support::tso_on(&ns, "eth0"), "{ns}: TSO stays on");
        assert!(
            test_support::tx_checksum_offload_on(&ns, "eth0"),
            "{ns}: checksum offload stays on"
        );
    }
}

/// `ifindex` and MAC of M's end `dev` (call inside M).
fn m_dev(dev: &str) -> (u32, [u8; 6]) {
    (
        pmd::netdev::ifindex(dev).expect("M end exists"),
        pmd::netdev::mac(dev).expect("M end MAC").0,
    )
}

fn key(
    ifindex: u32,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    dmac: [u8; 6],
    smac: [u8; 6],
) -> FlowKey {
    FlowKey {
        ifindex,
        src_ip: src.ip().octets(),
        dst_ip: dst.ip().octets(),
        src_port: src.port().to_be_bytes(),
        dst_port: dst.port().to_be_bytes(),
        dst_mac: dmac,
        src_mac: smac,
        proto: 6,
        pad: [0; 3],
    }
}

#[allow(clippy::too_many_arguments)]
fn action(
    out: u32,
    flags: u32,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    dmac: [u8; 6],
    smac: [u8; 6],
    ttl_dec: u8,
) -> FlowAction {
    FlowAction {
        out_ifindex: out,
        flags,
        src_ip: src.ip().octets(),
        dst_ip: dst.ip().octets(),
        src_port: src.port().to_be_bytes(),
        dst_port: dst.port().to_be_bytes(),
        dst_mac: dmac,
        src_mac: smac,
        ttl_dec,
        pad: [0; 7],
        tunnel: Default::default(),
    }
}

fn v4(s: &str) -> SocketAddrV4 {
    s.parse().expect("socket address")
}

/// The byte at offset `i` of every test stream: no period that divides a
/// segment, so a misplaced or repeated segment does not compare equal.
fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 13)) as u8
}

fn write_pattern(s: &mut TcpStream, from: usize, len: usize) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut at = from;
    while at < from + len {
        let n = buf.len().min(from + len - at);
        for (j, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern(at + j);
        }
        s.write_all(&buf[..n]).expect("write");
        at += n;
    }
}

/// Reads `len` bytes (or to EOF when `None`), checking each against the
/// pattern from offset `from`; returns how many were read.
fn read_pattern(s: &mut TcpStream, from: usize, len: Option<usize>) -> usize {
    let mut buf = vec![0u8; 256 * 1024];
    let mut at = from;
    loop {
        let want = match len {
            Some(l) if at - from >= l => break,
            Some(l) => buf.len().min(l - (at - from)),
            None => buf.len(),
        };
        let n = s.read(&mut buf[..want]).expect("read");
        if n == 0 {
            break;
        }
        for (j, b) in buf[..n].iter().enumerate() {
            assert_eq!(*b, pattern(at + j), "byte {} of the stream", at + j);
        }
        at += n;
    }
    at - from
}

fn listen(ns: &str, addr: &str) -> TcpListener {
    let addr = v4(addr);
    in_netns(ns, move || TcpListener::bind(addr))
        .expect("enter netns")
        .expect("listen")
}

fn connect(ns: &str, to: &str) -> TcpStream {
    let to = v4(to);
    let s = in_netns(ns, move || {
        TcpStream::connect_timeout(&to.into(), Duration::from_secs(5))
    })
    .expect("enter netns")
    .expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn accept(l: &TcpListener) -> (TcpStream, SocketAddrV4) {
    let (s, peer) = l.accept().expect("accept");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let std::net::SocketAddr::V4(peer) = peer else {
        panic!("IPv4 peer")
    };
    (s, peer)
}

fn local_v4(s: &TcpStream) -> SocketAddrV4 {
    match s.local_addr().unwrap() {
        std::net::SocketAddr::V4(a) => a,
        other => panic!("IPv4 socket, got {other}"),
    }
}

/// Runs `f` in M with the program loaded (capacity 1024) and attached to
/// the given M ends; the links are dropped when `f` returns.
fn with_offload<T: Send + 'static>(
    m: &str,
    devs: &[&str],
    f: impl FnOnce(&FlowOffload) -> T + Send + 'static,
) -> T {
    let devs: Vec<String> = devs.iter().map(|d| d.to_string()).collect();
    in_netns(m, move || {
        let off = FlowOffload::load(1024).expect("load the program");
        let _links: Vec<_> = devs
            .iter()
            .map(|d| off.attach(m_dev(d).0).expect("attach"))
            .collect();
        f(&off)
    })
    .expect("enter M")
}

#[test]
fn a_switched_flow_between_two_containers_carries_20_mb_byte_exact_in_large_segments_and_falls_back_when_removed(
) {
    if skip_unless_root("offload lan") {
        return;
    }
    let t = Topo::new();
    t.bridge_a_and_b("10.71.0.1/24", "10.71.0.2/24");
    let (a_mac, b_mac) = (t.a.mac(), t.b.mac());
    let (an, bn) = (t.a.ns_name(), t.b.ns_name());
    let (ma, mb) = (t.a.m_dev.clone(), t.b.m_dev.clone());
    let listener = listen(&bn, "10.71.0.2:5000");
    let server = std::thread::spawn(move || {
        let (mut s, _) = accept(&listener);
        read_pattern(&mut s, 0, None)
    });
    let total = 20 * MB;
    let (ab, ba) = with_offload(&t.m_name(), &[&t.a.m_dev, &t.b.m_dev], move |off| {
        let table = off.table().expect("table");
        let (ma_idx, _) = m_dev(&ma);
        let (mb_idx, _) = m_dev(&mb);
        let mut c = connect(&an, "10.71.0.2:5000");
        let (a, b) = (local_v4(&c), v4("10.71.0.2:5000"));
        let k_ab = key(ma_idx, a, b, b_mac, a_mac);
        let k_ba = key(mb_idx, b, a, a_mac, b_mac);
        table
            .insert(&k_ab, &action(mb_idx, FLOW_TO_PEER, a, b, b_mac, a_mac, 0))
            .unwrap();
        table
            .insert(&k_ba, &action(ma_idx, FLOW_TO_PEER, b, a, a_mac, b_mac, 0))
            .unwrap();
        write_pattern(&mut c, 0, total);
        let ab = table.stats(&k_ab).unwrap().expect("A->B installed");
        let removed = table.remove(&k_ab).unwrap().expect("A->B removed");
        assert!(removed.packets >= ab.packets && removed.bytes >= ab.bytes);
        let ba = table.remove(&k_ba).unwrap().expect("B->A removed");
        assert_eq!(table.stats(&k_ab).unwrap(), None, "gone after remove");
        assert_eq!(table.remove(&k_ab).unwrap(), None, "removed once");
        // Back on the slow path: the same connection goes on.
        write_pattern(&mut c, total, MB);
        c.shutdown(Shutdown::Write).unwrap();
        let after = table.stats(&k_ab).unwrap();
        assert_eq!(after, None);
        (removed, ba)
    });
    let got = server.join().expect("server thread");
    assert_eq!(got, total + MB, "B received every byte, in order");
    eprintln!("A->B {ab:?}, B->A {ba:?}");
    assert!(
        ab.bytes as usize >= total * 9 / 10,
        "the offload carried most of the 20 MB: {} bytes",
        ab.bytes
    );
    assert!(
        ab.bytes / ab.packets.max(1) > 10_000,
        "GSO segments crossed whole: {} bytes in {} skbs",
        ab.bytes,
        ab.packets
    );
    assert!(ba.packets > 0, "B's ACKs were carried too");
    assert!(ab.last_used_ns > 0);
    t.a.assert_default_offloads();
    t.b.assert_default_offloads();
}

#[test]
fn a_nat_flow_to_the_outside_is_translated_both_ways_byte_exact_without_checksum_errors() {
    if skip_unless_root("offload nat") {
        return;
    }
    let t = Topo::new();
    // The slow path: M routes and SNATs A to its outside address and a
    // fixed port, as the switch's NAT would.
    t.m.exec("ip", &["addr", "add", "10.72.0.1/24", "dev", &t.a.m_dev])
        .unwrap();
    t.m.exec("ip", &["addr", "add", "10.73.0.1/24", "dev", &t.o.m_dev])
        .unwrap();
    t.m.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])
        .unwrap();
    for cmd in [
        "add table ip pdnat".to_string(),
        "add chain ip pdnat post { type nat hook postrouting priority 100 ; }".to_string(),
        format!(
            "add rule ip pdnat post oifname {} ip protocol tcp snat to 10.73.0.1:40000",
            t.o.m_dev
        ),
    ] {
        t.m.exec("nft", &[&cmd]).expect("nft SNAT in M");
    }
    // The data between SYN and FIN bypasses M's conntrack: it must not
    // call the FIN out of window.
    t.m.exec(
        "sysctl",
        &["-qw", "net.netfilter.nf_conntrack_tcp_be_liberal=1"],
    )
    .expect("conntrack liberal in M");
    // Between veths a CHECKSUM_PARTIAL skb is never checksummed: the
    // receiver trusts it, so InCsumErrors alone cannot catch a wrong
    // pseudo-header seed. A capture on the outside's eth0 (every device
    // keeps its offloads) checks each translated segment instead: a
    // partial one must hold the seed of its new addresses, a complete
    // one must verify.
    let capture = OutsideCapture::start(&t.o.ns_name());
    // Not 10.72.0.2: its ones'-complement sum equals 10.73.0.1's, which
    // would hide a pseudo-header seed left unchanged.
    t.a.addr("10.72.0.5/24");
    t.a.route_via("10.72.0.1");
    t.o.addr("10.73.0.2/24");
    let (a_mac, o_mac) = (t.a.mac(), t.o.mac());
    let (an, on) = (t.a.ns_name(), t.o.ns_name());
    let (ma, mo) = (t.a.m_dev.clone(), t.o.m_dev.clone());
    let total = 20 * MB;
    let listener = listen(&on, "10.73.0.2:5001");
    let server = std::thread::spawn(move || {
        let (mut s, peer) = accept(&listener);
        let got = read_pattern(&mut s, 0, Some(total));
        write_pattern(&mut s, 0, total);
        s.shutdown(Shutdown::Write).unwrap();
        let rest = read_pattern(&mut s, total, None);
        (peer, got, rest)
    });
    let (out, back, c_got) = with_offload(&t.m_name(), &[&t.a.m_dev, &t.o.m_dev], move |off| {
        let table = off.table().expect("table");
        let (ma_idx, ma_mac) = m_dev(&ma);
        let (mo_idx, mo_mac) = m_dev(&mo);
        let mut c = connect(&an, "10.73.0.2:5001");
        let (a, o, nat) = (local_v4(&c), v4("10.73.0.2:5001"), v4("10.73.0.1:40000"));
        let k_out = key(ma_idx, a, o, ma_mac, a_mac);
        let k_back = key(mo_idx, o, nat, mo_mac, o_mac);
        table
            .insert(&k_out, &action(mo_idx, 0, nat, o, o_mac, mo_mac, 1))
            .unwrap();
        table
            .insert(
                &k_back,
                &action(ma_idx, FLOW_TO_PEER, o, a, a_mac, ma_mac, 1),
            )
            .unwrap();
        write_pattern(&mut c, 0, total);
        let got = read_pattern(&mut c, 0, Some(total));
        let out = table.stats(&k_out).unwrap().expect("out installed");
        let back = table.stats(&k_back).unwrap().expect("back installed");
        c.shutdown(Shutdown::Write).unwrap();
        let eof = read_pattern(&mut c, total, None);
        assert_eq!(eof, 0, "the server closed after its 20 MB");
        (out, back, got)
    });
    let (peer, s_got, s_rest) = server.join().expect("server thread");
    eprintln!("out {out:?}, back {back:?}");
    let csums = capture.stop();
    eprintln!("outside capture: {csums:?}");
    assert!(
        csums.checked >= 20,
        "the capture saw the transfer: {csums:?}"
    );
    assert_eq!(
        csums.bad, 0,
        "every translated segment's checksum or seed is right"
    );
    assert_eq!(
        peer,
        v4("10.73.0.1:40000"),
        "the outside sees the translated source"
    );
    assert_eq!(s_got, total, "the outside received A's 20 MB");
    assert_eq!(s_rest, 0);
    assert_eq!(c_got, total, "A received the outside's 20 MB");
    for (what, s) in [("out", out), ("back", back)] {
        assert!(
            s.bytes as usize >= total * 9 / 10,
            "{what}: the offload carried most of the 20 MB ({} bytes)",
            s.bytes
        );
        assert!(
            s.bytes / s.packets.max(1) > 10_000,
            "{what}: GSO segments crossed whole ({} bytes in {} skbs)",
            s.bytes,
            s.packets
        );
    }
    eprintln!(
        "csum errors A {} O {}",
        t.a.tcp_in_csum_errors(),
        t.o.tcp_in_csum_errors()
    );
    assert_eq!(t.a.tcp_in_csum_errors(), 0, "A: no TCP checksum errors");
    assert_eq!(
        t.o.tcp_in_csum_errors(),
        0,
        "outside: no TCP checksum errors"
    );
    t.a.assert_default_offloads();
    t.o.assert_default_offloads();
}

/// What a packet socket saw of A's TCP frames.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    syn: u64,
    fin: u64,
    /// Frames with payload and neither SYN nor FIN: what the offload takes.
    data_frames: u64,
    /// Payload of every frame (the last data may ride on the FIN).
    payload_bytes: u64,
}

fn tally(seen: &mut Seen, f: &[u8], from_mac: [u8; 6]) {
    if f.len() < 54 || f[6..12] != from_mac || f[12..14] != [8, 0] || f[23] != 6 {
        return;
    }
    let ihl = usize::from(f[14] & 0xf) * 4;
    let tot = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let Some(tcp) = f.get(14 + ihl..) else { return };
    if tcp.len() < 20 {
        return;
    }
    let (doff, flags) = (usize::from(tcp[12] >> 4) * 4, tcp[13]);
    if flags & 0x02 != 0 {
        seen.syn += 1;
    }
    if flags & 0x01 != 0 {
        seen.fin += 1;
    }
    // A GSO frame's IP total length is 0 or the whole segment's.
    let payload = f
        .len()
        .saturating_sub(14 + ihl + doff)
        .max(tot.saturating_sub(ihl + doff));
    seen.payload_bytes += payload as u64;
    if payload > 0 && flags & 0x03 == 0 {
        seen.data_frames += 1;
    }
}

#[test]
fn a_socket_bound_after_tc_sees_syn_and_fin_but_no_offloaded_data_and_an_all_frames_socket_sees_everything(
) {
    if skip_unless_root("offload binding") {
        return;
    }
    let t = Topo::new();
    // Routed slow path: per-protocol sockets on a bridge port would see
    // nothing (the bridge consumes frames before ptype_specific delivery).
    t.m.exec("ip", &["addr", "add", "10.74.0.1/24", "dev", &t.a.m_dev])
        .unwrap();
    t.m.exec("ip", &["addr", "add", "10.75.0.1/24", "dev", &t.b.m_dev])
        .unwrap();
    t.m.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])
        .unwrap();
    t.a.addr("10.74.0.2/24");
    t.a.route_via("10.74.0.1");
    t.b.addr("10.75.0.2/24");
    t.b.route_via("10.75.0.1");
    let (a_mac, b_mac) = (t.a.mac(), t.b.mac());
    let (an, bn) = (t.a.ns_name(), t.b.ns_name());
    let (ma, mb) = (t.a.m_dev.clone(), t.b.m_dev.clone());
    let total = 4 * MB;
    let listener = listen(&bn, "10.75.0.2:5002");
    let server = std::thread::spawn(move || {
        let (mut s, _) = accept(&listener);
        read_pattern(&mut s, 0, None)
    });
    let (after_tc, all, ab) = with_offload(&t.m_name(), &[&t.a.m_dev, &t.b.m_dev], move |off| {
        let table = off.table().expect("table");
        let (ma_idx, ma_mac) = m_dev(&ma);
        let (mb_idx, mb_mac) = m_dev(&mb);
        let open = |binding| {
            PacketPort::open_bound(&ma, PortId(0), PacketFilter::All, binding)
                .expect("packet socket on M's end of A")
        };
        let mut ports = vec![open(Binding::AfterTc), open(Binding::AllFrames)];
        assert_eq!(
            ports[0].rx_fds().len(),
            3,
            "one socket each for IPv4, ARP, IPv6"
        );
        let seen = Arc::new(Mutex::new([Seen::default(); 2]));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut pool = Pool::new(PoolConfig {
                    chunks: 1024,
                    large: 16,
                    umem: false,
                })
                .expect("pool");
                let mut frames: Vec<Frame> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let mut idle = true;
                    for (i, p) in ports.iter_mut().enumerate() {
                        if p.rx_burst(&mut pool, &mut frames, 32) > 0 {
                            idle = false;
                        }
                        let mut s = seen.lock().unwrap();
                        for f in frames.drain(..) {
                            tally(&mut s[i], pool.data(&f), a_mac);
                            pool.free(f);
                        }
                    }
                    if idle {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
                for p in &mut ports {
                    p.release(&mut pool);
                }
                ports
                    .iter()
                    .map(|p| p.counters().total_drops())
                    .collect::<Vec<_>>()
            })
        };
        let mut c = connect(&an, "10.75.0.2:5002");
        let (a, b) = (local_v4(&c), v4("10.75.0.2:5002"));
        let k_ab = key(ma_idx, a, b, ma_mac, a_mac);
        let k_ba = key(mb_idx, b, a, mb_mac, b_mac);
        table
            .insert(&k_ab, &action(mb_idx, FLOW_TO_PEER, a, b, b_mac, mb_mac, 1))
            .unwrap();
        table
            .insert(&k_ba, &action(ma_idx, FLOW_TO_PEER, b, a, a_mac, ma_mac, 1))
            .unwrap();
        write_pattern(&mut c, 0, total);
        c.shutdown(Shutdown::Write).unwrap();
        wait_until("both sockets saw A's FIN", Duration::from_secs(10), || {
            let s = seen.lock().unwrap();
            s[0].fin > 0 && s[1].fin > 0
        });
        let ab = table.stats(&k_ab).unwrap().expect("installed");
        stop.store(true, Ordering::Relaxed);
        let drops = reader.join().expect("reader");
        eprintln!("socket drops {drops:?}");
        let s = *seen.lock().unwrap();
        (s[0], s[1], ab)
    });
    assert_eq!(server.join().expect("server"), total);
    eprintln!("after tc {after_tc:?}, all frames {all:?}, A->B {ab:?}");
    assert!(
        ab.bytes as usize >= total * 9 / 10,
        "the offload carried the data"
    );
    assert!(
        after_tc.syn > 0 && after_tc.fin > 0,
        "AfterTc sees SYN and FIN"
    );
    assert_eq!(after_tc.data_frames, 0, "AfterTc sees no offloaded data");
    assert!(all.syn > 0 && all.fin > 0, "AllFrames sees SYN and FIN");
    assert!(
        all.payload_bytes as usize >= total,
        "AllFrames sees the offloaded data too ({} bytes)",
        all.payload_bytes
    );
}

#[test]
fn a_full_table_says_full_and_keeps_its_flows() {
    if skip_unless_root("offload full") {
        return;
    }
    let off = FlowOffload::load(2).expect("load");
    let table = off.table().expect("table");
    let k = |n: u8| {
        key(
            1,
            v4(&format!("10.0.0.{n}:1")),
            v4("10.0.0.9:2"),
            [0; 6],
            [0; 6],
        )
    };
    let act = action(1, 0, v4("10.0.0.1:1"), v4("10.0.0.9:2"), [0; 6], [0; 6], 0);
    table.insert(&k(1), &act).expect("first");
    table.insert(&k(2), &act).expect("second");
    table
        .insert(&k(1), &act)
        .expect("replacing an installed flow fits");
    match table.insert(&k(3), &act) {
        Err(OffloadError::Full { capacity: 2 }) => {}
        other => panic!("a third flow in a table of 2: {other:?}"),
    }
    assert!(table.stats(&k(1)).unwrap().is_some());
    assert_eq!(table.stats(&k(3)).unwrap(), None);
    // The handle outlives the loader.
    drop(off);
    assert_eq!(table.remove(&k(2)).unwrap().map(|s| s.packets), Some(0));
    table.insert(&k(3), &act).expect("room again");
}

#[test]
fn dropping_a_link_detaches_only_its_program() {
    if skip_unless_root("offload link drop") {
        return;
    }
    let t = Topo::new();
    let dev = t.a.m_dev.clone();
    in_netns(t.m.name(), move || {
        let idx = m_dev(&dev).0;
        let (one, two) = (
            FlowOffload::load(16).unwrap(),
            FlowOffload::load(16).unwrap(),
        );
        assert_eq!(tcx_ingress_programs(idx).unwrap().len(), 0);
        let l1 = one.attach(idx).expect("attach one");
        let l2 = two.attach(idx).expect("attach a second beside it");
        assert_eq!(tcx_ingress_programs(idx).unwrap().len(), 2);
        assert_eq!(l1.ifindex(), idx);
        drop(l1);
        assert_eq!(
            tcx_ingress_programs(idx).unwrap().len(),
            1,
            "the other stays"
        );
        drop(l2);
        assert_eq!(tcx_ingress_programs(idx).unwrap(), Vec::<u32>::new());
        match one.attach(999_999) {
            Err(OffloadError::Attach { ifindex, .. }) => assert_eq!(ifindex, 999_999),
            other => panic!("attach to a missing device: {other:?}"),
        }
    })
    .expect("enter M");
}

const CHILD_NS: &str = "PD_OFFLOAD_CHILD_NS";
const CHILD_DEV: &str = "PD_OFFLOAD_CHILD_DEV";

#[test]
fn a_killed_process_leaves_no_program_attached() {
    // The child: this same test, re-run with the namespace in its
    // environment, attaches and waits to be killed.
    if let (Ok(ns), Ok(dev)) = (std::env::var(CHILD_NS), std::env::var(CHILD_DEV)) {
        let file = std::fs::File::open(pmd::netns::netns_path(&ns)).unwrap();
        pmd::netns::enter(&file).unwrap();
        let off = FlowOffload::load(16).unwrap();
        let _link = off.attach(m_dev(&dev).0).unwrap();
        loop {
            std::thread::park();
        }
    }
    if skip_unless_root("offload killed process") {
        return;
    }
    let t = Topo::new();
    let dev = t.a.m_dev.clone();
    let m = t.m_name();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_killed_process_leaves_no_program_attached",
            "--nocapture",
        ])
        .env(CHILD_NS, &m)
        .env(CHILD_DEV, &dev)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn the child");
    let count = {
        let (m, dev) = (m.clone(), dev.clone());
        move || {
            let dev = dev.clone();
            in_netns(&m, move || {
                tcx_ingress_programs(m_dev(&dev).0).unwrap().len()
            })
            .unwrap()
        }
    };
    wait_until("the child attached", Duration::from_secs(20), || {
        count() == 1
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the child");
    child.wait().expect("reap the child");
    wait_until(
        "the kernel released the link",
        Duration::from_secs(5),
        || count() == 0,
    );
}

/// iperf3 A->B for 5 s with its data stream from port `cport`; the
/// receiver's Gbit/s.
fn iperf3_gbits(t: &Topo, cport: u16) -> f64 {
    let mut server =
        t.b.ns
            .command("iperf3")
            .args(["-s", "-1", "-B", "10.71.0.2", "-p", "5201"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("iperf3 -s");
    wait_until("iperf3 listens", Duration::from_secs(5), || {
        let out =
            t.b.ns
                .command("ss")
                .args(["-Hltn", "sport = :5201"])
                .output();
        out.map(|o| !o.stdout.is_empty()).unwrap_or(false)
    });
    let out =
        t.a.ns
            .command("iperf3")
            .args(["-c", "10.71.0.2", "-p", "5201", "-t", "5", "-J"])
            .args(["--cport", &cport.to_string()])
            .output()
            .expect("iperf3 -c");
    server.wait().expect("iperf3 -s ends after one test");
    let json = String::from_utf8_lossy(&out.stdout);
    let at = json.find("\"sum_received\"").expect("iperf3 result");
    let rest = &json[at..];
    let bps = rest[rest.find("\"bits_per_second\":").expect("rate") + 18..]
        .split([',', '\n', '}'])
        .next()
        .unwrap()
        .trim()
        .parse::<f64>()
        .expect("a number");
    bps / 1e9
}

#[test]
#[ignore = "a measurement, run by hand"]
fn measure_iperf3_through_the_offload_and_through_a_bridge() {
    test_support::require_command("iperf3 measure", "iperf3");
    let t = Topo::new();
    t.bridge_a_and_b("10.71.0.1/24", "10.71.0.2/24");
    let bridge = iperf3_gbits(&t, 50001);
    let (a_mac, b_mac) = (t.a.mac(), t.b.mac());
    let (ma, mb) = (t.a.m_dev.clone(), t.b.m_dev.clone());
    let m = t.m_name();
    let t = Arc::new(t);
    let t2 = t.clone();
    let (gbits, ab) = in_netns(&m, move || {
        let off = FlowOffload::load(64).unwrap();
        let ((ma_idx, _), (mb_idx, _)) = (m_dev(&ma), m_dev(&mb));
        let _links = (off.attach(ma_idx).unwrap(), off.attach(mb_idx).unwrap());
        let table = off.table().unwrap();
        let (a, b) = (v4("10.71.0.1:50002"), v4("10.71.0.2:5201"));
        let k_ab = key(ma_idx, a, b, b_mac, a_mac);
        table
            .insert(&k_ab, &action(mb_idx, FLOW_TO_PEER, a, b, b_mac, a_mac, 0))
            .unwrap();
        let k_ba = key(mb_idx, b, a, a_mac, b_mac);
        table
            .insert(&k_ba, &action(ma_idx, FLOW_TO_PEER, b, a, a_mac, b_mac, 0))
            .unwrap();
        let g = iperf3_gbits(&t2, 50002);
        (g, table.stats(&k_ab).unwrap().unwrap())
    })
    .unwrap();
    eprintln!(
        "iperf3 A->B 5 s: offload {gbits:.1} Gbit/s ({} skbs, {} bytes, {} B/skb), Linux bridge {bridge:.1} Gbit/s",
        ab.packets,
        ab.bytes,
        ab.bytes / ab.packets.max(1)
    );
    assert!(ab.bytes > 0, "the offload carried the iperf3 stream");
}

#[test]
fn a_port_bound_after_tc_sends_arp_and_reads_the_reply() {
    if skip_unless_root("offload after-tc arp") {
        return;
    }
    let t = Topo::new();
    t.a.addr("10.76.0.2/24");
    let a_mac = t.a.mac();
    let ma = t.a.m_dev.clone();
    let reply = in_netns(t.m.name(), move || {
        let mut port = PacketPort::open_bound(&ma, PortId(0), PacketFilter::All, Binding::AfterTc)
            .expect("port");
        let mut pool = Pool::new(PoolConfig {
            chunks: 64,
            large: 2,
            umem: false,
        })
        .expect("pool");
        let me = [2, 0, 0, 0, 0x76, 1];
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&me);
        arp.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend_from_slice(&me);
        arp.extend_from_slice(&[10, 76, 0, 1, 0, 0, 0, 0, 0, 0, 10, 76, 0, 2]);
        let mut f = pool.alloc().expect("frame");
        assert!(pool.set_len(&mut f, arp.len()));
        pool.data_mut(&mut f).copy_from_slice(&arp);
        port.tx_burst(&mut pool, &mut vec![f]);
        assert_eq!(port.counters().tx_packets.get(), 1, "sent");
        let mut got = Vec::new();
        let reply = wait_for_reply(&mut port, &mut pool, &mut got, me);
        port.release(&mut pool);
        reply
    })
    .expect("enter M");
    assert_eq!(&reply[6..12], &a_mac, "A answered from its MAC");
    assert_eq!(&reply[28..32], &[10, 76, 0, 2], "for its address");
}

/// Reads the port until an ARP reply to `me` comes.
fn wait_for_reply(
    port: &mut PacketPort,
    pool: &mut Pool,
    got: &mut Vec<Frame>,
    me: [u8; 6],
) -> Vec<u8> {
    let mut reply = None;
    wait_until(
        "A's ARP reply on the ARP socket",
        Duration::from_secs(5),
        || {
            port.rx_burst(pool, got, 32);
            for f in got.drain(..) {
                let d = pool.data(&f).to_vec();
                pool.free(f);
                if d.len() >= 42 && d[0..6] == me && d[12..14] == [8, 6] && d[21] == 2 {
                    reply = Some(d);
                }
            }
            reply.is_some()
        },
    );
    reply.unwrap()
}

#[test]
fn what_the_program_does_not_take_goes_on_to_the_next_tcx_program() {
    if skip_unless_root("offload coexists") {
        return;
    }
    let t = Topo::new();
    t.bridge_a_and_b("10.77.0.1/24", "10.77.0.2/24");
    let (a_mac, b_mac) = (t.a.mac(), t.b.mac());
    let (an, ma, mb) = (t.a.ns_name(), t.a.m_dev.clone(), t.b.m_dev.clone());
    let listener = listen(&t.b.ns_name(), "10.77.0.2:5003");
    let server = std::thread::spawn(move || {
        let (mut s, _) = accept(&listener);
        read_pattern(&mut s, 0, None)
    });
    let total = 4 * MB;
    // Ours first with an empty table (every frame a miss), then another
    // user's program (a second instance) that takes the flow: it sees the
    // frames only if a miss goes on down the chain (TC_ACT_OK would end it).
    let second = in_netns(t.m.name(), move || {
        let ((ma_idx, _), (mb_idx, _)) = (m_dev(&ma), m_dev(&mb));
        let (ours, other) = (
            FlowOffload::load(16).unwrap(),
            FlowOffload::load(16).unwrap(),
        );
        let _first = ours.attach(ma_idx).unwrap();
        let _then = other.attach(ma_idx).unwrap();
        let mut c = connect(&an, "10.77.0.2:5003");
        let (a, b) = (local_v4(&c), v4("10.77.0.2:5003"));
        let k = key(ma_idx, a, b, b_mac, a_mac);
        let table = other.table().unwrap();
        table
            .insert(&k, &action(mb_idx, FLOW_TO_PEER, a, b, b_mac, a_mac, 0))
            .unwrap();
        write_pattern(&mut c, 0, total);
        c.shutdown(Shutdown::Write).unwrap();
        table.stats(&k).unwrap().expect("installed")
    })
    .expect("enter M");
    assert_eq!(server.join().expect("server"), total);
    assert!(
        second.bytes as usize >= total * 9 / 10,
        "the next program carried the flow ours missed: {second:?}"
    );
}

/// TCP frames from the NAT address the outside received, by whether their
/// checksum (or, when partial, pseudo-header seed) was right.
#[derive(Debug, Default, Clone, Copy)]
struct CsumTally {
    checked: u64,
    partial: u64,
    bad: u64,
}

/// A packet socket on eth0 of the outside namespace, tallying the
/// checksums of TCP frames from 10.73.0.1 until stopped.
struct OutsideCapture {
    stop: Arc<AtomicBool>,
    reader: std::thread::JoinHandle<CsumTally>,
}

impl OutsideCapture {
    fn start(ns: &str) -> OutsideCapture {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let (ns, halt) = (ns.to_string(), stop.clone());
        let reader = std::thread::spawn(move || {
            in_netns(&ns, move || {
                let mut port = PacketPort::open("eth0", PortId(0), PacketFilter::All)
                    .expect("capture on the outside's eth0");
                let _ = ready_tx.send(());
                let mut pool = Pool::new(PoolConfig {
                    chunks: 1024,
                    large: 64,
                    umem: false,
                })
                .expect("pool");
                let mut frames: Vec<Frame> = Vec::new();
                let mut tally = CsumTally::default();
                while !halt.load(Ordering::Relaxed) {
                    if port.rx_burst(&mut pool, &mut frames, 32) == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    for f in frames.drain(..) {
                        let partial = f.offload.needs_csum;
                        match csum_right(pool.data(&f), partial) {
                            Some(true) => tally.checked += 1,
                            Some(false) => {
                                tally.checked += 1;
                                tally.bad += 1;
                            }
                            None => {}
                        }
                        tally.partial += u64::from(partial);
                        pool.free(f);
                    }
                }
                port.release(&mut pool);
                tally
            })
            .expect("outside namespace")
        });
        ready
            .recv_timeout(Duration::from_secs(5))
            .expect("the capture is open");
        OutsideCapture { stop, reader }
    }

    fn stop(self) -> CsumTally {
        self.stop.store(true, Ordering::Relaxed);
        self.reader.join().expect("capture thread")
    }
}

/// For an Ethernet/IPv4/TCP frame from 10.73.0.1: whether its TCP checksum
/// is right, or, when `partial`, whether the field holds the seed of its
/// pseudo-header (the length being the IPv4 header's, as for a GSO skb).
/// `None` for any other frame.
fn csum_right(frame: &[u8], partial: bool) -> Option<bool> {
    use pmd::wire::checksum::{fold, pseudo_header_v4, sum};
    if frame.len() < 54 || frame[12..14] != [8, 0] || frame[23] != 6 {
        return None;
    }
    let (src, dst): ([u8; 4], [u8; 4]) = (
        frame[26..30].try_into().ok()?,
        frame[30..34].try_into().ok()?,
    );
    if src != [10, 73, 0, 1] {
        return None;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    let l4_len = total.checked_sub(ihl)? as u16;
    let pseudo = pseudo_header_v4(src, dst, 6, l4_len);
    let l4 = frame.get(14 + ihl..14 + total)?;
    if partial {
        Some(u16::from_be_bytes([l4[16], l4[17]]) == fold(pseudo))
    } else {
        Some(fold(sum(pseudo, l4)) == 0xffff)
    }
}
