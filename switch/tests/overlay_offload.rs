//! The kernel flow offload on overlay networks, as root: established TCP
//! flows of a veth endpoint to a remote VTEP are encapsulated by the tc
//! program on the veth's host end and leave by the uplink, and VXLAN of
//! such a flow arriving on the uplink is decapsulated there and delivered
//! into the container, both without the PMD thread. Between two podswitch
//! hosts and between podswitch and a Linux host (vxlan device + bridge).
//! Peers keep their defaults; every namespace is the test's own and is
//! removed by a guard, also when the test fails.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::*;
use pmd::netns::{in_netns, NetnsGuard};
use switch::lab::traffic::{ping, tcp_transfer};
use test_support::wait_until;

const MB: u64 = 1024 * 1024;

fn no_ipv6(ns: &NetnsGuard) {
    for key in ["default", "all"] {
        ns.exec(
            "sysctl",
            &["-qw", &format!("net.ipv6.conf.{key}.disable_ipv6=1")],
        )
        .unwrap();
    }
}

/// A podswitch host: its namespace, the daemon and its control socket.
struct Host {
    daemon: Option<Daemon>,
    socket: String,
    _ns: NetnsGuard,
}

impl Host {
    fn stats(&self) -> serde_json::Value {
        ctl_json(&self.socket, &["stats"])
    }

