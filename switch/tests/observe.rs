//! Seeing inside a running switch: `capture` (frames of one port as pcap,
//! read back by tcpdump) and `trace` (the path of one frame and its
//! verdict). A NAT lab: containers `web` and `db` in network `front`
//! behind uplink `up0`, whose far end `out0` (10.99.0.1) is in a namespace
//! of its own. The switch runs in this process, in the lab's host
//! namespace; every namespace is removed by its guard.

mod common;

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use common::*;
use pmd::netns::{in_netns, NetnsGuard};
use switch::capture;
use switch::config;
use switch::control::protocol::{CaptureRequest, FrameFilter};
use switch::daemon::Switch;
use switch::lab::traffic::{ping, tcp_transfer};

const DB: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 11);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);

/// The lab's namespaces and the switch, stopped on drop.
struct Lab {
    switch: Option<Switch>,
    web: NetnsGuard,
    db: NetnsGuard,
    _outside: NetnsGuard,
    _host: NetnsGuard,
}

impl Lab {
    fn new() -> Lab {
        let host = NetnsGuard::new("pso-h").unwrap();
        let outside = NetnsGuard::new("pso-o").unwrap();
        let web = NetnsGuard::new("pso-w").unwrap();
        let db = NetnsGuard::new("pso-d").unwrap();
        uplink_veth(&host, &outside, "10.99.0.1/24");
        let text = format!(
            r#"
[switch]
control = "{}"

[[port]]
name = "up0"
iface = "up0"
ip = "10.99.0.2/24"
gateway = "10.99.0.1"

[[network]]
name = "front"
mode = "nat"
subnet = "172.30.0.0/24"
gateway = "172.30.0.1"
uplink = "up0"

[[endpoint]]
name = "web"
network = "front"
netns = "{}"
ip = "172.30.0.10"

[[endpoint]]
name = "db"
network = "front"
netns = "{}"
ip = "172.30.0.11"
"#,
            control_path(),
            web.name(),
            db.name()
        );
        let cfg = config::parse(&text, "observe.toml").unwrap_or_else(|e| panic!("{e}"));
        // The PMD threads inherit the namespace of the thread that starts
        // them: the host's, where up0 is.
        let switch = in_netns(host.name(), move || Switch::start(&cfg))
            .unwrap()
            .unwrap_or_else(|e| panic!("starting the switch: {e:#}"));
        Lab {
            switch: Some(switch),
            web,
            db,
            _outside: outside,
            _host: host,
        }
    }

    fn switch(&self) -> &Switch {
        self.switch.as_ref().unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(s) = self.switch.take() {
            let leaked: usize = s.stop().iter().map(|r| r.leaked).sum();
            if !std::thread::panicking() {
                assert_eq!(leaked, 0, "frames leaked");
            }
        }
    }
}

/// `tcpdump -n -r -` of `pcap`: its stdout, and its stderr on failure.
fn tcpdump(pcap: &[u8], extra: &[&str]) -> String {
    let mut child = Command::new("tcpdump")
        .args(["-n", "-r", "-"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running tcpdump");
    child.stdin.take().unwrap().write_all(pcap).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "tcpdump refused the capture: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Captures `count` frames on `port` while `traffic` runs; the pcap bytes.
fn capture_during(
    lab: &Lab,
    port: &str,
    count: u64,
    filter: FrameFilter,
    traffic: impl FnOnce(),
) -> Vec<u8> {
    let stream = capture::start(
        lab.switch(),
        &CaptureRequest {
            port: port.into(),
            count: Some(count),
            filter,
        },
    )
    .unwrap();
    let writer = std::thread::spawn(move || {
        let mut out = Vec::new();
        let n = stream.write_to(&mut out).unwrap();
        (n, out)
    });
    traffic();
    let (n, out) = writer.join().unwrap();
    assert_eq!(n, count, "frames written");
    out
}

fn icmp() -> FrameFilter {
    FrameFilter {
        proto: Some("icmp".into()),
        ..FrameFilter::default()
    }
}

#[test]
fn a_capture_of_web_read_by_tcpdump_shows_the_echo_request_and_reply_of_its_ping() {
    if skip_unless_root("namespaces") || !test_support::require_command("capture", "tcpdump") {
        return;
    }
    let lab = Lab::new();
    let pcap = capture_during(&lab, "web", 4, icmp(), || {
        let p = ping(lab.web.name(), GATEWAY, 2).unwrap();
        assert_eq!(p.received, 2, "the ping went through");
    });
    let text = tcpdump(&pcap, &[]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "four records:\n{text}");
    let requests = lines
        .iter()
        .filter(|l| l.contains("172.30.0.10 > 172.30.0.1: ICMP echo request"))
        .count();
    let replies = lines
        .iter()
        .filter(|l| l.contains("172.30.0.1 > 172.30.0.10: ICMP echo reply"))
        .count();
    assert_eq!((requests, replies), (2, 2), "both directions:\n{text}");
}

#[test]
fn a_capture_keeps_tcp_segments_whole_and_its_filter_picks_the_flow() {
    if skip_unless_root("namespaces") || !test_support::require_command("capture", "tcpdump") {
        return;
    }
    let lab = Lab::new();
    let filter = FrameFilter {
        proto: Some("tcp".into()),
        l4_port: Some(5101),
        ..FrameFilter::default()
    };
    let pcap = capture_during(&lab, "db", 40, filter, || {
        let t = tcp_transfer(lab.db.name(), DB, 5101, lab.web.name(), 4 << 20).unwrap();
        assert!(t.exact, "transfer: {t:?}");
    });
    let text = tcpdump(&pcap, &["-e"]);
    assert!(
        text.lines().all(|l| l.contains(".5101")),
        "only the flow on port 5101:\n{text}"
    );
    // A record longer than one MTU frame is a GSO segment, whole.
    let longest = text
        .lines()
        .filter_map(|l| {
            l.split("length ")
                .nth(1)?
                .split(':')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    assert!(
        longest > 1514,
        "segments whole (longest {longest}):\n{text}"
    );
}

#[test]
fn a_capture_of_an_unknown_port_or_a_busy_one_is_refused_with_its_name() {
    if skip_unless_root("namespaces") {
        return;
    }
    let lab = Lab::new();
    let req = |port: &str| CaptureRequest {
        port: port.into(),
        count: None,
        filter: FrameFilter::default(),
    };
    let err = capture::start(lab.switch(), &req("nope")).err().unwrap();
    assert!(err.to_string().contains("\"nope\""), "{err:#}");
    let first = capture::start(lab.switch(), &req("up0")).unwrap();
    let err = capture::start(lab.switch(), &req("up0")).err().unwrap();
    assert!(format!("{err:#}").contains("already running"), "{err:#}");
    drop(first);
    // Ended captures leave the port free.
    capture::start(lab.switch(), &req("up0")).unwrap();
}
