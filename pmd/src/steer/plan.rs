//! What the steering program computes, in Rust: the reference for
//! `bpf/pd_steer.c` and the NAT port slices of the threads.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::wire::ipv4::{self, Ipv4Packet};

/// Most subnets the program checks for east-west traffic.
pub const MAX_SUBNETS: usize = 8;

/// Which side of the switch a port is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The uplink: replies come back here, to the NAT address.
    Outside,
    /// The endpoints (containers' TAPs or veths).
    Inside,
}

/// The NAT of a spread group: its address and its SNAT port range (also
/// the range of ICMP echo ids), split between the threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatSteer {
    pub ip: Ipv4Addr,
    /// First and last port, inclusive.
    pub ports: (u16, u16),
}

/// A NAT port mapping (DNAT): its connections are steered by their
/// remote end on both sides, because the thread that takes the first
/// frame from the outside is the one that translates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappedPort {
    /// IP protocol number (TCP 6, UDP 17).
    pub proto: u8,
    /// The port on the NAT address.
    pub host_port: u16,
    /// The endpoint it leads to.
    pub internal_ip: Ipv4Addr,
    /// The endpoint's port.
    pub internal_port: u16,
}

/// Most mappings the program knows (a hash map's size).
pub const MAX_MAPPED: usize = 4096;

/// How the frames of one side of a group are spread over its threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SteerPlan {
    pub threads: u16,
    pub side: Side,
    pub nat: Option<NatSteer>,
    /// The group's subnets (address, prefix length): traffic between two
    /// addresses in them is east-west and steered symmetrically.
    pub subnets: Vec<(Ipv4Addr, u8)>,
    /// The group's gateways (at most [`MAX_SUBNETS`]): a hairpin that
    /// NAT gave a port of the range comes back to one of them.
    pub gateways: Vec<Ipv4Addr>,
    /// The NAT's port mappings.
    pub mapped: Vec<MappedPort>,
}

/// The thread of a flow keyed by an address and a port (host order):
/// a multiplicative hash whose high half is spread over `threads`.
pub fn mix(ip: u32, port: u16, threads: u16) -> u16 {
    let port = u32::from(port);
    let h = (ip ^ ((port << 16) | port)).wrapping_mul(0x9E37_79B1) >> 16;
    (h % u32::from(threads.max(1))) as u16
}

/// The slice of `range` (inclusive) each of `threads` threads uses for
/// SNAT ports and echo ids: thread t gets `lo + t*chunk ..= min(hi, lo +
/// (t+1)*chunk - 1)`, chunk = ceil(size / threads). A slice past `hi`
/// is empty and comes back as `(1, 0)`; that happens only when the range
/// has at most (threads - 1)² ports.
pub fn split_range(range: (u16, u16), threads: u16) -> Vec<(u16, u16)> {
    let (lo, hi) = (u32::from(range.0), u32::from(range.1));
    let n = u32::from(threads.max(1));
    let chunk = chunk(range, threads);
    (0..n)
        .map(|t| {
            let start = lo + t * chunk;
            let end = hi.min(start + chunk - 1);
            if hi < lo || start > hi {
                (1, 0)
            } else {
                (start as u16, end as u16)
            }
        })
        .collect()
}

/// Ports per thread's slice (at least 1).
pub(super) fn chunk(range: (u16, u16), threads: u16) -> u32 {
    let size = (u32::from(range.1) + 1).saturating_sub(u32::from(range.0));
    size.div_ceil(u32::from(threads.max(1))).max(1)
}

/// What steering reads of an IPv4 header and what follows it, as
/// `pd_steer.c` reads it.
struct V4 {
    proto: u8,
    src: u32,
    dst: u32,
    /// Where the L4 header starts in the frame.
    l4: usize,
    /// TCP/UDP source and destination ports (not a non-first fragment,
    /// and both in the frame).
    ports: Option<(u16, u16)>,
    /// ICMP type and the id field (an echo's), likewise.
    icmp: Option<(u8, u16)>,
    /// The datagram's identity (RFC 791: source, destination, protocol,
    /// identification) when this is one of its fragments.
    fragment: Option<(Fragment, DatagramId)>,
}

