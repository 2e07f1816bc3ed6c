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
use pmd::wire::{self, checksum, MacAddr};
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

/// Field positions of the message built here, from the frame start.
mod field {
    pub type Field = core::ops::Range<usize>;
    pub const ETH_DST: Field = 0..6;
    pub const ETH_SRC: Field = 6..12;
    pub const ETH_TYPE: Field = 12..14;
    pub const IP: Field = 14..34;
    pub const IP_VER_IHL: usize = 14;
    pub const IP_TOS: usize = 15;
    pub const IP_LEN: Field = 16..18;
    pub const IP_ID: Field = 18..20;
    pub const IP_FLAGS_FRAG: Field = 20..22;
    pub const IP_TTL: usize = 22;
    pub const IP_PROTO: usize = 23;
    pub const IP_CHECK: Field = 24..26;
    pub const IP_SRC: Field = 26..30;
    pub const IP_DST: Field = 30..34;
    /// The ICMP message, from here to the end.
    pub const ICMP: usize = 34;
    pub const ICMP_TYPE: usize = 34;
    pub const ICMP_CODE: usize = 35;
    pub const ICMP_CHECK: Field = 36..38;
    /// RFC 1191: the low 16 bits of the word RFC 792 calls "unused".
    pub const ICMP_UNUSED: Field = 38..40;
    pub const ICMP_NEXT_HOP_MTU: Field = 40..42;
    pub const ICMP_QUOTE: usize = 42;

    /// Offsets inside an IPv4 header.
    pub const IPV4_FLAGS_FRAG: Field = 6..8;
}

const ICMP_DEST_UNREACHABLE: u8 = 3;
const ICMP_FRAG_NEEDED: u8 = 4;
/// IPv4 DF.
const IPV4_DF: u16 = 0x4000;
/// Bytes of the offending datagram quoted after its header: RFC 792,
/// "the internet header plus the first 64 bits of the original datagram's
/// data".
const QUOTE_DATA: usize = 8;
/// Longest quote: a 60-byte header (IHL 15) plus 8 bytes.
const MAX_QUOTE: usize = 60 + QUOTE_DATA;
/// Length of the message for a quote of `q` bytes.
const fn message_len(q: usize) -> usize {
    field::ICMP_QUOTE + q
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
    let Some(flags) = frame.get(l3 + field::IPV4_FLAGS_FRAG.start..l3 + field::IPV4_FLAGS_FRAG.end)
    else {
        return MtuVerdict::Drop;
    };
    if u16::from_be_bytes([flags[0], flags[1]]) & IPV4_DF == 0 {
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
        // Destination unreachable, source quench, redirect, time exceeded,
        // parameter problem: the ICMP error types.
        match frame.get(meta.l4_off as usize) {
            Some(3 | 4 | 5 | 11 | 12) | None => return false,
            _ => {}
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
    let ihl = (*ip.first()? & 0x0f) as usize * 4;
    if ihl < 20 || ihl > ip.len() {
        return None;
    }
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
    out[field::ETH_DST].copy_from_slice(&to_mac.0);
    out[field::ETH_SRC].copy_from_slice(&from.mac.0);
    out[field::ETH_TYPE].copy_from_slice(&wire::ETHERTYPE_IPV4.to_be_bytes());
    out[field::IP_VER_IHL] = 0x45;
    // Internetwork control precedence, as Linux's ICMP errors carry.
    out[field::IP_TOS] = 0xc0;
    out[field::IP_LEN].copy_from_slice(&((len - wire::ETH_HDR) as u16).to_be_bytes());
    out[field::IP_ID].fill(0);
    out[field::IP_FLAGS_FRAG].fill(0);
    out[field::IP_TTL] = 64;
    out[field::IP_PROTO] = wire::IPPROTO_ICMP;
    out[field::IP_CHECK].fill(0);
    out[field::IP_SRC].copy_from_slice(&from.ip.octets());
    out[field::IP_DST].copy_from_slice(&to_ip);
    let c = checksum::checksum(&out[field::IP]);
    out[field::IP_CHECK].copy_from_slice(&c.to_be_bytes());
    out[field::ICMP_TYPE] = ICMP_DEST_UNREACHABLE;
    out[field::ICMP_CODE] = ICMP_FRAG_NEEDED;
    out[field::ICMP_CHECK].fill(0);
    out[field::ICMP_UNUSED].fill(0);
    out[field::ICMP_NEXT_HOP_MTU].copy_from_slice(&next_hop_mtu.to_be_bytes());
    out[field::ICMP_QUOTE..].copy_from_slice(quote);
    let c = checksum::checksum(&out[field::ICMP..]);
    out[field::ICMP_CHECK].copy_from_slice(&c.to_be_bytes());
    Some(len)
}
