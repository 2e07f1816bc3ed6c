//! Kernel steering of a network spread over several PMD threads
//! (`pmd::steer`): the program against its Rust reference, a multi-queue
//! TAP and a fan-out group of packet sockets picking the thread it says.
//! Needs root (BPF, namespaces, TAP); every test fails without it.

use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use pmd::afpacket::{ArpDelivery, Bridged, PacketFilter, PacketPort};
use pmd::netns::{in_netns, unique_name, NetnsGuard};
use pmd::steer::{
    mix, FragmentThreads, MappedPort, NatSteer, Side, SteerError, SteerPlan, SteerProgram,
    MAX_FRAGMENTED,
};
use pmd::tap::TapPort;
use pmd::wire::MacAddr;
use pmd::{Frame, Pool, PoolConfig, Port, PortId};
use test_support::{ip, wait_until};

fn skip() -> bool {
    !test_support::require_tun("steering")
}

const NAT_IP: Ipv4Addr = Ipv4Addr::new(10, 66, 0, 1);

fn outside_plan(threads: u16) -> SteerPlan {
    SteerPlan {
        threads,
        side: Side::Outside,
        nat: Some(NatSteer {
            ip: NAT_IP,
            ports: (1000, 1999),
        }),
        subnets: vec![],
        gateways: vec![],
        mapped: vec![],
    }
}

/// A small deterministic generator (xorshift), so a failure is repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, of: &[T]) -> T {
        of[self.below(of.len() as u64) as usize]
    }
}

/// Addresses and ports that matter to the plans below: the NAT address,
/// the range's edges, the subnets, and others.
const ADDRS: [[u8; 4]; 8] = [
    [10, 66, 0, 1],
    [10, 0, 0, 1],
    [10, 66, 0, 2],
    [10, 0, 0, 5],
    [10, 0, 0, 9],
    [10, 1, 7, 3],
    [192, 168, 5, 1],
    [203, 0, 113, 77],
];
const PORTS: [u16; 11] = [0, 80, 999, 1000, 1001, 1499, 1500, 1998, 1999, 2000, 65535];

/// An IPv4 header and 8 bytes of what follows, mostly well-formed, with
/// the fields steering reads drawn from [`ADDRS`] and [`PORTS`]; now and
/// then options, a fragment, a wrong version or length. An ICMP error
/// (when `quote`) quotes another such header.
fn generated_ipv4(r: &mut Rng, quote: bool) -> Vec<u8> {
    let ihl = if r.below(8) == 0 {
        r.pick(&[0u8, 3, 5, 6, 15])
    } else {
        5
    };
    let l4 = usize::from(ihl.max(5)) * 4;
    let mut h: Vec<u8> = (0..l4 + 8).map(|_| r.next() as u8).collect();
    h[0] = if r.below(16) == 0 { 0x65 } else { 0x40 | ihl };
    h[6] = if r.below(6) == 0 {
        r.next() as u8
    } else {
        0x40
    };
    h[7] = if r.below(6) == 0 { r.next() as u8 } else { 0 };
    h[9] = r.pick(&[1u8, 6, 17, 17, 6, 47]);
    // A quoted header is often the switch's own packet (from the NAT
    // address), as the errors about its flows are.
    let src = if !quote && r.below(2) == 0 {
        ADDRS[0]
    } else {
        r.pick(&ADDRS)
    };
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&r.pick(&ADDRS));
    if h[9] == 1 {
        h[l4] = r.pick(&[0u8, 0, 8, 8, 3, 11, 12, 5]);
        h[l4 + 4..l4 + 6].copy_from_slice(&r.pick(&PORTS).to_be_bytes());
        if quote && [3, 11, 12].contains(&h[l4]) && r.below(4) != 0 {
            h.extend(generated_ipv4(r, false));
        }
    } else {
        h[l4..l4 + 2].copy_from_slice(&r.pick(&PORTS).to_be_bytes());
        h[l4 + 2..l4 + 4].copy_from_slice(&r.pick(&PORTS).to_be_bytes());
    }
    h
}

