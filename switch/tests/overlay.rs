//! Overlay networks end to end, as root: VXLAN between podswitch and the
//! Linux kernel's vxlan device, between two podswitch instances, VNI
//! isolation, hostile VXLAN, and the overlay MTU. Every namespace is the
//! test's own and is removed by a guard, also when the test fails.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use common::*;
use pmd::netns::{in_netns, NetnsGuard};
use switch::lab::traffic::{ping, tcp_transfer};
use test_support::wait_until;

const MB: u64 = 1024 * 1024;

/// A counter on the `vxlan` line of the final counters.
fn vxlan_counter(stderr: &str, name: &str) -> u64 {
    report_counter(stderr, "vxlan ", name)
}

fn no_ipv6(ns: &NetnsGuard) {
    ns.exec("sysctl", &["-qw", "net.ipv6.conf.default.disable_ipv6=1"])
        .unwrap();
    ns.exec("sysctl", &["-qw", "net.ipv6.conf.all.disable_ipv6=1"])
        .unwrap();
}

/// podswitch in `host` with uplink `up0` (10.99.0.2/24) toward a
/// namespace `remote` that plays another host with a kernel vxlan device
/// (VNI 42, 10.200.0.20) on 10.99.0.1; a container `c1` (10.200.0.10).
struct KernelPeer {
    daemon: Option<Daemon>,
    _host: NetnsGuard,
    remote: NetnsGuard,
    c1: NetnsGuard,
}

impl KernelPeer {
    fn new(network_extra: &str) -> KernelPeer {
        let host = NetnsGuard::new("pso-h").unwrap();
        let remote = NetnsGuard::new("pso-r").unwrap();
        let c1 = NetnsGuard::new("pso-c").unwrap();
        uplink_veth(&host, &remote, "10.99.0.1/24");
        remote
            .exec(
                "ip",
                &[
                    "link",
                    "add",
                    "vxlan0",
                    "type",
                    "vxlan",
                    "id",
                    "42",
                    "local",
                    "10.99.0.1",
                    "remote",
                    "10.99.0.2",
                    "dstport",
                    "4789",
                    "dev",
                    "out0",
                ],
            )
            .unwrap();
        remote
            .exec(
                "ip",
                &["link", "set", "vxlan0", "address", "02:00:0a:c8:00:14"],
            )
            .unwrap();
        remote
            .exec("ip", &["addr", "add", "10.200.0.20/24", "dev", "vxlan0"])
            .unwrap();
        remote.exec("ip", &["link", "set", "vxlan0", "up"]).unwrap();
        let text = format!(
            r#"
[switch]
control = "{}"

[[port]]
name = "up0"
iface = "up0"
ip = "10.99.0.2/24"

[[network]]
name = "ov"
mode = "overlay"
subnet = "10.200.0.0/24"
uplink = "up0"
vni = 42
{network_extra}

[[endpoint]]
name = "c1"
network = "ov"
netns = "{}"
ip = "10.200.0.10"

[[remote_endpoint]]
network = "ov"
ip = "10.200.0.20"
mac = "02:00:0a:c8:00:14"
vtep = "10.99.0.1"
"#,
            control_path(),
            c1.name()
        );
        let daemon = Daemon::start_in(Some(host.name()), &["run"], &text);
        KernelPeer {
            daemon: Some(daemon),
            _host: host,
            remote,
            c1,
        }
    }

    fn stop(&mut self) -> String {
        let mut d = self.daemon.take().unwrap();
        let (code, err) = d.stop(libc::SIGTERM);
        assert_eq!(code, Some(0), "clean exit; stderr:\n{err}");
        err
    }
}

impl Drop for KernelPeer {
    fn drop(&mut self) {
        self.daemon.take();
    }
}

