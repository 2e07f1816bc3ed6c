//! NAT networks end to end, as root: containers on a `nat` network behind
//! podswitch, an uplink veth into an "outside" namespace (10.99.0.1/24)
//! with servers, podswitch's uplink address 10.99.0.2/24. podswitch runs in
//! a "host" namespace of the test, whose kernel keeps its own address
//! 10.99.0.3 on the same veth. Every namespace is the test's own and is
//! removed by a guard, also when the test fails.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::*;
use pmd::netns::{in_netns, NetnsGuard};
use switch::lab::traffic::{ping, tcp_fetch, tcp_transfer, tcp_upload, udp_echo};
use test_support::wait_until;

const OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const EXTERNAL: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const HOST_OWN: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 3);
const C1: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 10);
const C2: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 11);
const MB: u64 = 1024 * 1024;

struct NatLab {
    daemon: Option<Daemon>,
    host: NetnsGuard,
    outside: NetnsGuard,
    c1: NetnsGuard,
    c2: NetnsGuard,
}

impl NatLab {
    fn new(nat_section: &str) -> NatLab {
        NatLab::with_uplink("packet", nat_section)
    }

    /// The lab with an uplink port of `kind` (`packet`, `afxdp`).
    fn with_uplink(kind: &str, nat_section: &str) -> NatLab {
        let host = NetnsGuard::new("psn-h").unwrap();
        let outside = NetnsGuard::new("psn-o").unwrap();
        let c1 = NetnsGuard::new("psn-a").unwrap();
        let c2 = NetnsGuard::new("psn-b").unwrap();
        uplink_veth(&host, &outside, "10.99.0.1/24");
        // The host's own address on the uplink (the host keeps its NIC).
        host.exec("ip", &["addr", "add", "10.99.0.3/24", "dev", "up0"])
            .unwrap();
        let text = format!(
            r#"
[switch]
control = "{}"

[[port]]
name = "up0"
iface = "up0"
kind = "{kind}"
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

[[port_mapping]]
protocol = "tcp"
host_port = 8081
endpoint = "c1"
port = 81

[[port_mapping]]
protocol = "udp"
host_port = 5353
endpoint = "c1"
port = 53

{nat_section}
"#,
            control_path(),
            c1.name(),
            c2.name()
        );
        let daemon = Daemon::start_in(Some(host.name()), &["run"], &text);
        NatLab {
            daemon: Some(daemon),
            host,
            outside,
            c1,
            c2,
        }
    }

    /// Stops podswitch and returns its stderr (final counters).
    fn stop(&mut self) -> String {
        let mut d = self.daemon.take().unwrap();
        let (code, err) = d.stop(libc::SIGTERM);
        assert_eq!(code, Some(0), "clean exit; stderr:\n{err}");
        err
    }
}

impl Drop for NatLab {
    fn drop(&mut self) {
        // The daemon goes before the namespaces it uses.
        self.daemon.take();
    }
}

/// The value of `name=N` on the `nat up0 (front)` line of the final
/// counters.
fn nat_counter(stderr: &str, name: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("nat up0 (front)"))
        .unwrap_or_else(|| panic!("no NAT counters in:\n{stderr}"));
    line.split(|c: char| c.is_whitespace() || c == ',')
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .map_or(0, |v| v.parse().unwrap())
}

