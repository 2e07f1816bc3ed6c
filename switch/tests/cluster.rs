//! Cluster mode end to end, as root: a real etcd on loopback (its own data
//! dir and free ports, stopped by PID) and three podswitch instances that
//! know only etcd, each with a container on one overlay network and an
//! uplink veth into a shared underlay bridge (a namespace of the test).

mod common;

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use pmd::netns::{unique_name, LinkGuard, NetnsGuard};
use switch::lab::traffic::ping;
use test_support::etcd::EtcdServer;
use test_support::ip;
use test_support::{require_etcd, wait_until};

fn container_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 200, 0, 10 + i as u8)
}

/// Pings until one reply comes or `secs` pass.
fn reachable(ns: &str, dst: Ipv4Addr, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if ping(ns, dst, 1).is_ok_and(|p| p.received == 1) {
            return true;
        }
    }
    false
}

/// True when `ns` has a resolved neighbour entry for `dst` after a fresh
/// ARP: someone (the container, or podswitch's ARP suppression for a
/// remote endpoint it knows) answered.
fn arp_answered(ns: &str, dst: Ipv4Addr) -> bool {
    let _ = Command::new("ip")
        .args(["-n", ns, "neigh", "flush", "dev", "eth0"])
        .status();
    let _ = ping(ns, dst, 1);
    let out = ip_in(ns, &["neigh", "show", &dst.to_string()]);
    out.contains("lladdr")
}

#[test]
fn three_hosts_that_know_only_etcd_reach_each_other_and_survive_an_etcd_stop() {
    if skip_unless_root("cluster") || !require_etcd("cluster") {
        return;
    }
    let mut etcd = EtcdServer::start();
    let underlay = NetnsGuard::new("psc-u").unwrap();
    underlay
        .exec("ip", &["link", "add", "br0", "type", "bridge"])
        .unwrap();
    underlay.exec("ip", &["link", "set", "br0", "up"]).unwrap();
    let mut links = Vec::new();
    let mut containers = Vec::new();
    let mut daemons: Vec<Option<Daemon>> = Vec::new();
    for i in 0..3 {
        let up = unique_name("pscu");
        let peer = unique_name("pscp");
        links.push(LinkGuard::veth(&up, &peer).unwrap());
        ip(&["link", "set", &peer, "netns", underlay.name()]).unwrap();
        underlay
            .exec("ip", &["link", "set", &peer, "master", "br0", "up"])
            .unwrap();
        let c = NetnsGuard::new(&format!("psc-c{i}")).unwrap();
        let text = format!(
            r#"
[switch]
control = "{}"

[[port]]
name = "up0"
iface = "{up}"
ip = "10.99.0.{}/24"

[[network]]
name = "ov"
mode = "overlay"
subnet = "10.200.0.0/24"
uplink = "up0"
vni = 42

[[endpoint]]
name = "c{i}"
network = "ov"
netns = "{}"
ip = "{}"

[cluster]
etcd = ["{}"]
lease = 2
"#,
            control_path(),
            2 + i,
            c.name(),
            container_ip(i),
            etcd.url()
        );
        daemons.push(Some(Daemon::run(&text)));
        containers.push(c);
    }
    // Everyone learns everyone through etcd.
    for (a, b) in [(0, 1), (0, 2), (1, 2), (2, 0)] {
        assert!(
            reachable(containers[a].name(), container_ip(b), 10),
            "c{a} reaches c{b} with endpoints from etcd only"
        );
    }
    // Host 2 leaves: the others drop its endpoint within the lease time,
    // so nobody answers ARP for it any more.
    let (code, err) = daemons[2].take().unwrap().stop(libc::SIGTERM);
    assert_eq!(code, Some(0), "{err}");
    wait_until(
        "host 0 to forget the endpoint of the host that left (lease 2 s)",
        Duration::from_secs(10),
        || !arp_answered(containers[0].name(), container_ip(2)),
    );
    assert!(
        arp_answered(containers[0].name(), container_ip(1)),
        "host 1's endpoint stays"
    );
    // etcd goes away: the last known state keeps traffic flowing, also
    // after the lease has run out. 20 pings, 200 ms apart: two leases.
    etcd.stop();
    let p = ping(containers[0].name(), container_ip(1), 20).unwrap();
    assert_eq!(p.received, 20, "traffic flows without etcd: {p:?}");
    assert!(reachable(containers[1].name(), container_ip(0), 5));
    daemons.clear();
}
