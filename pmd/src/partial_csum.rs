//! Partial TCP/UDP checksums from ports that lost the sender's checksum
//! state.
//!
//! A sender with checksum offload (every veth by default, a kernel vxlan
//! device for its inner frame) writes only the pseudo-header sum into the
//! TCP/UDP checksum field and leaves the rest to whoever transmits
//! (Linux's CHECKSUM_PARTIAL; `__tcp_v4_send_check` stores
//! `~tcp_v4_check(len, saddr, daddr, 0)`, the folded, uncomplemented
//! pseudo-header sum). A TAP says so in its virtio-net header; AF_XDP on a
//! veth says nothing. So a field that equals the seed is taken as partial:
//! the frame gets `needs_csum` with `csum_start`/`csum_offset`, exactly as
//! a TAP would have reported it, and the rest of the switch (NAT's seed
//! update, software completion toward ports without offload, the
//! virtio-net header toward a TAP) handles it as any partial frame.
//!
//! Guessing wrong costs nothing: when a complete checksum happens to equal
//! the seed S, the data sums to D with ~(S + D) = S, and completing it
//! stores ~(D + S) = S again; only the IPv4 fragments of a larger datagram
//! (whose pseudo-header length is not this frame's) are never guessed.

use crate::frame::{Frame, Offload};
use crate::meta::PacketMeta;
use crate::pool::Pool;
use crate::wire::checksum::{fold, pseudo_header_v6};
use crate::wire::{
    ipv4, ipv6, tcp, udp, Ipv4Packet, Ipv6Packet, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPPROTO_TCP,
    IPPROTO_UDP,
};

/// Looks at a frame from a port that lost the checksum state (`off.csum_lost`)
/// and records a partial TCP/UDP checksum as `needs_csum`. `meta` is the
/// frame's parse (IPv4 and IPv6 without extension headers are looked at;
/// anything else has no L4 checksum the switch would forward differently).
/// `csum_lost` stays set: it describes the port, and a frame inside this
/// one (VXLAN) lost its state too.
#[inline]
pub fn resolve(packet: &[u8], meta: &PacketMeta, off: &mut Offload) {
    if !off.csum_lost || off.needs_csum || off.gso_type != 0 {
        return;
    }
    let found = match meta.ethertype {
        ETHERTYPE_IPV4 => seed_v4(packet, meta),
        ETHERTYPE_IPV6 => seed_v6(packet, meta.l3_off as usize),
        _ => None,
    };
    if let Some((start, offset)) = found {
        off.needs_csum = true;
        off.csum_start = start;
        off.csum_offset = offset;
    }
}

/// [`resolve`] on a frame of `pool`: frames whose port kept the checksum
/// state (TAP, memory ports) cost one test of a flag, not a look at
/// their bytes.
#[inline]
pub fn resolve_frame(pool: &Pool, frame: &mut Frame, meta: &PacketMeta) {
    if frame.offload.csum_lost && !frame.offload.needs_csum {
        let mut off = frame.offload;
        resolve(pool.data(frame), meta, &mut off);
        frame.offload = off;
    }
}

/// Where the checksum field of a TCP or UDP header at `l4` is, when it
/// holds `seed` (a UDP checksum of 0 means "none", RFC 768).
#[inline]
fn matches_seed(packet: &[u8], proto: u8, l4: usize, seed: u16) -> Option<(u16, u16)> {
    let offset = match proto {
        IPPROTO_TCP => tcp::CHECKSUM_OFFSET,
        IPPROTO_UDP => udp::CHECKSUM_OFFSET,
        _ => return None,
    };
    let at = l4 + offset;
    let stored = u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]);
    (stored == seed && !(proto == IPPROTO_UDP && stored == 0)).then_some((l4 as u16, offset as u16))
}

fn seed_v4(packet: &[u8], meta: &PacketMeta) -> Option<(u16, u16)> {
    if !matches!(meta.ip_proto, IPPROTO_TCP | IPPROTO_UDP) || meta.later_fragment {
        return None;
    }
    let l3 = meta.l3_off as usize;
    let ip = Ipv4Packet::new_unchecked(packet.get(l3..l3 + ipv4::HEADER_LEN)?);
    if ip.more_frags() {
        return None;
    }
    let total = ip.total_len();
    let l4 = meta.l4_off as usize;
    let l4_len = total.checked_sub((l4 - l3) as u16)?;
    // The four address halves summed as integers: `pseudo_header_v4`
    // loops over byte slices: 10 instructions more per frame (callgrind).
    let (src, dst) = (
        u32::from_be_bytes(meta.ip_src),
        u32::from_be_bytes(meta.ip_dst),
    );
    let acc = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff);
    let seed = fold(acc + meta.ip_proto as u32 + l4_len as u32);
    matches_seed(packet, meta.ip_proto, l4, seed)
}