/// An Ethernet frame: mostly IPv4 from [`generated_ipv4`], now and then
/// cut short, sometimes ARP, IPv6 or VLAN-tagged.
fn generated_frame(r: &mut Rng) -> Vec<u8> {
    let mut f: Vec<u8> = (0..12).map(|_| r.next() as u8).collect();
    let ethertype: [u8; 2] = match r.below(10) {
        0 => [0x08, 0x06],
        1 => [0x86, 0xdd],
        2 => [0x81, 0x00],
        _ => [0x08, 0x00],
    };
    f.extend_from_slice(&ethertype);
    f.extend(generated_ipv4(r, true));
    // Cut short now and then, inside the options, the ports or the quoted
    // header. (The kernel's test run refuses a frame whose ethertype's
    // header is not whole: 20 bytes of IPv4, 40 of IPv6.)
    if ethertype != [0x08, 0x00] {
        f.resize(64, 0);
    } else if r.below(8) == 0 {
        let len = 34 + r.below(f.len() as u64 - 34) as usize;
        f.truncate(len);
    }
    f
}

#[test]
fn the_program_picks_the_thread_the_reference_picks_for_thousands_of_generated_frames() {
    if skip() {
        return;
    }
    let subnets = vec![
        (Ipv4Addr::new(10, 0, 0, 0), 24),
        (Ipv4Addr::new(10, 1, 0, 0), 16),
    ];
    // Mappings whose ends are among the generated addresses and ports,
    // one with its host port inside the NAT range.
    let mapped = vec![
        MappedPort {
            proto: 17,
            host_port: 1500,
            internal_ip: Ipv4Addr::new(10, 0, 0, 5),
            internal_port: 80,
        },
        MappedPort {
            proto: 6,
            host_port: 2000,
            internal_ip: Ipv4Addr::new(192, 168, 5, 1),
            internal_port: 999,
        },
    ];
    let plans = [
        outside_plan(2),
        outside_plan(3),
        SteerPlan {
            mapped: mapped.clone(),
            ..outside_plan(2)
        },
        SteerPlan {
            threads: 3,
            side: Side::Inside,
            nat: None,
            subnets: subnets.clone(),
            gateways: vec![],
            mapped: mapped.clone(),
        },
        SteerPlan {
            nat: None,
            ..outside_plan(4)
        },
        SteerPlan {
            threads: 2,
            side: Side::Inside,
            nat: None,
            subnets: subnets.clone(),
            gateways: vec![],
            mapped: vec![],
        },
        SteerPlan {
            threads: 5,
            side: Side::Inside,
            nat: None,
            subnets: subnets.clone(),
            gateways: vec![],
            mapped: vec![],
        },
        // The inside of a NAT with mappings and gateways: hairpins to the
        // mapped ports and their answers to a gateway.
        SteerPlan {
            threads: 3,
            side: Side::Inside,
            subnets,
            gateways: vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 1, 7, 3)],
            mapped: mapped.clone(),
            ..outside_plan(3)
        },
        SteerPlan {
            threads: 1,
            ..outside_plan(1)
        },
    ];
    let mut r = Rng(0x5eed_1234_abcd_0001);
    let mut compared = 0;
    let mut followed = 0;
    for plan in &plans {
        let prog = SteerProgram::load(plan).expect("loading the steering program");
        let mut memory = FragmentThreads::default();
        let mut firsts: Vec<Vec<u8>> = Vec::new();
        let mut seen = vec![0usize; usize::from(plan.threads)];
        for _ in 0..20_000 {
            // Now and then a later fragment of a first one sent before.
            let f = match r.below(6) {
                0 if !firsts.is_empty() => {
                    followed += 1;
                    later_fragment_of(&firsts[r.below(firsts.len() as u64) as usize], &mut r)
                }
                _ => generated_frame(&mut r),
            };
            if is_first_fragment(&f) {
                firsts.push(f.clone());
            }
            let want = plan.thread_remembering(&f, &mut memory);
            let got = prog
                .test_run(&f)
                .unwrap_or_else(|e| panic!("test run of {f:02x?}: {e}"));
            assert_eq!(
                got,
                u32::from(want),
                "plan {plan:?}, frame {f:02x?}: the program says {got}, thread_of {want}"
            );
            seen[usize::from(want)] += 1;
            compared += 1;
        }
        assert!(
            seen.iter().all(|&n| n > 0),
            "every thread gets frames under {plan:?}: {seen:?}"
        );
        // The reference remembers every first fragment; the program's LRU
        // map holds this many before it evicts.
        assert!(firsts.len() < MAX_FRAGMENTED, "{} datagrams", firsts.len());
    }
    assert_eq!(compared, plans.len() * 20_000);
    assert!(
        followed > 10_000,
        "later fragments of known datagrams: {followed}"
    );
}

