//! A nat network spread over two PMD threads (`[switch] cores = [0, 1]`),
//! as root: containers' TAP or veth queues and the uplink's AF_PACKET
//! sockets steered by the kernel (`pmd::steer`), each thread with its own
//! slice of the NAT port range. The uplink is a veth into an "outside"
//! namespace (10.99.0.1/24; podswitch's uplink address 10.99.0.2/24).
//! Every interface keeps its defaults; every namespace is the test's own
//! and is removed by a guard, also when the test fails.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use common::*;
use pmd::netns::NetnsGuard;
use switch::lab::traffic::{ping, tcp_fetch, tcp_transfer, tcp_upload, udp_echo};

const OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const EXTERNAL: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 1);
const C1: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 10);
const C2: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 11);
const KB: u64 = 1024;
/// The default NAT port range (32768-60999) cut in two: thread 1's slice
/// starts here.
const SECOND_SLICE: u16 = 32768 + (60999u16 - 32768 + 1).div_ceil(2);

struct SpreadLab {
    daemon: Option<Daemon>,
    socket: String,
    host: NetnsGuard,
    outside: NetnsGuard,
    c1: NetnsGuard,
    c2: NetnsGuard,
}

impl SpreadLab {
    fn new(link: &str) -> SpreadLab {
        let host = NetnsGuard::new("pss-h").unwrap();
        let outside = NetnsGuard::new("pss-o").unwrap();
        let c1 = NetnsGuard::new("pss-a").unwrap();
        let c2 = NetnsGuard::new("pss-b").unwrap();
        uplink_veth(&host, &outside, "10.99.0.1/24");
        let socket = control_path();
        let text = format!(
            r#"
[switch]
control = "{socket}"
cores = [0, 1]
log = "info"

[[port]]
name = "up0"
iface = "up0"
kind = "packet"
ip = "10.99.0.2/24"
gateway = "10.99.0.1"

[[network]]
name = "front"
mode = "nat"
subnet = "172.31.0.0/24"
gateway = "172.31.0.1"
uplink = "up0"
endpoint_link = "{link}"

[[endpoint]]
name = "c1"
network = "front"
netns = "{}"
ip = "172.31.0.10"

[[endpoint]]
name = "c2"
network = "front"
netns = "{}"
ip = "172.31.0.11"

[[port_mapping]]
protocol = "tcp"
host_port = 8081
endpoint = "c1"
port = 81
"#,
            c1.name(),
            c2.name(),
        );
        let daemon = Daemon::start_in(Some(host.name()), &["run"], &text);
        daemon.wait_for_log("spread over 2 PMD threads");
        SpreadLab {
            daemon: Some(daemon),
            socket,
            host,
            outside,
            c1,
            c2,
        }
    }

