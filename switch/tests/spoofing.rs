//! Anti-spoofing, as root, against a real daemon: four containers on one
//! network, podswitch in a "host" namespace of the test. "a" attacks
//! victim "v" with a raw packet socket (a forged source IP, a forged
//! source MAC, a gratuitous ARP for v's address); "w" is the neighbour
//! whose ARP cache and capture must not see it; "r" sends the same frames
//! with `allow_spoofing = true`. Every namespace is the test's own and is
//! removed by a guard, also on failure.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use pmd::netns::{in_netns, NetnsGuard};
use pmd::wire::MacAddr;
use serde_json::Value;
use switch::lab::traffic::{ping, tcp_transfer};
use test_support::{wait_for, wait_until};

const A: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 10);
const V: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 11);
const W: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 12);
const R: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 13);
const METRICS: &str = "127.0.0.1:9465";

fn mac(ip: Ipv4Addr) -> MacAddr {
    MacAddr::from_ipv4(ip)
}

struct Lab {
    daemon: Option<Daemon>,
    socket: String,
    host: NetnsGuard,
    a: NetnsGuard,
    v: NetnsGuard,
    w: NetnsGuard,
    r: NetnsGuard,
}

impl Lab {
    fn new() -> Lab {
        let host = NetnsGuard::new("pss-h").unwrap();
        let [a, v, w, r] =
            ["pss-a", "pss-v", "pss-w", "pss-r"].map(|n| NetnsGuard::new(n).unwrap());
        let socket = control_path();
        let text = format!(
            r#"
[switch]
control = "{socket}"
metrics = "{METRICS}"

[[network]]
name = "front"
subnet = "172.31.0.0/24"

[[endpoint]]
name = "a"
network = "front"
netns = "{}"
ip = "{A}"

[[endpoint]]
name = "v"
network = "front"
netns = "{}"
ip = "{V}"

[[endpoint]]
name = "w"
network = "front"
netns = "{}"
ip = "{W}"

[[endpoint]]
name = "r"
network = "front"
netns = "{}"
ip = "{R}"
allow_spoofing = true
"#,
            a.name(),
            v.name(),
            w.name(),
            r.name()
        );
        let daemon = Daemon::start_in(Some(host.name()), &["run"], &text);
        let lab = Lab {
            daemon: Some(daemon),
            socket,
            host,
            a,
            v,
            w,
            r,
        };
        // w knows v: its ARP cache holds v's MAC before any attack.
        let p = ping(lab.w.name(), V, 2).unwrap();
        assert_eq!(p.received, 2, "the fixture's containers reach each other");
        assert_eq!(lab.neighbor(&lab.w, V), Some(mac(V)), "w's cache has v");
        lab
    }

    /// `ctl ARGS` that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        ctl_ok(&self.socket, args)
    }

    /// `ctl --json ARGS`, parsed.
    fn json(&self, args: &[&str]) -> Value {
        ctl_json(&self.socket, args)
    }

    /// The `spoofed` drops of port `name` in `ctl stats`.
    fn spoofed(&self, name: &str) -> u64 {
        let stats = self.json(&["stats"]);
        let port = stats["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["port"] == name)
            .unwrap_or_else(|| panic!("no port {name} in {stats:#}"))
            .clone();
        port["drops"]["spoofed"].as_u64().unwrap_or(0)
    }

    /// The MAC `ns`'s ARP cache holds for `ip`, if any.
    fn neighbor(&self, ns: &NetnsGuard, ip: Ipv4Addr) -> Option<MacAddr> {
        let out = ip_in(
            ns.name(),
            &["neigh", "show", &ip.to_string(), "dev", "eth0"],
        );
        let words: Vec<&str> = out.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "lladdr")?;
        words.get(at + 1)?.parse().ok()
    }

    /// The metrics endpoint's text exposition.
    fn scrape(&self) -> String {
        in_netns(self.host.name(), || {
            let addr: SocketAddr = METRICS.parse().unwrap();
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            text
        })
        .unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The daemon goes before the namespaces it uses.
        self.daemon.take();
    }
}

