//! Many `nat` networks on one AF_XDP uplink, end to end, as root: network
//! `n{i}` is 172.20.{i}.0/24 with gateway .1 and one container (its own
//! namespace, a TAP endpoint) at .10; tcp host port 8000+i of the uplink
//! address 10.99.0.2 maps to that container's port 80. podswitch runs in a
//! "host" namespace of the test; the uplink veth leads to an "outside"
//! namespace (10.99.0.1/24) whose end keeps its default offloads. Every
//! namespace is the test's own and is removed by a guard, also when the
//! test fails.

mod common;

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use pmd::netns::{in_netns, unique_name, NetnsGuard};
use switch::lab::traffic::{ping, tcp_fetch};

const OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const EXTERNAL: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const KB: u64 = 1024;

fn endpoint(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(172, 20, i as u8, 10)
}

fn gateway(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(172, 20, i as u8, 1)
}

fn mapped_port(i: usize) -> u16 {
    8000 + i as u16
}

struct NetsLab {
    daemon: Option<Daemon>,
    // Kept for their guards: the namespaces live as long as the lab.
    _host: NetnsGuard,
    outside: NetnsGuard,
    containers: Vec<NetnsGuard>,
}

impl NetsLab {
    /// `n` nat networks on uplink up0, one container each.
    fn new(n: usize) -> NetsLab {
        let host = NetnsGuard::new("psm-h").unwrap();
        let outside = NetnsGuard::new("psm-o").unwrap();
        uplink_veth(&host, &outside, "10.99.0.1/24");
        let containers: Vec<NetnsGuard> =
            (0..n).map(|_| NetnsGuard::new("psm-c").unwrap()).collect();
        let mut text = format!(
            r#"
[switch]
control = "{}"

[[port]]
name = "up0"
iface = "up0"
ip = "10.99.0.2/24"
gateway = "10.99.0.1"
"#,
            control_path()
        );
        for (i, c) in containers.iter().enumerate() {
            text += &format!(
                r#"
[[network]]
name = "n{i}"
mode = "nat"
subnet = "172.20.{i}.0/24"
uplink = "up0"

[[endpoint]]
name = "c{i}"
network = "n{i}"
netns = "{ns}"
ip = "{ip}"

[[port_mapping]]
protocol = "tcp"
host_port = {hp}
endpoint = "c{i}"
port = 80
"#,
                ns = c.name(),
                ip = endpoint(i),
                hp = mapped_port(i),
            );
        }
        let daemon = Daemon::start_in(Some(host.name()), &["run"], &text);
        NetsLab {
            daemon: Some(daemon),
            _host: host,
            outside,
            containers,
        }
    }

    fn c(&self, i: usize) -> &str {
        self.containers[i].name()
    }

    /// Stops podswitch and returns its stderr (final counters).
    fn stop(&mut self) -> String {
        self.daemon.take().unwrap().stop_clean()
    }
}

impl Drop for NetsLab {
    fn drop(&mut self) {
        // The daemon goes before the namespaces it uses.
        self.daemon.take();
    }
}

/// A raw ICMP socket of the namespace the calling thread is in.
struct Icmp(i32);

