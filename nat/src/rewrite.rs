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

use crate::conntrack::Tuple;
use crate::packet::{ip, l4, rd16, rd32, wr16, wr32, Kind, Pkt};

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
    let mut d = Delta::default();
    d.add32(rd32(frame, l3 + ip::SRC), src);
    d.add32(rd32(frame, l3 + ip::DST), dst);
    wr32(frame, l3 + ip::SRC, src);
    wr32(frame, l3 + ip::DST, dst);
    let c = rd16(frame, l3 + ip::CHECK);
    wr16(frame, l3 + ip::CHECK, d.apply(c));
    d
}

/// Sets TCP/UDP ports and updates the checksum at `check_at`; `udp`
/// keeps a zero checksum zero.
#[inline]
#[allow(clippy::too_many_arguments)]
pub(crate) fn set_ports(
    frame: &mut [u8],
    at: usize,
    check_at: Option<usize>,
    old: &Tuple,
    new: &Tuple,
    addrs: Delta,
    csum: L4Csum,
    udp: bool,
) -> Delta {
    wr16(frame, at + l4::SPORT, new.sport);
    wr16(frame, at + l4::DPORT, new.dport);
    let mut d = addrs;
    d.add16(old.sport, new.sport);
    d.add16(old.dport, new.dport);
    let mut words = Delta::default();
    words.add16(old.sport, new.sport);
    words.add16(old.dport, new.dport);
    let Some(check_at) = check_at else {
        return words;
    };
    let c = rd16(frame, check_at);
    let n = match csum {
        // RFC 768: "An all zero transmitted checksum value means that the
        // transmitter generated no checksum"; it stays so.
        L4Csum::Complete if udp && c == 0 => return words,
        L4Csum::Complete => nonzero(d.apply(c)),
        L4Csum::PseudoSeed => addrs.apply_to_sum(c),
    };
    wr16(frame, check_at, n);
    words.add16(c, n);
    words
}

/// Sets an ICMP echo id and updates the ICMP checksum (RFC 5508 section
/// 3.1: the identifier is the query's "port").
#[inline]
pub(crate) fn set_echo_id(frame: &mut [u8], at: usize, old: u16, new: u16, csum: L4Csum) -> Delta {
    wr16(frame, at + l4::ICMP_ID, new);
    let mut words = Delta::default();
    words.add16(old, new);
    if csum == L4Csum::Complete {
        let c = rd16(frame, at + l4::ICMP_CHECK);
        let mut d = Delta::default();
        d.add16(old, new);
        let n = d.apply(c);
        wr16(frame, at + l4::ICMP_CHECK, n);
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
            set_ports(
                frame,
                at,
                Some(at + l4::TCP_CHECK),
                &pkt.tuple,
                new,
                a,
                csum,
                false,
            );
        }
        Kind::Udp => {
            set_ports(
                frame,
                at,
                Some(at + l4::UDP_CHECK),
                &pkt.tuple,
                new,
                a,
                csum,
                true,
            );
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
