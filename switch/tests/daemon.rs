//! The `podswitch` binary end to end, as root: endpoints over TAP and over
//! AF_XDP veths, isolation, the gateway, malformed frames, and cleanup after
//! SIGTERM and SIGKILL. Each test makes its own uniquely named namespaces
//! and links, removed by guards even when it fails.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use pmd::netns::{unique_name, LinkGuard, NetnsGuard};
use switch::lab::traffic::{ping, tcp_transfer};
use test_support::ip;
use test_support::wait_until;

const TEN_MB: u64 = 10 * 1024 * 1024;

fn two_endpoint_config(a: &str, b: &str) -> String {
    format!(
        r#"
[switch]
control = "{}"

[[network]]
name = "front"
mode = "nat"
subnet = "172.30.0.0/24"
gateway = "172.30.0.1"

[[endpoint]]
name = "a"
network = "front"
netns = "{a}"
ip = "172.30.0.10"

[[endpoint]]
name = "b"
network = "front"
netns = "{b}"
ip = "172.30.0.11"
"#,
        control_path()
    )
}

#[test]
fn two_tap_endpoints_ping_both_ways_and_move_10_mb_byte_exact() {
    if skip_unless_root("tap endpoints") {
        return;
    }
    let a = NetnsGuard::new("pst-a").unwrap();
    let b = NetnsGuard::new("pst-b").unwrap();
    let _d = Daemon::run(&two_endpoint_config(a.name(), b.name()));
    let ip_a = Ipv4Addr::new(172, 30, 0, 10);
    let ip_b = Ipv4Addr::new(172, 30, 0, 11);
    let p = ping(a.name(), ip_b, 3).unwrap();
    assert_eq!(p.received, 3, "a -> b");
    let p = ping(b.name(), ip_a, 3).unwrap();
    assert_eq!(p.received, 3, "b -> a");
    let t = tcp_transfer(b.name(), ip_b, 5001, a.name(), TEN_MB).unwrap();
    assert!(t.exact, "a -> b transfer not byte-exact: {t:?}");
    assert_eq!(t.bytes, TEN_MB);
    let t = tcp_transfer(a.name(), ip_a, 5002, b.name(), TEN_MB).unwrap();
    assert!(t.exact, "b -> a transfer not byte-exact: {t:?}");
    // The endpoint is what the contract says: eth0 with MAC, address, route.
    let link = ip_in(a.name(), &["link", "show", "eth0"]);
    assert!(link.contains("02:00:ac:1e:00:0a"), "derived MAC: {link}");
    let route = ip_in(a.name(), &["route", "show", "default"]);
    assert!(route.contains("via 172.30.0.1"), "default route: {route}");
}

/// A veth whose switch end stays here and whose other end is `eth0` in
/// `ns` with `addr`.
fn veth_into(ns: &NetnsGuard, addr: &str) -> (LinkGuard, String) {
    let sw = unique_name("psv");
    let peer = unique_name("psp");
    let guard = LinkGuard::veth(&sw, &peer).unwrap();
    ip(&["link", "set", &peer, "netns", ns.name()]).unwrap();
    ns.exec("ip", &["link", "set", &peer, "name", "eth0"])
        .unwrap();
    ns.exec("ip", &["addr", "add", addr, "dev", "eth0"])
        .unwrap();
    ns.exec("ip", &["link", "set", "eth0", "up"]).unwrap();
    // The container end keeps veth's default offloads: its TCP checksums
    // arrive partial through the AF_XDP port and the switch completes them.
    assert!(
        test_support::tx_checksum_offload_on(ns.name(), "eth0"),
        "eth0 keeps its defaults"
    );
    (guard, sw)
}