#[test]
fn outbound_tcp_udp_and_ping_leave_from_the_uplink_address() {
    if skip_unless_root("nat outbound") {
        return;
    }
    let mut lab = NatLab::new("");
    assert_eq!(
        ping(lab.c1.name(), OUTSIDE, 3).unwrap().received,
        3,
        "ping out"
    );
    let (t, seen) = tcp_fetch(
        lab.outside.name(),
        OUTSIDE,
        8000,
        lab.c1.name(),
        SocketAddr::from((OUTSIDE, 8000)),
        10 * MB,
    )
    .unwrap();
    assert!(t.exact && t.bytes == 10 * MB, "download: {t:?}");
    assert_eq!(
        seen.ip(),
        std::net::IpAddr::V4(EXTERNAL),
        "the server saw the NAT address"
    );
    let t = tcp_transfer(lab.outside.name(), OUTSIDE, 8001, lab.c2.name(), 10 * MB).unwrap();
    assert!(t.exact, "upload: {t:?}");
    let (ok, peers) = udp_echo(
        lab.outside.name(),
        OUTSIDE,
        7000,
        lab.c1.name(),
        SocketAddr::from((OUTSIDE, 7000)),
        5,
        0,
    )
    .unwrap();
    assert_eq!(ok, 5, "UDP echoes");
    assert!(peers
        .iter()
        .all(|p| p.ip() == std::net::IpAddr::V4(EXTERNAL)));
    // RFC 4787 endpoint-independent mapping: one socket, one external port.
    assert!(peers.windows(2).all(|w| w[0].port() == w[1].port()));
    assert!((32768..=60999).contains(&peers[0].port()));
    let err = lab.stop();
    let line = err
        .lines()
        .find(|l| l.trim_start().starts_with("nat up0 (front)"))
        .unwrap();
    // NAT translates whole segments: the upload leaves the TAP as 64 KB TSO
    // frames and the download arrives on the AF_PACKET uplink as the
    // outside's TSO frames, so 10 MB each way (7,240 frames at the MTU)
    // takes a few hundred translations.
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |w: &str| -> u64 {
        let i = words.iter().position(|x| *x == w).unwrap();
        words[i + 1].parse().unwrap()
    };
    assert!(
        after("out") > 100 && after("in") > 100,
        "NAT counted translations both ways: {line}"
    );
    assert!(
        after("in") < 3000,
        "the download was translated per segment, not per MTU frame: {line}"
    );
}

/// Software GRO: AF_XDP hands the switch the download as 1,514-byte
/// frames; the container's TAP carries them merged into large segments.
#[test]
fn a_download_through_the_afxdp_uplink_reaches_the_container_in_large_segments() {
    if skip_unless_root("nat gro download") {
        return;
    }
    let mut lab = NatLab::with_uplink("afxdp", "");
    let (t, _) = tcp_fetch(
        lab.outside.name(),
        OUTSIDE,
        8000,
        lab.c1.name(),
        SocketAddr::from((OUTSIDE, 8000)),
        20 * MB,
    )
    .unwrap();
    assert!(t.exact && t.bytes == 20 * MB, "download: {t:?}");
    let err = lab.stop();
    let [up_rx, up_rx_bytes, _, _] = port_counts(&err, "up0");
    assert!(
        up_rx_bytes / up_rx <= 1514,
        "the fixture: the uplink received MTU-sized frames ({up_rx} frames)"
    );
    let [_, _, pkts, bytes] = port_counts(&err, "c1");
    assert!(
        bytes > 20 * MB,
        "the TAP carried the download: {bytes} bytes"
    );
    let per_frame = bytes / pkts.max(1);
    assert!(
        per_frame > 4000,
        "frames toward the container average {per_frame} bytes ({pkts} frames); counters:\n{err}"
    );
    assert!(report_counter(&err, "c1", "gro_merged") > 0, "{err}");
}

#[test]
fn mapped_host_ports_reach_the_container_and_keep_the_client_address() {
    if skip_unless_root("nat inbound") {
        return;
    }
    let lab = NatLab::new("");
    let (t, seen) = tcp_fetch(
        lab.c1.name(),
        C1,
        80,
        lab.outside.name(),
        SocketAddr::from((EXTERNAL, 8080)),
        10 * MB,
    )
    .unwrap();
    assert!(
        t.exact && t.bytes == 10 * MB,
        "container to outside through 8080: {t:?}"
    );
    assert_eq!(
        seen.ip(),
        std::net::IpAddr::V4(OUTSIDE),
        "container sees the real client"
    );
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
        "outside to container through 8081: {t:?}"
    );
    let (ok, peers) = udp_echo(
        lab.c1.name(),
        C1,
        53,
        lab.outside.name(),
        SocketAddr::from((EXTERNAL, 5353)),
        5,
        0,
    )
    .unwrap();
    assert_eq!(ok, 5, "UDP mapping both ways");
    assert!(peers
        .iter()
        .all(|p| p.ip() == std::net::IpAddr::V4(OUTSIDE)));
}

