//! Seeing inside a running switch: `capture` (frames of one port as pcap,
//! read back by tcpdump) and `trace` (the path of one frame and its
//! verdict). A NAT lab: containers `web` and `db` in network `front`
//! behind uplink `up0`, whose far end `out0` (10.99.0.1) is in a namespace
//! of its own. The switch runs in this process, in the lab's host
//! namespace; every namespace is removed by its guard.

mod common;

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use pmd::netns::{in_netns, NetnsGuard};
use switch::capture;
use switch::config;
use switch::control::protocol::{CaptureRequest, FrameFilter, TraceRequest};
use switch::daemon::Switch;
use switch::lab::traffic::{ping, tcp_transfer};
use switch::trace::{self, TraceReport};

const OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
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

/// The lab's namespaces: host (with up0), outside (out0, 10.99.0.1), web,
/// db.
fn namespaces() -> (NetnsGuard, NetnsGuard, NetnsGuard, NetnsGuard) {
    let host = NetnsGuard::new("pso-h").unwrap();
    let outside = NetnsGuard::new("pso-o").unwrap();
    let web = NetnsGuard::new("pso-w").unwrap();
    let db = NetnsGuard::new("pso-d").unwrap();
    uplink_veth(&host, &outside, "10.99.0.1/24");
    (host, outside, web, db)
}

fn lab_config(socket: &str, web: &NetnsGuard, db: &NetnsGuard) -> String {
    format!(
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
        socket,
        web.name(),
        db.name()
    )
}

impl Lab {
    fn new() -> Lab {
        let (host, outside, web, db) = namespaces();
        let text = lab_config(&control_path(), &web, &db);
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
        let n = stream.write_to(&mut out, &|| false).unwrap();
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

/// Arms a trace, runs `traffic`, and returns the report.
fn trace_during(lab: &Lab, req: TraceRequest, traffic: impl FnOnce()) -> TraceReport {
    let wait = trace::arm(lab.switch(), &req).unwrap();
    traffic();
    let report = wait.wait(Duration::from_secs(5));
    let r = report.unwrap_or_else(|e| panic!("{e:#}"));
    println!("{}", serde_json::to_string_pretty(&r).unwrap());
    r
}

fn request(port: &str, filter: FrameFilter, hex: Option<String>) -> TraceRequest {
    TraceRequest {
        port: Some(port.into()),
        filter,
        hex,
        timeout_ms: 5000,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn stage<'a>(r: &'a TraceReport, prefix: &str) -> &'a str {
    r.stages
        .iter()
        .find(|s| s.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} stage in {r:#?}"))
}

#[test]
fn a_ping_through_nat_traced_shows_the_external_address_and_the_uplink_as_verdict() {
    if skip_unless_root("namespaces") {
        return;
    }
    let lab = Lab::new();
    // The first ping resolves the next hop, so the traced one leaves at once.
    assert_eq!(ping(lab.web.name(), OUTSIDE, 1).unwrap().received, 1);
    let filter = FrameFilter {
        ip: Some(OUTSIDE),
        proto: Some("icmp".into()),
        ..FrameFilter::default()
    };
    let r = trace_during(&lab, request("web", filter, None), || {
        assert_eq!(ping(lab.web.name(), OUTSIDE, 1).unwrap().received, 1);
    });
    assert_eq!(r.in_port, "web");
    assert!(
        stage(&r, "received:").contains("172.30.0.10 > 10.99.0.1 ICMP echo request"),
        "{r:#?}"
    );
    assert!(
        stage(&r, "ingress:").contains("network front (nat)"),
        "{r:#?}"
    );
    let nat = stage(&r, "nat of up0:");
    assert!(
        nat.contains("outbound (SNAT), conntrack entry new: source 172.30.0.10 id "),
        "{nat}"
    );
    assert!(
        nat.contains("-> 10.99.0.2 id "),
        "the external address: {nat}"
    );
    assert!(stage(&r, "route:").contains("TTL 64 -> 63"), "{r:#?}");
    assert!(
        stage(&r, "output up0:").contains("IPv4 10.99.0.2 > 10.99.0.1 ICMP echo request"),
        "{r:#?}"
    );
    assert_eq!(r.verdict, "output to up0");
}

#[test]
fn a_datagram_from_outside_to_an_unmapped_port_shows_the_nat_refusal_as_its_drop() {
    if skip_unless_root("namespaces") {
        return;
    }
    let lab = Lab::new();
    let mut frame = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 9], [2, 0x50, 10, 99, 0, 2])
        .ipv4([10, 99, 0, 1], [10, 99, 0, 2], 64)
        .udp(40000, 9999)
        .write(&mut frame, b"hello")
        .unwrap();
    let r = trace_during(
        &lab,
        request("up0", FrameFilter::default(), Some(hex(&frame))),
        || {},
    );
    assert_eq!(r.in_port, "up0");
    assert!(stage(&r, "ingress:").contains("uplink up0"), "{r:#?}");
    assert!(
        stage(&r, "nat of up0:").contains("refused (no_mapping)"),
        "{r:#?}"
    );
    assert!(
        r.verdict.starts_with("drop: nat (counted on up0)"),
        "{r:#?}"
    );
}

#[test]
fn a_malformed_frame_in_hex_shows_the_drop_with_its_reason() {
    if skip_unless_root("namespaces") {
        return;
    }
    let lab = Lab::new();
    let mut frame = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 172, 30, 0, 10], [2, 0x50, 172, 30, 0, 1])
        .ipv4([172, 30, 0, 10], [10, 99, 0, 1], 64)
        .udp(40000, 53)
        .write(&mut frame, b"x")
        .unwrap();
    // IHL 3: an IPv4 header shorter than the shortest there is.
    frame[14] = 0x43;
    let r = trace_during(
        &lab,
        request("web", FrameFilter::default(), Some(hex(&frame))),
        || {},
    );
    assert!(
        stage(&r, "received:").contains("do not parse (malformed)"),
        "{r:#?}"
    );
    assert!(
        r.verdict.starts_with("drop: malformed (counted on web)"),
        "{r:#?}"
    );
    // The switch counted it as the trace says.
    let web = lab.switch().port_named("web").unwrap();
    let stats = lab.switch().dataplane().port_stats()[web.0 as usize];
    assert_eq!(stats.drops_of(pmd::DropReason::Malformed), 1);
}