/// An IPv4 frame whose header says: offset 0, more fragments.
fn is_first_fragment(f: &[u8]) -> bool {
    f.len() >= 34
        && f[12..14] == [0x08, 0x00]
        && f[14] >> 4 == 4
        && f[20] & 0x3f == 0x20
        && f[21] == 0
}

/// A later fragment of the datagram `first` starts: its header with an
/// offset above 0 (the last fragment or not), and bytes that are no ports.
fn later_fragment_of(first: &[u8], r: &mut Rng) -> Vec<u8> {
    let mut f = first[..34].to_vec();
    let offset = 1 + r.below(0x1fff) as u16;
    let more = if r.below(2) == 0 { 0x2000 } else { 0 };
    f[20..22].copy_from_slice(&(offset | more).to_be_bytes());
    f.extend((0..26).map(|_| r.next() as u8));
    f
}

#[test]
fn the_program_is_reconfigured_in_place_and_gone_once_dropped() {
    if skip() {
        return;
    }
    let prog = SteerProgram::load(&outside_plan(2)).expect("load");
    let id = prog.id().expect("program id");
    let reply_to = |port: u16| {
        let mut f = vec![0u8; 60];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[14 + 9] = 17;
        f[26..30].copy_from_slice(&[198, 51, 100, 1]);
        f[30..34].copy_from_slice(&NAT_IP.octets());
        f[34..36].copy_from_slice(&53u16.to_be_bytes());
        f[36..38].copy_from_slice(&port.to_be_bytes());
        f
    };
    assert_eq!(prog.test_run(&reply_to(1600)).unwrap(), 1);
    // A reload moves the range: 1600 is now in the first thread's half.
    let moved = SteerPlan {
        nat: Some(NatSteer {
            ip: NAT_IP,
            ports: (1500, 2499),
        }),
        ..outside_plan(2)
    };
    prog.update(&moved).expect("update");
    assert_eq!(prog.test_run(&reply_to(1600)).unwrap(), 0);
    assert_eq!(prog.test_run(&reply_to(2100)).unwrap(), 1);
    let e = prog.update(&outside_plan(3)).unwrap_err();
    assert!(e.to_string().contains("cannot change from 2 to 3"), "{e}");
    // Too many subnets are refused with the limit, not truncated.
    let nine = SteerPlan {
        subnets: (0..9).map(|i| (Ipv4Addr::new(10, i, 0, 0), 16)).collect(),
        gateways: vec![],
        ..outside_plan(2)
    };
    let e = prog.update(&nine).unwrap_err();
    assert!(matches!(e, SteerError::Plan(_)), "{e}");
    assert!(e.to_string().contains("at most 8"), "{e}");
    assert!(SteerProgram::load(&outside_plan(0)).is_err());
    assert!(
        libbpf_rs::Program::fd_from_id(id).is_ok(),
        "loaded while held"
    );
    drop(prog);
    wait_until(
        "the kernel to free the dropped program",
        Duration::from_secs(5),
        || libbpf_rs::Program::fd_from_id(id).is_err(),
    );
}

