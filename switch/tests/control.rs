//! The control socket and `podswitch ctl`, as root, against a real daemon:
//! two containers on a `nat` network behind an uplink veth into an
//! "outside" namespace (10.99.0.1), podswitch in a "host" namespace of the
//! test with its Prometheus endpoint on that namespace's loopback. Every
//! namespace is the test's own and is removed by a guard, also on failure.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pmd::netns::{in_netns, NetnsGuard};
use serde_json::Value;
use switch::lab::traffic::{ping, udp_echo};
use test_support::{wait_for, wait_until};

const OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const C1: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 10);
const C2: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 11);
const METRICS: &str = "127.0.0.1:9464";

struct Lab {
    daemon: Option<Daemon>,
    socket: String,
    host: NetnsGuard,
    outside: NetnsGuard,
    c1: NetnsGuard,
    c2: NetnsGuard,
}

impl Lab {
    fn new() -> Lab {
        let host = NetnsGuard::new("psc-h").unwrap();
        let outside = NetnsGuard::new("psc-o").unwrap();
        let c1 = NetnsGuard::new("psc-a").unwrap();
        let c2 = NetnsGuard::new("psc-b").unwrap();
        uplink_veth(&host, &outside, "10.99.0.1/24");
        let socket = control_path();
        let text = format!(
            r#"
[switch]
control = "{socket}"
metrics = "{METRICS}"

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
host_port = 8080
endpoint = "c1"
port = 80

[[network]]
name = "ov"
mode = "overlay"
subnet = "10.200.0.0/24"
uplink = "up0"
vni = 4242

[[remote_endpoint]]
network = "ov"
ip = "10.200.0.20"
mac = "02:00:0a:c8:00:14"
vtep = "10.99.0.1"
"#,
            c1.name(),
            c2.name()
        );
        let daemon = Daemon::start_in(Some(host.name()), &["run"], &text);
        Lab {
            daemon: Some(daemon),
            socket,
            host,
            outside,
            c1,
            c2,
        }
    }

    /// `podswitch ctl --socket S ARGS`.
    fn ctl(&self, args: &[&str]) -> Output {
        self.ctl_cmd(args).output().unwrap()
    }

    fn ctl_cmd(&self, args: &[&str]) -> Command {
        ctl(&self.socket, args)
    }