#[test]
fn an_injected_echo_request_to_the_gateway_is_answered_back_out_of_its_port() {
    if skip_unless_root("namespaces") {
        return;
    }
    let lab = Lab::new();
    let mut frame = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 172, 30, 0, 10], [2, 0x50, 172, 30, 0, 1])
        .ipv4([172, 30, 0, 10], [172, 30, 0, 1], 64)
        .icmpv4_echo_request(7, 1)
        .write(&mut frame, b"ping")
        .unwrap();
    let r = trace_during(
        &lab,
        request("web", FrameFilter::default(), Some(hex(&frame))),
        || {},
    );
    assert!(stage(&r, "gateway:").contains("172.30.0.1"), "{r:#?}");
    assert!(
        stage(&r, "gateway of front:").contains("answered the echo request"),
        "{r:#?}"
    );
    assert!(
        stage(&r, "output web:").contains("172.30.0.1 > 172.30.0.10 ICMP echo reply id 7"),
        "{r:#?}"
    );
    assert_eq!(r.verdict, "output to web");
}

#[test]
fn a_trace_that_sees_no_matching_frame_ends_with_an_error_and_disarms() {
    if skip_unless_root("namespaces") {
        return;
    }
    let lab = Lab::new();
    let filter = FrameFilter {
        l4_port: Some(1),
        ..FrameFilter::default()
    };
    let wait = trace::arm(lab.switch(), &request("web", filter, None)).unwrap();
    let err = wait.wait(Duration::from_millis(300)).unwrap_err();
    assert!(
        err.to_string().contains("no matching frame within 300 ms"),
        "{err}"
    );
    // Traffic still flows after the trace gave up.
    assert_eq!(ping(lab.web.name(), GATEWAY, 1).unwrap().received, 1);
    let err = trace::arm(lab.switch(), &request("nope", FrameFilter::default(), None))
        .err()
        .unwrap();
    assert!(err.to_string().contains("\"nope\""), "{err}");
}

#[test]
fn a_capture_whose_client_hung_up_frees_its_port_even_when_no_frame_matches() {
    if skip_unless_root("namespaces") {
        return;
    }
    let lab = DaemonLab::new();
    // UDP port 9 on a quiet lab: nothing matches, so only the hang-up
    // can end the first capture.
    let args = [
        "capture",
        "web",
        "--proto",
        "udp",
        "--l4-port",
        "9",
        "-w",
        "-",
    ];
    let mut first = lab.arm_capture(&args).expect("the first capture arms");
    first.kill().unwrap();
    first.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut second = loop {
        if let Some(c) = lab.arm_capture(&args) {
            break c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "web stayed busy 5 s after the first capture's client hung up"
        );
    };
    second.kill().unwrap();
    second.wait().unwrap();
}