/// Which fragment of a datagram a packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fragment {
    /// Offset 0, more to come: it carries the ports.
    First,
    /// Offset above 0: no ports.
    Later,
}

/// Source, destination, protocol and identification of an IPv4 datagram.
type DatagramId = (u32, u32, u8, u16);

/// Most datagrams whose fragments the steering program remembers (an LRU
/// map; the oldest go first).
pub const MAX_FRAGMENTED: usize = 16384;

/// What a steering program remembers of fragmented datagrams: the thread
/// each one's first fragment went to, so its later fragments (which carry
/// no ports) follow it to the thread that holds its connection and the
/// NAT's record of its translation. As `pd_steer_frags` in the program,
/// unbounded here (the comparison test asserts it stays below
/// [`MAX_FRAGMENTED`], where the program's map would start evicting).
#[derive(Debug, Default)]
pub struct FragmentThreads {
    first_went_to: HashMap<DatagramId, u16>,
}

const ETH_HLEN: usize = 14;

/// ICMP types that quote the packet they are about (RFC 792).
const ICMP_ERRORS: [u8; 3] = [3, 11, 12];

fn v4_at(frame: &[u8], at: usize) -> Option<V4> {
    // The program loads the fixed 20 bytes, whatever the header length
    // says, so the view gets exactly those (only fixed fields are read).
    let h = Ipv4Packet::new_unchecked(frame.get(at..at + ipv4::HEADER_LEN)?);
    let ihl = h.header_len();
    if h.version() != 4 || ihl < ipv4::HEADER_LEN {
        return None;
    }
    let later = h.frag_offset() != 0;
    let be16 = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    let l4 = at + ihl;
    let (mut ports, mut icmp) = (None, None);
    // The program loads 4 bytes of TCP/UDP (the ports) and 6 of ICMP
    // (type to id), not whole headers: so does the reference.
    if !later {
        match h.protocol() {
            6 | 17 => {
                ports = frame
                    .get(l4..l4 + 4)
                    .map(|p| (be16(&p[0..2]), be16(&p[2..4])))
            }
            1 => icmp = frame.get(l4..l4 + 6).map(|i| (i[0], be16(&i[4..6]))),
            _ => {}
        }
    }
    let (src, dst) = (u32::from(h.src_addr()), u32::from(h.dst_addr()));
    let fragment = match (later, h.more_frags()) {
        (true, _) => Some(Fragment::Later),
        (false, true) => Some(Fragment::First),
        (false, false) => None,
    }
    .map(|f| (f, (src, dst, h.protocol(), h.ident())));
    Some(V4 {
        proto: h.protocol(),
        src,
        dst,
        l4,
        ports,
        icmp,
        fragment,
    })
}

impl SteerPlan {
    /// The thread an Ethernet frame belongs to, as the steering program
    /// decides it (see the module docs of `pmd::steer` and `pd_steer.c`)
    /// when it has seen no fragment before: a later fragment goes where
    /// its addresses send it. Anything that is not IPv4 goes to thread 0,
    /// as do VLAN-tagged frames and frames too short for an IPv4 header.
    /// An ICMP error goes with the flow of the packet it quotes.
    pub fn thread_of(&self, frame: &[u8]) -> u16 {
        self.thread_remembering(frame, &mut FragmentThreads::default())
    }

    /// [`SteerPlan::thread_of`] for a program that has seen the frames
    /// `seen` remembers: a later fragment goes where its datagram's first
    /// fragment went, if that came first.
    pub fn thread_remembering(&self, frame: &[u8], seen: &mut FragmentThreads) -> u16 {
        let n = self.threads.max(1);
        if n == 1 || frame.get(12..14) != Some(&[0x08, 0x00]) {
            return 0;
        }
        let Some(o) = v4_at(frame, ETH_HLEN) else {
            return 0;
        };
        if let Some((Fragment::Later, id)) = o.fragment {
            if let Some(&t) = seen.first_went_to.get(&id) {
                return t;
            }
        }
        let t = match o.icmp.is_some_and(|(t, _)| ICMP_ERRORS.contains(&t)) {
            true => v4_at(frame, o.l4 + 8).map(|e| self.error_thread(&e, n)),
            false => None,
        }
        .unwrap_or_else(|| self.steer(&o, n, false, 0));
        if let Some((Fragment::First, id)) = o.fragment {
            seen.first_went_to.insert(id, t);
        }
        t
    }