    /// `ctl ARGS` that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        ctl_ok(&self.socket, args)
    }

    /// `ctl --json ARGS`, parsed.
    fn json(&self, args: &[&str]) -> Value {
        ctl_json(&self.socket, args)
    }

    fn pid(&self) -> i32 {
        self.daemon.as_ref().unwrap().pid()
    }

    /// `GET path` on the metrics endpoint: status line and body.
    fn http_get(&self, path: &str) -> (String, String) {
        let path = path.to_string();
        in_netns(self.host.name(), move || {
            let addr: SocketAddr = METRICS.parse().unwrap();
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            (head.lines().next().unwrap().to_string(), body.to_string())
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

/// The MAC of `eth0` in `ns`.
fn mac_of(ns: &NetnsGuard) -> String {
    let out = ip_in(ns.name(), &["-br", "link", "show", "eth0"]);
    out.split_whitespace().nth(2).unwrap().to_string()
}

/// The value of a sample line `name{labels} value` in a scrape.
fn sample(body: &str, prefix: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn port<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == name)
        .unwrap_or_else(|| panic!("no port {name} in {stats:#}"))
}

/// One raw request line on a connection, and its reply.
fn raw(conn: &mut BufReader<UnixStream>, line: &[u8]) -> Value {
    conn.get_mut().write_all(line).unwrap();
    let mut reply = String::new();
    conn.read_line(&mut reply).unwrap();
    serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{e}: {reply:?}"))
}

#[test]
fn ctl_shows_the_endpoints_counters_macs_flows_and_neighbors_of_a_running_switch() {
    if skip_unless_root("ctl_shows_everything") {
        return;
    }
    let lab = Lab::new();
    // Switched traffic (c1 <-> c2) and translated traffic (c1 -> outside).
    let p = ping(lab.c1.name(), C2, 5).unwrap();
    assert_eq!(p.received, 5, "the fixture's containers reach each other");
    let (echoed, _) = udp_echo(
        lab.outside.name(),
        OUTSIDE,
        7000,
        lab.c1.name(),
        SocketAddr::from((OUTSIDE, 7000)),
        3,
        0,
    )
    .unwrap();
    assert_eq!(echoed, 3, "the fixture's UDP flow goes through NAT");

    // show
    let show = lab.json(&["show"]);
    let names: Vec<&str> = show["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["c1", "c2"]);
    assert_eq!(show["endpoints"][0]["ip"], "172.30.0.10");
    assert_eq!(show["endpoints"][0]["netns"], lab.c1.name());
    assert_eq!(show["networks"][0]["mode"], "nat");
    assert_eq!(show["networks"][0]["uplink"], "up0");
    assert_eq!(show["mappings"][0]["host_port"], 8080);
    assert_eq!(show["mappings"][0]["host_ip"], "10.99.0.2");
    assert_eq!(show["networks"][1]["vni"], 4242);
    let peer = &show["overlay"]["peers"][0];
    assert_eq!(
        (&peer["network"], &peer["vtep"]),
        (&"ov".into(), &"10.99.0.1".into())
    );
    let remote = &show["overlay"]["remote_endpoints"][0];
    assert_eq!(remote["ip"], "10.200.0.20");
    assert_eq!(remote["mac"], "02:00:0a:c8:00:14");
    let human = lab.ok(&["show"]);
    for want in [
        "networks:",
        "front",
        "nat",
        "172.30.0.0/24",
        "c1",
        "c2",
        "172.30.0.11",
        "up0",
        "10.99.0.2:8080",
        "overlay peers:",
        "remote endpoints:",
        "10.200.0.20",
    ] {
        assert!(human.contains(want), "show lacks {want}:\n{human}");
    }

    // stats: at least the 5 echo requests each way went c1 -> c2 -> c1.
    let stats = lab.json(&["stats"]);
    let (c1, c2) = (port(&stats, "c1"), port(&stats, "c2"));
    assert!(c1["rx_packets"].as_u64().unwrap() >= 5 + 3, "{c1}");
    assert!(c2["tx_packets"].as_u64().unwrap() >= 5, "{c2}");
    assert!(c2["rx_packets"].as_u64().unwrap() >= 5, "{c2}");
    assert!(c1["rx_bytes"].as_u64().unwrap() >= 8 * 42, "{c1}");
    let front = &stats["networks"][0];
    assert_eq!(front["network"], "front");
    assert!(front["unicast"].as_u64().unwrap() >= 10, "{front}");
    assert!(front["learned"].as_u64().unwrap() >= 2, "{front}");
    let nat = &stats["nat"][0];
    assert_eq!(nat["uplink"], "up0");
    assert!(nat["translated_out"].as_u64().unwrap() >= 3, "{nat}");
    assert!(nat["translated_in"].as_u64().unwrap() >= 3, "{nat}");
    assert!(nat["connections"].as_u64().unwrap() >= 1, "{nat}");
    let pmd = &stats["threads"][0];
    assert!(pmd["frames"].as_u64().unwrap() >= 16, "{pmd}");
    assert!(pmd["busy_iterations"].as_u64().unwrap() > 0, "{pmd}");
    let busy = pmd["busy_share"].as_f64().unwrap();
    assert!(busy > 0.0 && busy < 1.0, "{pmd}");
    assert!(
        pmd["sleeps"].as_u64().unwrap() > 0,
        "an idle adaptive thread sleeps: {pmd}"
    );
    let human = lab.ok(&["stats"]);
    for want in ["ports:", "c1", "pmd threads:", "pmd0", "nat:"] {
        assert!(human.contains(want), "stats lacks {want}:\n{human}");
    }

    // fdb: both containers' MACs, on their own ports.
    let (m1, m2) = (mac_of(&lab.c1), mac_of(&lab.c2));
    let fdb = lab.json(&["fdb", "front"]);
    let learned: Vec<(String, String)> = fdb
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["mac"].as_str().unwrap().into(),
                r["port"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        learned.contains(&(m1.clone(), "c1".into())),
        "{m1} on c1: {learned:?}"
    );
    assert!(
        learned.contains(&(m2.clone(), "c2".into())),
        "{m2} on c2: {learned:?}"
    );
    let human = lab.ok(&["fdb"]);
    assert!(human.contains(&m1) && human.contains(&m2), "{human}");
    let out = lab.ctl(&["fdb", "nosuch"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no network named nosuch"));

    // conntrack: the UDP flow c1 opened to the outside.
    let ct = lab.json(&["conntrack", "--network", "front"]);
    let flow = ct
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["proto"] == "udp" && r["orig"]["dport"] == 7000)
        .unwrap_or_else(|| panic!("no UDP flow to port 7000 in {ct:#}"));
    assert_eq!(flow["orig"]["src"], C1.to_string());
    assert_eq!(flow["orig"]["dst"], OUTSIDE.to_string());
    assert_eq!(
        flow["reply"]["dst"], "10.99.0.2",
        "answers come to the uplink address"
    );
    assert_eq!(flow["state"], "replied");
    assert_eq!(flow["snat"], true);
    assert_eq!(
        lab.json(&["conntrack", "--limit", "1"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let human = lab.ok(&["conntrack"]);
    assert!(
        human.contains("172.30.0.10:") && human.contains("-> 10.99.0.1:7000"),
        "{human}"
    );

    // neighbors: the outside's address, resolved by ARP.
    let out_mac = {
        let o = ip_in(lab.outside.name(), &["-br", "link", "show", "out0"]);
        o.split_whitespace().nth(2).unwrap().to_string()
    };
    let nb = lab.json(&["neighbors"]);
    let row = nb
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ip"] == OUTSIDE.to_string())
        .unwrap_or_else(|| panic!("10.99.0.1 not resolved: {nb:#}"));
    assert_eq!(row["mac"], out_mac.as_str());
    assert_eq!(row["uplink"], "up0");
    assert_eq!(row["state"], "reachable");
    assert!(lab.ok(&["neighbors"]).contains(&out_mac));
}

#[test]
fn bad_requests_get_error_replies_and_the_daemon_keeps_serving() {
    if skip_unless_root("bad_requests_get_error_replies") {
        return;
    }
    let lab = Lab::new();
    let mut conn = BufReader::new(UnixStream::connect(&lab.socket).unwrap());
    let r = raw(&mut conn, b"{not json\n");
    assert_eq!(r["ok"], false);
    assert!(r["error"].as_str().unwrap().contains("bad request"), "{r}");
    let r = raw(&mut conn, b"{\"cmd\":\"frobnicate\"}\n");
    assert_eq!(r["ok"], false);
    assert!(r["error"].as_str().unwrap().contains("frobnicate"), "{r}");
    // The same connection still answers.
    let r = raw(&mut conn, b"{\"cmd\":\"show\"}\n");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["data"]["endpoints"][0]["name"], "c1");

    // Run-time changes reach the runtime: a bad one is refused by name.
    let r = raw(
        &mut conn,
        b"{\"cmd\":\"endpoint-add\",\"name\":\"x\",\"network\":\"nosuch\",\"netns\":\"/nonexistent\"}\n",
    );
    assert_eq!(r["ok"], false, "{r}");
    assert!(r["error"].as_str().unwrap().contains("endpoint"), "{r}");
    let r = raw(
        &mut conn,
        b"{\"cmd\":\"mapping-add\",\"endpoint\":\"nosuch\",\"protocol\":\"tcp\",\"host_port\":1,\"port\":2}\n",
    );
    assert_eq!(r["ok"], false, "{r}");
    assert!(r["error"].as_str().unwrap().contains("mapping"), "{r}");

    // An over-long line: an error, then the connection closes.
    let mut long = vec![b'x'; 100 * 1024];
    long.push(b'\n');
    let _ = conn.get_mut().write_all(&long);
    let mut reply = String::new();
    conn.read_line(&mut reply).unwrap();
    let r: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(r["ok"], false);
    assert!(
        r["error"].as_str().unwrap().contains("longer than 65536"),
        "{r}"
    );
    let mut rest = String::new();
    let _ = conn.read_to_string(&mut rest);
    assert_eq!(rest, "", "closed after the error");

    // More connections than the cap: the extra one is told so.
    let mut held: Vec<UnixStream> = Vec::new();
    let refused = wait_for(
        "a refusal at the connection cap",
        Duration::from_secs(10),
        || {
            let mut c = BufReader::new(UnixStream::connect(&lab.socket).unwrap());
            c.get_mut()
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut line = String::new();
            match c.read_line(&mut line) {
                Ok(n) if n > 0 => Some(line),
                _ => {
                    held.push(c.into_inner());
                    None
                }
            }
        },
    );
    assert!(
        refused.contains("too many control connections"),
        "{refused}"
    );
    assert_eq!(held.len(), 16, "16 connections were served at once");
    drop(held);

    // A fresh connection is served again once the others are gone.
    wait_until(
        "ctl serves after the others closed",
        Duration::from_secs(5),
        || lab.ctl(&["stats"]).status.success(),
    );
}

#[test]
fn another_user_is_refused_even_when_the_socket_file_is_opened_to_all() {
    if skip_unless_root("another_user_is_refused") {
        return;
    }
    let lab = Lab::new();
    let nobody = || {
        let mut c = lab.ctl_cmd(&["show"]);
        c.uid(65534).gid(65534);
        c.output().unwrap()
    };
    let mode = std::fs::metadata(&lab.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let out = nobody();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ermission denied"), "{err}");

    // A chmod mistake: the daemon still checks who is calling.
    std::fs::set_permissions(&lab.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = nobody();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("uid 65534 may not use the podswitch control socket"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    // Root still is served.
    assert!(lab.ok(&["show"]).contains("c1"));
}

#[test]
fn sighup_keeps_the_daemon_serving_and_sigterm_stops_it_with_a_client_connected() {
    if skip_unless_root("sighup_keeps_the_daemon_serving") {
        return;
    }
    let mut lab = Lab::new();
    let idle = UnixStream::connect(&lab.socket).unwrap();
    kill(Pid::from_raw(lab.pid()), Signal::SIGHUP).unwrap();
    let p = ping(lab.c1.name(), C2, 2).unwrap();
    assert_eq!(p.received, 2, "traffic goes on after SIGHUP");
    assert!(
        lab.ok(&["show"]).contains("c2"),
        "the socket serves after SIGHUP"
    );
    // An idle client does not hold the stop up.
    let err = lab.daemon.as_mut().unwrap().stop_clean();
    assert!(err.contains("c1"), "the exit report is kept:\n{err}");
    assert!(!std::path::Path::new(&lab.socket).exists());
    drop(idle);
}

#[test]
fn the_metrics_endpoint_serves_counters_that_move_with_traffic() {
    if skip_unless_root("the_metrics_endpoint_serves_counters") {
        return;
    }
    let lab = Lab::new();
    let rx = r#"podswitch_port_packets_total{port="c1",direction="rx"}"#;
    let (status, before) = lab.http_get("/metrics");
    assert!(status.contains("200"), "{status}");
    let n0 = sample(&before, rx).unwrap_or_else(|| panic!("no {rx} in:\n{before}"));
    assert!(
        before.contains("podswitch_pmd_busy_ratio{thread=\"pmd0\"}"),
        "{before}"
    );
    assert!(
        before.contains("podswitch_nat_connections{uplink=\"up0\"}"),
        "{before}"
    );

    let p = ping(lab.c1.name(), C2, 4).unwrap();
    assert_eq!(p.received, 4);
    let (_, after) = lab.http_get("/metrics");
    let n1 = sample(&after, rx).unwrap();
    assert!(n1 >= n0 + 4.0, "c1 rx went from {n0} to {n1}");
    let tx = r#"podswitch_port_packets_total{port="c2",direction="tx"}"#;
    assert!(sample(&after, tx).unwrap() >= 4.0, "{after}");
    assert!(sample(&after, "podswitch_pmd_frames_total{thread=\"pmd0\"}").unwrap() >= 8.0);

    let (status, _) = lab.http_get("/nothing");
    assert!(status.contains("404"), "{status}");
}

#[test]
fn ctl_attaches_and_detaches_an_endpoint_and_a_mapping_and_reloads() {
    if skip_unless_root("ctl_attaches_and_detaches") {
        return;
    }
    let lab = Lab::new();
    let c3 = NetnsGuard::new("psc-c").unwrap();
    let add_c3 = [
        "endpoint",
        "add",
        "c3",
        "--network",
        "front",
        "--netns",
        c3.name(),
    ];
    let out = lab.ok(&add_c3);
    // IPAM: the first free address (the gateway is .1, c1/c2 are .10/.11).
    assert!(
        out.contains("endpoint c3 on front: eth0 172.30.0.2/24"),
        "{out}"
    );
    let p = ping(c3.name(), Ipv4Addr::new(172, 30, 0, 1), 2).unwrap();
    assert_eq!(p.received, 2, "the new endpoint reaches its gateway");
    let show = lab.json(&["show"]);
    assert!(show["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "c3" && e["ip"] == "172.30.0.2"));
    let out = lab.ctl(&add_c3);
    assert!(!out.status.success(), "a second c3 is refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("c3"), "the refusal names the endpoint: {err}");

    assert!(lab
        .ok(&["mapping", "add", "c3", "udp", "5353:53"])
        .contains("added"));
    let mapped = |show: &Value| {
        show["mappings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["endpoint"] == "c3" && m["host_port"] == 5353)
    };
    assert!(mapped(&lab.json(&["show"])));
    assert!(lab
        .ok(&["mapping", "del", "c3", "udp", "5353:53"])
        .contains("deleted"));
    assert!(!mapped(&lab.json(&["show"])));
    let out = lab.ok(&["mapping", "del", "c3", "udp", "5353:53"]);
    assert!(out.contains("did not exist"), "{out}");

    assert!(lab.ok(&["endpoint", "del", "c3"]).contains("c3 deleted"));
    assert!(lab.ok(&["endpoint", "del", "c3"]).contains("did not exist"));
    let show = lab.ok(&["show"]);
    assert!(!show.contains("c3"), "{show}");
    let stats = lab.json(&["stats"]);
    assert!(
        stats["ports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["port"] != ""),
        "a detached port is not listed: {stats:#}"
    );

    // The file did not change: a reload changes nothing and says so.
    assert_eq!(lab.ok(&["reload"]), "reloaded: nothing changed\n");
}

impl Lab {
    /// Serves one connection on port 80 in `ns` (it answers with the
    /// namespace's name) and connects to the uplink's `host_port` from the
    /// outside, retrying until the mapping answers: the answer, and whom
    /// the container saw connect.
    fn fetch_through_mapping(&self, ns: &NetnsGuard, host_port: u16) -> (String, SocketAddr) {
        let listener = {
            let ns = ns.name().to_string();
            std::thread::spawn(move || {
                in_netns(&ns.clone(), move || {
                    let l = std::net::TcpListener::bind(("0.0.0.0", 80)).unwrap();
                    let (mut s, peer) = l.accept().unwrap();
                    s.write_all(ns.as_bytes()).unwrap();
                    peer
                })
                .unwrap()
            })
        };
        let answer = in_netns(self.outside.name(), move || {
            wait_for(
                &format!("the mapping {host_port} answers"),
                Duration::from_secs(10),
                || {
                    let to = SocketAddr::from((Ipv4Addr::new(10, 99, 0, 2), host_port));
                    let mut s = TcpStream::connect_timeout(&to, Duration::from_millis(300)).ok()?;
                    let mut text = String::new();
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    s.read_to_string(&mut text).ok()?;
                    Some(text)
                },
            )
        })
        .unwrap();
        (answer, listener.join().unwrap())
    }

    /// `ctl ARGS` that must fail; its stderr.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(!out.status.success(), "ctl {args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    }
}

#[test]
fn ctl_endpoint_add_names_each_problem_and_an_endpoint_it_attaches_is_reached_through_a_mapping() {
    if skip_unless_root("ctl_endpoint_add_names_each_problem") {
        return;
    }
    let lab = Lab::new();
    let c3 = NetnsGuard::new("psc-c").unwrap();
    let add = |net: &str, ns: &str, extra: &[&str]| -> Vec<String> {
        ["endpoint", "add", "c3", "--network", net, "--netns", ns]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let c3n = c3.name();
    let cases = [
        (add("nosuch", c3n, &[]), "unknown network \"nosuch\""),
        (
            add("front", "psc-no-such-ns", &[]),
            "psc-no-such-ns does not exist",
        ),
        (
            add("front", c3n, &["--ip", "172.30.0.10"]),
            "172.30.0.10 is in use in network front by endpoint c1",
        ),
        (
            add("front", c3n, &["--ip", "172.31.0.5"]),
            "not a host address of network front",
        ),
        (
            add("front", c3n, &["--mac", "03:00:00:00:00:01"]),
            "not a unicast address",
        ),
    ];
    for (args, says) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = lab.refused(&args);
        assert!(err.contains(says), "ctl {args:?}: {err}");
    }
    assert!(
        !lab.ok(&["show"]).contains("c3"),
        "a refused add leaves nothing"
    );

    let attach = add(
        "front",
        c3n,
        &[
            "--ip",
            "172.30.0.33",
            "--mac",
            "02:aa:bb:cc:dd:ee",
            "--ifname",
            "net1",
        ],
    );
    let out = lab.ok(&attach.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains("net1 172.30.0.33/24"), "{out}");
    let link = String::from_utf8(
        c3.command("ip")
            .args(["-br", "link", "show", "net1"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        link.contains("02:aa:bb:cc:dd:ee"),
        "net1 has the MAC asked for: {link}"
    );
    assert!(lab
        .ok(&["mapping", "add", "c3", "tcp", "8088:80"])
        .contains("added"));
    let (answer, peer) = lab.fetch_through_mapping(&c3, 8088);
    assert_eq!(answer, c3.name());
    assert_eq!(
        peer.ip(),
        std::net::IpAddr::V4(OUTSIDE),
        "c3 sees who connected"
    );

    // A broken file: `ctl reload` answers with check's FILE:LINE:COL errors.
    let path = lab.daemon.as_ref().unwrap().config.path.clone();
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, good.replace("vni = 4242", "vni = 99999999")).unwrap();
    let err = lab.refused(&["reload"]);
    assert!(
        err.contains(&format!("{}:", path.display())) && err.contains("vni"),
        "{err}"
    );
    std::fs::write(&path, &good).unwrap();

    assert!(lab.ok(&["endpoint", "del", "c3"]).contains("deleted"));
    assert!(
        c3.command("ip")
            .args(["link", "show", "net1"])
            .output()
            .unwrap()
            .stdout
            .is_empty(),
        "net1 left the container"
    );
    assert!(
        !lab.ok(&["show"]).contains("8088"),
        "its mapping went with it"
    );
}

#[test]
fn ctl_network_add_on_an_uplink_without_networks_gives_containers_nat_and_del_removes_it() {
    if skip_unless_root("ctl_network_add") {
        return;
    }
    // A host as a runtime plugin finds it: an uplink port, no network yet.
    let host = NetnsGuard::new("psc-h").unwrap();
    let outside = NetnsGuard::new("psc-o").unwrap();
    let c = NetnsGuard::new("psc-c").unwrap();
    uplink_veth(&host, &outside, "10.99.0.1/24");
    let socket = control_path();
    let text = format!(
        "[switch]\ncontrol = \"{socket}\"\n\n[[port]]\nname = \"up0\"\niface = \"up0\"\nip = \"10.99.0.2/24\"\ngateway = \"10.99.0.1\"\n"
    );
    let mut daemon = Daemon::start_in(Some(host.name()), &["run"], &text);
    let run = |args: &[&str]| ctl(&socket, args).output().unwrap();
    let ok = |args: &[&str]| ctl_ok(&socket, args);
    let out = ok(&["network", "add", "front", "--subnet", "172.27.0.0/24"]);
    assert!(
        out.contains("network front 172.27.0.0/24 gateway 172.27.0.1 uplink up0"),
        "{out}"
    );
    let overlap = run(&["network", "add", "wide", "--subnet", "172.27.0.0/16"]);
    assert!(!overlap.status.success());
    assert!(String::from_utf8_lossy(&overlap.stderr)
        .contains("overlaps subnet 172.27.0.0/24 of network front"));
    ok(&[
        "endpoint",
        "add",
        "web",
        "--network",
        "front",
        "--netns",
        c.name(),
    ]);
    wait_until(
        "web reaches the outside through NAT",
        Duration::from_secs(10),
        || ping(c.name(), OUTSIDE, 1).is_ok_and(|p| p.received == 1),
    );
    let busy = run(&["network", "del", "front"]);
    assert!(!busy.status.success(), "a network with endpoints stays");
    assert!(String::from_utf8_lossy(&busy.stderr).contains("web"));
    ok(&["endpoint", "del", "web"]);
    assert!(ok(&["network", "del", "front"]).contains("deleted"));
    assert!(ok(&["network", "del", "front"]).contains("did not exist"));
    assert!(!ok(&["show"]).contains("front"));
    let err = daemon.stop_clean();
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_killed_podswitch_attaches_what_ctl_added_again_when_it_restarts() {
    if skip_unless_root("a_killed_podswitch_attaches_what_ctl_added_again") {
        return;
    }
    let mut lab = Lab::new();
    let c3 = NetnsGuard::new("psc-c").unwrap();
    let gone = NetnsGuard::new("psc-g").unwrap();
    lab.ok(&["network", "add", "back", "--subnet", "172.31.0.0/24"]);
    let added = lab.ok(&[
        "endpoint",
        "add",
        "c3",
        "--network",
        "back",
        "--netns",
        c3.name(),
    ]);
    lab.ok(&[
        "endpoint",
        "add",
        "c4",
        "--network",
        "front",
        "--netns",
        gone.name(),
    ]);
    lab.ok(&["mapping", "add", "c3", "tcp", "8089:80"]);
    let mac = mac_of(&c3);
    let eth0 = |ns: &NetnsGuard| ip_in(ns.name(), &["-br", "-4", "addr", "show", "dev", "eth0"]);
    let before = eth0(&c3);
    assert!(
        added.contains("172.31.0.2/24") && before.contains("172.31.0.2/24"),
        "{added}\n{before}"
    );

    // A crash: no chance to save anything more. The TAPs close with it.
    let mut first = lab.daemon.take().unwrap();
    let text = std::fs::read_to_string(&first.config.path).unwrap();
    first.stop(libc::SIGKILL);
    wait_until(
        "c3's eth0 closed with podswitch",
        Duration::from_secs(10),
        || eth0(&c3).trim().is_empty(),
    );
    // c4's container went away meanwhile.
    drop(gone);

    let second = Daemon::start_in(Some(lab.host.name()), &["run"], &text);
    second.wait_for_log("not restored: endpoint c4");
    lab.daemon = Some(second);
    assert_eq!(eth0(&c3), before, "c3 has its address again");
    assert_eq!(mac_of(&c3), mac, "and its MAC");
    assert_eq!(
        ping(c3.name(), Ipv4Addr::new(172, 31, 0, 1), 2)
            .unwrap()
            .received,
        2,
        "c3 reaches its gateway"
    );
    let (answer, peer) = lab.fetch_through_mapping(&c3, 8089);
    assert_eq!(answer, c3.name(), "the mapping is back");
    assert_eq!(peer.ip(), std::net::IpAddr::V4(OUTSIDE));
    let show = lab.json(&["show"]);
    let names = |key: &str| -> Vec<String> {
        show[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert!(names("networks").contains(&"back".to_string()), "{show}");
    let endpoints = names("endpoints");
    assert!(endpoints.contains(&"c3".to_string()), "{show}");
    assert!(!endpoints.contains(&"c4".to_string()), "{show}");

    // Taking it all away again leaves no state behind.
    let state = state_path(&text).unwrap();
    assert!(
        state.exists(),
        "{} holds the run-time changes",
        state.display()
    );
    lab.ok(&["endpoint", "del", "c3"]);
    lab.ok(&["network", "del", "back"]);
    assert!(
        !state.exists(),
        "{} is gone with the last change",
        state.display()
    );
    drop(first);
}