fn afxdp_config(sw_a: &str, sw_b: &str, poll: &str) -> String {
    format!(
        r#"
[switch]
control = "{}"
poll = "{poll}"

[[port]]
name = "pa"
iface = "{sw_a}"
kind = "afxdp"

[[port]]
name = "pb"
iface = "{sw_b}"
kind = "afxdp"

[[network]]
name = "front"
mode = "nat"
subnet = "172.30.0.0/24"
gateway = "172.30.0.1"

[[endpoint]]
name = "a"
network = "front"
port = "pa"
ip = "172.30.0.10"

[[endpoint]]
name = "b"
network = "front"
port = "pb"
ip = "172.30.0.11"
"#,
        control_path()
    )
}

#[test]
fn two_afxdp_endpoints_ping_both_ways_and_move_10_mb_byte_exact() {
    if skip_unless_root("afxdp endpoints") {
        return;
    }
    let a = NetnsGuard::new("psx-a").unwrap();
    let b = NetnsGuard::new("psx-b").unwrap();
    let (_ga, sw_a) = veth_into(&a, "172.30.0.10/24");
    let (_gb, sw_b) = veth_into(&b, "172.30.0.11/24");
    let mut d = Daemon::run(&afxdp_config(&sw_a, &sw_b, "adaptive"));
    for sw in [&sw_a, &sw_b] {
        let out = Command::new("ip")
            .args(["-d", "link", "show", sw.as_str()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("prog/xdp"), "no XDP program on {sw}: {text}");
    }
    let ip_a = Ipv4Addr::new(172, 30, 0, 10);
    let ip_b = Ipv4Addr::new(172, 30, 0, 11);
    assert_eq!(ping(a.name(), ip_b, 3).unwrap().received, 3, "a -> b");
    assert_eq!(ping(b.name(), ip_a, 3).unwrap().received, 3, "b -> a");
    let t = tcp_transfer(b.name(), ip_b, 5003, a.name(), TEN_MB).unwrap();
    assert!(t.exact && t.bytes == TEN_MB, "a -> b: {t:?}");
    let t = tcp_transfer(a.name(), ip_a, 5004, b.name(), TEN_MB).unwrap();
    assert!(t.exact && t.bytes == TEN_MB, "b -> a: {t:?}");
    let (code, err) = d.stop(libc::SIGTERM);
    assert_eq!(code, Some(0), "clean exit; stderr:\n{err}");
    let links = ip_link_details();
    for sw in [&sw_a, &sw_b] {
        let line: String = links
            .split("\n")
            .skip_while(|l| !l.contains(sw.as_str()))
            .take(3)
            .collect();
        assert!(!line.contains("xdp"), "XDP program left on {sw}: {line}");
    }
}

#[test]
fn endpoints_on_two_networks_cannot_reach_each_other_and_broadcast_stays_home() {
    if skip_unless_root("isolation") {
        return;
    }
    let a1 = NetnsGuard::new("psi-a1").unwrap();
    let a2 = NetnsGuard::new("psi-a2").unwrap();
    let b1 = NetnsGuard::new("psi-b1").unwrap();
    let b2 = NetnsGuard::new("psi-b2").unwrap();
    // IPv6 would send its own multicast (DAD, router solicitations) inside
    // each network at random times; this test counts IPv4 broadcast only.
    for ns in [&a1, &a2, &b1, &b2] {
        ns.exec("sysctl", &["-qw", "net.ipv6.conf.default.disable_ipv6=1"])
            .unwrap();
    }
    let text = format!(
        r#"
[switch]
control = "{}"

[[network]]
name = "a"
mode = "nat"
subnet = "172.30.0.0/24"
gateway = "172.30.0.1"

[[network]]
name = "b"
mode = "nat"
subnet = "172.31.0.0/24"
gateway = "172.31.0.1"

[[endpoint]]
name = "a1"
network = "a"
netns = "{}"

[[endpoint]]
name = "a2"
network = "a"
netns = "{}"

[[endpoint]]
name = "b1"
network = "b"
netns = "{}"

[[endpoint]]
name = "b2"
network = "b"
netns = "{}"
"#,
        control_path(),
        a1.name(),
        a2.name(),
        b1.name(),
        b2.name()
    );
    let _d = Daemon::run(&text);
    // IPAM: a1 = .2, a2 = .3, b1 = .2, b2 = .3.
    let b1_ip = Ipv4Addr::new(172, 31, 0, 2);
    let a2_ip = Ipv4Addr::new(172, 30, 0, 3);
    assert_eq!(
        ping(a1.name(), a2_ip, 2).unwrap().received,
        2,
        "same network works"
    );
    assert_eq!(
        ping(a1.name(), b1_ip, 2).unwrap().received,
        0,
        "a1 reached b1"
    );
    // Broadcast: b1's kernel ARPs for an absent address in b; the requests
    // reach b2, never a1/a2.
    let absent = Ipv4Addr::new(172, 31, 0, 99);
    let mut caps = [a1.name(), a2.name(), b2.name()].map(Capture::eth0);
    let _ = ping(b1.name(), absent, 3);
    // A last broadcast from b1, by hand: b1's frames leave its port in
    // order, so when b2 has this one, a copy of an earlier one that leaked
    // into network a has been sent too.
    let last = Ipv4Addr::new(172, 31, 0, 98);
    let b1_mac = [0x02, 0, 172, 31, 0, 2];
    send_raw_frames(b1.name(), vec![arp_request(b1_mac, b1_ip, last)]);
    let [a1_cap, a2_cap, b2_cap] = &mut caps;
    wait_until(
        "b1's last broadcast to reach b2",
        Duration::from_secs(10),
        || b2_cap.count(|f| is_arp_request_for(f, last)) > 0,
    );
    assert!(
        b2_cap.count(|f| is_arp_request_for(f, absent)) > 0,
        "broadcast reached b2"
    );
    for (name, cap) in [("a1", a1_cap), ("a2", a2_cap)] {
        assert_eq!(
            cap.count(|f| is_arp_request_for(f, absent) || is_arp_request_for(f, last)),
            0,
            "broadcast leaked into {name}"
        );
    }
}

#[test]
fn the_gateway_answers_arp_and_ping() {
    if skip_unless_root("gateway") {
        return;
    }
    let a = NetnsGuard::new("psg-a").unwrap();
    let b = NetnsGuard::new("psg-b").unwrap();
    let _d = Daemon::run(&two_endpoint_config(a.name(), b.name()));
    let gw = Ipv4Addr::new(172, 30, 0, 1);
    assert_eq!(ping(a.name(), gw, 3).unwrap().received, 3);
    let neigh = ip_in(a.name(), &["neigh", "show", "172.30.0.1"]);
    assert!(
        neigh.contains("02:50:ac:1e:00:01"),
        "the gateway answered ARP with its MAC: {neigh}"
    );
}

#[test]
fn malformed_frames_are_counted_as_drops_and_the_switch_keeps_working() {
    if skip_unless_root("malformed frames") {
        return;
    }
    let a = NetnsGuard::new("psm-a").unwrap();
    let b = NetnsGuard::new("psm-b").unwrap();
    let mut d = Daemon::run(&two_endpoint_config(a.name(), b.name()));
    let src = [0x02, 0, 0xac, 0x1e, 0, 0x0a];
    let dst = [0x02, 0, 0xac, 0x1e, 0, 0x0b];
    let mut eth = Vec::new();
    eth.extend_from_slice(&dst);
    eth.extend_from_slice(&src);
    // An 802.3 length in place of an EtherType, an IPv4 header claiming
    // more bytes than the frame has, and a frame cut off inside the IPv4
    // header. (Runts shorter than an Ethernet header cannot be sent through
    // a TAP — the kernel refuses them — the in-memory tests cover them.)
    let mut cut = eth.clone();
    cut.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0]);
    let mut llc = eth.clone();
    llc.extend_from_slice(&[0x00, 0x2e]);
    llc.resize(60, 0);
    let mut lying_ip = eth.clone();
    lying_ip.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0x05, 0xdc]);
    lying_ip.resize(60, 0);
    send_raw_frames(a.name(), vec![cut, llc, lying_ip]);
    // The ping follows the bad frames through a's TAP: once it is answered,
    // the switch has read (and counted) them.
    assert_eq!(
        ping(a.name(), Ipv4Addr::new(172, 30, 0, 11), 3)
            .unwrap()
            .received,
        3,
        "the switch still forwards"
    );
    let (code, err) = d.stop(libc::SIGTERM);
    assert_eq!(code, Some(0), "clean exit; stderr:\n{err}");
    // The final counters on stderr name each drop reason.
    let a_line = err
        .lines()
        .find(|l| l.trim_start().starts_with("a "))
        .unwrap_or_else(|| panic!("no counters for port a in:\n{err}"));
    for reason in ["bad_ethertype=1", "truncated=2"] {
        assert!(a_line.contains(reason), "{reason} missing in: {a_line}");
    }
}

