//! The L2 network modes end to end, as root, each seen on the wire.
//!
//! A "physical network" namespace holds a Linux bridge (the physical
//! switch) with three ports: `eth0` to the host's NIC `up0`, one to a
//! router (10.77.0.1, and 10.78.0.1 behind it) and one to a peer host on
//! the segment (10.77.0.10). podswitch runs in the host namespace, whose
//! kernel keeps its own address 10.77.0.3 on `up0` (the host keeps its
//! NIC). Two endpoints, 10.77.0.21 and .22, join the segment in the mode
//! under test. A packet socket on the bridge's `eth0` sees every frame the
//! host puts on the wire. For l2tunnel the bridge port hairpins, as a
//! VEPA-style physical switch does. Every namespace is the test's own and
//! is removed by a guard, also when the test fails.

mod common;

use std::net::Ipv4Addr;

use common::*;
use pmd::netns::NetnsGuard;
use switch::lab::traffic::{ping, tcp_transfer};

const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const BEYOND: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);
const HOST_OWN: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 3);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 10);
const EP1: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 21);
const EP2: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 22);
const EP1_MAC: [u8; 6] = [0x02, 0x00, 0x0a, 0x4d, 0x00, 0x15];
const EP2_MAC: [u8; 6] = [0x02, 0x00, 0x0a, 0x4d, 0x00, 0x16];
/// The switch's MAC on the uplink: "the host's MAC" of l2bridge frames.
const HOST_MAC: [u8; 6] = [0x02, 0xaa, 0x00, 0x4d, 0x00, 0x02];
const MB: u64 = 1024 * 1024;

struct L2Lab {
    daemon: Option<Daemon>,
    socket: String,
    host: NetnsGuard,
    phys: NetnsGuard,
    router: NetnsGuard,
    peer: NetnsGuard,
    ep1: NetnsGuard,
    ep2: NetnsGuard,
}

/// Adds a veth from `ns` (named `eth0` there, with `cidr`) to `phys`
/// (named `port`, a port of its bridge).
fn plug(ns: &NetnsGuard, phys: &NetnsGuard, port: &str, cidr: &str) {
    ns.exec(
        "ip",
        &[
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            port,
            "netns",
            phys.name(),
        ],
    )
    .unwrap();
    ns.exec("ip", &["addr", "add", cidr, "dev", "eth0"])
        .unwrap();
    ns.exec("ip", &["link", "set", "eth0", "up"]).unwrap();
    phys.exec("ip", &["link", "set", port, "master", "br0", "up"])
        .unwrap();
}

impl L2Lab {
    /// The lab with a `mode` network; `port_extra` goes into the uplink's
    /// `[[port]]`; `hairpin` makes the physical switch send frames back out
    /// of the port they came in on.
    fn new(mode: &str, port_extra: &str, hairpin: bool) -> L2Lab {
        L2Lab::with(mode, port_extra, hairpin, "")
    }