    /// Frames each PMD thread received, from `ctl stats`.
    fn thread_frames(&self) -> Vec<u64> {
        let stats = ctl_json(&self.socket, &["stats"]);
        stats["threads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["frames"].as_u64().unwrap())
            .collect()
    }

    /// The NAT drops `ctl stats` reports, by reason.
    fn nat_drops(&self) -> serde_json::Value {
        ctl_json(&self.socket, &["stats"])["nat"][0]["drops"].clone()
    }

    /// Connections from c1 to `n` servers on the outside (ports from
    /// `first_port`), `bytes` each, byte-exact: the translated source
    /// ports the servers saw.
    fn fetch_from_outside(&self, first_port: u16, n: u16, bytes: u64) -> BTreeSet<u16> {
        let mut seen = BTreeSet::new();
        for i in 0..n {
            let port = first_port + i;
            let (t, peer) = tcp_fetch(
                self.outside.name(),
                OUTSIDE,
                port,
                self.c1.name(),
                SocketAddr::from((OUTSIDE, port)),
                bytes,
            )
            .unwrap_or_else(|e| panic!("c1 fetching from the outside's port {port}: {e:#}"));
            assert!(t.exact && t.bytes == bytes, "port {port}: {t:?}");
            assert_eq!(
                peer.ip(),
                IpAddr::V4(EXTERNAL),
                "translated to the uplink address"
            );
            seen.insert(peer.port());
        }
        seen
    }
}

impl Drop for SpreadLab {
    fn drop(&mut self) {
        // The daemon goes before the namespaces it uses.
        self.daemon.take();
    }
}

/// Both slices of the port range hold some of `ports`: both threads
/// translated connections, and the replies found the thread that did.
fn assert_both_slices(ports: &BTreeSet<u16>) {
    let first = ports.iter().filter(|p| **p < SECOND_SLICE).count();
    assert!(
        first > 0 && first < ports.len(),
        "translated ports in both threads' slices (split at {SECOND_SLICE}): {ports:?}"
    );
}

#[test]
fn a_nat_network_on_two_cores_carries_every_connection_and_both_threads_translate() {
    if skip_unless_root("spread nat network (TAP)") {
        return;
    }
    let mut lab = SpreadLab::new("tap");
    let show = ctl_json(&lab.socket, &["show"]);
    assert_eq!(
        show["networks"][0]["threads"],
        serde_json::json!([0, 1]),
        "ctl show names both threads: {show}"
    );
    assert_eq!(
        ping(lab.c1.name(), GATEWAY, 2).unwrap().received,
        2,
        "gateway"
    );
    assert_eq!(
        ping(lab.c1.name(), OUTSIDE, 2).unwrap().received,
        2,
        "outside"
    );

    // Outbound through NAT: destinations on many ports land on both
    // threads; each connection completes byte-exact.
    let ports = lab.fetch_from_outside(9100, 24, 256 * KB);
    assert_both_slices(&ports);

    // Inbound through the mapping, from many source ports.
    for i in 0..12 {
        let t = tcp_upload(
            lab.c1.name(),
            C1,
            81,
            lab.outside.name(),
            SocketAddr::from((EXTERNAL, 8081)),
            128 * KB,
        )
        .unwrap_or_else(|e| panic!("mapping, connection {i}: {e:#}"));
        assert!(t.exact && t.bytes == 128 * KB, "mapping {i}: {t:?}");
    }

    // Container to container, and UDP out through NAT.
    for i in 0..8 {
        let t = tcp_transfer(lab.c2.name(), C2, 9200 + i, lab.c1.name(), 128 * KB).unwrap();
        assert!(t.exact, "c1 to c2 on port {}: {t:?}", 9200 + i);
        let (echoed, peers) = udp_echo(
            lab.outside.name(),
            OUTSIDE,
            9300 + i,
            lab.c2.name(),
            SocketAddr::from((OUTSIDE, 9300 + i)),
            5,
            0,
        )
        .unwrap();
        assert_eq!(
            echoed,
            5,
            "UDP to the outside's port {}: {peers:?}",
            9300 + i
        );
    }

    let frames = lab.thread_frames();
    assert_eq!(frames.len(), 2, "two PMD threads: {frames:?}");
    assert!(
        frames.iter().all(|f| *f > 200),
        "both threads carried traffic: {frames:?}"
    );
    let drops = lab.nat_drops();
    assert!(
        drops.as_object().is_none_or(|d| d.is_empty()),
        "no NAT drops (a reply on the wrong thread would be one): {drops}"
    );
    let err = lab.daemon.take().unwrap().stop_clean();
    assert!(!err.contains("leaked"), "{err}");
}

#[test]
fn veth_endpoints_on_two_cores_keep_the_flow_offload_and_both_slices() {
    if skip_unless_root("spread nat network (veth)") {
        return;
    }
    let lab = SpreadLab::new("veth");
    let ports = lab.fetch_from_outside(9400, 16, 1024 * KB);
    assert_both_slices(&ports);
    let t = tcp_transfer(lab.c2.name(), C2, 9500, lab.c1.name(), 4096 * KB).unwrap();
    assert!(t.exact, "c1 to c2: {t:?}");
    let stats = ctl_json(&lab.socket, &["stats"]);
    assert!(
        stats["offload"]["installed"].as_u64().unwrap_or(0) > 0,
        "the kernel carried established flows: {}",
        stats["offload"]
    );
    let frames = lab.thread_frames();
    assert!(frames.iter().all(|f| *f > 20), "both threads: {frames:?}");
}

#[test]
fn an_endpoint_added_at_run_time_to_a_spread_network_gets_a_queue_per_thread() {
    if skip_unless_root("spread nat network, endpoint add") {
        return;
    }
    let lab = SpreadLab::new("tap");
    let c3 = NetnsGuard::new("pss-c").unwrap();
    let out = ctl_ok(
        &lab.socket,
        &[
            "endpoint",
            "add",
            "c3",
            "--network",
            "front",
            "--netns",
            c3.name(),
            "--ip",
            "172.31.0.12",
        ],
    );
    assert!(out.contains("172.31.0.12/24"), "{out}");
    let d = ip_in(c3.name(), &["-d", "link", "show", "dev", "eth0"]);
    assert!(d.contains("numtxqueues 2"), "two queues: {d}");
    // A frame on either queue right after `add` returns: every thread
    // has the endpoint by then.
    assert_eq!(ping(c3.name(), GATEWAY, 2).unwrap().received, 2);
    let mut seen = BTreeSet::new();
    for i in 0..16 {
        let (t, peer) = tcp_fetch(
            lab.outside.name(),
            OUTSIDE,
            9600 + i,
            c3.name(),
            SocketAddr::from((OUTSIDE, 9600 + i)),
            64 * KB,
        )
        .unwrap();
        assert!(t.exact, "{t:?}");
        seen.insert(peer.port());
    }
    assert_both_slices(&seen);
    let out = ctl_ok(&lab.socket, &["endpoint", "del", "c3"]);
    assert!(out.contains("deleted"), "{out}");
    let d = ip_in(c3.name(), &["link", "show"]);
    assert!(
        !d.contains("eth0"),
        "every queue closed, the TAP is gone: {d}"
    );
    let _ = &lab.host;
}

#[test]
fn hairpin_connections_on_two_cores_reach_the_mapped_container_from_every_source_port() {
    if skip_unless_root("spread nat network, hairpin") {
        return;
    }
    let lab = SpreadLab::new("tap");
    // c2 through the uplink's mapped port to c1 (one network: c1 sees
    // c2's own address), and c1 to its own mapped port (it sees the
    // gateway). Each source port lands on either thread; the thread that
    // translated the connection must also get c1's answers.
    for i in 0..16 {
        for (client, name, seen) in [(&lab.c2, "c2", C2), (&lab.c1, "c1", GATEWAY)] {
            let (t, peer) = tcp_fetch(
                lab.c1.name(),
                C1,
                81,
                client.name(),
                SocketAddr::from((EXTERNAL, 8081)),
                64 * KB,
            )
            .unwrap_or_else(|e| panic!("{name} to {EXTERNAL}:8081, connection {i}: {e:#}"));
            assert!(
                t.exact && t.bytes == 64 * KB,
                "{name}, connection {i}: {t:?}"
            );
            assert_eq!(peer.ip(), IpAddr::V4(seen), "{name}, connection {i}");
        }
    }
    let frames = lab.thread_frames();
    assert!(frames.iter().all(|f| *f > 100), "both threads: {frames:?}");
    let drops = lab.nat_drops();
    assert!(
        drops.as_object().is_none_or(|d| d.is_empty()),
        "no NAT drops: {drops}"
    );
}

#[test]
fn fragmented_datagrams_through_nat_on_two_cores_find_the_thread_of_their_first_fragment() {
    if skip_unless_root("spread nat network, fragments") {
        return;
    }
    let lab = SpreadLab::new("tap");
    // 4,000-byte datagrams leave c1 as three fragments and come back as
    // three: only the first carries the ports that steer it, so the later
    // ones must follow it to the thread whose NAT translated it. Sixteen
    // flows (server ports) land on both threads.
    let mut seen = BTreeSet::new();
    for i in 0..16 {
        let (echoed, peers) = udp_echo(
            lab.outside.name(),
            OUTSIDE,
            9700 + i,
            lab.c1.name(),
            SocketAddr::from((OUTSIDE, 9700 + i)),
            4,
            4000,
        )
        .unwrap();
        assert_eq!(
            echoed,
            4,
            "4,000-byte datagrams to port {}: {peers:?}",
            9700 + i
        );
        assert!(
            peers.iter().all(|p| p.ip() == IpAddr::V4(EXTERNAL)),
            "{peers:?}"
        );
        seen.extend(peers.iter().map(|p| p.port()));
    }
    assert_both_slices(&seen);
    let drops = lab.nat_drops();
    assert!(
        drops.as_object().is_none_or(|d| d.is_empty()),
        "no NAT drops (a later fragment on the wrong thread is FragmentUnknown): {drops}"
    );
}

#[test]
fn one_udp_socket_keeps_one_external_port_for_every_destination_on_two_cores() {
    if skip_unless_root("spread nat network, endpoint-independent mapping") {
        return;
    }
    let lab = SpreadLab::new("tap");
    // RFC 4787 REQ-1 (endpoint-independent mapping): one internal
    // address and port leaves through one external port, whichever
    // destination it sends to, so a peer told its address by another can
    // reach it. Twelve servers on the outside each answer with the
    // address they saw.
    let ports: Vec<u16> = (9800..9812).collect();
    let servers: Vec<std::net::UdpSocket> = pmd::netns::in_netns(lab.outside.name(), {
        let ports = ports.clone();
        move || {
            ports
                .iter()
                .map(|p| std::net::UdpSocket::bind((OUTSIDE, *p)).unwrap())
                .collect()
        }
    })
    .unwrap();
    let client = pmd::netns::in_netns(lab.c1.name(), || {
        std::net::UdpSocket::bind((C1, 40001)).unwrap()
    })
    .unwrap();
    let mut seen = BTreeSet::new();
    for (server, port) in servers.iter().zip(&ports) {
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        client.send_to(b"where am I", (OUTSIDE, *port)).unwrap();
        let mut buf = [0u8; 64];
        let (_, from) = server
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("the server on {port} got nothing: {e}"));
        assert_eq!(from.ip(), IpAddr::V4(EXTERNAL));
        seen.insert(from.port());
    }
    assert_eq!(
        seen.len(),
        1,
        "one external port for every destination: {seen:?}"
    );
}
