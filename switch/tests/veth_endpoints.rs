//! Veth endpoints (`endpoint_link = "veth"`), as root: a nat network whose
//! containers' eth0 is a veth, the host ends read by podswitch in a "host"
//! namespace of the test, an uplink veth into an "outside" namespace
//! (10.99.0.1/24) with podswitch's uplink address 10.99.0.2/24. Every
//! interface keeps its default offloads. Every namespace is the test's own
//! and is removed by a guard, also when the test fails.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::*;
use pmd::netns::{in_netns, NetnsGuard};
use pmd::wire::MacAddr;
use pmd::PortId;
use switch::config::EndpointLink;
use switch::endpoint::{self, EndpointPlan};
use switch::lab::traffic::{ping, tcp_fetch, tcp_transfer, tcp_upload};
use test_support::wait_until;

const OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const EXTERNAL: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);
const C1: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 10);
const C2: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 11);
const MB: u64 = 1024 * 1024;

struct VethLab {
    daemon: Option<Daemon>,
    text: String,
    host: NetnsGuard,
    outside: NetnsGuard,
    c1: NetnsGuard,
    c2: NetnsGuard,
}

impl VethLab {
    fn new() -> VethLab {
        VethLab::with_switch("")
    }

    /// A lab whose `[switch]` table also has `extra` lines.
    fn with_switch(extra: &str) -> VethLab {
        let host = NetnsGuard::new("psv-h").unwrap();
        let outside = NetnsGuard::new("psv-o").unwrap();
        let c1 = NetnsGuard::new("psv-a").unwrap();
        let c2 = NetnsGuard::new("psv-b").unwrap();
        uplink_veth(&host, &outside, "10.99.0.1/24");
        let text = format!(
            r#"
[switch]
control = "{}"
{extra}

[[port]]
name = "up0"
iface = "up0"
kind = "packet"
ip = "10.99.0.2/24"
gateway = "10.99.0.1"

[[network]]
name = "front"
mode = "nat"
subnet = "172.30.0.0/24"
gateway = "172.30.0.1"
uplink = "up0"
endpoint_link = "veth"

[[endpoint]]
name = "c1"
network = "front"
netns = "{}"
ip = "172.30.0.10"

[[endpoint]]
name = "c2"
network = "front"
netns = "{}"
ip = "172.30.0.11"

[[port_mapping]]
protocol = "tcp"
host_port = 8081
endpoint = "c1"
port = 81
"#,
            control_path(),
            c1.name(),
            c2.name(),
        );
        let daemon = Daemon::start_in(Some(host.name()), &["run"], &text);
        VethLab {
            daemon: Some(daemon),
            text,
            host,
            outside,
            c1,
            c2,
        }
    }

    /// `ctl endpoint add NAME --network front --netns NS [--ip IP]`: its
    /// output.
    fn add(&self, name: &str, ns: &NetnsGuard, ip: Option<&str>) -> String {
        let mut args = vec!["endpoint", "add", name, "--network", "front"];
        args.extend(["--netns", ns.name()]);
        args.extend(ip.map(|ip| ["--ip", ip]).into_iter().flatten());
        ctl_ok(&self.socket(), &args)
    }

    fn socket(&self) -> String {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix("control = \""))
            .unwrap()
            .trim_end_matches('"')
            .to_string()
    }

    /// The `psv*` links in podswitch's namespace.
    fn host_ends(&self) -> Vec<String> {
        ip_in(self.host.name(), &["-br", "link", "show"])
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(|n| n.split('@').next().unwrap().to_string())
            .filter(|n| n.starts_with("psv"))
            .collect()
    }
}

impl Drop for VethLab {
    fn drop(&mut self) {
        // The daemon goes before the namespaces it uses.
        self.daemon.take();
    }
}

/// `ip -d link show eth0` in `ns` ("" when there is none).
fn eth0_details(ns: &str) -> String {
    ip_in(ns, &["-d", "link", "show", "dev", "eth0"])
}

/// `ethtool -k eth0` in `ns`: the feature named `feature` is on.
fn feature_on(ns: &str, feature: &str) -> bool {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "ethtool", "-k", "eth0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "ethtool -k eth0 in {ns}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim_start().starts_with(&format!("{feature}: on")))
}