    /// As `new`, with `more` (networks, endpoints) added to the config.
    fn with(mode: &str, port_extra: &str, hairpin: bool, more: &str) -> L2Lab {
        let host = NetnsGuard::new("psl-h").unwrap();
        let phys = NetnsGuard::new("psl-s").unwrap();
        let router = NetnsGuard::new("psl-r").unwrap();
        let peer = NetnsGuard::new("psl-p").unwrap();
        let ep1 = NetnsGuard::new("psl-a").unwrap();
        let ep2 = NetnsGuard::new("psl-b").unwrap();
        phys.exec("ip", &["link", "add", "br0", "type", "bridge"])
            .unwrap();
        phys.exec("ip", &["link", "set", "br0", "up"]).unwrap();
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
                "eth0",
                "netns",
                phys.name(),
            ],
        )
        .unwrap();
        host.exec("ip", &["addr", "add", "10.77.0.3/24", "dev", "up0"])
            .unwrap();
        host.exec("ip", &["link", "set", "up0", "up"]).unwrap();
        phys.exec("ip", &["link", "set", "eth0", "master", "br0", "up"])
            .unwrap();
        if hairpin {
            phys.exec(
                "ip",
                &[
                    "link",
                    "set",
                    "eth0",
                    "type",
                    "bridge_slave",
                    "hairpin",
                    "on",
                ],
            )
            .unwrap();
        }
        plug(&router, &phys, "vr", "10.77.0.1/24");
        router
            .exec("ip", &["addr", "add", "10.78.0.1/32", "dev", "lo"])
            .unwrap();
        plug(&peer, &phys, "vp", "10.77.0.10/24");
        let socket = control_path();
        let text = format!(
            r#"
[switch]
control = "{socket}"

[[port]]
name = "up0"
iface = "up0"
{port_extra}

[[network]]
name = "lan"
mode = "{mode}"
subnet = "10.77.0.0/24"
gateway = "10.77.0.1"
uplink = "up0"

[[endpoint]]
name = "ep1"
network = "lan"
netns = "{}"
ip = "10.77.0.21"
mac = "02:00:0a:4d:00:15"

[[endpoint]]
name = "ep2"
network = "lan"
netns = "{}"
ip = "10.77.0.22"
mac = "02:00:0a:4d:00:16"

{more}
"#,
            ep1.name(),
            ep2.name()
        );
        let daemon = Daemon::start_in(Some(host.name()), &["run"], &text);
        L2Lab {
            daemon: Some(daemon),
            socket,
            host,
            phys,
            router,
            peer,
            ep1,
            ep2,
        }
    }

    /// What every mode must do: endpoints reach a host on the segment, the
    /// router, an address behind the router (their default route), each
    /// other, and move 10 MB byte-exact each way with the peer and between
    /// themselves; the host's own address on the uplink keeps working
    /// meanwhile. The capture is read before the bulk transfers (its
    /// socket buffer would overflow); returns the bytes the host put on
    /// the wire while ep1 sent 10 MB to ep2 (the bridge port's counter).
    fn reaches_everything(&self, wire: &mut Capture) -> u64 {
        for (ns, dst) in [
            (&self.ep1, PEER),
            (&self.ep1, ROUTER),
            (&self.ep2, BEYOND),
            (&self.ep1, EP2),
        ] {
            let got = ping(ns.name(), dst, 3).unwrap().received;
            assert_eq!(got, 3, "{} pings {dst}", ns.name());
        }
        wire.frames();
        assert_eq!(
            neighbor(&self.ep1, ROUTER),
            link_mac(&self.router),
            "the router answers for the gateway, not the switch"
        );
        let t = tcp_transfer(self.peer.name(), PEER, 9000, self.ep1.name(), 10 * MB).unwrap();
        assert!(t.exact && t.bytes == 10 * MB, "endpoint to peer: {t:?}");
        let t = tcp_transfer(self.ep2.name(), EP2, 9001, self.peer.name(), 10 * MB).unwrap();
        assert!(t.exact && t.bytes == 10 * MB, "peer to endpoint: {t:?}");
        let before = rx_bytes(self.phys.name(), "eth0");
        let t = tcp_transfer(self.ep2.name(), EP2, 9002, self.ep1.name(), 10 * MB).unwrap();
        assert!(t.exact && t.bytes == 10 * MB, "endpoint to endpoint: {t:?}");
        let same_host_on_wire = rx_bytes(self.phys.name(), "eth0") - before;
        // The host's own traffic on its NIC, while the mode runs: its
        // address answers, and it reaches the peer.
        let got = ping(self.peer.name(), HOST_OWN, 3).unwrap().received;
        assert_eq!(got, 3, "the peer pings the host's own address");
        let got = ping(self.host.name(), PEER, 3).unwrap().received;
        assert_eq!(got, 3, "the host pings the peer");
        let t = tcp_transfer(self.host.name(), HOST_OWN, 9003, self.peer.name(), 10 * MB).unwrap();
        assert!(t.exact, "peer to the host's own address: {t:?}");
        same_host_on_wire
    }

    /// `podswitch ctl ARGS`, which must succeed; its stdout.
    fn ctl(&self, args: &[&str]) -> String {
        ctl_ok(&self.socket, args)
    }

    fn stop(&mut self) -> String {
        let mut d = self.daemon.take().unwrap();
        let (code, err) = d.stop(libc::SIGTERM);
        assert_eq!(code, Some(0), "clean exit; stderr:\n{err}");
        err
    }
}