/// The lab with `podswitch run` as a daemon in the host namespace, for the
/// `ctl` command line.
struct DaemonLab {
    _daemon: Daemon,
    socket: String,
    web: NetnsGuard,
    _db: NetnsGuard,
    _outside: NetnsGuard,
    _host: NetnsGuard,
}

impl DaemonLab {
    fn new() -> DaemonLab {
        let (host, outside, web, db) = namespaces();
        let socket = control_path();
        let daemon = Daemon::start_in(Some(host.name()), &["run"], &lab_config(&socket, &web, &db));
        DaemonLab {
            _daemon: daemon,
            socket,
            web,
            _db: db,
            _outside: outside,
            _host: host,
        }
    }

    /// Starts `ctl capture ARGS`: the child once the switch armed it (its
    /// pcap header arrived), `None` when the switch refused it.
    fn arm_capture(&self, args: &[&str]) -> Option<std::process::Child> {
        let mut child = self
            .ctl(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let (tx, header) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut h = [0u8; 24];
            let _ = tx.send(out.read_exact(&mut h).is_ok());
        });
        if header
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or(false)
        {
            return Some(child);
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    fn ctl(&self, args: &[&str]) -> Command {
        ctl(&self.socket, args)
    }
}

#[test]
fn ctl_capture_of_web_piped_into_tcpdump_shows_the_echo_request_and_reply_of_its_ping() {
    if skip_unless_root("namespaces") || !test_support::require_command("capture", "tcpdump") {
        return;
    }
    let lab = DaemonLab::new();
    let mut ctl = lab
        .ctl(&[
            "capture", "web", "--count", "4", "--proto", "icmp", "-w", "-",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut tcpdump = Command::new("tcpdump")
        .args(["-n", "-r", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The pipe between them, relayed so the test knows when the capture
    // is armed: the switch writes the pcap header as it arms.
    let mut from = ctl.stdout.take().unwrap();
    let mut to = tcpdump.stdin.take().unwrap();
    let (armed_tx, armed) = std::sync::mpsc::channel();
    let relay = std::thread::spawn(move || {
        let mut header = [0u8; 24];
        from.read_exact(&mut header)?;
        to.write_all(&header)?;
        let _ = armed_tx.send(());
        std::io::copy(&mut from, &mut to)
    });
    armed
        .recv_timeout(Duration::from_secs(10))
        .expect("the capture is armed (its pcap header arrives) within 10 s");
    assert_eq!(ping(lab.web.name(), GATEWAY, 2).unwrap().received, 2);
    let status = wait_exit(&mut ctl, Duration::from_secs(10));
    assert!(status.success(), "ctl capture ends after 4 frames");
    relay.join().unwrap().unwrap();
    let out = tcpdump.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tcpdump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "four records:\n{text}");
    let requests = text
        .matches("172.30.0.10 > 172.30.0.1: ICMP echo request")
        .count();
    let replies = text
        .matches("172.30.0.1 > 172.30.0.10: ICMP echo reply")
        .count();
    assert_eq!((requests, replies), (2, 2), "both directions:\n{text}");
}

#[test]
fn ctl_trace_of_a_hex_frame_prints_its_stages_and_verdict() {
    if skip_unless_root("namespaces") {
        return;
    }
    let lab = DaemonLab::new();
    let mut frame = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 172, 30, 0, 10], [2, 0x50, 172, 30, 0, 1])
        .ipv4([172, 30, 0, 10], [172, 30, 0, 1], 64)
        .icmpv4_echo_request(7, 1)
        .write(&mut frame, b"ping")
        .unwrap();
    let out = lab
        .ctl(&["trace", "--port", "web", "--hex", &hex(&frame)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(text.starts_with("in_port web\n"), "{text}");
    assert!(
        text.contains("gateway of front: answered the echo request"),
        "{text}"
    );
    assert!(text.ends_with("verdict: output to web\n"), "{text}");
    let out = lab
        .ctl(&["trace", "--port", "web", "--hex", "0a0g"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "bad hex is refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'g' at offset 3"), "{err}");
}

/// Waits for `child` to exit, at most `within` (then kills it by PID and
/// fails).
fn wait_exit(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{child:?} did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
