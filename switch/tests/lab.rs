//! Labs and endpoint setup through netlink, as root: a 100-container lab
//! comes up with every container answering its gateway and goes down
//! leaving nothing; endpoint preflight and parallel creation say what is
//! wrong and undo what they made. Namespaces are uniquely named and
//! removed by guards even when a test fails.

mod common;

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::process::Command;

use common::*;
use pmd::netns::{unique_name, NetnsGuard};
use pmd::wire::MacAddr;
use pmd::PortId;
use switch::config::EndpointLink;
use switch::endpoint::{self, EndpointPlan};

/// A lab config of `n` containers on 4 nat networks, as
/// scripts/lab-gen.sh writes it, with namespaces named `{prefix}c{i}`.
fn lab_config(prefix: &str, n: usize) -> String {
    let mut s = format!("[switch]\ncontrol = \"{}\"\n", control_path());
    for k in 0..4 {
        write!(
            s,
            "\n[[network]]\nname = \"n{k}\"\nmode = \"nat\"\nsubnet = \"10.{}.0.0/16\"\n",
            100 + k
        )
        .unwrap();
    }
    for i in 0..n {
        write!(
            s,
            "\n[[endpoint]]\nname = \"c{i}\"\nnetwork = \"n{}\"\nnetns = \"{prefix}c{i}\"\n",
            i % 4
        )
        .unwrap();
    }
    s
}

/// The namespace names `{prefix}c0`... of an `n`-container lab, with
/// guards that delete them in case the test fails before the lab does.
fn lab_names(prefix: &str, n: usize) -> (Vec<String>, Vec<NetnsGuard>) {
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}c{i}")).collect();
    assert!(names.iter().all(|n| n.len() <= 15), "fixture names fit");
    let guards = names.iter().map(|n| NetnsGuard::adopt(n)).collect();
    (names, guards)
}

/// Which of `names` `ip netns list` shows.
fn listed(names: &[String]) -> Vec<&String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let all = String::from_utf8_lossy(&out.stdout);
    let shown: Vec<&str> = all
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    names
        .iter()
        .filter(|n| shown.contains(&n.as_str()))
        .collect()
}

#[test]
fn a_100_container_lab_comes_up_with_every_container_pinging_its_gateway_and_down_leaves_nothing() {
    if skip_unless_root("100-container lab") {
        return;
    }
    let prefix = unique_name("pl");
    let (names, _guards) = lab_names(&prefix, 100);
    let text = lab_config(&prefix, 100);

    let mut d = Daemon::start_with(&["lab", "up"], &text);
    let cfg = switch::config::load(&d.config.path).unwrap();
    assert_eq!(
        switch::lab::gateways(&cfg).len(),
        100,
        "the fixture is a 100-container lab"
    );
    assert_eq!(
        listed(&names).len(),
        100,
        "ip netns list shows every container"
    );
    let eth0 = ip_in(&names[57], &["-4", "addr", "show", "eth0"]);
    assert!(
        eth0.contains("inet 10.101.0.16/16"),
        "c57 is the 15th host of n1: {eth0}"
    );
    let lo = ip_in(&names[57], &["link", "show", "lo"]);
    assert!(lo.contains("UP"), "the lab set loopback up: {lo}");

    let unanswered = switch::lab::ping_gateways(&cfg);
    assert!(
        unanswered.is_empty(),
        "{} containers unanswered, e.g. {:#}",
        unanswered.len(),
        unanswered[0]
    );

    let taps = format!("pst{}e", d.pid() % 100_000);
    d.stop_clean();
    let left = listed(&names);
    assert!(left.is_empty(), "namespaces left: {left:?}");
    assert!(!ip_link_details().contains(&taps), "a TAP left here");
}

fn plan(name: &str, netns: &str, ifname: &str, host: u8) -> EndpointPlan {
    EndpointPlan {
        name: name.to_string(),
        netns: netns.to_string(),
        ifname: ifname.to_string(),
        mac: MacAddr([0x02, 0, 10, 9, 0, host]),
        ip: Ipv4Addr::new(10, 9, 0, host),
        prefix: 24,
        gateway: Some(Ipv4Addr::new(10, 9, 0, 1)),
        mtu: 1500,
        routes: Vec::new(),
        link: EndpointLink::Tap,
        queues: None,
    }
}

