//! The overlay MTU: an inner frame must fit the uplink MTU after the 50
//! bytes of VXLAN. One that does not is never truncated: an IPv4 packet
//! with DF gets ICMP fragmentation-needed back to its sender (RFC 792,
//! RFC 1191), anything else is dropped and counted.
//!
//! RFC 7348 section 4.3: "VTEPs MUST NOT fragment VXLAN packets." Endpoints
//! get MTU = uplink MTU - 50 (DESIGN.md), so this fires only for a sender
//! that ignores its own MTU (a misconfigured container, a raw socket) or
//! after a change of uplink MTU.

use std::net::Ipv4Addr;

use pmd::meta::PacketMeta;
use pmd::wire::icmpv4::{self, msg_type, CODE_FRAG_NEEDED};
use pmd::wire::{self, ipv4, MacAddr};
use pmd::wire::{EthernetFrame, EthernetRepr, Icmpv4Packet, Ipv4Packet, Ipv4Repr};
use pmd::{Frame, Pool};

use crate::vtep::GatewayAddr;
use crate::vxlan::OUTER_LEN;

/// The largest inner IPv4 packet an uplink of `uplink_mtu` carries.
#[inline]
pub fn inner_mtu(uplink_mtu: u16) -> u16 {
    uplink_mtu.saturating_sub(OUTER_LEN as u16)
}

/// What to do with an inner frame before encapsulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtuVerdict {
    /// It fits: encapsulate.
    Fits,
    /// Too big, IPv4 with DF: answer with fragmentation-needed
    /// ([`build_frag_needed`] / [`frag_needed_in_place`]) and count
    /// `frag_needed`.
    FragNeeded,
    /// Too big, and no ICMP error may or can be sent: drop and count
    /// `too_big`.
    Drop,
}

/// Where the ICMP message starts in the frame built here.
const ICMP_AT: usize = wire::ETH_HDR + ipv4::HEADER_LEN;
/// Bytes of the offending datagram quoted after its header: RFC 792,
/// "the internet header plus the first 64 bits of the original datagram's
/// data".
const QUOTE_DATA: usize = 8;
/// Longest quote: a 60-byte header (IHL 15) plus 8 bytes.
const MAX_QUOTE: usize = 60 + QUOTE_DATA;
/// Length of the message for a quote of `q` bytes.
const fn message_len(q: usize) -> usize {
    ICMP_AT + icmpv4::HEADER_LEN + q
}

/// Checks an inner frame (parsed into `meta`) against the inner MTU
/// (uplink MTU - 50, [`inner_mtu`]). The size checked is the L3 packet: the
/// IPv4 total length, or for other EtherTypes everything after the
/// Ethernet header. A GSO frame is checked by the switch per segment
/// (its `gso_size`), not here.
pub fn check_mtu(frame: &[u8], meta: &PacketMeta, inner_mtu: u16) -> MtuVerdict {
    let l3 = meta.l3_off as usize;
    let end = (meta.frame_len as usize).min(frame.len());
    let l3_len = end.saturating_sub(l3);
    if l3_len <= inner_mtu as usize {
        return MtuVerdict::Fits;
    }
    if meta.ethertype != wire::ETHERTYPE_IPV4 {
        // ICMPv6 Packet Too Big is not built yet: dropped and counted.
        return MtuVerdict::Drop;
    }
    let Some(ip) = frame.get(l3..l3 + ipv4::HEADER_LEN) else {
        return MtuVerdict::Drop;
    };
    if !Ipv4Packet::new_unchecked(ip).dont_frag() {
        // No DF: the sender allows fragmentation, but a VTEP "MUST NOT
        // fragment VXLAN packets" (RFC 7348 section 4.3) and podswitch does
        // not fragment inner packets either; never truncate. Dropped and
        // counted.
        return MtuVerdict::Drop;
    }
    if icmp_error_allowed(frame, meta) {
        MtuVerdict::FragNeeded
    } else {
        MtuVerdict::Drop
    }
}

/// RFC 1122 section 3.2.2: "An ICMP error message MUST NOT be sent as the
/// result of receiving: an ICMP error message, or a datagram destined to an
/// IP broadcast or IP multicast address, or a datagram sent as a link-layer
/// broadcast, or a non-initial fragment, or a datagram whose source address
/// does not define a single host -- e.g., a zero address, a loopback
/// address, a broadcast address, a multicast address, or a Class E
/// address."
fn icmp_error_allowed(frame: &[u8], meta: &PacketMeta) -> bool {
    let src = Ipv4Addr::from(meta.ip_src);
    let dst = Ipv4Addr::from(meta.ip_dst);
    if meta.later_fragment
        || meta.dst_mac.is_multicast()
        || meta.src_mac.is_multicast()
        || dst.is_multicast()
        || dst.is_broadcast()
        || src.is_unspecified()
        || src.is_loopback()
        || src.is_multicast()
        || src.is_broadcast()
        || src.octets()[0] >= 240
    {
        return false;
    }
    if meta.ip_proto == wire::IPPROTO_ICMP {
        let icmp = frame
            .get(meta.l4_off as usize..)
            .map(Icmpv4Packet::new_checked);
        match icmp {
            Some(Ok(icmp)) if !msg_type::is_error(icmp.msg_type()) => {}
            _ => return false,
        }
    }
    true
}