    /// `field` of port `port` in `ctl stats` (0 when absent).
    fn port_stat(&self, port: &str, field: &str) -> u64 {
        self.stats()["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["port"] == port)
            .and_then(|p| p[field].as_u64())
            .unwrap_or(0)
    }

    /// Bytes of `port`'s received frames that the kernel carried.
    fn offloaded_bytes(&self, port: &str) -> u64 {
        self.port_stat(port, "offloaded_bytes")
    }

    /// Waits until the switch has read the kernel's counters (once a
    /// second) past `at_least` offloaded bytes on `port`.
    fn wait_offloaded(&self, port: &str, at_least: u64, what: &str) {
        let mut last = 0;
        wait_until(
            &format!("{what}: {at_least} bytes offloaded on {port}"),
            Duration::from_secs(5),
            || {
                last = self.offloaded_bytes(port);
                last >= at_least
            },
        );
    }

    /// The daemon's final report after a clean stop.
    fn stop(&mut self) -> String {
        self.daemon.take().unwrap().stop_clean()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // The daemon goes before the namespace it runs in.
        self.daemon.take();
    }
}

/// Starts podswitch in a new namespace whose uplink `up0` (already
/// created by `wire`, called with the namespace) has `ip`, with overlay
/// network `ov` (VNI 42, 10.200.0.0/24, veth endpoints) and its endpoint
/// `c1` in `container` at `me`, and `remote` (a remote endpoint: IP, MAC
/// when known, VTEP).
fn podswitch_host(
    ip: &str,
    wire: impl FnOnce(&NetnsGuard),
    container: &NetnsGuard,
    me: &str,
    remote: (&str, Option<&str>, &str),
) -> Host {
    let ns = NetnsGuard::new("pof-h").unwrap();
    wire(&ns);
    let socket = control_path();
    let mac = remote
        .1
        .map(|m| format!("mac = \"{m}\""))
        .unwrap_or_default();
    let text = format!(
        r#"
[switch]
control = "{socket}"

[[port]]
name = "up0"
iface = "up0"
kind = "packet"
ip = "{ip}/24"

[[network]]
name = "ov"
mode = "overlay"
subnet = "10.200.0.0/24"
uplink = "up0"
vni = 42
endpoint_link = "veth"

[[endpoint]]
name = "c1"
network = "ov"
netns = "{c}"
ip = "{me}"

[[remote_endpoint]]
network = "ov"
ip = "{rip}"
{mac}
vtep = "{vtep}"
"#,
        c = container.name(),
        rip = remote.0,
        vtep = remote.2,
    );
    let daemon = Daemon::start_in(Some(ns.name()), &["run"], &text);
    Host {
        daemon: Some(daemon),
        socket,
        _ns: ns,
    }
}

/// `Tcp: InCsumErrors` of namespace `ns`.
fn tcp_csum_errors(ns: &str) -> u64 {
    in_netns(ns, || {
        let text = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap();
        let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
        let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
        let i = names
            .split_whitespace()
            .position(|n| n == "InCsumErrors")
            .unwrap();
        values.split_whitespace().nth(i).unwrap().parse().unwrap()
    })
    .unwrap()
}

/// Moves 20 MB byte-exact from `a` to `b` and from `b` to `a`, on
/// connections `a` and `b` open in turn.
fn move_20_mb_both_ways(a: (&NetnsGuard, Ipv4Addr), b: (&NetnsGuard, Ipv4Addr), port: u16) {
    let t = tcp_transfer(b.0.name(), b.1, port, a.0.name(), 20 * MB).unwrap();
    assert!(t.exact && t.bytes == 20 * MB, "a -> b: {t:?}");
    let t = tcp_transfer(a.0.name(), a.1, port + 1, b.0.name(), 20 * MB).unwrap();
    assert!(t.exact && t.bytes == 20 * MB, "b -> a: {t:?}");
}

/// What the final report says about VXLAN encapsulation on `up0`.
fn vxlan_counter(report: &str, name: &str) -> u64 {
    report_counter(report, "vxlan ", name)
}

#[test]
fn established_tcp_flows_between_two_podswitch_hosts_are_encapsulated_and_decapsulated_by_the_kernel(
) {
    if skip_unless_root("overlay flow offload, podswitch to podswitch") {
        return;
    }
    let underlay = NetnsGuard::new("pof-u").unwrap();
    underlay
        .exec("ip", &["link", "add", "br0", "type", "bridge"])
        .unwrap();
    underlay.exec("ip", &["link", "set", "br0", "up"]).unwrap();
    let ca = NetnsGuard::new("pof-a").unwrap();
    let cb = NetnsGuard::new("pof-b").unwrap();
    no_ipv6(&ca);
    no_ipv6(&cb);
    let wire = |peer: &'static str| {
        let underlay = &underlay;
        move |h: &NetnsGuard| {
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
                    peer,
                    "netns",
                    underlay.name(),
                ],
            )
            .unwrap();
            h.exec("ip", &["link", "set", "up0", "up"]).unwrap();
            underlay
                .exec("ip", &["link", "set", peer, "master", "br0", "up"])
                .unwrap();
        }
    };
    let (a_ip, b_ip) = (Ipv4Addr::new(10, 200, 0, 10), Ipv4Addr::new(10, 200, 0, 11));
    let mut ha = podswitch_host(
        "10.99.0.2",
        wire("u0"),
        &ca,
        "10.200.0.10",
        ("10.200.0.11", None, "10.99.0.3"),
    );
    let mut hb = podswitch_host(
        "10.99.0.3",
        wire("u1"),
        &cb,
        "10.200.0.11",
        ("10.200.0.10", None, "10.99.0.2"),
    );
    assert_eq!(ping(ca.name(), b_ip, 2).unwrap().received, 2, "A -> B");
    assert_eq!(ping(cb.name(), a_ip, 2).unwrap().received, 2, "B -> A");
    let errors_before = [tcp_csum_errors(ca.name()), tcp_csum_errors(cb.name())];

    move_20_mb_both_ways((&ca, a_ip), (&cb, b_ip), 9200);

    // Each host's kernel encapsulated at least half of what its container
    // sent (received on c1, carried by the kernel) and decapsulated at
    // least half of what the other sent (received on up0).
    for (h, name) in [(&ha, "A"), (&hb, "B")] {
        h.wait_offloaded("c1", 10 * MB, &format!("host {name} encapsulates"));
        h.wait_offloaded("up0", 10 * MB, &format!("host {name} decapsulates"));
    }
    // What one host's kernel encapsulated crossed the underlay whole: the
    // other's decapsulated VXLAN datagrams of many MSS each (a GSO skb),
    // not one per 1,400 bytes.
    for (h, name) in [(&ha, "A"), (&hb, "B")] {
        let (bytes, packets) = (
            h.port_stat("up0", "offloaded_bytes"),
            h.port_stat("up0", "offloaded_packets"),
        );
        assert!(
            bytes > 4 * 1024 * packets,
            "host {name}: {packets} datagrams for {bytes} bytes decapsulated"
        );
    }
    let errors_after = [tcp_csum_errors(ca.name()), tcp_csum_errors(cb.name())];
    assert_eq!(errors_after, errors_before, "no TCP checksum errors");
    for (h, name) in [(&ha, "A"), (&hb, "B")] {
        let s = h.stats();
        assert!(
            s["offload"]["installed"].as_u64().unwrap() >= 2,
            "{name}: {s}"
        );
    }
    // Every connection ended with FIN: no entry is left in either kernel.
    for (h, name) in [(&ha, "A"), (&hb, "B")] {
        wait_until(
            &format!("host {name}: closed flows leave the kernel"),
            Duration::from_secs(5),
            || h.stats()["offload"]["active"].as_u64() == Some(0),
        );
    }
    // The switch itself encapsulated only the flows' first and last
    // frames: far fewer than 40 MB of 1,400-byte frames.
    for (h, name) in [(&mut ha, "A"), (&mut hb, "B")] {
        let report = h.stop();
        let (encap, decap) = (
            vxlan_counter(&report, "encap"),
            vxlan_counter(&report, "decap"),
        );
        assert!(
            encap < 7_000 && decap < 7_000,
            "host {name}: the switch encapsulated {encap} and decapsulated {decap} frames\n{report}"
        );
    }
}

