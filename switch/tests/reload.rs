//! Reloads of a running switch, as root: a NAT network behind an uplink
//! veth into an "outside" namespace, traffic flowing while the config file
//! changes under it and SIGHUP applies each change. Every namespace is the
//! test's own and is removed by a guard, also when the test fails.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use pmd::netns::{in_netns, NetnsGuard};
use switch::lab::traffic::ping;
use test_support::wait_until;

const OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const EXTERNAL: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);
const UDP_PORT: u16 = 7000;
const TCP_PORT: u16 = 7001;

fn config(control: &str, c1: &str, c2: &str, extra: &str) -> String {
    format!(
        r#"
[switch]
control = "{control}"

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
name = "c1"
network = "front"
netns = "{c1}"

[[endpoint]]
name = "c2"
network = "front"
netns = "{c2}"
{extra}
"#
    )
}

/// The namespaces of a test: podswitch's host, the outside, containers.
struct Lab {
    host: NetnsGuard,
    outside: NetnsGuard,
    c1: NetnsGuard,
    c2: NetnsGuard,
    c3: NetnsGuard,
    control: String,
}

impl Lab {
    fn new() -> Lab {
        let lab = Lab {
            host: NetnsGuard::new("psr-h").unwrap(),
            outside: NetnsGuard::new("psr-o").unwrap(),
            c1: NetnsGuard::new("psr-a").unwrap(),
            c2: NetnsGuard::new("psr-b").unwrap(),
            c3: NetnsGuard::new("psr-c").unwrap(),
            control: control_path(),
        };
        uplink_veth(&lab.host, &lab.outside, "10.99.0.1/24");
        lab
    }

    /// The config with c1 and c2, and `extra` after them.
    fn config(&self, extra: &str) -> String {
        config(&self.control, self.c1.name(), self.c2.name(), extra)
    }

    fn start(&self, text: &str) -> Daemon {
        Daemon::start_in(Some(self.host.name()), &["run"], text)
    }
}

/// Sends SIGHUP to the daemon: reload.
fn hup(d: &Daemon) {
    // SAFETY: kill(2) on the PID of a child this test started.
    assert_eq!(unsafe { libc::kill(d.pid(), libc::SIGHUP) }, 0);
}

/// Whether `ns` has an eth0 (sysfs would show the test's own namespace).
fn has_eth0(ns: &NetnsGuard) -> bool {
    ns.exec("ip", &["link", "show", "eth0"]).is_ok()
}

/// Datagrams numbered from 0, sent from `client` to the outside every
/// 400 µs until `stop`; returns what the outside received, in order.
fn numbered_udp_stream(
    outside: String,
    client: String,
    stop: Arc<AtomicBool>,
    arrived: Arc<AtomicU64>,
) -> (
    std::thread::JoinHandle<u64>,
    std::thread::JoinHandle<Vec<u64>>,
) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        in_netns(&outside, move || {
            let sock = UdpSocket::bind((OUTSIDE, UDP_PORT)).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            ready_tx.send(()).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                if &buf[..n] == b"end" {
                    break;
                }
                got.push(u64::from_be_bytes(buf[..8].try_into().unwrap()));
                arrived.fetch_add(1, Ordering::Relaxed);
            }
            got
        })
        .unwrap()
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let sender = std::thread::spawn(move || {
        in_netns(&client, move || {
            let sock = UdpSocket::bind(("0.0.0.0", 0)).unwrap();
            let to = SocketAddr::from((OUTSIDE, UDP_PORT));
            let mut seq = 0u64;
            while !stop.load(Ordering::Acquire) {
                sock.send_to(&seq.to_be_bytes(), to).unwrap();
                seq += 1;
                std::thread::sleep(Duration::from_micros(400));
            }
            // The marker may be the one datagram a broken switch loses:
            // the receiver's timeout ends it then, and the count tells.
            for _ in 0..3 {
                sock.send_to(b"end", to).unwrap();
            }
            seq
        })
        .unwrap()
    });
    (sender, server)
}

