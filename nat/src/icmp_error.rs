//! ICMP errors about translated flows (RFC 5508 section 4, "ICMP Error
//! Packet Handling").
//!
//! RFC 5508 section 4, REQ-3 (its translation steps): "a) Revert the IP
//! and transport headers of the embedded IP packet to their original
//! form, using the matching mapping; and b) Leave the ICMP Error type and
//! code unchanged". The outer header is translated too: its destination
//! becomes the flow's sender, and an error that a container sends leaves
//! from the external address.
//!
//! Path MTU discovery depends on this: fragmentation-needed (type 3 code
//! 4) is one of the translated types and its next-hop MTU is left alone.
//!
//! REQ-3 also says an error whose ICMP checksum fails SHOULD be dropped.
//! Here the checksum is updated incrementally like every other rewrite,
//! so a bad one stays bad and the receiver drops it; that keeps this path
//! free of a sum over the quoted bytes.

use pmd::wire::checksum::Delta;
use pmd::wire::icmpv4::{self, msg_type};
use pmd::wire::{ipv4, tcp, Icmpv4Packet, Ipv4Packet, TcpPacket, UdpPacket};
use pmd::wire::{IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP};

use crate::conntrack::Tuple;
use crate::packet::{Kind, Pkt};
use crate::rewrite::{set_addrs, set_echo_id, set_ports, L4Csum, Ports};
use crate::verdict::NatDrop;

/// The packet quoted in an ICMP error.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quoted {
    pub proto: u8,
    pub kind: Kind,
    pub l3: usize,
    pub l4: usize,
    /// The quoted tuple as it stands in the error.
    pub tuple: Tuple,
    /// True when the quote reaches the L4 checksum.
    pub has_check: bool,
}

/// Bytes of the datagram's data an ICMP error always quotes (RFC 792).
const QUOTED_DATA: usize = 8;

/// Reads the packet an ICMP error quotes. RFC 792: the error carries
/// "the internet header plus the first 64 bits of the original
/// datagram's data", so ports (and the echo id) are always there; the
/// TCP checksum only when more was quoted (Linux quotes up to 576 bytes).
pub(crate) fn parse_quoted(frame: &[u8], pkt: &Pkt) -> Result<Quoted, NatDrop> {
    let l3 = pkt.l4 + icmpv4::HEADER_LEN;
    let end = pkt.end;
    if l3 + ipv4::HEADER_LEN > end {
        return Err(NatDrop::Truncated);
    }
    let ip = Ipv4Packet::new_unchecked(&frame[l3..end]);
    if ip.version() != 4 {
        return Err(NatDrop::Malformed);
    }
    let ihl = ip.header_len();
    if ihl < ipv4::HEADER_LEN {
        return Err(NatDrop::Malformed);
    }
    let at = l3 + ihl;
    if at + QUOTED_DATA > end {
        return Err(NatDrop::Truncated);
    }
    if ip.frag_offset() != 0 {
        // A later fragment quotes no ports: nothing to match it with.
        return Err(NatDrop::Unsupported);
    }
    let proto = ip.protocol();
    let mut tuple = Tuple {
        src: ip.src_addr().into(),
        dst: ip.dst_addr().into(),
        sport: 0,
        dport: 0,
    };
    // Only the first 8 bytes are known to be there: the views read
    // nothing beyond them unless `has_check` says so.
    let l4 = &frame[at..end];
    let (kind, has_check) = match proto {
        IPPROTO_TCP => {
            let t = TcpPacket::new_unchecked(l4);
            (tuple.sport, tuple.dport) = (t.src_port(), t.dst_port());
            let reaches = l4.len() >= tcp::CHECKSUM_OFFSET + 2;
            (Kind::Tcp(Default::default()), reaches)
        }
        IPPROTO_UDP => {
            let u = UdpPacket::new_unchecked(l4);
            (tuple.sport, tuple.dport) = (u.src_port(), u.dst_port());
            (Kind::Udp, true)
        }
        IPPROTO_ICMP => {
            let icmp = Icmpv4Packet::new_unchecked(l4);
            match icmp.msg_type() {
                msg_type::ECHO_REQUEST => {
                    tuple.sport = icmp.echo_ident();
                    (Kind::EchoRequest, true)
                }
                msg_type::ECHO_REPLY => {
                    tuple.dport = icmp.echo_ident();
                    (Kind::EchoReply, true)
                }
                // No NAT sends errors about errors (RFC 1122 3.2.2).
                _ => return Err(NatDrop::Unsupported),
            }
        }
        _ => return Err(NatDrop::Unsupported),
    };
    Ok(Quoted {
        proto,
        kind,
        l3,
        l4: at,
        tuple,
        has_check,
    })
}

/// Rewrites an ICMP error: the outer addresses to `outer_src`/`outer_dst`,
/// the quoted packet to `inner` (its IPv4 checksum and L4 checksum
/// included), and the ICMP checksum by every quoted word that changed.
pub(crate) fn rewrite_error(
    frame: &mut [u8],
    pkt: &Pkt,
    q: &Quoted,
    outer_src: u32,
    outer_dst: u32,
    inner: &Tuple,
) {
    set_addrs(frame, pkt.l3, outer_src, outer_dst);

    // Words of the ICMP message that change, for its checksum.
    let mut msg = Delta::default();
    let mut quoted = Ipv4Packet::new_unchecked(&mut frame[q.l3..]);
    let c = quoted.checksum();
    let addrs = quoted.replace_addrs(inner.src, inner.dst);
    msg.merge(addrs);
    msg.add16(c, quoted.checksum());

    let words = match q.kind {
        Kind::Tcp(_) => {
            let ports = Ports::Tcp {
                has_check: q.has_check,
            };
            set_ports(frame, q.l4, ports, &q.tuple, inner, addrs, L4Csum::Complete)
        }
        Kind::Udp => set_ports(
            frame,
            q.l4,
            Ports::Udp,
            &q.tuple,
            inner,
            addrs,
            L4Csum::Complete,
        ),
        Kind::EchoRequest => set_echo_id(frame, q.l4, q.tuple.sport, inner.sport, L4Csum::Complete),
        Kind::EchoReply => set_echo_id(frame, q.l4, q.tuple.dport, inner.dport, L4Csum::Complete),
        Kind::IcmpError | Kind::LaterFragment => Delta::default(),
    };
    msg.merge(words);
    let mut icmp = Icmpv4Packet::new_unchecked(&mut frame[pkt.l4..]);
    let c = icmp.checksum();
    icmp.set_checksum(msg.apply(c));
}