/// A UDP datagram from `src_mac`/`src_ip` to w, carrying `marker`.
fn udp_to_w(src_mac: MacAddr, src_ip: Ipv4Addr, marker: &[u8]) -> Vec<u8> {
    let mut f = mac(W).0.to_vec();
    f.extend_from_slice(&src_mac.0);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + marker.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&src_ip.octets());
    ip.extend_from_slice(&W.octets());
    let sum = pmd::wire::checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&4000u16.to_be_bytes());
    f.extend_from_slice(&4001u16.to_be_bytes());
    f.extend_from_slice(&(8 + marker.len() as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(marker);
    f.resize(f.len().max(60), 0);
    f
}

/// A gratuitous ARP request (RFC 5227 announcement) from `sha` claiming
/// `ip`.
fn gratuitous_arp(sha: MacAddr, ip: Ipv4Addr) -> Vec<u8> {
    arp_request(sha.0, ip, ip)
}

fn holds(f: &[u8], marker: &[u8]) -> bool {
    f.windows(marker.len()).any(|w| w == marker)
}

fn is_garp_for(f: &[u8], sha: MacAddr, ip: Ipv4Addr) -> bool {
    is_arp_request_for(f, ip) && f[22..28] == sha.0 && f[28..32] == ip.octets()
}

/// a speaks for v three ways.
fn attack(from: &NetnsGuard, own: MacAddr, own_ip: Ipv4Addr) {
    send_raw_frames(
        from.name(),
        vec![
            udp_to_w(own, V, b"forged-source-ip"),
            udp_to_w(mac(V), own_ip, b"forged-source-mac"),
            gratuitous_arp(own, V),
        ],
    );
}

#[test]
fn spoofed_ip_mac_and_gratuitous_arp_are_dropped_and_counted_and_the_victim_keeps_working() {
    if skip_unless_root("spoofing_dropped") {
        return;
    }
    let lab = Lab::new();
    assert_eq!(lab.spoofed("a"), 0, "a sent nothing forged yet");
    let mut at_w = Capture::eth0(lab.w.name());

    attack(&lab.a, mac(A), A);
    wait_until(
        "the switch counts a's three forged frames",
        Duration::from_secs(10),
        || lab.spoofed("a") >= 3,
    );
    assert_eq!(lab.spoofed("a"), 3, "exactly the three forged frames");
    for p in ["v", "w", "r"] {
        assert_eq!(lab.spoofed(p), 0, "{p} forged nothing");
    }

    // Nothing of it reached the neighbour; a's honest traffic still does.
    let p = ping(lab.a.name(), W, 1).unwrap();
    assert_eq!(p.received, 1, "a itself is not cut off");
    let frames = at_w.frames();
    assert!(
        !frames.iter().any(|f| holds(f, b"forged-source")),
        "a forged datagram reached w"
    );
    assert!(
        !frames.iter().any(|f| is_garp_for(f, mac(A), V)),
        "a's gratuitous ARP for v reached w"
    );
    assert_eq!(
        lab.neighbor(&lab.w, V),
        Some(mac(V)),
        "w's cache still has v's MAC"
    );

    // v's MAC stays learned on v's port only.
    let fdb = lab.json(&["fdb", "front"]);
    let v_ports: Vec<&str> = fdb
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["mac"] == mac(V).to_string())
        .map(|r| r["port"].as_str().unwrap())
        .collect();
    assert_eq!(v_ports, ["v"], "{fdb:#}");

    // The victim's traffic is unaffected: pings and a byte-exact TCP
    // transfer to w.
    let p = ping(lab.v.name(), W, 3).unwrap();
    assert_eq!(p.received, 3);
    let t = tcp_transfer(lab.w.name(), W, 5001, lab.v.name(), 1 << 20).unwrap();
    assert!(
        t.exact && t.bytes == 1 << 20,
        "every byte arrived intact: {t:?}"
    );

    let metrics = lab.scrape();
    let line = r#"podswitch_port_drops_total{port="a",reason="spoofed"} 3"#;
    assert!(metrics.contains(line), "no `{line}` in:\n{metrics}");

    // The exit report counts them on a's line too.
    let err = lab_stop(lab);
    assert_eq!(report_counter(&err, "a ", "spoofed"), 3, "{err}");
}