#[test]
fn hairpin_to_the_mapped_port_works_from_another_container_and_from_itself() {
    if skip_unless_root("nat hairpin") {
        return;
    }
    let lab = NatLab::new("");
    let (t, seen) = tcp_fetch(
        lab.c1.name(),
        C1,
        80,
        lab.c2.name(),
        SocketAddr::from((EXTERNAL, 8080)),
        2 * MB,
    )
    .unwrap();
    assert!(t.exact, "c2 -> 10.99.0.2:8080 -> c1: {t:?}");
    assert_eq!(
        seen.ip(),
        std::net::IpAddr::V4(C2),
        "hairpin keeps the client container's address"
    );
    let (t, seen) = tcp_fetch(
        lab.c1.name(),
        C1,
        80,
        lab.c1.name(),
        SocketAddr::from((EXTERNAL, 8080)),
        2 * MB,
    )
    .unwrap();
    assert!(t.exact, "c1 -> its own mapped port: {t:?}");
    assert_eq!(
        seen.ip(),
        std::net::IpAddr::V4(Ipv4Addr::new(172, 30, 0, 1)),
        "a container reaching its own mapped port sees the gateway"
    );
}

#[test]
fn the_host_keeps_its_own_address_on_the_uplink_while_podswitch_runs() {
    if skip_unless_root("host keeps its NIC") {
        return;
    }
    let lab = NatLab::new("");
    // A TCP service of the host namespace on the kernel's own address.
    let (t, seen) = tcp_fetch(
        lab.host.name(),
        HOST_OWN,
        9000,
        lab.outside.name(),
        SocketAddr::from((HOST_OWN, 9000)),
        MB,
    )
    .unwrap();
    assert!(t.exact, "{t:?}");
    assert_eq!(seen.ip(), std::net::IpAddr::V4(OUTSIDE));
    assert_eq!(ping(lab.outside.name(), HOST_OWN, 2).unwrap().received, 2);
    // And podswitch answers for its own address at the same time.
    assert_eq!(ping(lab.c1.name(), OUTSIDE, 2).unwrap().received, 2);
}