#[test]
fn containers_on_a_veth_network_reach_the_gateway_each_other_and_the_outside_byte_exact() {
    if skip_unless_root("veth endpoints traffic") {
        return;
    }
    let mut lab = VethLab::new();
    for c in [&lab.c1, &lab.c2] {
        let d = eth0_details(c.name());
        assert!(d.contains("veth"), "eth0 is a veth: {d}");
        assert!(
            feature_on(c.name(), "tcp-segmentation-offload")
                && feature_on(c.name(), "tx-checksumming"),
            "the container's veth keeps its default offloads"
        );
    }
    let addr = ip_in(lab.c1.name(), &["-4", "addr", "show", "dev", "eth0"]);
    assert!(addr.contains("inet 172.30.0.10/24"), "{addr}");
    assert_eq!(lab.host_ends().len(), 2, "one host end per endpoint");

    assert_eq!(
        ping(lab.c1.name(), GATEWAY, 2).unwrap().received,
        2,
        "gateway"
    );
    assert_eq!(ping(lab.c1.name(), C2, 2).unwrap().received, 2, "c2");
    assert_eq!(
        ping(lab.c2.name(), OUTSIDE, 2).unwrap().received,
        2,
        "outside"
    );

    let t = tcp_transfer(lab.c2.name(), C2, 9000, lab.c1.name(), 10 * MB).unwrap();
    assert!(t.exact && t.bytes == 10 * MB, "c1 to c2: {t:?}");
    let (t, seen) = tcp_fetch(
        lab.c1.name(),
        C1,
        9001,
        lab.c2.name(),
        SocketAddr::from((C1, 9001)),
        10 * MB,
    )
    .unwrap();
    assert!(t.exact && t.bytes == 10 * MB, "c1 serves c2: {t:?}");
    assert_eq!(seen.ip(), std::net::IpAddr::V4(C2));
    let t = tcp_transfer(lab.outside.name(), OUTSIDE, 9002, lab.c1.name(), 10 * MB).unwrap();
    assert!(t.exact && t.bytes == 10 * MB, "c1 to the outside: {t:?}");
    let t = tcp_upload(
        lab.c1.name(),
        C1,
        81,
        lab.outside.name(),
        SocketAddr::from((EXTERNAL, 8081)),
        10 * MB,
    )
    .unwrap();
    assert!(
        t.exact && t.bytes == 10 * MB,
        "outside to c1 through the mapping: {t:?}"
    );

    let err = lab.daemon.take().unwrap().stop_clean();
    // The socket on the host end takes the container's TSO segments whole.
    let [rx, rx_bytes, _, _] = port_counts(&err, "c1");
    assert!(
        rx_bytes > 20 * MB && rx_bytes / rx.max(1) > 4000,
        "c1's veth delivered large segments: {rx} frames, {rx_bytes} bytes\n{err}"
    );
    assert!(lab.host_ends().is_empty(), "a clean stop deletes the pairs");
    assert!(eth0_details(lab.c1.name()).is_empty(), "c1's eth0 went too");
}

#[test]
fn ctl_endpoint_add_makes_a_configured_veth_and_del_removes_the_pair() {
    if skip_unless_root("veth endpoint add/del") {
        return;
    }
    let lab = VethLab::new();
    let c3 = NetnsGuard::new("psv-c").unwrap();
    let out = lab.add("c3", &c3, Some("172.30.0.12"));
    assert!(out.contains("172.30.0.12/24"), "{out}");
    let d = eth0_details(c3.name());
    assert!(d.contains("veth") && d.contains("state UP"), "{d}");
    let addr = ip_in(c3.name(), &["-4", "addr", "show", "dev", "eth0"]);
    assert!(addr.contains("inet 172.30.0.12/24"), "{addr}");
    let route = ip_in(c3.name(), &["route", "show", "default"]);
    assert!(route.contains("via 172.30.0.1 dev eth0"), "{route}");
    let v6 = ip_in(c3.name(), &["-6", "addr", "show", "dev", "eth0"]);
    assert!(!v6.contains("inet6"), "no IPv6 on eth0: {v6}");
    let ends = lab.host_ends();
    assert_eq!(ends.len(), 3, "{ends:?}");
    for end in &ends {
        // The host's kernel must neither answer ARP for the containers'
        // side nor send IPv6 into it.
        let d = ip_in(lab.host.name(), &["link", "show", "dev", end]);
        assert!(d.contains("NOARP") && d.contains(",UP"), "{d}");
        let v6 = ip_in(lab.host.name(), &["-6", "addr", "show", "dev", end]);
        assert!(!v6.contains("inet6"), "no IPv6 on {end}: {v6}");
    }
    assert_eq!(ping(c3.name(), GATEWAY, 2).unwrap().received, 2);
    assert_eq!(ping(c3.name(), C1, 2).unwrap().received, 2);

    let out = ctl_ok(&lab.socket(), &["endpoint", "del", "c3"]);
    assert!(out.contains("deleted"), "{out}");
    assert!(eth0_details(c3.name()).is_empty(), "c3's eth0 is gone");
    assert_eq!(lab.host_ends().len(), 2, "its host end is gone");
    assert_eq!(
        ping(lab.c1.name(), C2, 1).unwrap().received,
        1,
        "the rest work"
    );
}