#[test]
fn with_allow_spoofing_the_same_frames_pass_and_poison_the_neighbours_cache() {
    if skip_unless_root("spoofing_allowed") {
        return;
    }
    let lab = Lab::new();
    let mut at_w = Capture::eth0(lab.w.name());
    attack(&lab.r, mac(R), R);
    wait_until(
        "w receives r's forged frames",
        Duration::from_secs(10),
        || {
            let f = at_w.frames();
            f.iter().any(|f| holds(f, b"forged-source-ip"))
                && f.iter().any(|f| holds(f, b"forged-source-mac"))
                && f.iter().any(|f| is_garp_for(f, mac(R), V))
        },
    );
    assert_eq!(lab.spoofed("r"), 0, "r may route: nothing dropped");
    // Linux takes a gratuitous ARP for a known address once its entry is
    // older than locktime (1 s): announce until it does.
    wait_for(
        "w's cache to point v's address at r",
        Duration::from_secs(10),
        || {
            send_raw_frames(lab.r.name(), vec![gratuitous_arp(mac(R), V)]);
            (lab.neighbor(&lab.w, V) == Some(mac(R))).then_some(())
        },
    );
}

fn lab_stop(mut lab: Lab) -> String {
    lab.daemon.take().unwrap().stop_clean()
}

#[test]
fn endpoints_attached_by_ctl_are_guarded_unless_allow_spoofing_and_a_reload_keeps_it() {
    if skip_unless_root("spoofing_ctl") {
        return;
    }
    let lab = Lab::new();
    let guarded = NetnsGuard::new("pss-g").unwrap();
    let routing = NetnsGuard::new("pss-x").unwrap();
    let add = |name: &str, ns: &NetnsGuard, ip: &str, extra: &[&str]| {
        let mut args = vec![
            "endpoint",
            "add",
            name,
            "--network",
            "front",
            "--netns",
            ns.name(),
            "--ip",
            ip,
        ];
        args.extend_from_slice(extra);
        lab.ok(&args);
    };
    add("g", &guarded, "172.31.0.20", &[]);
    add("x", &routing, "172.31.0.21", &["--allow-spoofing"]);
    let (g, x) = (Ipv4Addr::new(172, 31, 0, 20), Ipv4Addr::new(172, 31, 0, 21));

    let mut at_w = Capture::eth0(lab.w.name());
    let forge = || {
        send_raw_frames(guarded.name(), vec![udp_to_w(mac(g), V, b"forged-by-g")]);
        send_raw_frames(routing.name(), vec![udp_to_w(mac(x), V, b"forged-by-x")]);
    };
    forge();
    wait_until(
        "g's forged frame is counted",
        Duration::from_secs(10),
        || lab.spoofed("g") == 1,
    );
    wait_until(
        "x's forged frame reaches w",
        Duration::from_secs(10),
        || at_w.frames().iter().any(|f| holds(f, b"forged-by-x")),
    );
    assert!(!at_w.frames().iter().any(|f| holds(f, b"forged-by-g")));
    assert_eq!(lab.spoofed("x"), 0);

    // A reload of the unchanged file keeps both endpoints as they were.
    lab.ok(&["reload"]);
    forge();
    wait_until(
        "g's second forged frame is counted",
        Duration::from_secs(10),
        || lab.spoofed("g") == 2,
    );
    wait_until(
        "x's second forged frame reaches w",
        Duration::from_secs(10),
        || {
            at_w.frames()
                .iter()
                .filter(|f| holds(f, b"forged-by-x"))
                .count()
                == 2
        },
    );
    assert_eq!(lab.spoofed("x"), 0);
    lab.ok(&["endpoint", "del", "g"]);
    lab.ok(&["endpoint", "del", "x"]);
}