#[test]
fn a_thousand_concurrent_tcp_connections_all_complete_byte_exact() {
    if skip_unless_root("nat 1000 connections") {
        return;
    }
    let lab = NatLab::new("");
    const N: usize = 1000;
    const BYTES: usize = 4096;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn({
        let ns = lab.outside.name().to_string();
        move || {
            in_netns(&ns, move || {
                let l = TcpListener::bind((OUTSIDE, 8100)).unwrap();
                ready_tx.send(()).unwrap();
                let mut handles = Vec::new();
                for _ in 0..N {
                    let (mut s, _) = l.accept().unwrap();
                    handles.push(std::thread::spawn(move || {
                        // Echo: read BYTES, send them back.
                        let mut buf = vec![0u8; BYTES];
                        s.read_exact(&mut buf).unwrap();
                        s.write_all(&buf).unwrap();
                    }));
                }
                for h in handles {
                    h.join().unwrap();
                }
            })
            .unwrap()
        }
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let ok = in_netns(lab.c1.name(), move || {
        // Open all N first, so they are concurrent, then use them.
        let mut socks: Vec<TcpStream> = (0..N)
            .map(|_| {
                let s = TcpStream::connect_timeout(
                    &SocketAddr::from((OUTSIDE, 8100)),
                    Duration::from_secs(10),
                )
                .unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                s
            })
            .collect();
        let mut ok = 0;
        for (i, s) in socks.iter_mut().enumerate() {
            let data: Vec<u8> = (0..BYTES).map(|k| (k * 7 + i) as u8).collect();
            s.write_all(&data).unwrap();
            let mut back = vec![0u8; BYTES];
            s.read_exact(&mut back).unwrap();
            if back == data {
                ok += 1;
            }
        }
        ok
    })
    .unwrap();
    server.join().unwrap();
    assert_eq!(ok, N, "every connection echoed its bytes exactly");
}

#[test]
fn a_full_table_refuses_new_flows_and_keeps_the_established_transfer_going() {
    if skip_unless_root("nat table full") {
        return;
    }
    let mut lab = NatLab::new("[nat]\nmax_entries = 4\n");
    // An established transfer first: a slow download that runs while the
    // table fills.
    let outside = lab.outside.name().to_string();
    let c1 = lab.c1.name().to_string();
    let long = std::thread::spawn(move || {
        tcp_fetch(
            &outside,
            OUTSIDE,
            8200,
            &c1,
            SocketAddr::from((OUTSIDE, 8200)),
            60 * MB,
        )
    });
    let c1 = &lab.c1;
    wait_until(
        "the download to be established through the NAT",
        Duration::from_secs(10),
        || {
            c1.command("ss")
                .args(["-Htn", "state", "established", "dst", "10.99.0.1:8200"])
                .output()
                .is_ok_and(|o| !o.stdout.is_empty())
        },
    );
    // New flows: UDP to many ports fills the remaining entries; later ones
    // are refused.
    let refused = in_netns(lab.c2.name(), || {
        let sock = std::net::UdpSocket::bind(("0.0.0.0", 0)).unwrap();
        for port in 9000..9020u16 {
            let _ = sock.send_to(b"fill", (OUTSIDE, port));
        }
    });
    refused.unwrap();
    let (t, _) = long.join().unwrap().unwrap();
    assert!(
        t.exact && t.bytes == 60 * MB,
        "the established transfer went on: {t:?}"
    );
    let err = lab.stop();
    assert!(
        nat_counter(&err, "table_full") > 0,
        "refused flows counted:\n{err}"
    );
}

#[test]
fn icmp_fragmentation_needed_reaches_the_container_and_pmtud_completes_a_large_transfer() {
    if skip_unless_root("nat pmtud") {
        return;
    }
    let lab = NatLab::new("");
    // A far namespace behind a 1200-byte hop: outside routes between them.
    let far = NetnsGuard::new("psn-f").unwrap();
    lab.outside
        .exec(
            "ip",
            &[
                "link",
                "add",
                "mid0",
                "type",
                "veth",
                "peer",
                "name",
                "far0",
                "netns",
                far.name(),
            ],
        )
        .unwrap();
    lab.outside
        .exec("ip", &["addr", "add", "10.98.0.1/24", "dev", "mid0"])
        .unwrap();
    lab.outside
        .exec("ip", &["link", "set", "mid0", "mtu", "1200", "up"])
        .unwrap();
    lab.outside
        .exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])
        .unwrap();
    far.exec("ip", &["addr", "add", "10.98.0.2/24", "dev", "far0"])
        .unwrap();
    // far keeps 1500: it advertises an MSS of 1460, so only the 1200-byte
    // hop in between can tell the sender to go smaller.
    far.exec("ip", &["link", "set", "far0", "up"]).unwrap();
    far.exec("ip", &["route", "add", "default", "via", "10.98.0.1"])
        .unwrap();
    let far_ip = Ipv4Addr::new(10, 98, 0, 2);
    // Upload from the container: its 1500-byte segments hit the 1200 hop,
    // the router answers "fragmentation needed", NAT translates it back.
    let t = tcp_transfer(far.name(), far_ip, 8300, lab.c1.name(), 8 * MB).unwrap();
    assert!(
        t.exact && t.bytes == 8 * MB,
        "upload through the small hop: {t:?}"
    );
    let cache = std::process::Command::new("ip")
        .args(["-n", lab.c1.name(), "route", "get", "10.98.0.2"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&cache.stdout);
    assert!(
        text.contains("mtu 1200"),
        "the container learned the path MTU: {text}"
    );
}

#[test]
fn malformed_frames_toward_the_gateway_are_counted_and_nat_keeps_working() {
    if skip_unless_root("nat malformed") {
        return;
    }
    let mut lab = NatLab::new("");
    // Learn the gateway MAC first.
    assert_eq!(ping(lab.c1.name(), OUTSIDE, 1).unwrap().received, 1);
    let gw = [0x02, 0x50, 172, 30, 0, 1];
    let me = [0x02, 0x00, 172, 30, 0, 10];
    let ip_hdr = |proto: u8, total: u16| -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&gw);
        f.extend_from_slice(&me);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0x40,
            0,
            64,
            proto,
            0,
            0,
        ]);
        f.extend_from_slice(&[172, 30, 0, 10, 10, 99, 0, 1]);
        f
    };
    // TCP, UDP and ICMP headers cut short (total length says so), and an
    // IPv4 header whose IHL points past the packet.
    let mut frames = Vec::new();
    for proto in [6u8, 17, 1] {
        let mut f = ip_hdr(proto, 24);
        f.extend_from_slice(&[0, 80, 0, 81]);
        frames.push(f);
    }
    let mut bad_ihl = ip_hdr(6, 40);
    bad_ihl[14] = 0x4f;
    bad_ihl.resize(14 + 40, 0);
    frames.push(bad_ihl);
    send_raw_frames(lab.c1.name(), frames);
    // The ping follows the bad frames through c1's TAP: once it is
    // answered, the switch has read (and counted) them.
    assert_eq!(
        ping(lab.c1.name(), OUTSIDE, 2).unwrap().received,
        2,
        "NAT still works"
    );
    let err = lab.stop();
    let c1_line = err
        .lines()
        .find(|l| l.trim_start().starts_with("c1 "))
        .unwrap_or_else(|| panic!("no counters for c1 in:\n{err}"));
    // TCP, UDP and ICMP cut short, and the IHL past the total length.
    assert!(c1_line.contains("truncated=4"), "{c1_line}");
}