/// Reads every port (port i's frames into the i-th list) until `done`
/// says enough arrived, or fails the test after 10 seconds.
fn receive_until<P: Port>(
    pool: &mut Pool,
    ports: &mut [P],
    what: &str,
    done: impl Fn(&[Vec<Vec<u8>>]) -> bool,
) -> Vec<Vec<Vec<u8>>> {
    let mut got = vec![Vec::new(); ports.len()];
    let mut out: Vec<Frame> = Vec::new();
    wait_until(what, Duration::from_secs(10), || {
        for (i, port) in ports.iter_mut().enumerate() {
            port.rx_burst(pool, &mut out, 64);
            for f in out.drain(..) {
                got[i].push(pool.data(&f).to_vec());
                pool.free(f);
            }
        }
        done(&got)
    });
    for port in ports.iter_mut() {
        port.release(pool);
    }
    got
}

/// Opens two spread ports on the switch's end of `wire`, steered by `prog`.
fn open_spread(
    wire: &Wire,
    prog: &SteerProgram,
    id: PortId,
    filter: PacketFilter,
    arp: ArpDelivery,
) -> Vec<PacketPort> {
    let prog_fd = prog.fd().as_raw_fd();
    let dev = wire.dev.clone();
    let ports = in_netns(wire.m.name(), move || {
        // SAFETY: the program outlives this closure (in_netns joins).
        let steer = unsafe { BorrowedFd::borrow_raw(prog_fd) };
        PacketPort::open_spread(&dev, id, filter, 2, steer, arp)
    })
    .unwrap()
    .expect("two spread ports");
    assert_eq!(ports.len(), 2);
    ports
}

fn udp_payload(frame: &[u8]) -> Option<&[u8]> {
    let ihl = usize::from(frame.get(14)? & 0xf) * 4;
    (frame.get(12..14)? == [0x08, 0x00] && *frame.get(14 + 9)? == 17)
        .then(|| frame.get(14 + ihl + 8..))
        .flatten()
}