#[test]
fn a_killed_podswitch_restarts_onto_its_stale_veths_and_a_clean_stop_leaves_none() {
    if skip_unless_root("veth restart after SIGKILL") {
        return;
    }
    let mut lab = VethLab::new();
    let c3 = NetnsGuard::new("psv-c").unwrap();
    lab.add("c3", &c3, None);
    let before = lab.host_ends();
    assert_eq!(before.len(), 3);

    let mut first = lab.daemon.take().unwrap();
    first.stop(libc::SIGKILL);
    let mut after_kill = lab.host_ends();
    after_kill.sort();
    let mut sorted = before.clone();
    sorted.sort();
    assert_eq!(
        after_kill, sorted,
        "the fixture: a killed podswitch leaves its veths"
    );

    let second = Daemon::start_in(Some(lab.host.name()), &["run"], &lab.text);
    lab.daemon = Some(second);
    // The ctl-added endpoint is attached again from the state file.
    wait_until("c3 attached again", Duration::from_secs(10), || {
        ip_in(c3.name(), &["-4", "addr", "show", "dev", "eth0"]).contains("inet 172.30.0.")
    });
    let mut now = lab.host_ends();
    now.sort();
    assert_eq!(
        now, sorted,
        "the same host ends, none twice, none left over"
    );
    for c in [&lab.c1, &lab.c2, &c3] {
        let links = ip_in(c.name(), &["-br", "link", "show"]);
        assert_eq!(
            links.lines().filter(|l| l.starts_with("eth0")).count(),
            1,
            "{links}"
        );
    }
    assert_eq!(ping(lab.c1.name(), GATEWAY, 2).unwrap().received, 2);
    assert_eq!(ping(c3.name(), C2, 2).unwrap().received, 2);
    let t = tcp_transfer(lab.outside.name(), OUTSIDE, 9003, lab.c2.name(), 2 * MB).unwrap();
    assert!(t.exact && t.bytes == 2 * MB, "c2 to the outside: {t:?}");

    lab.daemon.take().unwrap().stop_clean();
    assert!(
        lab.host_ends().is_empty(),
        "no psv link left: {:?}",
        lab.host_ends()
    );
    for c in [&lab.c1, &lab.c2, &c3] {
        assert!(
            eth0_details(c.name()).is_empty(),
            "{} has no eth0",
            c.name()
        );
    }
}

/// A veth endpoint `name` in `ns` at 172.30.0.`host`, MTU 1400.
fn veth_plan(name: &str, ns: &NetnsGuard, ifname: &str, host: u8) -> EndpointPlan {
    EndpointPlan {
        name: name.into(),
        netns: ns.name().into(),
        ifname: ifname.into(),
        mac: MacAddr([2, 0, 172, 30, 0, host]),
        ip: Ipv4Addr::new(172, 30, 0, host),
        prefix: 24,
        gateway: Some(GATEWAY),
        mtu: 1400,
        routes: Vec::new(),
        link: EndpointLink::Veth,
        queues: None,
    }
}

#[test]
fn a_second_podswitch_is_refused_a_veth_that_a_live_one_holds() {
    if skip_unless_root("veth held by a live podswitch") {
        return;
    }
    let lab = VethLab::new();
    let plan = veth_plan("c1", &lab.c1, "eth0", 10);
    let err = in_netns(lab.host.name(), move || endpoint::preflight(&plan))
        .unwrap()
        .expect_err("a live one's veth is not stale");
    assert!(format!("{err:#}").contains("in use"), "{err:#}");
    assert_eq!(lab.host_ends().len(), 2, "nothing was deleted");
    assert_eq!(ping(lab.c1.name(), C2, 1).unwrap().received, 1);
}

