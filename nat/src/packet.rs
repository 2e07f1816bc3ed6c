//! The fields NAT reads from a frame, bounds-checked once: after
//! [`Pkt::parse`] every offset the rewrite touches is inside the frame, so
//! the rewrite cannot panic on hostile input.
//!
//! Offsets come from [`pmd::meta::PacketMeta`] (the switch parsed the frame
//! once); this reads the few header bytes it needs and checks the lengths
//! it relies on, since a NAT must not trust a record it did not make.

use pmd::meta::PacketMeta;
use pmd::wire::{ETHERTYPE_IPV4, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP};

use crate::conntrack::Tuple;
use crate::state::TcpFlags;
use crate::verdict::NatDrop;

/// IPv4 header field offsets from the start of the header.
pub(crate) mod ip {
    pub const TOTAL_LEN: usize = 2;
    pub const ID: usize = 4;
    pub const FRAG: usize = 6;
    pub const PROTO: usize = 9;
    pub const CHECK: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
    pub const MIN_LEN: usize = 20;
}

/// TCP/UDP/ICMP field offsets from the start of the L4 header.
pub(crate) mod l4 {
    pub const SPORT: usize = 0;
    pub const DPORT: usize = 2;
    pub const TCP_FLAGS: usize = 13;
    pub const TCP_CHECK: usize = 16;
    pub const TCP_MIN: usize = 20;
    pub const UDP_CHECK: usize = 6;
    pub const UDP_LEN: usize = 8;
    pub const ICMP_TYPE: usize = 0;
    pub const ICMP_CHECK: usize = 2;
    pub const ICMP_ID: usize = 4;
    pub const ICMP_LEN: usize = 8;
}

/// ICMP types NAT handles.
pub(crate) mod icmp {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACH: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAM_PROBLEM: u8 = 12;
}

#[inline]
pub(crate) fn rd16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}

#[inline]
pub(crate) fn wr16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn rd32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

#[inline]
pub(crate) fn wr32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_be_bytes());
}

/// What kind of packet, as far as NAT cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Tcp(TcpFlags),
    Udp,
    /// ICMP echo request: the id is the tuple's source port.
    EchoRequest,
    /// ICMP echo reply: the id is the tuple's destination port.
    EchoReply,
    /// Destination unreachable, time exceeded or parameter problem.
    IcmpError,
    /// An IPv4 fragment other than the first: no L4 header.
    LaterFragment,
}

/// A frame's NAT-relevant fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pkt {
    pub kind: Kind,
    pub proto: u8,
    pub l3: usize,
    pub l4: usize,
    /// End of the IPv4 datagram (`l3 + total length`).
    pub end: usize,
    pub tuple: Tuple,
    /// The first fragment of a fragmented datagram (MF set, offset 0).
    pub first_fragment: bool,
    pub ip_id: u16,
}

impl Pkt {
    /// Reads and bounds-checks the IPv4 and L4 headers of `frame`.
    pub fn parse(frame: &[u8], meta: &PacketMeta) -> Result<Pkt, NatDrop> {
        if meta.ethertype != ETHERTYPE_IPV4 {
            return Err(NatDrop::Malformed);
        }
        let l3 = meta.l3_off as usize;
        let hdr = frame.get(l3..l3 + ip::MIN_LEN).ok_or(NatDrop::Truncated)?;
        if hdr[0] >> 4 != 4 {
            return Err(NatDrop::Malformed);
        }
        let ihl = (hdr[0] & 0x0f) as usize * 4;
        if ihl < ip::MIN_LEN {
            return Err(NatDrop::Malformed);
        }
        let total = rd16(hdr, ip::TOTAL_LEN) as usize;
        if total < ihl {
            return Err(NatDrop::Malformed);
        }
        let end = l3 + total;
        if end > frame.len() {
            return Err(NatDrop::Truncated);
        }
        let l4 = l3 + ihl;
        let frag = rd16(hdr, ip::FRAG);
        let proto = hdr[ip::PROTO];
        let mut pkt = Pkt {
            kind: Kind::LaterFragment,
            proto,
            l3,
            l4,
            end,
            tuple: Tuple {
                src: rd32(hdr, ip::SRC),
                dst: rd32(hdr, ip::DST),
                sport: 0,
                dport: 0,
            },
            first_fragment: frag & 0x2000 != 0 && frag & 0x1fff == 0,
            ip_id: rd16(hdr, ip::ID),
        };
        if frag & 0x1fff != 0 {
            return Ok(pkt);
        }
        let need = match proto {
            IPPROTO_TCP => l4::TCP_MIN,
            IPPROTO_UDP => l4::UDP_LEN,
            IPPROTO_ICMP => l4::ICMP_LEN,
            _ => return Err(NatDrop::Unsupported),
        };
        let h = frame.get(l4..l4 + need).ok_or(NatDrop::Truncated)?;
        if l4 + need > end {
            return Err(NatDrop::Truncated);
        }
        pkt.kind = match proto {
            IPPROTO_TCP => Kind::Tcp(TcpFlags(h[l4::TCP_FLAGS])),
            IPPROTO_UDP => Kind::Udp,
            _ => match h[l4::ICMP_TYPE] {
                icmp::ECHO_REQUEST => Kind::EchoRequest,
                icmp::ECHO_REPLY => Kind::EchoReply,
                icmp::DEST_UNREACH | icmp::TIME_EXCEEDED | icmp::PARAM_PROBLEM => Kind::IcmpError,
                _ => return Err(NatDrop::Unsupported),
            },
        };
        match pkt.kind {
            Kind::Tcp(_) | Kind::Udp => {
                pkt.tuple.sport = rd16(h, l4::SPORT);
                pkt.tuple.dport = rd16(h, l4::DPORT);
            }
            Kind::EchoRequest => pkt.tuple.sport = rd16(h, l4::ICMP_ID),
            Kind::EchoReply => pkt.tuple.dport = rd16(h, l4::ICMP_ID),
            Kind::IcmpError | Kind::LaterFragment => {}
        }
        Ok(pkt)
    }
}