#[test]
fn a_two_queue_tap_hands_each_frame_to_the_queue_the_inside_plan_picks() {
    if skip() {
        return;
    }
    let plan = SteerPlan {
        threads: 2,
        side: Side::Inside,
        nat: None,
        subnets: vec![(Ipv4Addr::new(10, 77, 0, 0), 24)],
        gateways: vec![],
        mapped: vec![],
    };
    let prog = SteerProgram::load(&plan).expect("load");
    let ns = NetnsGuard::new("pdst").expect("netns");
    let prog_fd = prog.fd().as_raw_fd();
    let mut queues = in_netns(ns.name(), move || {
        let queues = TapPort::create_queues("eth0", PortId(3), 2)?;
        // SAFETY: the program outlives this closure (in_netns joins).
        queues[1].set_steering(unsafe { BorrowedFd::borrow_raw(prog_fd) })?;
        Ok::<_, pmd::tap::TapError>(queues)
    })
    .expect("entering the namespace")
    .expect("a two-queue TAP with the program");
    assert_eq!(queues.len(), 2);
    for args in [
        &["addr", "add", "10.77.0.1/24", "dev", "eth0"][..],
        &["link", "set", "eth0", "up"],
        &["route", "add", "default", "via", "10.77.0.254"],
        &[
            "neigh",
            "add",
            "10.77.0.254",
            "lladdr",
            "02:00:00:77:00:fe",
            "dev",
            "eth0",
        ],
    ] {
        ns.exec("ip", args).expect("setting the namespace up");
    }
    // East-west peers with known MACs, so their frames need no ARP.
    for k in 2..=40 {
        ns.exec(
            "ip",
            &[
                "neigh",
                "add",
                &format!("10.77.0.{k}"),
                "lladdr",
                &format!("02:00:00:77:00:{k:02x}"),
                "dev",
                "eth0",
            ],
        )
        .expect("static neighbour");
    }
    // 300 datagrams: to many outside addresses and ports, and east-west,
    // from a few source ports; each payload says which it is. And one to
    // 10.77.0.99, which the kernel has to ARP for first.
    let sent = in_netns(ns.name(), || {
        let socks: Vec<UdpSocket> = (0..3)
            .map(|_| UdpSocket::bind("10.77.0.1:0").expect("bind"))
            .collect();
        let mut n = 0u32;
        for i in 0..300u32 {
            let dst = if i % 3 == 0 {
                format!("10.77.0.{}:{}", 2 + i % 39, 5000 + i)
            } else {
                format!("198.18.{}.{}:{}", i % 7, 1 + i % 250, 1024 + i * 7)
            };
            socks[(i % 3) as usize]
                .send_to(format!("steer {i}").as_bytes(), dst)
                .expect("send");
            n += 1;
        }
        let _ = socks[0].send_to(b"steer arp", "10.77.0.99:9");
        n
    })
    .unwrap();
    let mut pool = Pool::new(PoolConfig::default()).unwrap();
    let is_arp_for_99 = |f: &Vec<u8>| f[12..14] == [0x08, 0x06] && f[38..42] == [10, 77, 0, 99];
    let got = receive_until(
        &mut pool,
        &mut queues,
        "every datagram and the ARP request to arrive",
        |got| {
            let ours = got
                .iter()
                .flatten()
                .filter(|f| udp_payload(f).is_some_and(|p| p.starts_with(b"steer ")))
                .count();
            ours == sent as usize && got.iter().flatten().any(is_arp_for_99)
        },
    );
    let mut per_queue = [0usize; 2];
    let mut east_west = 0;
    for (q, frames) in got.iter().enumerate() {
        for f in frames {
            if f[12..14] != [0x08, 0x00] {
                assert_eq!(
                    q,
                    0,
                    "a non-IPv4 frame (ethertype {:02x?}) on queue 0",
                    &f[12..14]
                );
                continue;
            }
            if !udp_payload(f).is_some_and(|p| p.starts_with(b"steer ")) {
                continue;
            }
            assert_eq!(
                usize::from(plan.thread_of(f)),
                q,
                "datagram to {:?} arrived on queue {q}",
                &f[30..34]
            );
            per_queue[q] += 1;
            east_west += usize::from(f[30..33] == [10, 77, 0]);
        }
    }
    assert!(
        got[0].iter().any(is_arp_for_99),
        "the ARP request is on queue 0"
    );
    assert!(
        per_queue.iter().all(|&n| n > 20),
        "both queues get their share: {per_queue:?}"
    );
    assert_eq!(east_west, 100);
}

/// An outside peer namespace O whose eth0 is the veth peer of the switch's
/// end `dev` in namespace M.
struct Wire {
    o: NetnsGuard,
    m: NetnsGuard,
    dev: String,
}

impl Wire {
    fn new() -> Wire {
        let m = NetnsGuard::new("pdsm").expect("netns M");
        let o = NetnsGuard::new("pdso").expect("netns O");
        let dev = unique_name("ms");
        ip(&[
            "link",
            "add",
            &dev,
            "netns",
            m.name(),
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            o.name(),
        ])
        .expect("veth pair");
        o.exec("ip", &["link", "set", "eth0", "up"]).unwrap();
        m.exec("ip", &["link", "set", &dev, "up"]).unwrap();
        Wire { o, m, dev }
    }