/// A Linux host in `remote`: `out0` (10.99.0.1/24) on the underlay, a
/// vxlan device (VNI 42, toward podswitch's VTEP 10.99.0.2) in bridge
/// `br0` with a veth to container `kc` (10.200.0.20, MAC
/// 02:00:0a:c8:00:14), as Docker's overlay driver builds it.
fn linux_vxlan_host(remote: &NetnsGuard, kc: &NetnsGuard) {
    let r = |args: &[&str]| remote.exec("ip", args).unwrap();
    r(&[
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
    ]);
    r(&["link", "add", "br0", "type", "bridge"]);
    r(&["link", "set", "vxlan0", "master", "br0", "up"]);
    r(&[
        "link",
        "add",
        "veth0",
        "mtu",
        "1450",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "mtu",
        "1450",
        "netns",
        kc.name(),
    ]);
    r(&["link", "set", "veth0", "master", "br0", "up"]);
    r(&["link", "set", "br0", "up"]);
    let k = |args: &[&str]| kc.exec("ip", args).unwrap();
    k(&["link", "set", "eth0", "address", "02:00:0a:c8:00:14"]);
    k(&["addr", "add", "10.200.0.20/24", "dev", "eth0"]);
    k(&["link", "set", "eth0", "up"]);
    k(&["link", "set", "lo", "up"]);
}

#[test]
fn established_tcp_flows_between_podswitch_and_a_linux_vxlan_host_are_carried_by_the_kernel_both_ways(
) {
    if skip_unless_root("overlay flow offload, podswitch to Linux vxlan") {
        return;
    }
    let remote = NetnsGuard::new("pof-r").unwrap();
    let kc = NetnsGuard::new("pof-k").unwrap();
    let c1 = NetnsGuard::new("pof-c").unwrap();
    no_ipv6(&kc);
    no_ipv6(&c1);
    let mut host = podswitch_host(
        "10.99.0.2",
        |h| uplink_veth(h, &remote, "10.99.0.1/24"),
        &c1,
        "10.200.0.10",
        ("10.200.0.20", Some("02:00:0a:c8:00:14"), "10.99.0.1"),
    );
    linux_vxlan_host(&remote, &kc);
    let (c1_ip, kc_ip) = (Ipv4Addr::new(10, 200, 0, 10), Ipv4Addr::new(10, 200, 0, 20));
    assert_eq!(ping(c1.name(), kc_ip, 2).unwrap().received, 2);
    assert_eq!(ping(kc.name(), c1_ip, 2).unwrap().received, 2);
    let errors_before = [tcp_csum_errors(c1.name()), tcp_csum_errors(kc.name())];

    move_20_mb_both_ways((&c1, c1_ip), (&kc, kc_ip), 9300);

    host.wait_offloaded("c1", 10 * MB, "podswitch encapsulates toward Linux");
    host.wait_offloaded("up0", 10 * MB, "podswitch decapsulates from Linux");
    let errors_after = [tcp_csum_errors(c1.name()), tcp_csum_errors(kc.name())];
    assert_eq!(errors_after, errors_before, "no TCP checksum errors");
    wait_until(
        "closed flows leave the kernel",
        Duration::from_secs(5),
        || host.stats()["offload"]["active"].as_u64() == Some(0),
    );
    let report = host.stop();
    let decap = vxlan_counter(&report, "decap");
    assert!(
        decap < 7_000,
        "the switch decapsulated {decap} frames\n{report}"
    );
}