/// A TCP download from the outside into `client`, opened now and fed 4 KB
/// every 2 ms until `stop`; returns (bytes sent, bytes received intact).
fn slow_tcp_download(
    outside: String,
    client: String,
    stop: Arc<AtomicBool>,
) -> (
    std::thread::JoinHandle<u64>,
    std::thread::JoinHandle<(u64, bool)>,
) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        in_netns(&outside, move || {
            let l = TcpListener::bind((OUTSIDE, TCP_PORT)).unwrap();
            ready_tx.send(()).unwrap();
            let (mut s, _) = l.accept().unwrap();
            let mut sent = 0u64;
            let mut chunk = [0u8; 4096];
            while !stop.load(Ordering::Acquire) {
                for (i, b) in chunk.iter_mut().enumerate() {
                    *b = ((sent + i as u64) % 251) as u8;
                }
                s.write_all(&chunk).unwrap();
                sent += chunk.len() as u64;
                std::thread::sleep(Duration::from_millis(2));
            }
            sent
        })
        .unwrap()
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let reader = std::thread::spawn(move || {
        in_netns(&client, move || {
            let mut s = TcpStream::connect((OUTSIDE, TCP_PORT)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let (mut got, mut exact) = (0u64, true);
            let mut buf = [0u8; 65536];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        for (i, b) in buf[..n].iter().enumerate() {
                            exact &= *b == ((got + i as u64) % 251) as u8;
                        }
                        got += n as u64;
                    }
                    Err(e) => panic!("the download broke after {got} bytes: {e}"),
                }
            }
            (got, exact)
        })
        .unwrap()
    });
    (server, reader)
}