#[test]
fn create_many_with_veths_removes_every_pair_it_made_when_one_fails() {
    if skip_unless_root("veth create_many") {
        return;
    }
    let host = NetnsGuard::new("psv-h").unwrap();
    let a = NetnsGuard::new("psv-a").unwrap();
    let b = NetnsGuard::new("psv-b").unwrap();
    let plan = veth_plan;
    let links = |ns: &str| ip_in(ns, &["-br", "link", "show"]);
    let items = vec![
        (plan("a", &a, "eth0", 2), PortId(0), "t0".to_string()),
        (plan("b", &b, "net1", 3), PortId(1), "t1".to_string()),
    ];
    let ports = in_netns(host.name(), move || endpoint::create_many(&items))
        .unwrap()
        .unwrap();
    assert!(ports.iter().all(|p| p.host_ifindex().is_some()));
    let addr = ip_in(b.name(), &["-4", "addr", "show", "dev", "net1"]);
    assert!(addr.contains("inet 172.30.0.3/24"), "{addr}");
    let d = ip_in(a.name(), &["link", "show", "dev", "eth0"]);
    assert!(
        d.contains("mtu 1400") && d.contains("02:00:ac:1e:00:02"),
        "{d}"
    );
    assert_eq!(links(host.name()).matches("psv").count(), 2);
    drop(ports);
    assert!(!links(host.name()).contains("psv"), "dropping deletes");
    assert!(!links(a.name()).contains("eth0"));

    // b asks for `lo`, which its namespace has: a's pair is made, b's
    // fails, and a's must be gone again.
    let clash = vec![
        (plan("a", &a, "eth0", 2), PortId(0), "t0".to_string()),
        (plan("b", &b, "lo", 3), PortId(1), "t1".to_string()),
    ];
    let err = in_netns(host.name(), move || endpoint::create_many(&clash))
        .unwrap()
        .map(drop)
        .expect_err("lo is taken");
    assert!(format!("{err:#}").contains("endpoint b"), "{err:#}");
    assert!(!links(host.name()).contains("psv"), "no host end left");
    assert!(!links(a.name()).contains("eth0"), "a's pair removed");
}

#[test]
fn a_reload_that_switches_a_network_to_taps_remakes_its_endpoints_as_taps() {
    if skip_unless_root("veth reload") {
        return;
    }
    let lab = VethLab::new();
    let daemon = lab.daemon.as_ref().unwrap();
    let taps = lab.text.replace("endpoint_link = \"veth\"\n", "");
    std::fs::write(&daemon.config.path, &taps).unwrap();
    let out = ctl_ok(&lab.socket(), &["reload"]);
    assert!(out.contains("network front"), "{out}");
    assert!(lab.host_ends().is_empty(), "{:?}", lab.host_ends());
    let d = eth0_details(lab.c1.name());
    assert!(
        d.contains("tun") && !d.contains("veth"),
        "eth0 is a TAP: {d}"
    );
    assert_eq!(ping(lab.c1.name(), C2, 2).unwrap().received, 2);

    std::fs::write(&daemon.config.path, &lab.text).unwrap();
    ctl_ok(&lab.socket(), &["reload"]);
    assert_eq!(lab.host_ends().len(), 2, "veths again");
    assert!(eth0_details(lab.c2.name()).contains("veth"));
    assert_eq!(ping(lab.c2.name(), OUTSIDE, 2).unwrap().received, 2);
}

/// `ctl stats` of the lab's switch.
fn stats(lab: &VethLab) -> serde_json::Value {
    ctl_json(&lab.socket(), &["stats"])
}