    /// The thread of the flow an ICMP error quotes `e` of: `e` went the
    /// other way, so it is steered as its reply would be.
    fn error_thread(&self, e: &V4, n: u16) -> u16 {
        self.steer(e, n, true, 8)
    }

    /// Steers packet `p`, or its reply when `reversed`. From the inside:
    /// - a hairpin (from a container to a mapped port of the NAT address)
    ///   by its client's address and port, before the rule for mapped
    ///   ports, since the client may send from a mapped port of its own;
    /// - a packet to a gateway with a port of the range, the answer to a
    ///   hairpin that NAT gave that port, by the slice that holds it;
    /// - the packets of a mapped port (source = its endpoint) by their
    ///   remote end: the client, on either side of the switch;
    /// - east-west flows by both ends alike (both directions meet);
    /// - anything else, leaving through NAT, by the container's address
    ///   and port: the thread it lands on picks the NAT port from its own
    ///   slice, and every destination of that address and port gets the
    ///   same one (RFC 4787 endpoint-independent mapping).
    ///
    /// From the outside by where it comes from (the remote end), unless it
    /// goes to the NAT address with a port of the range that is not mapped
    /// (or an echo id, for ICMP type `echo`): then by the slice that holds
    /// it.
    fn steer(&self, p: &V4, n: u16, reversed: bool, echo: u8) -> u16 {
        let (sport, dport) = p.ports.unwrap_or((0, 0));
        let (from, to) = match reversed {
            false => ((p.src, sport), (p.dst, dport)),
            true => ((p.dst, dport), (p.src, sport)),
        };
        match self.side {
            Side::Inside => {
                if let (Some(nat), Some(_)) = (self.nat, p.ports) {
                    if to.0 == u32::from(nat.ip) {
                        if self.mapped_outside(p.proto, to.1) {
                            return mix(from.0, from.1, n);
                        }
                    } else if self.is_gateway(to.0) {
                        if let Some(t) = nat_slice(&nat, to.1, n) {
                            return t;
                        }
                    }
                }
                if p.ports.is_some() && self.mapped_inside(p.proto, from) {
                    mix(to.0, to.1, n)
                } else if self.in_subnets(p.src) && self.in_subnets(p.dst) {
                    mix(p.src ^ p.dst, sport ^ dport, n)
                } else {
                    mix(from.0, from.1, n)
                }
            }
            Side::Outside => {
                let nat = self.nat.filter(|nat| to.0 == u32::from(nat.ip));
                let id = p.icmp.filter(|(t, _)| *t == echo).map(|(_, id)| id);
                let mapped = p.ports.is_some() && self.mapped_outside(p.proto, to.1);
                match (nat, p.ports.map(|_| to.1).or(id)) {
                    (Some(nat), Some(port)) if !mapped => nat_slice(&nat, port, n),
                    _ => None,
                }
                .unwrap_or_else(|| mix(from.0, from.1, n))
            }
        }
    }

    /// `(ip, port)` is the endpoint end of a mapping of `proto`.
    fn mapped_inside(&self, proto: u8, (ip, port): (u32, u16)) -> bool {
        self.mapped
            .iter()
            .take(MAX_MAPPED)
            .any(|m| m.proto == proto && m.internal_port == port && u32::from(m.internal_ip) == ip)
    }

    /// `port` of `proto` on the NAT address is mapped.
    fn mapped_outside(&self, proto: u8, port: u16) -> bool {
        self.mapped
            .iter()
            .take(MAX_MAPPED)
            .any(|m| m.proto == proto && m.host_port == port)
    }