#[test]
fn a_container_and_a_kernel_vxlan_host_ping_and_move_10_mb_both_ways() {
    if skip_unless_root("overlay kernel interop") {
        return;
    }
    let mut lab = KernelPeer::new("");
    let c1 = Ipv4Addr::new(10, 200, 0, 10);
    let far = Ipv4Addr::new(10, 200, 0, 20);
    assert_eq!(
        ping(lab.c1.name(), far, 3).unwrap().received,
        3,
        "container -> kernel vxlan"
    );
    assert_eq!(
        ping(lab.remote.name(), c1, 3).unwrap().received,
        3,
        "kernel vxlan -> container"
    );
    let t = tcp_transfer(lab.remote.name(), far, 6001, lab.c1.name(), 10 * MB).unwrap();
    assert!(t.exact && t.bytes == 10 * MB, "container -> kernel: {t:?}");
    let t = tcp_transfer(lab.c1.name(), c1, 6002, lab.remote.name(), 10 * MB).unwrap();
    assert!(t.exact && t.bytes == 10 * MB, "kernel -> container: {t:?}");
    let mtu = ip_in(lab.c1.name(), &["link", "show", "eth0"]);
    assert!(
        mtu.contains("mtu 1450"),
        "endpoint MTU is the uplink's minus 50: {mtu}"
    );
    let err = lab.stop();
    // The switch cuts its segments before encapsulation (one VXLAN frame
    // per MTU), while the kernel's vxlan device sends its TSO output as
    // whole super-frames, which reach the container as whole segments:
    // 10 MB (7,500 frames at the MTU) take a few hundred decapsulations.
    assert!(
        vxlan_counter(&err, "encap") > 1000 && vxlan_counter(&err, "decap") > 100,
        "{err}"
    );
    assert!(
        vxlan_counter(&err, "decap") < 3000,
        "super-frames stay whole: {err}"
    );
    // Toward the kernel host, a segment's VXLAN frames leave the AF_PACKET
    // uplink as UDP GSO trains: far fewer transmissions than frames.
    let [_, _, tx_frames, _] = port_counts(&err, "up0");
    assert!(
        tx_frames * 4 < vxlan_counter(&err, "encap"),
        "trains: {tx_frames} transmissions for {} VXLAN frames\n{err}",
        vxlan_counter(&err, "encap")
    );
}

#[test]
fn hostile_vxlan_is_dropped_and_counted() {
    if skip_unless_root("hostile vxlan") {
        return;
    }
    let mut lab = KernelPeer::new("");
    // Let the switch learn the underlay next hop first.
    assert_eq!(
        ping(lab.c1.name(), Ipv4Addr::new(10, 200, 0, 20), 1)
            .unwrap()
            .received,
        1
    );
    lab.remote
        .exec("ip", &["addr", "add", "10.99.0.9/24", "dev", "out0"])
        .unwrap();
    let inner = {
        let mut f = vec![0xffu8; 6];
        f.extend_from_slice(&[0x02, 0, 0x0a, 0xc8, 0, 0x14, 0x08, 0x06]);
        f.resize(60, 0);
        f
    };
    let vx = |vni: u32, inner: &[u8]| -> Vec<u8> {
        let mut p = vec![0x08, 0, 0, 0];
        p.extend_from_slice(&(vni << 8).to_be_bytes());
        p.extend_from_slice(inner);
        p
    };
    let sends: Vec<(Ipv4Addr, Vec<u8>)> = vec![
        (Ipv4Addr::new(10, 99, 0, 1), vx(999, &inner)), // unknown VNI
        (Ipv4Addr::new(10, 99, 0, 9), vx(42, &inner)),  // unknown VTEP
        (Ipv4Addr::new(10, 99, 0, 1), vec![0x08, 0, 0]), // truncated
        (Ipv4Addr::new(10, 99, 0, 1), vx(42, &inner[..9])), // bad inner frame
        (Ipv4Addr::new(10, 99, 0, 1), {
            // I flag missing
            let mut p = vx(42, &inner);
            p[0] = 0;
            p
        }),
    ];
    in_netns(lab.remote.name(), move || {
        for (src, payload) in sends {
            let s = UdpSocket::bind((src, 0)).unwrap();
            s.send_to(
                &payload,
                SocketAddr::from((Ipv4Addr::new(10, 99, 0, 2), 4789)),
            )
            .unwrap();
        }
    })
    .unwrap();
    // The ping's replies come in on the uplink behind the hostile datagrams
    // (same sender, same veth queue): once they are answered, the switch
    // has read (and counted) every hostile one.
    assert_eq!(
        ping(lab.c1.name(), Ipv4Addr::new(10, 200, 0, 20), 2)
            .unwrap()
            .received,
        2,
        "the overlay still works"
    );
    let err = lab.stop();
    for (name, n) in [
        ("unknown_vni", 1),
        ("unknown_vtep", 1),
        ("truncated", 1),
        ("bad_inner", 1),
        ("bad_flags", 1),
    ] {
        assert_eq!(vxlan_counter(&err, name), n, "{name} in:\n{err}");
    }
}

#[test]
fn an_oversized_frame_with_df_gets_fragmentation_needed_and_tcp_still_completes() {
    if skip_unless_root("overlay mtu") {
        return;
    }
    oversized_frames_get_fragmentation_needed("");
}

#[test]
fn with_veth_endpoints_and_the_kernel_offload_an_oversized_frame_still_gets_fragmentation_needed() {
    if skip_unless_root("overlay mtu, veth endpoints") {
        return;
    }
    oversized_frames_get_fragmentation_needed("endpoint_link = \"veth\"");
}