#[test]
fn sigterm_removes_every_tap_and_the_control_socket() {
    if skip_unless_root("sigterm cleanup") {
        return;
    }
    let a = NetnsGuard::new("pst-a").unwrap();
    let b = NetnsGuard::new("pst-b").unwrap();
    let mut d = Daemon::run(&two_endpoint_config(a.name(), b.name()));
    let sock = std::fs::read_to_string(&d.config.path)
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("control = \"")
                .map(|s| s.trim_end_matches('"').to_string())
        })
        .unwrap();
    assert!(Path::new(&sock).exists(), "control socket while running");
    assert!(ip_in(a.name(), &["link", "show", "eth0"]).contains("eth0"));
    let pid = d.pid();
    let start = std::time::Instant::now();
    let (code, err) = d.stop(libc::SIGTERM);
    assert_eq!(code, Some(0), "exit status; stderr:\n{err}");
    assert!(start.elapsed() < Duration::from_secs(5), "exit within 5 s");
    assert!(
        !ip_in(a.name(), &["link", "show"]).contains("eth0"),
        "eth0 left in a"
    );
    assert!(
        !ip_in(b.name(), &["link", "show"]).contains("eth0"),
        "eth0 left in b"
    );
    assert!(
        !ip_link_details().contains(&format!("pst{}", pid % 100_000)),
        "TAP left here"
    );
    assert!(!Path::new(&sock).exists(), "control socket left");
}