#[test]
fn preflight_names_a_missing_namespace_and_an_interface_name_already_taken() {
    if skip_unless_root("endpoint preflight") {
        return;
    }
    let missing = unique_name("pfm");
    let err = endpoint::preflight(&plan("web", &missing, "eth0", 2)).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("web") && msg.contains(&missing) && msg.contains("does not exist"),
        "{msg}"
    );

    let ns = NetnsGuard::new("pfn").unwrap();
    endpoint::preflight(&plan("web", ns.name(), "eth0", 2)).expect("a fresh namespace has no eth0");
    let err = endpoint::preflight(&plan("web", ns.name(), "lo", 2)).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("already has an interface lo"), "{msg}");
    let err = endpoint::preflight(&plan("web", ns.name(), "a-name-of-16-chr", 2)).unwrap_err();
    assert!(
        format!("{err:#}").contains("not an interface name"),
        "{err:#}"
    );
}

#[test]
fn create_many_sets_up_every_endpoint_and_on_one_failure_removes_all_it_made() {
    if skip_unless_root("endpoint create_many") || !test_support::require_tun("create_many") {
        return;
    }
    let a = NetnsGuard::new("pca").unwrap();
    let b = NetnsGuard::new("pcb").unwrap();
    let tap = |i: u32| {
        let mut s = format!("pct{}x{i}", std::process::id() % 100_000);
        s.truncate(15);
        s
    };
    let items = vec![
        (plan("a", a.name(), "eth0", 2), PortId(0), tap(0)),
        (plan("b", b.name(), "net1", 3), PortId(1), tap(1)),
    ];
    let taps = endpoint::create_many(&items).unwrap();
    assert_eq!(taps.len(), 2);
    let addr = ip_in(b.name(), &["-4", "addr", "show", "net1"]);
    assert!(
        addr.contains("inet 10.9.0.3/24"),
        "b's interface is net1: {addr}"
    );
    let route = ip_in(a.name(), &["route", "show", "default"]);
    assert!(route.contains("via 10.9.0.1 dev eth0"), "{route}");
    let v6 = ip_in(a.name(), &["-6", "addr", "show", "dev", "eth0"]);
    assert!(
        !v6.contains("inet6"),
        "no IPv6 on an IPv4 network's interface: {v6}"
    );
    let lo6 = ip_in(a.name(), &["-6", "addr", "show", "dev", "lo"]);
    assert!(
        lo6.contains("::1"),
        "only eth0 lost IPv6, not the namespace: {lo6}"
    );
    drop(taps);
    assert!(
        !ip_in(a.name(), &["link", "show"]).contains("eth0"),
        "closing the TAP removed it"
    );

    // The second asks for `lo`, which its namespace has: the first TAP
    // is made, the second fails, and the first must be gone again.
    let clash = endpoint::create_many(&[
        (plan("a", a.name(), "eth0", 2), PortId(0), tap(2)),
        (plan("b", b.name(), "lo", 3), PortId(1), tap(3)),
    ]);
    let err = format!("{:#}", clash.expect_err("renaming onto lo fails"));
    assert!(
        err.contains("endpoint b"),
        "the error names the endpoint: {err}"
    );
    assert!(
        !ip_in(a.name(), &["link", "show"]).contains("eth0"),
        "a's TAP removed after b failed"
    );
    assert!(!ip_link_details().contains(&tap(2)), "no TAP left here");
}

#[test]
fn lab_down_after_a_killed_lab_removes_every_namespace_it_created() {
    if skip_unless_root("lab down after SIGKILL") {
        return;
    }
    let prefix = unique_name("pk");
    let (names, _guards) = lab_names(&prefix, 8);
    let text = lab_config(&prefix, 8);
    let mut d = Daemon::start_with(&["lab", "up"], &text);
    // SIGKILL leaves the control socket file; the test removes its own.
    let sock = text
        .lines()
        .find_map(|l| l.strip_prefix("control = \""))
        .map(|s| s.trim_end_matches('"').to_string())
        .unwrap();
    let _sock = TempConfig { path: sock.into() };
    assert_eq!(listed(&names).len(), 8, "the lab is up");
    d.stop(libc::SIGKILL);
    assert_eq!(
        listed(&names).len(),
        8,
        "a killed lab leaves its namespaces"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_podswitch"))
        .args(["lab", "down"])
        .arg(&d.config.path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        said.lines()
            .filter(|l| l.starts_with("removed netns "))
            .count(),
        8,
        "{said}"
    );
    let left = listed(&names);
    assert!(left.is_empty(), "namespaces left: {left:?}");
}