    /// Sends raw Ethernet frames out of O's eth0.
    fn inject(&self, frames: Vec<Vec<u8>>) {
        in_netns(self.o.name(), move || {
            // SAFETY: plain socket(2); the result is checked.
            let s =
                unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
            assert!(s >= 0, "packet socket: {}", std::io::Error::last_os_error());
            let ifindex = pmd::netdev::ifindex("eth0").expect("eth0");
            for f in frames {
                // SAFETY: sockaddr_ll is plain data.
                let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                addr.sll_family = libc::AF_PACKET as u16;
                addr.sll_ifindex = ifindex as i32;
                addr.sll_halen = 6;
                // SAFETY: `f` and `addr` are live for the call.
                let rc = unsafe {
                    libc::sendto(
                        s,
                        f.as_ptr().cast(),
                        f.len(),
                        0,
                        (&addr as *const libc::sockaddr_ll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    )
                };
                assert_eq!(rc, f.len() as isize, "{}", std::io::Error::last_os_error());
            }
            // SAFETY: `s` is ours.
            unsafe { libc::close(s) };
        })
        .unwrap();
    }
}

const SWITCH_MAC: [u8; 6] = [0x02, 0, 0, 0x66, 0, 1];
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0x66, 0, 0xfe];

/// An IPv4 frame from `src` to `dst` with protocol `proto` and `l4` as its
/// payload (a tag follows in `l4`).
fn ipv4(src: [u8; 4], dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&SWITCH_MAC);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + l4.len()) as u16;
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst.octets());
    let sum = pmd::wire::checksum::checksum(&h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&h);
    f.extend_from_slice(l4);
    f
}

/// TCP (a bare SYN) or UDP from `src`:`sport` to `dst`:`dport`, tagged.
fn l4(proto: u8, src: [u8; 4], sport: u16, dst: Ipv4Addr, dport: u16, tag: u32) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    if proto == 6 {
        p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    } else {
        p.extend_from_slice(&[0, 16, 0, 0]);
    }
    p.extend_from_slice(&tag.to_be_bytes());
    p.extend_from_slice(b"spr!");
    ipv4(src, dst, proto, &p)
}

fn echo_reply(src: [u8; 4], id: u16, tag: u32) -> Vec<u8> {
    let mut p = vec![0, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0, 1]);
    p.extend_from_slice(&tag.to_be_bytes());
    p.extend_from_slice(b"spr!");
    ipv4(src, NAT_IP, 1, &p)
}

/// "Fragmentation needed" from a router to the NAT address about the
/// UDP datagram the switch sent from `sport` to `dst`:53, tagged.
fn frag_needed(sport: u16, dst: [u8; 4], tag: u32) -> Vec<u8> {
    let quoted = l4(17, NAT_IP.octets(), sport, Ipv4Addr::from(dst), 53, 0);
    let mut p = vec![3, 4, 0, 0, 0, 0, 0x05, 0xdc];
    p.extend_from_slice(&quoted[14..14 + 28]);
    p.extend_from_slice(&tag.to_be_bytes());
    p.extend_from_slice(b"spr!");
    ipv4([203, 0, 113, 254], NAT_IP, 1, &p)
}