impl Drop for L2Lab {
    fn drop(&mut self) {
        // The daemon goes before the namespaces it uses.
        self.daemon.take();
    }
}

/// The MAC `ns` has learned for `ip` (`ip neigh`).
fn neighbor(ns: &NetnsGuard, ip: Ipv4Addr) -> String {
    let out = ip_in(ns.name(), &["neigh", "show", &ip.to_string()]);
    out.split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .unwrap_or_else(|| panic!("{} has no neighbour entry for {ip}: {out:?}", ns.name()))
        .to_string()
}

/// The MAC of `eth0` in `ns`.
fn link_mac(ns: &NetnsGuard) -> String {
    let out = ip_in(ns.name(), &["link", "show", "eth0"]);
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC in {out:?}"))
        .to_string()
}

/// Bytes received on an interface inside a namespace.
fn rx_bytes(netns: &str, dev: &str) -> u64 {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", netns, "cat"])
        .arg(format!("/sys/class/net/{dev}/statistics/rx_bytes"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn src_mac(f: &[u8]) -> [u8; 6] {
    f[6..12].try_into().unwrap()
}

fn is_ipv4(f: &[u8]) -> bool {
    f.len() >= 34 && f[12..14] == [0x08, 0x00]
}

fn is_arp(f: &[u8]) -> bool {
    f.len() >= 42 && f[12..14] == [0x08, 0x06]
}

fn ip_src(f: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(f[26], f[27], f[28], f[29])
}

fn ip_dst(f: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(f[30], f[31], f[32], f[33])
}

/// ARP's sender hardware and protocol addresses.
fn arp_sender(f: &[u8]) -> ([u8; 6], Ipv4Addr) {
    (
        f[22..28].try_into().unwrap(),
        Ipv4Addr::new(f[28], f[29], f[30], f[31]),
    )
}

fn is_endpoint(ip: Ipv4Addr) -> bool {
    ip == EP1 || ip == EP2
}

/// IPv4 frames between the two endpoints (same-host traffic).
fn same_host(f: &[u8]) -> bool {
    is_ipv4(f) && is_endpoint(ip_src(f)) && is_endpoint(ip_dst(f))
}

/// Frames the endpoints sent, by IPv4 source or ARP sender address.
fn from_endpoints(f: &[u8]) -> bool {
    (is_ipv4(f) && is_endpoint(ip_src(f))) || (is_arp(f) && is_endpoint(arp_sender(f).1))
}

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Same-host traffic never reached the wire: no ping between the
/// endpoints was captured, and their 10 MB did not cross the bridge port.
fn stayed_in_the_host(frames: &[Vec<u8>], same_host_on_wire: u64) {
    assert_eq!(
        frames.iter().filter(|f| same_host(f)).count(),
        0,
        "same-host pings are switched in the host"
    );
    assert!(
        same_host_on_wire < MB,
        "the 10 MB from ep1 to ep2 stayed in the host ({same_host_on_wire} bytes on the wire)"
    );
}

#[test]
fn transparent_endpoints_are_on_the_segment_with_their_own_macs() {
    if skip_unless_root("l2modes transparent") {
        return;
    }
    let mut lab = L2Lab::new("transparent", "", false);
    let mut wire = Capture::eth0(lab.phys.name());
    let same_host_on_wire = lab.reaches_everything(&mut wire);

    let frames = wire.frames().to_vec();
    let ours: Vec<&Vec<u8>> = frames.iter().filter(|f| from_endpoints(f)).collect();
    assert!(
        ours.iter().any(|f| src_mac(f) == EP1_MAC) && ours.iter().any(|f| src_mac(f) == EP2_MAC),
        "both endpoints' own MACs are on the wire"
    );
    for f in &ours {
        let want = if ip_src(f) == EP1 || (is_arp(f) && arp_sender(f).1 == EP1) {
            EP1_MAC
        } else {
            EP2_MAC
        };
        assert_eq!(src_mac(f), want, "an endpoint's frame carries its own MAC");
        if is_arp(f) {
            assert_eq!(arp_sender(f).0, want, "ARP says the endpoint's own MAC");
        }
    }
    stayed_in_the_host(&frames, same_host_on_wire);
    assert_eq!(neighbor(&lab.peer, EP1), mac_str(EP1_MAC));
    assert_eq!(neighbor(&lab.peer, EP2), mac_str(EP2_MAC));
    lab.stop();
}

/// The l2bridge and l2tunnel wire: every frame of an endpoint carries the
/// host's MAC (Ethernet source and ARP sender), none an endpoint's.
fn only_the_host_mac_on_the_wire(frames: &[Vec<u8>]) {
    let ours: Vec<&Vec<u8>> = frames.iter().filter(|f| from_endpoints(f)).collect();
    assert!(
        ours.iter().any(|f| is_arp(f)) && ours.iter().any(|f| is_ipv4(f)),
        "the endpoints' ARP and IPv4 were captured ({} frames)",
        ours.len()
    );
    for f in &ours {
        assert_eq!(
            src_mac(f),
            HOST_MAC,
            "an endpoint's frame leaves as the host's"
        );
        if is_arp(f) {
            assert_eq!(arp_sender(f).0, HOST_MAC, "ARP says the host's MAC");
        }
    }
    assert!(
        !frames
            .iter()
            .any(|f| src_mac(f) == EP1_MAC || src_mac(f) == EP2_MAC),
        "no endpoint MAC is on the wire"
    );
}

#[test]
fn l2bridge_endpoints_show_only_the_host_mac_and_talk_to_each_other_inside_the_host() {
    if skip_unless_root("l2modes l2bridge") {
        return;
    }
    let mut lab = L2Lab::new("l2bridge", r#"mac = "02:aa:00:4d:00:02""#, false);
    let mut wire = Capture::eth0(lab.phys.name());
    let same_host_on_wire = lab.reaches_everything(&mut wire);

    let frames = wire.frames().to_vec();
    only_the_host_mac_on_the_wire(&frames);
    stayed_in_the_host(&frames, same_host_on_wire);
    assert_eq!(neighbor(&lab.peer, EP1), mac_str(HOST_MAC));
    assert_eq!(neighbor(&lab.peer, EP2), mac_str(HOST_MAC));
    lab.stop();
}

#[test]
fn l2tunnel_sends_even_same_host_traffic_out_of_the_uplink_and_back() {
    if skip_unless_root("l2modes l2tunnel") {
        return;
    }
    let mut lab = L2Lab::new("l2tunnel", r#"mac = "02:aa:00:4d:00:02""#, true);
    let mut wire = Capture::eth0(lab.phys.name());
    let same_host_on_wire = lab.reaches_everything(&mut wire);

    let frames = wire.frames().to_vec();
    only_the_host_mac_on_the_wire(&frames);
    let pings = frames
        .iter()
        .filter(|f| same_host(f) && ip_src(f) == EP1 && f.len() > 34 && f[23] == 1 && f[34] == 8)
        .count();
    assert!(
        pings >= 3,
        "ep1's echo requests to ep2 crossed the wire ({pings})"
    );
    assert!(
        same_host_on_wire >= 10 * MB,
        "the 10 MB from ep1 to ep2 crossed the wire ({same_host_on_wire} bytes)"
    );
    assert_eq!(neighbor(&lab.peer, EP1), mac_str(HOST_MAC));
    lab.stop();
}

#[test]
fn a_nat_network_and_a_transparent_one_share_an_uplink() {
    if skip_unless_root("l2modes shared uplink") {
        return;
    }
    let c1 = NetnsGuard::new("psl-c").unwrap();
    let nat = format!(
        r#"
[[network]]
name = "front"
mode = "nat"
subnet = "172.30.0.0/24"
uplink = "up0"

[[endpoint]]
name = "c1"
network = "front"
netns = "{}"
ip = "172.30.0.10"
"#,
        c1.name()
    );
    let mut lab = L2Lab::with("transparent", r#"ip = "10.77.0.2/24""#, false, &nat);
    let mut wire = Capture::eth0(lab.phys.name());
    let same_host_on_wire = lab.reaches_everything(&mut wire);
    stayed_in_the_host(wire.frames(), same_host_on_wire);
    assert_eq!(
        ping(c1.name(), PEER, 3).unwrap().received,
        3,
        "c1 pings out through NAT"
    );
    let (t, seen) = switch::lab::traffic::tcp_fetch(
        lab.peer.name(),
        PEER,
        9100,
        c1.name(),
        std::net::SocketAddr::from((PEER, 9100)),
        10 * MB,
    )
    .unwrap();
    assert!(
        t.exact && t.bytes == 10 * MB,
        "c1 fetches from the peer: {t:?}"
    );
    assert_eq!(
        seen.ip(),
        std::net::IpAddr::V4(Ipv4Addr::new(10, 77, 0, 2)),
        "the peer saw the NAT address"
    );
    assert_eq!(neighbor(&lab.peer, EP1), mac_str(EP1_MAC));
    lab.stop();
}

#[test]
fn an_endpoint_attached_at_run_time_joins_the_segment_and_leaves_it_when_deleted() {
    if skip_unless_root("l2modes run time") {
        return;
    }
    const EP3: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 23);
    const EP3_MAC: [u8; 6] = [0x02, 0x00, 0x0a, 0x4d, 0x00, 0x17];
    for (mode, port_extra, on_wire) in [
        ("transparent", "", EP3_MAC),
        ("l2bridge", r#"mac = "02:aa:00:4d:00:02""#, HOST_MAC),
    ] {
        let ep3 = NetnsGuard::new("psl-e").unwrap();
        let mut lab = L2Lab::new(mode, port_extra, false);
        let out = lab.ctl(&[
            "endpoint",
            "add",
            "ep3",
            "--network",
            "lan",
            "--netns",
            ep3.name(),
            "--ip",
            "10.77.0.23",
            "--mac",
            &mac_str(EP3_MAC),
        ]);
        assert!(out.contains("10.77.0.23"), "{mode}: {out}");
        let got = ping(lab.peer.name(), EP3, 3).unwrap().received;
        assert_eq!(got, 3, "{mode}: the peer pings the new endpoint");
        assert_eq!(
            ping(ep3.name(), BEYOND, 3).unwrap().received,
            3,
            "{mode}: out via the router"
        );
        assert_eq!(neighbor(&lab.peer, EP3), mac_str(on_wire), "{mode}");
        let t = tcp_transfer(ep3.name(), EP3, 9200, lab.peer.name(), 10 * MB).unwrap();
        assert!(
            t.exact && t.bytes == 10 * MB,
            "{mode}: peer to the new endpoint: {t:?}"
        );
        assert!(
            lab.ctl(&["endpoint", "del", "ep3"]).contains("deleted"),
            "{mode}"
        );
        assert_eq!(
            ping(lab.peer.name(), EP3, 2).unwrap().received,
            0,
            "{mode}: a deleted endpoint is gone from the segment"
        );
        assert_eq!(
            ping(lab.ep1.name(), PEER, 2).unwrap().received,
            2,
            "{mode}: ep1 stays"
        );
        lab.stop();
    }
}