    fn is_gateway(&self, ip: u32) -> bool {
        self.gateways
            .iter()
            .take(MAX_SUBNETS)
            .any(|g| u32::from(*g) == ip)
    }

    fn in_subnets(&self, ip: u32) -> bool {
        self.subnets
            .iter()
            .take(MAX_SUBNETS)
            .any(|&(net, len)| ip & prefix_mask(len) == u32::from(net) & prefix_mask(len))
    }
}

/// The thread whose slice of the NAT range holds port (or echo id) `p`.
fn nat_slice(nat: &NatSteer, p: u16, threads: u16) -> Option<u16> {
    let (lo, hi) = nat.ports;
    (lo..=hi)
        .contains(&p)
        .then(|| (u32::from(p - lo) / chunk(nat.ports, threads)) as u16)
}

/// The netmask of a prefix length (longer than 32 counts as 32).
pub(super) fn prefix_mask(len: u8) -> u32 {
    match len {
        0 => 0,
        l => u32::MAX << (32 - u32::from(l.min(32))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_range_splits_into_contiguous_slices_that_cover_it() {
        assert_eq!(
            split_range((1000, 1999), 2),
            vec![(1000, 1499), (1500, 1999)]
        );
        assert_eq!(split_range((10, 20), 3), vec![(10, 13), (14, 17), (18, 20)]);
        assert_eq!(split_range((5, 5), 1), vec![(5, 5)]);
        // Nine ports in four slices of three: the last is empty.
        assert_eq!(split_range((1, 9), 4), vec![(1, 3), (4, 6), (7, 9), (1, 0)]);
        // The top of the port space does not overflow.
        assert_eq!(
            split_range((65530, 65535), 4),
            vec![(65530, 65531), (65532, 65533), (65534, 65535), (1, 0)]
        );
    }

    fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[14 + 9] = 17;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    /// NAT at 192.0.2.1 with ports 1000-1999 over 4 threads, no subnets,
    /// gateways or mappings.
    fn nat_plan(side: Side) -> SteerPlan {
        SteerPlan {
            threads: 4,
            side,
            nat: Some(NatSteer {
                ip: Ipv4Addr::new(192, 0, 2, 1),
                ports: (1000, 1999),
            }),
            subnets: vec![],
            gateways: vec![],
            mapped: vec![],
        }
    }

    /// The outside and inside plans of `nat_plan` with UDP host port 8080
    /// mapped to 10.0.0.5:`internal_port`, the inside on 10.0.0.0/24.
    fn mapped_plans(internal_port: u16) -> (SteerPlan, SteerPlan) {
        let outside = SteerPlan {
            mapped: vec![MappedPort {
                proto: 17,
                host_port: 8080,
                internal_ip: Ipv4Addr::new(10, 0, 0, 5),
                internal_port,
            }],
            ..nat_plan(Side::Outside)
        };
        let inside = SteerPlan {
            side: Side::Inside,
            subnets: vec![(Ipv4Addr::new(10, 0, 0, 0), 24)],
            ..outside.clone()
        };
        (outside, inside)
    }

    #[test]
    fn a_nat_reply_goes_to_the_thread_whose_slice_holds_its_port() {
        let plan = SteerPlan {
            threads: 2,
            ..nat_plan(Side::Outside)
        };
        let to = |port| plan.thread_of(&udp([198, 51, 100, 7], 80, [192, 0, 2, 1], port));
        assert_eq!((to(1000), to(1499), to(1500), to(1999)), (0, 0, 1, 1));
        // Outside the range, or to another address: by the source.
        let by_src = mix(u32::from_be_bytes([198, 51, 100, 7]), 80, 2);
        assert_eq!(to(2000), by_src);
        assert_eq!(
            plan.thread_of(&udp([198, 51, 100, 7], 80, [192, 0, 2, 2], 1500)),
            by_src
        );
    }

    #[test]
    fn both_directions_of_a_flow_meet_on_one_thread() {
        let nat = Ipv4Addr::new(192, 0, 2, 1);
        let (outside, inside) = mapped_plans(4000);
        let slices = split_range((1000, 1999), 4);
        let mut used = [false; 4];
        for port in 0..500u16 {
            // A mapped port: in by the remote end, out by the same.
            let back = udp([203, 0, 113, 9], port, nat.octets(), 8080);
            let out = udp([10, 0, 0, 5], 4000, [203, 0, 113, 9], port);
            assert_eq!(inside.thread_of(&out), outside.thread_of(&back));
            // A connection of the container's: the thread it lands on
            // translates to its slice, and the reply finds it there.
            let out = udp([10, 0, 0, 5], 5000 + port, [203, 0, 113, 9], 53);
            let t = inside.thread_of(&out);
            used[usize::from(t)] = true;
            let reply = udp([203, 0, 113, 9], 53, nat.octets(), slices[usize::from(t)].0);
            assert_eq!(outside.thread_of(&reply), t);
            // Its other destinations go to the same thread, which keeps
            // the same NAT port for them (endpoint-independent mapping).
            let elsewhere = udp([10, 0, 0, 5], 5000 + port, [198, 51, 100, 7], port);
            assert_eq!(inside.thread_of(&elsewhere), t);
            let east = udp([10, 0, 0, 5], 4001, [10, 0, 0, 6], port);
            let west = udp([10, 0, 0, 6], port, [10, 0, 0, 5], 4001);
            assert_eq!(inside.thread_of(&east), inside.thread_of(&west));
        }
        assert_eq!(used, [true; 4], "new connections spread over every thread");
        // The mapped port inside the range still goes by the remote end.
        let mapped_in_range = SteerPlan {
            mapped: vec![MappedPort {
                host_port: 1500,
                ..outside.mapped[0]
            }],
            ..outside.clone()
        };
        let f = udp([203, 0, 113, 9], 7, nat.octets(), 1500);
        assert_eq!(
            mapped_in_range.thread_of(&f),
            mix(u32::from_be_bytes([203, 0, 113, 9]), 7, 4)
        );
    }

    #[test]
    fn a_hairpin_and_the_answers_to_it_meet_on_one_thread() {
        let nat = Ipv4Addr::new(192, 0, 2, 1);
        let (gateway, target) = ([10, 0, 0, 1], [10, 0, 0, 5]);
        let inside = SteerPlan {
            subnets: vec![(Ipv4Addr::new(10, 0, 0, 0), 24)],
            gateways: vec![gateway.into()],
            mapped: vec![MappedPort {
                proto: 6,
                host_port: 8080,
                internal_ip: target.into(),
                internal_port: 80,
            }],
            ..nat_plan(Side::Inside)
        };
        let slices = split_range((1000, 1999), 4);
        let mut used = [false; 4];
        for port in 0..400u16 {
            let client = [10, 0, 0, 7 + (port % 3) as u8];
            // Keeping the client's address, the target answers it
            // directly: its answer goes where the hairpin went.
            let hairpin = udp(client, 30000 + port, nat.octets(), 8080);
            let mut h = hairpin.clone();
            h[14 + 9] = 6;
            let t = inside.thread_of(&h);
            used[usize::from(t)] = true;
            let mut answer = udp(target, 80, client, 30000 + port);
            answer[14 + 9] = 6;
            assert_eq!(inside.thread_of(&answer), t, "direct answer, port {port}");
            // Translated to the gateway with a port of t's slice (the
            // target reaching its own mapped port): the answer goes by
            // the slice.
            let mut answer = udp(target, 80, gateway, slices[usize::from(t)].0 + port % 50);
            answer[14 + 9] = 6;
            assert_eq!(
                inside.thread_of(&answer),
                t,
                "answer to the gateway, port {port}"
            );
            // UDP to that port is no hairpin (the mapping is TCP): it
            // leaves by its source like any flow through NAT.
            assert_eq!(
                inside.thread_of(&hairpin),
                mix(u32::from_be_bytes(client), 30000 + port, 4)
            );
        }
        assert_eq!(used, [true; 4], "hairpins spread over every thread");
    }

    /// An ICMP error from `from` to `to` quoting `quoted` (an IPv4 frame
    /// as `udp` builds it).
    fn icmp_error(from: [u8; 4], to: [u8; 4], icmp_type: u8, quoted: &[u8]) -> Vec<u8> {
        let mut f = udp(from, 0, to, 0);
        f.truncate(34);
        f[14 + 9] = 1;
        f.extend_from_slice(&[icmp_type, 4, 0, 0, 0, 0, 0x05, 0xdc]);
        f.extend_from_slice(&quoted[14..14 + 28]);
        f
    }

    #[test]
    fn an_icmp_error_goes_to_the_thread_of_the_flow_it_quotes() {
        let nat = Ipv4Addr::new(192, 0, 2, 1);
        // The published port of the DNAT case below.
        let (outside, inside) = mapped_plans(80);
        let (server, router) = ([198, 51, 100, 7], [203, 0, 113, 1]);
        for i in 0..200u16 {
            // A container's flow, translated to port 1000 + 5i: its reply
            // and a router's "fragmentation needed" about it meet.
            let translated = udp(nat.octets(), 1000 + 5 * i, server, 53);
            let reply = udp(server, 53, nat.octets(), 1000 + 5 * i);
            let error = icmp_error(router, nat.octets(), 3, &translated);
            assert_eq!(outside.thread_of(&error), outside.thread_of(&reply));
            // A published port's flow (not in the range): by the client.
            let client = [203, 0, 113, 50 + (i % 100) as u8];
            let answer = udp(nat.octets(), 8080, client, 40000 + i);
            let request = udp(client, 40000 + i, nat.octets(), 8080);
            let error = icmp_error(router, nat.octets(), 11, &answer);
            assert_eq!(outside.thread_of(&error), outside.thread_of(&request));
            // The container refuses the request (DNATed to it): its error
            // goes where the client's packets went.
            let inbound = udp(client, 40000 + i, [10, 0, 0, 5], 80);
            let error = icmp_error([10, 0, 0, 5], client, 3, &inbound);
            assert_eq!(inside.thread_of(&error), outside.thread_of(&request));
            // East-west, either way.
            let east = udp([10, 0, 0, 5], 4000 + i, [10, 0, 0, 6], 53);
            let error = icmp_error([10, 0, 0, 6], [10, 0, 0, 5], 3, &east);
            assert_eq!(inside.thread_of(&error), inside.thread_of(&east));
        }
    }

    #[test]
    fn arp_ipv6_and_vlan_frames_go_to_thread_0() {
        let plan = SteerPlan {
            threads: 4,
            side: Side::Inside,
            nat: None,
            subnets: vec![],
            gateways: vec![],
            mapped: vec![],
        };
        let mut f = udp([1, 2, 3, 4], 5, [6, 7, 8, 9], 10);
        for ethertype in [[0x08, 0x06], [0x86, 0xdd], [0x81, 0x00]] {
            f[12..14].copy_from_slice(&ethertype);
            assert_eq!(plan.thread_of(&f), 0);
        }
    }

    proptest! {
        #[test]
        fn thread_of_never_panics_and_stays_below_the_thread_count(
            frame in proptest::collection::vec(any::<u8>(), 0..80),
            ipv4 in any::<bool>(),
            threads in 0u16..6,
            inside in any::<bool>(),
            lo in any::<u16>(),
            hi in any::<u16>(),
            prefix in 0u8..40,
        ) {
            let mut frame = frame;
            if ipv4 && frame.len() > 14 {
                frame[12] = 8;
                frame[13] = 0;
                frame[14] = 0x40 | (frame[14] & 0xf);
            }
            let plan = SteerPlan {
                threads,
                side: if inside { Side::Inside } else { Side::Outside },
                nat: Some(NatSteer { ip: Ipv4Addr::new(10, 0, 0, 1), ports: (lo, hi) }),
                subnets: vec![(Ipv4Addr::new(10, 0, 0, 0), prefix)],
                gateways: vec![],
                mapped: vec![],
            };
            prop_assert!(plan.thread_of(&frame) < threads.max(1));
            let slices = split_range((lo, hi), threads);
            prop_assert_eq!(slices.len(), usize::from(threads.max(1)));
        }
    }
}
