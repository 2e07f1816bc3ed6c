//! In-place rewrite of addresses, ports and echo ids with incremental
//! checksum updates.
//!
//! RFC 1624 section 3, eqn. 3: "HC' = ~(~HC + ~m + m')". Every changed
//! 16-bit word adds `~m + m'` to a [`Delta`]; the IPv4 header checksum
//! takes the address terms, the TCP/UDP checksum the address terms (its
//! pseudo-header) and the port terms, the ICMP checksum the id term (ICMP
//! has no pseudo-header). Nothing is summed over the payload, so the cost
//! does not depend on the packet size.

use pmd::frame::Offload;
use pmd::wire::checksum::Delta;
use pmd::wire::{Icmpv4Packet, Ipv4Packet, TcpPacket, UdpPacket};

use crate::conntrack::Tuple;
use crate::packet::{Kind, Pkt};

/// What the L4 checksum field of a frame holds.
///
/// The rule for [`L4Csum::PseudoSeed`] (a TAP frame with
/// `needs_csum`): the field holds the folded, uncomplemented sum of the
/// IPv4 pseudo-header only; whoever finishes the checksum later sums the
/// L4 header and payload on top of it. So the address changes update the
/// seed (S' = S + ~m + m'), while port and echo-id changes must not touch
/// it: the final sum reads them from the header. ICMP has no
/// pseudo-header, so its field is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum L4Csum {
    /// A complete checksum (every frame from the uplink, and TAP frames
    /// without `needs_csum`).
    #[default]
    Complete,
    /// Only the pseudo-header seed (`needs_csum` from a TAP port).
    PseudoSeed,
}

impl L4Csum {
    /// The mode a frame's offload state calls for.
    pub fn from_offload(o: &Offload) -> L4Csum {
        if o.needs_csum {
            L4Csum::PseudoSeed
        } else {
            L4Csum::Complete
        }
    }
}

/// A TCP/UDP checksum to store: 0 only means "no checksum" for UDP
/// (RFC 768), so a computed 0 is sent as its equivalent 0xffff.
#[inline]
pub(crate) fn nonzero(c: u16) -> u16 {
    if c == 0 {
        0xffff
    } else {
        c
    }
}

/// Sets the IPv4 source and destination of the header at `l3` and
/// updates its checksum. Returns the address terms, which a pseudo-header
/// checksum needs too.
#[inline]
pub(crate) fn set_addrs(frame: &mut [u8], l3: usize, src: u32, dst: u32) -> Delta {
    Ipv4Packet::new_unchecked(&mut frame[l3..]).replace_addrs(src, dst)
}

/// Which transport header [`set_ports`] rewrites, and whether its
/// checksum is in the buffer (an ICMP error may quote a TCP header only
/// up to its sequence number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ports {
    Tcp { has_check: bool },
    Udp,
}

/// Sets TCP/UDP ports of the header at `at` and updates its checksum: by
/// the address terms `addrs` and the port terms for a complete checksum,
/// by the address terms only for a pseudo-header seed; a zero UDP
/// checksum stays zero. Returns the terms of the 16-bit words that
/// changed (ports and checksum), for a checksum that covers this header.
#[inline]
pub(crate) fn set_ports(
    frame: &mut [u8],
    at: usize,
    ports: Ports,
    old: &Tuple,
    new: &Tuple,
    addrs: Delta,
    csum: L4Csum,
) -> Delta {
    let mut words = Delta::default();
    words.add16(old.sport, new.sport);
    words.add16(old.dport, new.dport);
    let mut d = addrs;
    d.merge(words);
    let update = |c: u16, udp: bool| match csum {
        // RFC 768: "An all zero transmitted checksum value means that the
        // transmitter generated no checksum"; it stays so.
        L4Csum::Complete if udp && c == 0 => None,
        L4Csum::Complete => Some(nonzero(d.apply(c))),
        L4Csum::PseudoSeed => Some(addrs.apply_to_sum(c)),
    };
    let changed = match ports {
        Ports::Udp => {
            let mut u = UdpPacket::new_unchecked(&mut frame[at..]);
            u.set_src_port(new.sport);
            u.set_dst_port(new.dport);
            let c = u.checksum();
            update(c, true).map(|n| {
                u.set_checksum(n);
                (c, n)
            })
        }
        Ports::Tcp { has_check } => {
            let mut t = TcpPacket::new_unchecked(&mut frame[at..]);
            t.set_src_port(new.sport);
            t.set_dst_port(new.dport);
            let c = if has_check { t.checksum() } else { 0 };
            update(c, false).filter(|_| has_check).map(|n| {
                t.set_checksum(n);
                (c, n)
            })
        }
    };
    if let Some((c, n)) = changed {
        words.add16(c, n);
    }
    words
}

/// Sets an ICMP echo id and updates the ICMP checksum (RFC 5508 section
/// 3.1: the identifier is the query's "port").
#[inline]
pub(crate) fn set_echo_id(frame: &mut [u8], at: usize, old: u16, new: u16, csum: L4Csum) -> Delta {
    let mut icmp = Icmpv4Packet::new_unchecked(&mut frame[at..]);
    icmp.set_echo_ident(new);
    let mut words = Delta::default();
    words.add16(old, new);
    if csum == L4Csum::Complete {
        let c = icmp.checksum();
        let mut d = Delta::default();
        d.add16(old, new);
        let n = d.apply(c);
        icmp.set_checksum(n);
        words.add16(c, n);
    }
    words
}

/// Rewrites a parsed packet so its tuple becomes `new`.
#[inline]
pub(crate) fn rewrite(frame: &mut [u8], pkt: &Pkt, new: &Tuple, csum: L4Csum) {
    let a = set_addrs(frame, pkt.l3, new.src, new.dst);
    let at = pkt.l4;
    match pkt.kind {
        Kind::Tcp(_) => {
            let ports = Ports::Tcp { has_check: true };
            set_ports(frame, at, ports, &pkt.tuple, new, a, csum);
        }
        Kind::Udp => {
            set_ports(frame, at, Ports::Udp, &pkt.tuple, new, a, csum);
        }
        Kind::EchoRequest => {
            set_echo_id(frame, at, pkt.tuple.sport, new.sport, csum);
        }
        Kind::EchoReply => {
            set_echo_id(frame, at, pkt.tuple.dport, new.dport, csum);
        }
        Kind::IcmpError | Kind::LaterFragment => {}
    }
}
