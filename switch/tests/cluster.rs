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

/// `[[endpoint]]` c`i` in namespace `ns`.
fn endpoint(i: usize, ns: &str) -> String {
    format!(
        "[[endpoint]]\nname = \"c{i}\"\nnetwork = \"ov\"\nnetns = \"{ns}\"\nip = \"{}\"\n",
        container_ip(i)
    )
}

/// Host `i`'s uplink veth into the underlay bridge, and its config: the
/// overlay network, `endpoints`, and etcd.
fn host_config(
    i: usize,
    underlay: &NetnsGuard,
    etcd: &EtcdServer,
    endpoints: &str,
) -> (LinkGuard, String) {
    let up = unique_name("pscu");
    let peer = unique_name("pscp");
    let link = LinkGuard::veth(&up, &peer).unwrap();
    ip(&["link", "set", &peer, "netns", underlay.name()]).unwrap();
    underlay
        .exec("ip", &["link", "set", &peer, "master", "br0", "up"])
        .unwrap();
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

{endpoints}

[cluster]
etcd = ["{}"]
lease = 2
"#,
        control_path(),
        2 + i,
        etcd.url()
    );
    (link, text)
}

/// An underlay namespace with a bridge the hosts' uplinks join.
fn underlay() -> NetnsGuard {
    let underlay = NetnsGuard::new("psc-u").unwrap();
    underlay
        .exec("ip", &["link", "add", "br0", "type", "bridge"])
        .unwrap();
    underlay.exec("ip", &["link", "set", "br0", "up"]).unwrap();
    underlay
}

#[test]
fn an_endpoint_attached_by_a_reload_is_published_and_one_detached_is_withdrawn() {
    if skip_unless_root("cluster") || !require_etcd("cluster") {
        return;
    }
    let etcd = EtcdServer::start();
    let underlay = underlay();
    let c0 = NetnsGuard::new("psc-c0").unwrap();
    let c1 = NetnsGuard::new("psc-c1").unwrap();
    let (_l0, t0) = host_config(0, &underlay, &etcd, &endpoint(0, c0.name()));
    let (_l1, t1) = host_config(1, &underlay, &etcd, "");
    let _d0 = Daemon::run(&t0);
    let d1 = Daemon::run(&t1);
    // Host 1 starts without endpoints; a reload attaches c1.
    std::fs::write(
        &d1.config.path,
        t1.replace(
            "\n[cluster]",
            &format!("{}\n[cluster]", endpoint(1, c1.name())),
        ),
    )
    .unwrap();
    // SAFETY: kill(2) on the PID of a child this test started.
    assert_eq!(unsafe { libc::kill(d1.pid(), libc::SIGHUP) }, 0);
    assert!(
        reachable(c0.name(), container_ip(1), 10),
        "host 0 learns c1 through etcd after host 1's reload"
    );
    // And a reload that detaches it withdraws it.
    std::fs::write(&d1.config.path, &t1).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(d1.pid(), libc::SIGHUP) }, 0);
    wait_until(
        "host 0 forgets c1 once host 1 detached it",
        Duration::from_secs(10),
        || !arp_answered(c0.name(), container_ip(1)),
    );
}

#[test]
fn three_hosts_that_know_only_etcd_reach_each_other_and_survive_an_etcd_stop() {
    if skip_unless_root("cluster") || !require_etcd("cluster") {
        return;
    }
    let mut etcd = EtcdServer::start();
    let underlay = underlay();
    let mut links = Vec::new();
    let mut containers = Vec::new();
    let mut daemons: Vec<Option<Daemon>> = Vec::new();
    for i in 0..3 {
        let c = NetnsGuard::new(&format!("psc-c{i}")).unwrap();
        let (link, text) = host_config(i, &underlay, &etcd, &endpoint(i, c.name()));
        links.push(link);
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

#[test]
fn an_overlay_network_added_by_ctl_joins_the_cluster_and_reaches_a_host_that_had_it_from_the_start()
{
    if skip_unless_root("cluster") || !require_etcd("cluster") {
        return;
    }
    let etcd = EtcdServer::start();
    let underlay = underlay();
    let c0 = NetnsGuard::new("psc-c0").unwrap();
    let c1 = NetnsGuard::new("psc-c1").unwrap();
    let (_l0, t0) = host_config(0, &underlay, &etcd, &endpoint(0, c0.name()));
    let (_l1, t1) = host_config(1, &underlay, &etcd, "");
    // Host 1 starts with its uplink and the cluster only.
    let start = t1.find("[[network]]").unwrap();
    let end = t1.find("[cluster]").unwrap();
    let t1 = format!("{}{}", &t1[..start], &t1[end..]);
    let _d0 = Daemon::run(&t0);
    let d1 = Daemon::run(&t1);
    let socket = t1
        .lines()
        .find_map(|l| l.strip_prefix("control = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let ctl = |args: &[&str]| ctl_ok(&socket, args);
    ctl(&[
        "network",
        "add",
        "ov",
        "--mode",
        "overlay",
        "--vni",
        "42",
        "--subnet",
        "10.200.0.0/24",
    ]);
    let ip1 = container_ip(1).to_string();
    let out = ctl(&[
        "endpoint",
        "add",
        "c1",
        "--network",
        "ov",
        "--netns",
        c1.name(),
        "--ip",
        &ip1,
    ]);
    assert!(
        out.contains("1450"),
        "an overlay endpoint's MTU is the uplink's less 50: {out}"
    );
    assert!(
        reachable(c1.name(), container_ip(0), 10),
        "c1 on the run-time overlay reaches c0 through etcd"
    );
    assert!(reachable(c0.name(), container_ip(1), 10), "and back");
    ctl(&["endpoint", "del", "c1"]);
    ctl(&["network", "del", "ov"]);
    wait_until(
        "host 0 forgets c1 once host 1 removed its network",
        Duration::from_secs(10),
        || !arp_answered(c0.name(), container_ip(1)),
    );
    drop(d1);
}