#[test]
fn lab_up_creates_its_namespaces_and_removes_them_on_sigterm_and_after_sigkill() {
    if skip_unless_root("lab cleanup") {
        return;
    }
    let n1 = unique_name("psl-a");
    let n2 = unique_name("psl-b");
    // Guards in case the test fails before the lab removes them.
    let _g1 = NetnsGuard::adopt(&n1);
    let _g2 = NetnsGuard::adopt(&n2);
    let text = two_endpoint_config(&n1, &n2);
    let exists = |n: &str| Path::new("/run/netns").join(n).exists();

    let mut d = Daemon::start_with(&["lab", "up"], &text);
    assert!(exists(&n1) && exists(&n2), "lab up created the namespaces");
    assert_eq!(
        ping(&n1, Ipv4Addr::new(172, 30, 0, 11), 2)
            .unwrap()
            .received,
        2
    );
    let (code, _) = d.stop(libc::SIGTERM);
    assert_eq!(code, Some(0));
    assert!(
        !exists(&n1) && !exists(&n2),
        "namespaces removed on SIGTERM"
    );

    // SIGKILL: nothing runs the cleanup, so the next start must.
    let mut d = Daemon::start_with(&["lab", "up"], &text);
    d.stop(libc::SIGKILL);
    assert!(
        !ip_in(&n1, &["link", "show"]).contains("eth0"),
        "a killed run's TAP vanished with its process"
    );
    let mut d2 = Daemon::start_with(&["lab", "up"], &text);
    assert_eq!(
        ping(&n1, Ipv4Addr::new(172, 30, 0, 11), 2)
            .unwrap()
            .received,
        2,
        "the next start took over the stale socket and namespaces"
    );
    let (code, err) = d2.stop(libc::SIGTERM);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        !exists(&n1) && !exists(&n2),
        "namespaces of the killed run removed"
    );
}