impl Icmp {
    fn open() -> Icmp {
        // SAFETY: socket(2) with constant arguments; the descriptor is
        // owned by the returned value and closed in its Drop.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 20_000,
        };
        // SAFETY: setsockopt on the descriptor owned here, with a pointer
        // to a live timeval of the size given.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        assert_eq!(rc, 0, "SO_RCVTIMEO: {}", std::io::Error::last_os_error());
        Icmp(fd)
    }

    fn send_echo(&self, dst: Ipv4Addr, id: u16, seq: u16) {
        let mut m = [0u8; 30];
        m[0] = 8;
        m[4..6].copy_from_slice(&id.to_be_bytes());
        m[6..8].copy_from_slice(&seq.to_be_bytes());
        m[8..].copy_from_slice(b"podswitch nat networks");
        let c = pmd::wire::checksum::checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(dst).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: sendto on the descriptor owned here, with a live buffer
        // and a sockaddr_in of the sizes given.
        let n = unsafe {
            libc::sendto(
                self.0,
                m.as_ptr() as *const libc::c_void,
                m.len(),
                0,
                &sa as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        assert_eq!(
            n,
            m.len() as isize,
            "sendto {dst}: {}",
            std::io::Error::last_os_error()
        );
    }

    /// The next echo reply carrying `id`, as (its source, its sequence);
    /// `None` when the receive timeout passes first.
    fn reply(&self, id: u16) -> Option<(Ipv4Addr, u16)> {
        let mut buf = [0u8; 2048];
        loop {
            // SAFETY: recv into a live buffer of the size given, on the
            // descriptor owned here.
            let n =
                unsafe { libc::recv(self.0, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
            if n < 0 {
                return None;
            }
            // A raw socket hands over the IPv4 header too.
            let f = &buf[..n as usize];
            let ihl = (f[0] & 15) as usize * 4;
            let Some(icmp) = f.get(ihl..ihl + 8) else {
                continue;
            };
            let rid = u16::from_be_bytes([icmp[4], icmp[5]]);
            if icmp[0] == 0 && rid == id {
                let src = Ipv4Addr::new(f[12], f[13], f[14], f[15]);
                return Some((src, u16::from_be_bytes([icmp[6], icmp[7]])));
            }
        }
    }
}

impl Drop for Icmp {
    fn drop(&mut self) {
        // SAFETY: closes the descriptor this value owns, once.
        unsafe { libc::close(self.0) };
    }
}

/// An ICMP echo id unique to this call.
fn fresh_id() -> u16 {
    let name = unique_name("");
    name.bytes()
        .fold(0u16, |h, b| h.wrapping_mul(31).wrapping_add(b as u16))
}

/// From inside `netns`: one echo request to each of `silent`, then to
/// each of `answering`, and waits (at most 5 s, asking again every 250 ms)
/// until each of `answering` replied. Returns every address that replied.
/// The switch takes a port's frames in order, so once the answers are in,
/// every request to `silent` has been dealt with.
fn probe(netns: &str, silent: Vec<Ipv4Addr>, answering: Vec<Ipv4Addr>) -> BTreeSet<Ipv4Addr> {
    in_netns(netns, move || {
        let sock = Icmp::open();
        let id = fresh_id();
        let all: Vec<Ipv4Addr> = silent.iter().chain(&answering).copied().collect();
        for (seq, dst) in all.iter().enumerate() {
            sock.send_echo(*dst, id, seq as u16);
        }
        let mut replied = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut again = Instant::now() + Duration::from_millis(250);
        while !answering.iter().all(|a| replied.contains(a)) && Instant::now() < deadline {
            if let Some((src, _)) = sock.reply(id) {
                replied.insert(src);
            }
            if Instant::now() > again {
                again += Duration::from_millis(250);
                for (k, a) in answering.iter().enumerate() {
                    if !replied.contains(a) {
                        sock.send_echo(*a, id, (all.len() + k) as u16);
                    }
                }
            }
        }
        replied
    })
    .unwrap()
}

/// Every container pings the outside through its network's NAT.
fn each_reaches_the_outside(lab: &NetsLab, n: usize) {
    for i in 0..n {
        assert_eq!(
            ping(lab.c(i), OUTSIDE, 1).unwrap().received,
            1,
            "c{i} pings the outside"
        );
    }
}

/// From every container, pings every other network's endpoint and
/// gateway (none may answer) and its own gateway, the outside and the
/// uplink address (all must). Returns the number of requests that had to
/// stay unanswered.
fn none_reaches_another_network(lab: &NetsLab, n: usize) -> u64 {
    let mut silent_total = 0;
    for i in 0..n {
        let silent: Vec<Ipv4Addr> = (0..n)
            .filter(|j| *j != i)
            .flat_map(|j| [endpoint(j), gateway(j)])
            .collect();
        silent_total += silent.len() as u64;
        let answering = vec![gateway(i), OUTSIDE, EXTERNAL];
        let replied = probe(lab.c(i), silent, answering.clone());
        assert_eq!(
            replied,
            answering.into_iter().collect::<BTreeSet<_>>(),
            "c{i}: only its gateway, the outside and the uplink address answer"
        );
    }
    silent_total
}

#[test]
fn two_nat_networks_on_one_uplink_each_reach_the_outside_and_not_each_other() {
    if skip_unless_root("two nat networks") {
        return;
    }
    let mut lab = NetsLab::new(2);
    each_reaches_the_outside(&lab, 2);
    let pings = none_reaches_another_network(&lab, 2);
    // TCP too: c1 listens on port 80, and c0 may not connect to it (nor
    // c1 to c0's); a reachable address would accept at once.
    let listeners: Vec<_> = (0..2)
        .map(|i| {
            let ip = endpoint(i);
            in_netns(lab.c(i), move || TcpListener::bind((ip, 80)).unwrap()).unwrap()
        })
        .collect();
    for (from, to) in [(0, 1), (1, 0)] {
        let target = SocketAddr::from((endpoint(to), 80));
        let r = in_netns(lab.c(from), move || {
            TcpStream::connect_timeout(&target, Duration::from_millis(1500)).map(|_| ())
        })
        .unwrap();
        let err = r.expect_err("a TCP connection across networks");
        assert!(
            matches!(err.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock),
            "c{from} -> {target}: not refused, never answered: {err}"
        );
    }
    drop(listeners);
    let err = lab.stop();
    let isolated = report_counter(&err, "nat up0 (n0, n1)", "isolated");
    assert!(
        isolated >= pings + 2,
        "every ping and SYN across was dropped as isolated ({isolated} < {pings} + 2):\n{err}"
    );
}

#[test]
fn sixteen_nat_networks_on_one_uplink_each_reach_the_outside_and_not_each_other() {
    if skip_unless_root("sixteen nat networks") {
        return;
    }
    let mut lab = NetsLab::new(16);
    each_reaches_the_outside(&lab, 16);
    let silent = none_reaches_another_network(&lab, 16);
    let err = lab.stop();
    assert_eq!(
        silent,
        16 * 15 * 2,
        "fixture: every other endpoint and gateway"
    );
    assert_eq!(
        report_counter(&err, "nat up0", "isolated"),
        silent,
        "each request across networks was dropped once, as isolated:\n{err}"
    );
}

/// From the outside, host port 8000+i reaches c{i}:80 for every network,
/// byte-exact, and the container sees the real client.
fn a_mapping_into_each_network_is_reached_from_outside(n: usize) {
    let lab = NetsLab::new(n);
    for i in 0..n {
        let (t, seen) = tcp_fetch(
            lab.c(i),
            endpoint(i),
            80,
            lab.outside.name(),
            SocketAddr::from((EXTERNAL, mapped_port(i))),
            64 * KB,
        )
        .unwrap_or_else(|e| panic!("10.99.0.2:{} -> c{i}:80: {e:#}", mapped_port(i)));
        assert!(t.exact, "10.99.0.2:{} -> c{i}: {t:?}", mapped_port(i));
        assert_eq!(seen.ip(), IpAddr::V4(OUTSIDE), "c{i} sees the real client");
    }
}

#[test]
fn a_port_mapping_into_each_of_two_networks_is_reached_from_outside() {
    if skip_unless_root("mappings into two networks") {
        return;
    }
    a_mapping_into_each_network_is_reached_from_outside(2);
}

#[test]
fn a_port_mapping_into_each_of_sixteen_networks_is_reached_from_outside() {
    if skip_unless_root("mappings into sixteen networks") {
        return;
    }
    a_mapping_into_each_network_is_reached_from_outside(16);
}

#[test]
fn a_port_mapped_into_another_network_is_reached_through_that_networks_gateway() {
    if skip_unless_root("mapping across networks") {
        return;
    }
    let lab = NetsLab::new(2);
    // c0 reaches c1's published port on the uplink address, as it would
    // reach any host's; c1 sees its own gateway as the client, so no
    // address of n0 enters n1.
    let (t, seen) = tcp_fetch(
        lab.c(1),
        endpoint(1),
        80,
        lab.c(0),
        SocketAddr::from((EXTERNAL, mapped_port(1))),
        256 * KB,
    )
    .unwrap();
    assert!(t.exact, "c0 -> 10.99.0.2:8001 -> c1: {t:?}");
    assert_eq!(seen.ip(), IpAddr::V4(gateway(1)), "c1 sees n1's gateway");
    // While c1's own address stays unreachable from c0.
    let replied = probe(lab.c(0), vec![endpoint(1)], vec![gateway(0)]);
    assert!(!replied.contains(&endpoint(1)), "{replied:?}");
}

#[test]
fn the_uplink_address_answers_ping_within_its_rate_limit() {
    if skip_unless_root("uplink ping") {
        return;
    }
    let mut lab = NetsLab::new(1);
    assert_eq!(
        ping(lab.outside.name(), EXTERNAL, 3).unwrap().received,
        3,
        "the outside pings podswitch's own address"
    );
    // A flood: far more requests at once than the burst allows. Then one
    // more, asked again until it is answered (a token comes back every
    // 10 ms): replies leave in order, so the flood's are all in by then.
    const FLOOD: u16 = 300;
    let (flood_replies, asked) = in_netns(lab.outside.name(), || {
        let sock = Icmp::open();
        let id = fresh_id();
        let start = Instant::now();
        for seq in 0..FLOOD {
            sock.send_echo(EXTERNAL, id, seq);
        }
        let mut flood_replies = 0u64;
        let mut asked = u64::from(FLOOD);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut last_ask = None;
        loop {
            assert!(Instant::now() < deadline, "the last request was never answered");
            if last_ask.is_none_or(|t: Instant| t.elapsed() > Duration::from_millis(50)) {
                sock.send_echo(EXTERNAL, id, FLOOD);
                asked += 1;
                last_ask = Some(Instant::now());
            }
            match sock.reply(id) {
                Some((_, seq)) if seq < FLOOD => flood_replies += 1,
                Some(_) => break,
                None => {}
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let bound = 50 + (100.0 * secs) as u64 + 1;
        assert!(
            (40..=bound).contains(&flood_replies),
            "{flood_replies} of {FLOOD} answered in {secs:.3} s: the burst (50) and the rate (100/s) bound it"
        );
        (flood_replies, asked)
    })
    .unwrap();
    let err = lab.stop();
    let line = "uplink up0";
    let (replies, limited) = (
        report_counter(&err, line, "echo_replies"),
        report_counter(&err, line, "echo_limited"),
    );
    assert_eq!(
        replies,
        3 + flood_replies + 1,
        "every reply sent was received:\n{err}"
    );
    assert_eq!(
        replies + limited,
        3 + asked,
        "every request counted:\n{err}"
    );
    assert!(
        report_counter(&err, "up0", "rate_limited") == limited,
        "the port counts the same drops:\n{err}"
    );
}