#[test]
fn three_reloads_lose_no_numbered_datagram_and_an_established_tcp_download_survives() {
    if skip_unless_root("reload") {
        return;
    }
    let lab = Lab::new();
    let (outside, c1, c2, c3) = (&lab.outside, &lab.c1, &lab.c2, &lab.c3);
    let base = |extra: &str| lab.config(extra);
    let mut daemon = lab.start(&base(""));
    let with_c3 = format!(
        "\n[[endpoint]]\nname = \"c3\"\nnetwork = \"front\"\nnetns = \"{}\"\nip = \"172.30.0.30\"\n",
        c3.name()
    );
    let mapping =
        "\n[[port_mapping]]\nprotocol = \"tcp\"\nhost_port = 8080\nendpoint = \"c3\"\nport = 80\n";

    let stop = Arc::new(AtomicBool::new(false));
    let arrived = Arc::new(AtomicU64::new(0));
    let (udp_sender, udp_server) = numbered_udp_stream(
        outside.name().into(),
        c1.name().into(),
        stop.clone(),
        arrived.clone(),
    );
    let (tcp_server, tcp_reader) =
        slow_tcp_download(outside.name().into(), c2.name().into(), stop.clone());
    let flowing = |what: &str| {
        let from = arrived.load(Ordering::Relaxed);
        wait_until(what, Duration::from_secs(10), || {
            arrived.load(Ordering::Relaxed) >= from + 200
        });
    };
    flowing("the stream flows before the first reload");

    // 1. An endpoint appears.
    std::fs::write(&daemon.config.path, base(&with_c3)).unwrap();
    let before_reloads = arrived.load(Ordering::Relaxed);
    hup(&daemon);
    wait_until(
        "the new endpoint c3 pings its gateway",
        Duration::from_secs(10),
        || ping(c3.name(), GATEWAY, 1).is_ok_and(|p| p.received == 1),
    );

    // 2. A mapping appears: the outside reaches c3's port 80 on 8080.
    std::fs::write(&daemon.config.path, base(&format!("{with_c3}{mapping}"))).unwrap();
    let listener = {
        let ns = c3.name().to_string();
        std::thread::spawn(move || {
            in_netns(&ns, || {
                let l = TcpListener::bind(("0.0.0.0", 80)).unwrap();
                let (mut s, _) = l.accept().unwrap();
                s.write_all(b"c3 here").unwrap();
            })
            .unwrap()
        })
    };
    hup(&daemon);
    let answer = {
        let ns = outside.name().to_string();
        in_netns(&ns, || {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let to = SocketAddr::from((EXTERNAL, 8080));
                if let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_millis(300)) {
                    let mut text = String::new();
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let _ = s.read_to_string(&mut text);
                    break text;
                }
                assert!(Instant::now() < deadline, "mapping 8080 never answered");
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .unwrap()
    };
    assert_eq!(answer, "c3 here");
    listener.join().unwrap();

    // 3. The endpoint goes (its mapping with it).
    std::fs::write(&daemon.config.path, base("")).unwrap();
    hup(&daemon);
    let deadline = Instant::now() + Duration::from_secs(10);
    while has_eth0(c3) {
        if Instant::now() > deadline {
            let err = daemon.stop_clean();
            panic!("c3's eth0 is still there 10 s after the reload; stderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let after_reloads = arrived.load(Ordering::Relaxed);
    flowing("the stream flows after the last reload");

    stop.store(true, Ordering::Release);
    let sent = udp_sender.join().unwrap();
    let got = udp_server.join().unwrap();
    let tcp_sent = tcp_server.join().unwrap();
    let (tcp_got, exact) = tcp_reader.join().unwrap();
    let err = daemon.stop_clean();
    println!(
        "three reloads under traffic: {} of {sent} datagrams in order ({} while the reloads were applied); TCP {tcp_got} of {tcp_sent} bytes",
        got.len(),
        after_reloads - before_reloads
    );
    assert!(
        after_reloads > before_reloads + 20,
        "the stream ran through the reloads: {} datagrams arrived while they were applied",
        after_reloads - before_reloads
    );
    let in_order = got.iter().enumerate().all(|(i, s)| *s == i as u64);
    assert!(
        got.len() as u64 == sent && in_order,
        "{} of {sent} datagrams arrived, in order: {in_order}; stderr:\n{err}",
        got.len()
    );
    assert!(
        exact && tcp_got == tcp_sent,
        "TCP: {tcp_got} of {tcp_sent} bytes, exact: {exact}"
    );
    for line in ["added [\"endpoint c3\"]", "removed [\"endpoint c3\""] {
        assert!(err.contains(line), "the log says {line}; stderr:\n{err}");
    }
}

#[test]
fn a_bad_file_or_a_change_that_needs_a_restart_is_refused_and_the_switch_keeps_running() {
    if skip_unless_root("reload") {
        return;
    }
    let lab = Lab::new();
    let c1 = &lab.c1;
    let text = lab.config("");
    let mut daemon = lab.start(&text);
    let path = daemon.config.path.clone();
    let reaches = |what: &str| {
        wait_until(what, Duration::from_secs(10), || {
            ping(c1.name(), OUTSIDE, 1).is_ok_and(|p| p.received == 1)
        })
    };
    reaches("c1 reaches the outside");
    // A typo: the same FILE:LINE:COL error `check` prints, nothing changes.
    std::fs::write(&path, text.replace("subnet = ", "subnett = ")).unwrap();
    hup(&daemon);
    // A valid file whose uplink port changed: that needs a restart.
    let moved = text.replace("gateway = \"10.99.0.1\"", "gateway = \"10.99.0.254\"");
    daemon.wait_for_log("subnett");
    std::fs::write(&path, moved).unwrap();
    hup(&daemon);
    daemon.wait_for_log("a [[port]] was added, removed or changed");
    reaches("c1 still reaches the outside after both refusals");
    let err = daemon.stop_clean();
    let file = path.display().to_string();
    assert!(
        err.contains(&format!("{file}:")) && err.contains("subnett"),
        "the typo's error names the file and the key; stderr:\n{err}"
    );
    assert!(
        err.contains("a [[port]] was added, removed or changed"),
        "the port change is refused; stderr:\n{err}"
    );
}

#[test]
fn a_nat_network_added_by_a_reload_reaches_the_outside_and_goes_again_leaving_the_first_alone() {
    if skip_unless_root("reload") {
        return;
    }
    let lab = Lab::new();
    let (c1, c3) = (&lab.c1, &lab.c3);
    let text = lab.config("");
    let mut daemon = lab.start(&text);
    let reaches = |ns: &NetnsGuard, what: &str| {
        wait_until(what, Duration::from_secs(10), || {
            ping(ns.name(), OUTSIDE, 1).is_ok_and(|p| p.received == 1)
        })
    };
    reaches(c1, "c1 reaches the outside");
    let back = format!(
        r#"
[[network]]
name = "back"
mode = "nat"
subnet = "172.31.0.0/24"
gateway = "172.31.0.1"
uplink = "up0"

[[endpoint]]
name = "c3"
network = "back"
netns = "{}"
"#,
        c3.name()
    );
    std::fs::write(&daemon.config.path, lab.config(&back)).unwrap();
    hup(&daemon);
    daemon.wait_for_log("added [\"network back\", \"endpoint c3\"]");
    reaches(c3, "c3 on the new network reaches the outside through NAT");
    // Isolated from front, as networks are.
    assert_eq!(
        ping(c3.name(), Ipv4Addr::new(172, 30, 0, 2), 1)
            .unwrap()
            .received,
        0
    );
    std::fs::write(&daemon.config.path, &text).unwrap();
    hup(&daemon);
    daemon.wait_for_log("removed [\"network back\", \"endpoint c3\"]");
    assert!(!has_eth0(c3), "c3's eth0 left with its network");
    reaches(c1, "c1 still reaches the outside");
    let err = daemon.stop_clean();
    assert!(
        !err.lines().any(|l| l.trim_start().starts_with("back ")),
        "the report has no row for the removed network; stderr:\n{err}"
    );
}