fn arp_request_for(target: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&[10, 66, 0, 254]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

/// The tag of a frame built above (the 4 bytes before "spr!").
fn tag_of(frame: &[u8]) -> Option<u32> {
    let at = frame.windows(4).rposition(|w| w == b"spr!")?;
    let t = frame.get(at - 4..at)?;
    Some(u32::from_be_bytes([t[0], t[1], t[2], t[3]]))
}

fn spread_uplink_steers_like_the_outside_plan(arp: ArpDelivery) {
    let wire = Wire::new();
    let plan = outside_plan(2);
    let prog = SteerProgram::load(&plan).expect("load");
    let filter = PacketFilter::Owned {
        ip: Some(NAT_IP),
        mac: Some(MacAddr(SWITCH_MAC)),
        vxlan_ports: vec![],
        bridged: Bridged::default(),
    };
    let mut ports = open_spread(&wire, &prog, PortId(1), filter, arp);

    // What each tagged frame should do: Some(port) or None (not ours).
    let mut frames = Vec::new();
    let mut expect: Vec<Option<usize>> = Vec::new();
    let mut add = |f: Vec<u8>, to: Option<usize>| {
        expect.push(to);
        frames.push(f);
    };
    // Not the switch's address: its filter keeps it from every port.
    add(
        l4(
            17,
            [198, 51, 100, 9],
            53,
            Ipv4Addr::new(10, 66, 0, 2),
            1200,
            0,
        ),
        None,
    );
    let mut tag = 1;
    for (i, dport) in (1000..=1999).step_by(37).enumerate() {
        let src = [198, 51, 100, (i % 200) as u8 + 1];
        let owner = usize::from(dport >= 1500);
        for proto in [6, 17] {
            add(
                l4(proto, src, 53 + i as u16, NAT_IP, dport, tag),
                Some(owner),
            );
            tag += 1;
        }
        add(echo_reply(src, dport, tag), Some(owner));
        tag += 1;
        add(frag_needed(dport, src, tag), Some(owner));
        tag += 1;
    }
    // Not in the NAT range (a published port, say): by the source.
    for i in 0..60u16 {
        let src = [203, 0, 113, (i * 3 % 250) as u8 + 1];
        let sport = 40000 + i * 97;
        let by_src = mix(u32::from_be_bytes(src), sport, 2);
        add(
            l4(6 + 11 * (i % 2) as u8, src, sport, NAT_IP, 8080, tag),
            Some(by_src.into()),
        );
        tag += 1;
    }
    let tagged = expect.iter().filter(|e| e.is_some()).count();
    frames.push(arp_request_for(NAT_IP));
    wire.inject(frames);

    let mut pool = Pool::new(PoolConfig::default()).unwrap();
    let arps_wanted = if arp == ArpDelivery::Every { 2 } else { 1 };
    let is_our_arp = |f: &Vec<u8>| f[12..14] == [0x08, 0x06] && f[38..42] == NAT_IP.octets();
    let got = receive_until(
        &mut pool,
        &mut ports,
        "every tagged frame and the ARP request to arrive",
        |got| {
            let tagged_got = got.iter().flatten().filter(|f| tag_of(f).is_some()).count();
            let arps = got.iter().flatten().filter(|f| is_our_arp(f)).count();
            tagged_got >= tagged && arps >= arps_wanted
        },
    );
    let mut per_port = [0usize; 2];
    for (p, frames_got) in got.iter().enumerate() {
        for f in frames_got {
            let Some(t) = tag_of(f) else { continue };
            let want = expect[t as usize];
            assert_eq!(
                want,
                Some(p),
                "tagged frame {t} ({:02x?}) on port {p}",
                &f[..42]
            );
            assert_eq!(usize::from(plan.thread_of(f)), p, "thread_of agrees");
            per_port[p] += 1;
        }
    }
    assert_eq!(per_port.iter().sum::<usize>(), tagged, "each frame once");
    assert!(per_port.iter().all(|&n| n > 20), "{per_port:?}");
    let arps: Vec<usize> = got
        .iter()
        .map(|fs| fs.iter().filter(|f| is_our_arp(f)).count())
        .collect();
    match arp {
        ArpDelivery::Every => assert_eq!(arps, [1, 1], "every port gets the ARP request"),
        ArpDelivery::Steered => assert_eq!(arps, [1, 0], "only port 0 gets the ARP request"),
    }
}

#[test]
fn a_spread_uplink_hands_nat_replies_to_the_owner_of_their_port_and_arp_to_every_port() {
    if skip() {
        return;
    }
    spread_uplink_steers_like_the_outside_plan(ArpDelivery::Every);
}

#[test]
fn a_spread_uplink_with_steered_arp_hands_arp_to_port_0_only() {
    if skip() {
        return;
    }
    spread_uplink_steers_like_the_outside_plan(ArpDelivery::Steered);
}

#[test]
fn a_one_queue_tap_is_an_ordinary_tap() {
    if skip() {
        return;
    }
    let ns = NetnsGuard::new("pdsq").expect("netns");
    let queues = in_netns(ns.name(), || TapPort::create_queues("eth0", PortId(2), 1))
        .unwrap()
        .expect("one queue");
    assert_eq!(queues.len(), 1);
    // A second open of a single-queue TAP is refused (EBUSY): it was made
    // without IFF_MULTI_QUEUE, like `create`.
    let again = in_netns(ns.name(), || TapPort::create("eth0", PortId(2))).unwrap();
    assert!(again.is_err(), "a single-queue TAP takes no second queue");
}

#[test]
fn a_spread_container_veth_takes_every_frame_and_steers_it_by_source_or_symmetrically_east_west() {
    if skip() {
        return;
    }
    // O is the container here; M holds the switch's end of its veth.
    let wire = Wire::new();
    let plan = SteerPlan {
        threads: 2,
        side: Side::Inside,
        nat: None,
        subnets: vec![(Ipv4Addr::new(10, 0, 0, 0), 24)],
        gateways: vec![],
        mapped: vec![],
    };
    let prog = SteerProgram::load(&plan).expect("load");
    let mut ports = open_spread(
        &wire,
        &prog,
        PortId(4),
        PacketFilter::All,
        ArpDelivery::Steered,
    );
    let me = [10, 0, 0, 5];
    let mut frames = Vec::new();
    let mut tag = 0;
    for i in 0..80u16 {
        // To the outside, and both ways of an east-west pair (as if the
        // peer's reply came in on this veth too).
        let far = Ipv4Addr::new(198, 18, (i % 5) as u8, (i % 250) as u8 + 1);
        frames.push(l4(6 + 11 * (i % 2) as u8, me, 30000 + i, far, 443 + i, tag));
        let peer = Ipv4Addr::new(10, 0, 0, 6 + (i % 30) as u8);
        frames.push(l4(17, me, 4000 + i, peer, 53, tag + 1));
        frames.push(l4(
            17,
            peer.octets(),
            53,
            Ipv4Addr::from(me),
            4000 + i,
            tag + 2,
        ));
        tag += 3;
    }
    frames.push(arp_request_for(Ipv4Addr::new(10, 0, 0, 1)));
    // What the switch itself sends out of the veth must not come back in
    // through the group: sent before the injected frames, it would be
    // queued before them.
    let mut pool = Pool::new(PoolConfig::default()).unwrap();
    let ours = l4(17, [10, 0, 0, 6], 53, Ipv4Addr::from(me), 4000, u32::MAX);
    let mut out = vec![pool.alloc_copy(&ours).expect("a buffer")];
    ports[1].tx_burst(&mut pool, &mut out);
    assert_eq!(ports[1].counters().snapshot().tx_packets, 1, "sent");
    wire.inject(frames);
    let is_arp = |f: &Vec<u8>| f[12..14] == [0x08, 0x06];
    let got = receive_until(
        &mut pool,
        &mut ports,
        "every frame and the ARP request to arrive",
        |got| {
            let tagged = got.iter().flatten().filter(|f| tag_of(f).is_some()).count();
            tagged >= tag as usize && got.iter().flatten().any(is_arp)
        },
    );
    let mut port_of = vec![None; tag as usize];
    for (p, fs) in got.iter().enumerate() {
        for f in fs {
            if let Some(t) = tag_of(f) {
                assert_ne!(t, u32::MAX, "the switch's own frame came back on port {p}");
                assert_eq!(usize::from(plan.thread_of(f)), p, "frame {t} on port {p}");
                assert!(port_of[t as usize].replace(p).is_none(), "frame {t} twice");
            }
        }
    }
    for pair in port_of.chunks(3) {
        assert_eq!(
            pair[1], pair[2],
            "both ways of an east-west flow on one port"
        );
    }
    let per_port: Vec<usize> = (0..2)
        .map(|p| port_of.iter().filter(|&&q| q == Some(p)).count())
        .collect();
    assert!(per_port.iter().all(|&n| n > 30), "{per_port:?}");
    assert!(got[0].iter().any(is_arp), "ARP on port 0");
    assert!(
        got[1].iter().all(|f| f[12..14] == [0x08, 0x00]),
        "nothing but IPv4 (no ARP, no IPv6) on port 1"
    );
}