fn oversized_frames_get_fragmentation_needed(network_extra: &str) {
    // The container is told MTU 1500 (more than the overlay carries), so
    // it sends frames the switch must refuse with ICMP frag-needed.
    let mut lab = KernelPeer::new(&format!(
        "mtu = 1500\ngateway = \"10.200.0.1\"\n{network_extra}"
    ));
    let far = Ipv4Addr::new(10, 200, 0, 20);
    // A 1500-byte ping with DF set: too big for the overlay.
    let _ = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            lab.c1.name(),
            "ping",
            "-c",
            "2",
            "-W",
            "1",
            "-M",
            "do",
            "-s",
            "1472",
        ])
        .arg(far.to_string())
        .output()
        .unwrap();
    let t = tcp_transfer(lab.remote.name(), far, 6003, lab.c1.name(), 8 * MB).unwrap();
    assert!(t.exact && t.bytes == 8 * MB, "{t:?}");
    let route = ip_in(lab.c1.name(), &["route", "get", "10.200.0.20"]);
    assert!(
        route.contains("mtu 1450"),
        "the container learned the overlay MTU: {route}"
    );
    let err = lab.stop();
    assert!(vxlan_counter(&err, "frag_needed") >= 1, "{err}");
}

/// Two podswitch hosts on an underlay bridge, each with containers on two
/// overlay networks (VNI 42: 10.200.0.0/24, VNI 43: 10.201.0.0/24).
struct TwoHosts {
    daemons: Vec<Daemon>,
    _underlay: NetnsGuard,
    _hosts: Vec<NetnsGuard>,
    /// a42, a43 on host A; b42, b43 on host B.
    c: Vec<NetnsGuard>,
}

/// Two podswitch hosts on an underlay bridge, their uplinks of `kinds`.
fn two_hosts(kinds: [&str; 2]) -> TwoHosts {
    let underlay = NetnsGuard::new("pso-u").unwrap();
    underlay
        .exec("ip", &["link", "add", "br0", "type", "bridge"])
        .unwrap();
    underlay.exec("ip", &["link", "set", "br0", "up"]).unwrap();
    let hosts = vec![
        NetnsGuard::new("pso-ha").unwrap(),
        NetnsGuard::new("pso-hb").unwrap(),
    ];
    let c: Vec<NetnsGuard> = ["pso-a42", "pso-a43", "pso-b42", "pso-b43"]
        .iter()
        .map(|n| {
            let ns = NetnsGuard::new(n).unwrap();
            no_ipv6(&ns);
            ns
        })
        .collect();
    let mut daemons = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let peer = format!("u{i}");
        h.exec(
            "ip",
            &[
                "link",
                "add",
                "up0",
                "type",
                "veth",
                "peer",
                "name",
                &peer,
                "netns",
                underlay.name(),
            ],
        )
        .unwrap();
        h.exec("ip", &["link", "set", "up0", "up"]).unwrap();
        underlay
            .exec("ip", &["link", "set", &peer, "master", "br0", "up"])
            .unwrap();
    }
    let ips = ["10.99.0.2", "10.99.0.3"];
    for (i, h) in hosts.iter().enumerate() {
        let other = 1 - i;
        let (mine42, mine43) = (&c[i * 2], &c[i * 2 + 1]);
        let text = format!(
            r#"
[switch]
control = "{ctl}"

[[port]]
name = "up0"
iface = "up0"
kind = "{kind}"
ip = "{ip}/24"

[[network]]
name = "ov42"
mode = "overlay"
subnet = "10.200.0.0/24"
uplink = "up0"
vni = 42

[[network]]
name = "ov43"
mode = "overlay"
subnet = "10.201.0.0/24"
uplink = "up0"
vni = 43

[[endpoint]]
name = "c42"
network = "ov42"
netns = "{n42}"
ip = "10.200.0.{me}"

[[endpoint]]
name = "c43"
network = "ov43"
netns = "{n43}"
ip = "10.201.0.{me}"

[[remote_endpoint]]
network = "ov42"
ip = "10.200.0.{them}"
vtep = "{vtep}"

[[remote_endpoint]]
network = "ov43"
ip = "10.201.0.{them}"
vtep = "{vtep}"
"#,
            ctl = control_path(),
            kind = kinds[i],
            ip = ips[i],
            n42 = mine42.name(),
            n43 = mine43.name(),
            me = 10 + i,
            them = 10 + other,
            vtep = ips[other],
        );
        daemons.push(Daemon::start_in(Some(h.name()), &["run"], &text));
    }
    TwoHosts {
        daemons,
        _underlay: underlay,
        _hosts: hosts,
        c,
    }
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        self.daemons.clear();
    }
}