/// A counter of the `Ip:` lines of /proc/net/snmp in namespace `ns`.
fn ip_snmp(ns: &str, field: &'static str) -> u64 {
    in_netns(ns, move || {
        let text = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap();
        let mut ip = text.lines().filter(|l| l.starts_with("Ip:"));
        let (names, values) = (ip.next().unwrap(), ip.next().unwrap());
        let i = names.split_whitespace().position(|n| n == field).unwrap();
        values.split_whitespace().nth(i).unwrap().parse().unwrap()
    })
    .unwrap()
}

#[test]
fn a_forwarding_host_kernel_never_routes_the_switchs_frames_and_the_outside_keeps_tso() {
    if skip_unless_root("host kernel leaves the switch's frames alone") {
        return;
    }
    let mut lab = NatLab::new("");
    // Container hosts forward (Docker turns it on). If the kernel took the
    // switch's frames as its own, it would route every frame for 10.99.0.2
    // straight back out of up0.
    in_netns(lab.host.name(), || {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").unwrap()
    })
    .unwrap();
    let forwarded = ip_snmp(lab.host.name(), "ForwDatagrams");
    // With no XDP on up0, the outside's kernel keeps sending 64 KB segments.
    assert!(
        test_support::tso_on(lab.outside.name(), "out0"),
        "the outside keeps TSO while podswitch runs"
    );
    assert_eq!(ping(lab.c1.name(), OUTSIDE, 3).unwrap().received, 3);
    let (t, _) = tcp_fetch(
        lab.outside.name(),
        OUTSIDE,
        8000,
        lab.c1.name(),
        SocketAddr::from((OUTSIDE, 8000)),
        10 * MB,
    )
    .unwrap();
    assert!(t.exact, "download: {t:?}");
    let (t, _) = tcp_fetch(
        lab.c1.name(),
        C1,
        80,
        lab.outside.name(),
        SocketAddr::from((EXTERNAL, 8080)),
        10 * MB,
    )
    .unwrap();
    assert!(t.exact, "through the mapping: {t:?}");
    assert_eq!(ping(lab.outside.name(), EXTERNAL, 3).unwrap().received, 3);
    assert_eq!(
        ip_snmp(lab.host.name(), "ForwDatagrams"),
        forwarded,
        "the host kernel forwarded none of the switch's frames"
    );
    lab.stop();
}