fn seed_v6(packet: &[u8], l3: usize) -> Option<(u16, u16)> {
    let ip = Ipv6Packet::new_checked(packet.get(l3..)?).ok()?;
    let proto = ip.next_header();
    if !matches!(proto, IPPROTO_TCP | IPPROTO_UDP) {
        return None;
    }
    let len = ip.payload_len() as u32;
    let seed = fold(pseudo_header_v6(&ip.src_addr(), &ip.dst_addr(), proto, len));
    matches_seed(packet, proto, l3 + ipv6::HEADER_LEN, seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta;
    use crate::wire::checksum::{self, finish_l4, pseudo_header_v4};

    /// An Ethernet/IPv4/`proto` frame with `payload`, its L4 checksum
    /// either complete or left partial as Linux leaves it.
    fn v4_frame(proto: u8, payload: &[u8], partial: bool) -> Vec<u8> {
        let l4_hdr = if proto == IPPROTO_TCP { 20 } else { 8 };
        let l4_len = l4_hdr + payload.len();
        let mut f = vec![0u8; 14 + 20 + l4_len];
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        f[20] = 0x40; // DF
        f[22] = 64;
        f[23] = proto;
        f[26..30].copy_from_slice(&[10, 99, 0, 1]);
        f[30..34].copy_from_slice(&[10, 99, 0, 2]);
        let ipc = checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&ipc.to_be_bytes());
        f[34..36].copy_from_slice(&40000u16.to_be_bytes());
        f[36..38].copy_from_slice(&80u16.to_be_bytes());
        let check_at = if proto == IPPROTO_TCP {
            f[46] = 5 << 4;
            f[47] = 0x18;
            34 + 16
        } else {
            f[38..40].copy_from_slice(&(l4_len as u16).to_be_bytes());
            34 + 6
        };
        f[34 + l4_hdr..].copy_from_slice(payload);
        let seed = pseudo_header_v4([10, 99, 0, 1], [10, 99, 0, 2], proto, l4_len as u16);
        let value = if partial {
            fold(seed)
        } else {
            finish_l4(checksum::sum(seed, &f[34..]))
        };
        f[check_at..check_at + 2].copy_from_slice(&value.to_be_bytes());
        f
    }

    fn resolved(frame: &[u8]) -> Offload {
        let m = meta::parse(frame).unwrap();
        let mut off = Offload {
            csum_lost: true,
            ..Offload::default()
        };
        resolve(frame, &m, &mut off);
        off
    }

    #[test]
    fn a_tcp_frame_whose_checksum_is_the_seed_is_marked_partial_at_its_tcp_checksum() {
        let off = resolved(&v4_frame(IPPROTO_TCP, b"hello", true));
        assert!(off.needs_csum);
        assert_eq!((off.csum_start, off.csum_offset), (34, 16));
    }

    #[test]
    fn completing_a_marked_frame_gives_the_checksum_a_sender_would_have_computed() {
        let mut partial = v4_frame(IPPROTO_UDP, b"some payload!", true);
        let complete = v4_frame(IPPROTO_UDP, b"some payload!", false);
        assert_ne!(partial, complete, "the fixture leaves the checksum partial");
        let off = resolved(&partial);
        crate::gso::finish_checksum(&mut partial, &off).unwrap();
        assert_eq!(partial, complete);
    }

    #[test]
    fn a_complete_checksum_is_left_alone() {
        for proto in [IPPROTO_TCP, IPPROTO_UDP] {
            let off = resolved(&v4_frame(proto, b"hello", false));
            assert!(!off.needs_csum, "proto {proto}");
        }
    }

    #[test]
    fn a_udp_frame_without_a_checksum_stays_without_one() {
        let mut f = v4_frame(IPPROTO_UDP, b"x", false);
        f[40..42].copy_from_slice(&[0, 0]);
        assert!(!resolved(&f).needs_csum);
    }

    #[test]
    fn a_first_fragment_is_never_guessed_partial() {
        let mut f = v4_frame(IPPROTO_UDP, b"fragment", true);
        f[20] = 0x20; // MF
        let ipc = checksum::checksum(&{
            let mut h = f[14..34].to_vec();
            h[10..12].copy_from_slice(&[0, 0]);
            h
        });
        f[24..26].copy_from_slice(&ipc.to_be_bytes());
        assert!(!resolved(&f).needs_csum);
    }

    #[test]
    fn an_ipv6_tcp_frame_with_the_seed_is_marked_partial() {
        let payload = b"v6 data";
        let l4_len = 20 + payload.len();
        let mut f = vec![0u8; 14 + 40 + l4_len];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        f[14] = 0x60;
        f[18..20].copy_from_slice(&(l4_len as u16).to_be_bytes());
        f[20] = IPPROTO_TCP;
        f[21] = 64;
        f[22..38].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f[38..54].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f[66] = 5 << 4;
        f[74..].copy_from_slice(payload);
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&f[22..38]);
        dst.copy_from_slice(&f[38..54]);
        let seed = fold(pseudo_header_v6(&src, &dst, IPPROTO_TCP, l4_len as u32));
        f[70..72].copy_from_slice(&seed.to_be_bytes());
        let off = resolved(&f);
        assert!(off.needs_csum);
        assert_eq!((off.csum_start, off.csum_offset), (54, 16));
    }

    #[test]
    fn a_frame_from_a_port_that_kept_its_checksum_state_is_not_looked_at() {
        let f = v4_frame(IPPROTO_TCP, b"hello", true);
        let m = meta::parse(&f).unwrap();
        let mut off = Offload::default();
        resolve(&f, &m, &mut off);
        assert!(!off.needs_csum);
    }
}