/// The bytes of port `port`'s received frames that the kernel carried.
fn offloaded_bytes(stats: &serde_json::Value, port: &str) -> u64 {
    stats["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == port)
        .and_then(|p| p["offloaded_bytes"].as_u64())
        .unwrap_or(0)
}

/// `Tcp: InCsumErrors` of namespace `ns`: segments its kernel dropped for
/// a bad checksum.
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

/// Offloaded bytes of `port` once the switch has read the kernel's
/// counters (once a second) past `at_least`.
fn wait_offloaded(lab: &VethLab, port: &str, at_least: u64, what: &str) -> u64 {
    let mut last = 0;
    wait_until(what, Duration::from_secs(5), || {
        last = offloaded_bytes(&stats(lab), port);
        last >= at_least
    });
    last
}

#[test]
fn established_tcp_flows_between_veth_containers_and_through_nat_are_carried_by_the_kernel() {
    if skip_unless_root("flow offload") {
        return;
    }
    let lab = VethLab::new();
    assert_eq!(ping(lab.c1.name(), C2, 1).unwrap().received, 1);
    assert_eq!(ping(lab.c1.name(), OUTSIDE, 1).unwrap().received, 1);
    let errors_before: Vec<u64> = [&lab.c1, &lab.c2, &lab.outside]
        .iter()
        .map(|n| tcp_csum_errors(n.name()))
        .collect();
    let mut expected_c1 = 0;

    // Container to container: most of it never reaches the switch.
    let t = tcp_transfer(lab.c2.name(), C2, 9100, lab.c1.name(), 20 * MB).unwrap();
    assert!(t.exact, "c1 to c2: {t:?}");
    expected_c1 += 10 * MB;
    wait_offloaded(&lab, "c1", expected_c1, "c1 -> c2 carried by the kernel");

    // Through NAT, both ways, on connections the containers opened.
    let t = tcp_transfer(lab.outside.name(), OUTSIDE, 9101, lab.c1.name(), 20 * MB).unwrap();
    assert!(t.exact, "c1 to the outside: {t:?}");
    expected_c1 += 10 * MB;
    wait_offloaded(
        &lab,
        "c1",
        expected_c1,
        "c1 -> outside carried by the kernel",
    );
    let (t, seen) = tcp_fetch(
        lab.outside.name(),
        OUTSIDE,
        9102,
        lab.c1.name(),
        SocketAddr::from((OUTSIDE, 9102)),
        20 * MB,
    )
    .unwrap();
    assert!(t.exact, "the outside to c1: {t:?}");
    assert_eq!(seen.ip(), std::net::IpAddr::V4(EXTERNAL), "masqueraded");
    wait_offloaded(&lab, "up0", 10 * MB, "outside -> c1 carried by the kernel");

    // Into a container through a port mapping.
    let t = tcp_upload(
        lab.c1.name(),
        C1,
        81,
        lab.outside.name(),
        SocketAddr::from((EXTERNAL, 8081)),
        20 * MB,
    )
    .unwrap();
    assert!(t.exact, "outside to c1 through the mapping: {t:?}");
    wait_offloaded(
        &lab,
        "up0",
        20 * MB,
        "the mapped flow carried by the kernel",
    );

    // Hairpins through the mapping: from c2 (which keeps its address) and
    // from c1 itself (which sees the gateway).
    for (client, seen_as) in [(&lab.c2, C2), (&lab.c1, GATEWAY)] {
        let (t, seen) = tcp_fetch(
            lab.c1.name(),
            C1,
            81,
            client.name(),
            SocketAddr::from((EXTERNAL, 8081)),
            20 * MB,
        )
        .unwrap();
        assert!(t.exact, "hairpin from {seen_as}: {t:?}");
        assert_eq!(seen.ip(), std::net::IpAddr::V4(seen_as), "hairpin client");
    }

    let errors_after: Vec<u64> = [&lab.c1, &lab.c2, &lab.outside]
        .iter()
        .map(|n| tcp_csum_errors(n.name()))
        .collect();
    assert_eq!(
        errors_after, errors_before,
        "no TCP checksum errors anywhere"
    );
    let s = stats(&lab);
    assert!(s["offload"]["installed"].as_u64().unwrap() >= 4, "{s}");
    // Every connection ended with FIN: none is left in the kernel.
    wait_until(
        "closed flows leave the kernel",
        Duration::from_secs(5),
        || stats(&lab)["offload"]["active"].as_u64() == Some(0),
    );
    let text = ctl_ok(&lab.socket(), &["stats"]);
    assert!(text.contains("flow offload"), "{text}");
}

#[test]
fn with_offload_off_every_frame_goes_through_the_switch() {
    if skip_unless_root("flow offload off") {
        return;
    }
    let lab = VethLab::with_switch("offload = false");
    let t = tcp_transfer(lab.c2.name(), C2, 9110, lab.c1.name(), 10 * MB).unwrap();
    assert!(t.exact, "{t:?}");
    let s = stats(&lab);
    assert!(s["offload"].is_null(), "{s}");
    assert_eq!(offloaded_bytes(&s, "c1"), 0);
    let progs = in_netns(lab.host.name(), || {
        pmd::offload::tcx_ingress_programs(pmd::netdev::ifindex("up0").unwrap()).unwrap()
    })
    .unwrap();
    assert!(progs.is_empty(), "no program on the uplink: {progs:?}");
}

#[test]
fn a_killed_podswitch_leaves_no_offload_program_behind() {
    if skip_unless_root("flow offload after a kill") {
        return;
    }
    let mut lab = VethLab::new();
    let attached = || {
        in_netns(lab.host.name(), || {
            pmd::offload::tcx_ingress_programs(pmd::netdev::ifindex("up0").unwrap()).unwrap()
        })
        .unwrap()
    };
    assert_eq!(attached().len(), 1, "the program is on the uplink");
    lab.daemon.as_mut().unwrap().stop(libc::SIGKILL);
    wait_until("the kernel drops the links", Duration::from_secs(5), || {
        attached().is_empty()
    });
}

#[test]
fn a_capture_sees_the_data_of_a_flow_the_kernel_was_carrying() {
    if skip_unless_root("capture of an offloaded flow") {
        return;
    }
    use std::io::{Read, Write};
    use std::process::Stdio;
    let lab = VethLab::new();
    // A connection c1 -> c2 that keeps sending 64 KB every 20 ms.
    let server = std::net::SocketAddr::from((C2, 9120));
    let listener = in_netns(lab.c2.name(), move || std::net::TcpListener::bind(server))
        .unwrap()
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c1 = lab.c1.name().to_string();
    let stop_sender = stop.clone();
    let sender = std::thread::spawn(move || {
        in_netns(&c1, move || {
            let mut s = std::net::TcpStream::connect(server).unwrap();
            while !stop_sender.load(std::sync::atomic::Ordering::Relaxed) {
                s.write_all(&[7u8; 65536]).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .unwrap()
    });
    let (mut conn, _) = listener.accept().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while conn.read(&mut buf).is_ok_and(|n| n > 0) {}
    });
    wait_until("the flow is in the kernel", Duration::from_secs(5), || {
        stats(&lab)["offload"]["active"].as_u64() >= Some(1)
    });
    let mut capture = ctl(
        &lab.socket(),
        &[
            "capture", "c2", "--count", "20", "--proto", "tcp", "-w", "-",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut pcap = capture.stdout.take().unwrap();
    let drain = std::thread::spawn(move || {
        let mut out = Vec::new();
        pcap.read_to_end(&mut out).map(|_| out)
    });
    // Without the capture pulling the flow out of the kernel, it would
    // see none of its frames for 30 s.
    let mut status = None;
    wait_until(
        "the capture gets 20 frames",
        Duration::from_secs(10),
        || {
            status = capture.try_wait().unwrap();
            status.is_some()
        },
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sender.join().unwrap();
    reader.join().unwrap();
    assert!(status.unwrap().success());
    let out = drain.join().unwrap().unwrap();
    // pcap: a 24-byte file header, then a 16-byte header per frame.
    assert!(out.len() > 24 + 20 * 16, "{} bytes", out.len());
}

#[test]
fn a_network_added_at_run_time_with_veth_links_gets_veths_whose_flows_the_kernel_carries() {
    if skip_unless_root("ctl network add --endpoint-link veth") {
        return;
    }
    let lab = VethLab::new();
    let c3 = NetnsGuard::new("psv-c").unwrap();
    ctl_ok(
        &lab.socket(),
        &[
            "network",
            "add",
            "back",
            "--subnet",
            "172.31.0.0/24",
            "--endpoint-link",
            "veth",
        ],
    );
    let bad = ctl(
        &lab.socket(),
        &[
            "network",
            "add",
            "odd",
            "--subnet",
            "172.29.0.0/24",
            "--endpoint-link",
            "vde",
        ],
    )
    .output()
    .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("vde"));
    let mut args = vec!["endpoint", "add", "c3", "--network", "back"];
    args.extend(["--netns", c3.name()]);
    ctl_ok(&lab.socket(), &args);
    assert!(
        eth0_details(c3.name()).contains("veth"),
        "{}",
        eth0_details(c3.name())
    );
    let t = tcp_transfer(lab.outside.name(), OUTSIDE, 9130, c3.name(), 10 * MB).unwrap();
    assert!(t.exact, "{t:?}");
    wait_offloaded(&lab, "c3", 5 * MB, "c3's flow carried by the kernel");
}
