//! The fields NAT reads from a frame, bounds-checked once: after
//! [`Pkt::parse`] every offset the rewrite touches is inside the frame, so
//! the rewrite cannot panic on hostile input.
//!
//! Offsets come from [`pmd::meta::PacketMeta`] (the switch parsed the frame
//! once); this reads the few header bytes it needs and checks the lengths
//! it relies on, since a NAT must not trust a record it did not make.

use pmd::meta::PacketMeta;
use pmd::wire::icmpv4::{self, msg_type};
use pmd::wire::{ipv4, tcp, udp, Icmpv4Packet, Ipv4Packet, TcpPacket, UdpPacket};
use pmd::wire::{ETHERTYPE_IPV4, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP};

use crate::conntrack::Tuple;
use crate::state::TcpFlags;
use crate::verdict::NatDrop;

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
        let hdr = frame
            .get(l3..l3 + ipv4::HEADER_LEN)
            .ok_or(NatDrop::Truncated)?;
        let ip = Ipv4Packet::new_unchecked(hdr);
        if ip.version() != 4 {
            return Err(NatDrop::Malformed);
        }
        let ihl = ip.header_len();
        if ihl < ipv4::HEADER_LEN {
            return Err(NatDrop::Malformed);
        }
        let total = ip.total_len() as usize;
        if total < ihl {
            return Err(NatDrop::Malformed);
        }
        let end = l3 + total;
        if end > frame.len() {
            return Err(NatDrop::Truncated);
        }
        let l4 = l3 + ihl;
        let proto = ip.protocol();
        let later = ip.frag_offset() != 0;
        let mut pkt = Pkt {
            kind: Kind::LaterFragment,
            proto,
            l3,
            l4,
            end,
            tuple: Tuple {
                src: ip.src_addr().into(),
                dst: ip.dst_addr().into(),
                sport: 0,
                dport: 0,
            },
            first_fragment: ip.more_frags() && !later,
            ip_id: ip.ident(),
        };
        if later {
            return Ok(pkt);
        }
        let need = match proto {
            IPPROTO_TCP => tcp::HEADER_LEN,
            IPPROTO_UDP => udp::HEADER_LEN,
            IPPROTO_ICMP => icmpv4::HEADER_LEN,
            _ => return Err(NatDrop::Unsupported),
        };
        let h = frame.get(l4..l4 + need).ok_or(NatDrop::Truncated)?;
        if l4 + need > end {
            return Err(NatDrop::Truncated);
        }
        match proto {
            IPPROTO_TCP => {
                let t = TcpPacket::new_unchecked(h);
                pkt.kind = Kind::Tcp(TcpFlags(t.flags()));
                (pkt.tuple.sport, pkt.tuple.dport) = (t.src_port(), t.dst_port());
            }
            IPPROTO_UDP => {
                let u = UdpPacket::new_unchecked(h);
                pkt.kind = Kind::Udp;
                (pkt.tuple.sport, pkt.tuple.dport) = (u.src_port(), u.dst_port());
            }
            _ => {
                let icmp = Icmpv4Packet::new_unchecked(h);
                pkt.kind = match icmp.msg_type() {
                    msg_type::ECHO_REQUEST => Kind::EchoRequest,
                    msg_type::ECHO_REPLY => Kind::EchoReply,
                    msg_type::DST_UNREACHABLE
                    | msg_type::TIME_EXCEEDED
                    | msg_type::PARAM_PROBLEM => Kind::IcmpError,
                    _ => return Err(NatDrop::Unsupported),
                };
                match pkt.kind {
                    Kind::EchoRequest => pkt.tuple.sport = icmp.echo_ident(),
                    Kind::EchoReply => pkt.tuple.dport = icmp.echo_ident(),
                    _ => {}
                }
            }
        }
        Ok(pkt)
    }
}
