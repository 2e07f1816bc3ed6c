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
use pmd::wire::{IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP};

use crate::conntrack::Tuple;
use crate::packet::{icmp, ip, l4, rd16, rd32, wr16, wr32, Kind, Pkt};
use crate::rewrite::{set_addrs, set_echo_id, set_ports, L4Csum};
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
    /// Offset of the quoted L4 checksum when the quote reaches it.
    pub check_at: Option<usize>,
}

/// Reads the packet an ICMP error quotes. RFC 792: the error carries
/// "the internet header plus the first 64 bits of the original
/// datagram's data", so ports (and the echo id) are always there; the
/// TCP checksum only when more was quoted (Linux quotes up to 576 bytes).
pub(crate) fn parse_quoted(frame: &[u8], pkt: &Pkt) -> Result<Quoted, NatDrop> {
    let l3 = pkt.l4 + l4::ICMP_LEN;
    let end = pkt.end;
    if l3 + ip::MIN_LEN > end {
        return Err(NatDrop::Truncated);
    }
    let v = frame[l3];
    if v >> 4 != 4 {
        return Err(NatDrop::Malformed);
    }
    let ihl = (v & 0x0f) as usize * 4;
    if ihl < ip::MIN_LEN {
        return Err(NatDrop::Malformed);
    }
    let at = l3 + ihl;
    if at + 8 > end {
        return Err(NatDrop::Truncated);
    }
    if rd16(frame, l3 + ip::FRAG) & 0x1fff != 0 {
        // A later fragment quotes no ports: nothing to match it with.
        return Err(NatDrop::Unsupported);
    }
    let proto = frame[l3 + ip::PROTO];
    let mut tuple = Tuple {
        src: rd32(frame, l3 + ip::SRC),
        dst: rd32(frame, l3 + ip::DST),
        sport: 0,
        dport: 0,
    };
    let (kind, check_at) = match proto {
        IPPROTO_TCP => {
            tuple.sport = rd16(frame, at + l4::SPORT);
            tuple.dport = rd16(frame, at + l4::DPORT);
            let c = at + l4::TCP_CHECK;
            (Kind::Tcp(Default::default()), (c + 2 <= end).then_some(c))
        }
        IPPROTO_UDP => {
            tuple.sport = rd16(frame, at + l4::SPORT);
            tuple.dport = rd16(frame, at + l4::DPORT);
            (Kind::Udp, Some(at + l4::UDP_CHECK))
        }
        IPPROTO_ICMP => match frame[at + l4::ICMP_TYPE] {
            icmp::ECHO_REQUEST => {
                tuple.sport = rd16(frame, at + l4::ICMP_ID);
                (Kind::EchoRequest, Some(at + l4::ICMP_CHECK))
            }
            icmp::ECHO_REPLY => {
                tuple.dport = rd16(frame, at + l4::ICMP_ID);
                (Kind::EchoReply, Some(at + l4::ICMP_CHECK))
            }
            // No NAT sends errors about errors (RFC 1122 3.2.2).
            _ => return Err(NatDrop::Unsupported),
        },
        _ => return Err(NatDrop::Unsupported),
    };
    Ok(Quoted {
        proto,
        kind,
        l3,
        l4: at,
        tuple,
        check_at,
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
    let mut addrs = Delta::default();
    addrs.add32(q.tuple.src, inner.src);
    addrs.add32(q.tuple.dst, inner.dst);
    msg.merge(addrs);
    wr32(frame, q.l3 + ip::SRC, inner.src);
    wr32(frame, q.l3 + ip::DST, inner.dst);
    let c = rd16(frame, q.l3 + ip::CHECK);
    let n = addrs.apply(c);
    wr16(frame, q.l3 + ip::CHECK, n);
    msg.add16(c, n);

    let words = match q.kind {
        Kind::Tcp(_) => set_ports(
            frame,
            q.l4,
            q.check_at,
            &q.tuple,
            inner,
            addrs,
            L4Csum::Complete,
            false,
        ),
        Kind::Udp => set_ports(
            frame,
            q.l4,
            q.check_at,
            &q.tuple,
            inner,
            addrs,
            L4Csum::Complete,
            true,
        ),
        Kind::EchoRequest => set_echo_id(frame, q.l4, q.tuple.sport, inner.sport, L4Csum::Complete),
        Kind::EchoReply => set_echo_id(frame, q.l4, q.tuple.dport, inner.dport, L4Csum::Complete),
        Kind::IcmpError | Kind::LaterFragment => Delta::default(),
    };
    msg.merge(words);
    let at = pkt.l4 + l4::ICMP_CHECK;
    let c = rd16(frame, at);
    wr16(frame, at, msg.apply(c));
}