#[test]
fn two_podswitch_hosts_share_an_overlay_network() {
    if skip_unless_root("podswitch to podswitch") {
        return;
    }
    let mut lab = two_hosts(["packet", "packet"]);
    ping_and_move_10_mb_both_ways(&lab);
    // Each host sent its segments as UDP GSO trains (far fewer
    // transmissions than VXLAN frames), the other cut them into datagrams
    // again, and GRO merged those back into segments for the container.
    for (i, d) in lab.daemons.iter_mut().enumerate() {
        let err = d.stop_clean();
        let [_, _, tx_frames, _] = port_counts(&err, "up0");
        let (encap, decap) = (vxlan_counter(&err, "encap"), vxlan_counter(&err, "decap"));
        assert!(
            decap > 5000 && encap > 5000 && tx_frames * 4 < encap,
            "host {i}: {tx_frames} transmissions for {encap} VXLAN frames\n{err}"
        );
        let [_, _, to_container, _] = port_counts(&err, "c42");
        assert!(
            to_container * 4 < decap,
            "host {i}: GRO merged {decap} frames into {to_container}\n{err}"
        );
    }
}

#[test]
fn an_afxdp_host_and_a_packet_host_share_an_overlay_network() {
    if skip_unless_root("podswitch to podswitch, mixed uplinks") {
        return;
    }
    ping_and_move_10_mb_both_ways(&two_hosts(["afxdp", "packet"]));
}

fn ping_and_move_10_mb_both_ways(lab: &TwoHosts) {
    let (a42, b42) = (&lab.c[0], &lab.c[2]);
    let a = Ipv4Addr::new(10, 200, 0, 10);
    let b = Ipv4Addr::new(10, 200, 0, 11);
    assert_eq!(ping(a42.name(), b, 3).unwrap().received, 3, "A -> B");
    assert_eq!(ping(b42.name(), a, 3).unwrap().received, 3, "B -> A");
    let t = tcp_transfer(b42.name(), b, 6010, a42.name(), 10 * MB).unwrap();
    assert!(t.exact && t.bytes == 10 * MB, "A -> B: {t:?}");
    let t = tcp_transfer(a42.name(), a, 6011, b42.name(), 10 * MB).unwrap();
    assert!(t.exact && t.bytes == 10 * MB, "B -> A: {t:?}");
}

#[test]
fn broadcast_reaches_the_other_host_once_and_never_the_other_vni() {
    if skip_unless_root("overlay broadcast and isolation") {
        return;
    }
    let lab = two_hosts(["afxdp", "packet"]);
    let (a42, a43, b42, b43) = (&lab.c[0], &lab.c[1], &lab.c[2], &lab.c[3]);
    // VNI 43 works on its own.
    assert_eq!(
        ping(a43.name(), Ipv4Addr::new(10, 201, 0, 11), 2)
            .unwrap()
            .received,
        2
    );
    // One ARP request for an address nobody has, from a42, by hand: one
    // broadcast frame. Then a last one: a42's frames cross the underlay in
    // order, so when host B's container has it, every copy of the first
    // has arrived too.
    let mut b42_cap = Capture::eth0(b42.name());
    let mut b43_cap = Capture::eth0(b43.name());
    let (absent, last) = (Ipv4Addr::new(10, 200, 0, 99), Ipv4Addr::new(10, 200, 0, 98));
    let a42_mac = [0x02, 0x00, 10, 200, 0, 10];
    let a42_ip = Ipv4Addr::new(10, 200, 0, 10);
    send_raw_frames(
        a42.name(),
        vec![
            arp_request(a42_mac, a42_ip, absent),
            arp_request(a42_mac, a42_ip, last),
        ],
    );
    wait_until(
        "a42's last broadcast to reach host B",
        Duration::from_secs(10),
        || b42_cap.count(|f| is_arp_request_for(f, last)) > 0,
    );
    assert_eq!(
        b42_cap.count(|f| is_arp_request_for(f, absent)),
        1,
        "exactly one copy reached host B"
    );
    assert_eq!(
        b43_cap.count(|f| is_arp_request_for(f, absent) || is_arp_request_for(f, last)),
        0,
        "VNI 43 saw nothing"
    );
    // And nothing crosses between the VNIs.
    let cross = ping(a42.name(), Ipv4Addr::new(10, 201, 0, 11), 2).map_or(0, |p| p.received);
    assert_eq!(cross, 0);
}