/// Builds ICMP destination-unreachable / fragmentation-needed (type 3,
/// code 4) about the oversized IPv4 frame `inner` (parsed into `meta`)
/// into `out`: from `from` (the network's gateway, or whatever address the
/// switch answers with), to the sender's IP and MAC, with next-hop MTU
/// `next_hop_mtu` (RFC 1191 section 4: "the size in octets of the largest
/// datagram that could be forwarded ... in the low-order 16 bits of the
/// ICMP header field that is labelled 'unused' in the ICMP specification"),
/// quoting the offending IP header and the first 8 bytes of its data
/// (RFC 792). Returns the message length, or `None` when `out` is too
/// small (at most 110 bytes are needed) or `inner` is not IPv4.
pub fn build_frag_needed(
    inner: &[u8],
    meta: &PacketMeta,
    next_hop_mtu: u16,
    from: GatewayAddr,
    out: &mut [u8],
) -> Option<usize> {
    let mut quote = [0u8; MAX_QUOTE];
    let q = quote_of(inner, meta, &mut quote)?;
    write_message(
        &quote[..q],
        meta.src_mac,
        meta.ip_src,
        next_hop_mtu,
        from,
        out,
    )
}

/// [`build_frag_needed`] in the offending frame's own buffer: the frame
/// becomes the ICMP message (no allocation; the switch sends it back to
/// the port it came from). False, and the frame unchanged, when it is not
/// IPv4.
pub fn frag_needed_in_place(
    pool: &mut Pool,
    frame: &mut Frame,
    meta: &PacketMeta,
    next_hop_mtu: u16,
    from: GatewayAddr,
) -> bool {
    let mut quote = [0u8; MAX_QUOTE];
    let Some(q) = quote_of(pool.data(frame), meta, &mut quote) else {
        return false;
    };
    let Some(len) = write_message(
        &quote[..q],
        meta.src_mac,
        meta.ip_src,
        next_hop_mtu,
        from,
        pool.room_mut(frame),
    ) else {
        return false;
    };
    frame.offload = pmd::Offload::default();
    pool.set_len(frame, len)
}

/// Copies the offending IP header plus up to 8 bytes of its data.
fn quote_of(inner: &[u8], meta: &PacketMeta, quote: &mut [u8; MAX_QUOTE]) -> Option<usize> {
    if meta.ethertype != wire::ETHERTYPE_IPV4 {
        return None;
    }
    let l3 = meta.l3_off as usize;
    let end = (meta.frame_len as usize).min(inner.len());
    let ip = inner.get(l3..end)?;
    let ihl = Ipv4Packet::new_checked(ip).ok()?.header_len();
    let q = (ihl + QUOTE_DATA).min(ip.len());
    quote[..q].copy_from_slice(&ip[..q]);
    Some(q)
}

fn write_message(
    quote: &[u8],
    to_mac: MacAddr,
    to_ip: [u8; 4],
    next_hop_mtu: u16,
    from: GatewayAddr,
    out: &mut [u8],
) -> Option<usize> {
    let len = message_len(quote.len());
    let out = out.get_mut(..len)?;
    let (eth, rest) = out.split_at_mut(wire::ETH_HDR);
    let (ip, icmp) = rest.split_at_mut(ipv4::HEADER_LEN);
    EthernetRepr {
        src_addr: from.mac,
        dst_addr: to_mac,
        ethertype: wire::ETHERTYPE_IPV4,
    }
    .emit(&mut EthernetFrame::new_unchecked(eth));
    Ipv4Repr {
        src_addr: from.ip,
        dst_addr: Ipv4Addr::from(to_ip),
        protocol: wire::IPPROTO_ICMP,
        payload_len: icmp.len(),
        ttl: 64,
        // Internetwork control precedence, as Linux's ICMP errors carry.
        dscp_ecn: 0xc0,
        dont_frag: false,
    }
    .emit(&mut Ipv4Packet::new_unchecked(ip));
    let mut icmp = Icmpv4Packet::new_unchecked(icmp);
    icmp.set_msg_type(msg_type::DST_UNREACHABLE);
    icmp.set_msg_code(CODE_FRAG_NEEDED);
    icmp.set_next_hop_mtu(next_hop_mtu);
    icmp.data_mut().copy_from_slice(quote);
    icmp.fill_checksum();
    Some(len)
}