#[test]
fn a_sigkilled_afxdp_run_leaves_no_xdp_program_and_the_next_start_works() {
    if skip_unless_root("afxdp sigkill") {
        return;
    }
    let a = NetnsGuard::new("psk-a").unwrap();
    let b = NetnsGuard::new("psk-b").unwrap();
    let (_ga, sw_a) = veth_into(&a, "172.30.0.10/24");
    let (_gb, sw_b) = veth_into(&b, "172.30.0.11/24");
    let text = afxdp_config(&sw_a, &sw_b, "adaptive");
    let mut d = Daemon::run(&text);
    d.stop(libc::SIGKILL);
    let out = Command::new("ip")
        .args(["-d", "link", "show", &sw_a])
        .output()
        .unwrap();
    let text_a = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text_a.contains("prog/xdp"),
        "XDP left after SIGKILL: {text_a}"
    );
    drop(d);
    let _d2 = Daemon::run(&text);
    assert_eq!(
        ping(a.name(), Ipv4Addr::new(172, 30, 0, 11), 2)
            .unwrap()
            .received,
        2
    );
}

#[test]
fn check_accepts_every_example_config_and_names_the_line_of_a_bad_one() {
    let bin = env!("CARGO_BIN_EXE_podswitch");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = Command::new(bin).arg("check").arg(&path).output().unwrap();
            assert!(
                out.status.success(),
                "{} fails check: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            n += 1;
        }
    }
    assert!(n >= 2, "configs/ has examples");
    let bad =
        TempConfig::new("[[network]]\nname = \"x\"\nmode = \"nat\"\nsubnet = \"10.0.0.0/33\"\n");
    let out = Command::new(bin)
        .arg("check")
        .arg(&bad.path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!("{}:4:10:", bad.path.display());
    assert!(err.contains(&want), "want {want} in: {err}");
}

#[test]
fn a_run_that_fails_its_checks_creates_nothing() {
    if skip_unless_root("failed start") {
        return;
    }
    let a = NetnsGuard::new("psf-a").unwrap();
    let missing = unique_name("psf-none");
    let (_g, sw) = veth_into(&a, "172.30.0.10/24");
    // The AF_XDP port and the first endpoint are fine; the second
    // endpoint's namespace does not exist, so nothing may be created.
    let text = format!(
        r#"
[switch]
control = "{}"

[[port]]
name = "pa"
iface = "{sw}"

[[network]]
name = "front"
mode = "nat"
subnet = "172.30.0.0/24"

[[endpoint]]
name = "a"
network = "front"
port = "pa"
ip = "172.30.0.10"

[[endpoint]]
name = "b"
network = "front"
netns = "{missing}"
"#,
        control_path()
    );
    let cfg = TempConfig::new(&text);
    let out = Command::new(env!("CARGO_BIN_EXE_podswitch"))
        .arg("run")
        .arg(&cfg.path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&missing) && err.contains("does not exist"),
        "{err}"
    );
    let link = Command::new("ip")
        .args(["-d", "link", "show", &sw])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&link.stdout).contains("prog/xdp"),
        "an XDP program was attached by a run that failed its checks"
    );
}

#[test]
fn a_second_instance_on_a_live_control_socket_refuses_to_start() {
    if skip_unless_root("second instance") {
        return;
    }
    let a = NetnsGuard::new("ps2-a").unwrap();
    let b = NetnsGuard::new("ps2-b").unwrap();
    let text = two_endpoint_config(a.name(), b.name());
    let _first = Daemon::run(&text);
    let cfg = TempConfig::new(&text);
    let out = Command::new(env!("CARGO_BIN_EXE_podswitch"))
        .arg("run")
        .arg(&cfg.path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another podswitch is running"), "{err}");
    // The first one is untouched.
    assert_eq!(
        ping(a.name(), Ipv4Addr::new(172, 30, 0, 11), 2)
            .unwrap()
            .received,
        2
    );
}
