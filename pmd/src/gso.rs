//! Software checksum completion and segmentation for frames that leave
//! through a port without offloads (see notes/datapath-probes.md, probe 2).
//!
//! A TAP with vnet headers hands the switch TCP segments of up to 64 KB
//! (`gso_type` TCPv4/TCPv6, `gso_size` = MSS) and frames whose L4 checksum
//! holds only the pseudo-header seed (`needs_csum`). Between two such ports
//! the frames pass unchanged; toward an AF_XDP uplink or a plain TAP the PMD
//! thread calls [`complete_burst`] first, which does what the kernel's
//! `skb_checksum_help` and `tcp_gso_segment` would have done.
//!
//! Headers are parsed here (IPv4 IHL, TCP data offset) instead of trusting
//! the sender's `hdr_len`: Linux fills `hdr_len` with `skb_headlen`, which is
//! at least the headers but not always equal to them. Every frame is hostile
//! input: lengths are checked before use and nothing here can panic.

use crate::counters::{DropReason, PortCounters};
use crate::frame::{Frame, Offload};
use crate::pool::{Pool, CHUNK_DATA};
use crate::wire::checksum::{self, finish_l4, pseudo_header_v4, pseudo_header_v6};
use crate::wire::tcp::{self, flags, TcpPacket};
use crate::wire::{
    ipv6, EthernetFrame, Ipv4Packet, Ipv6Packet, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPPROTO_TCP,
};

/// `VIRTIO_NET_HDR_GSO_*` values of [`Offload::gso_type`].
pub mod gso_type {
    /// Not a GSO frame.
    pub const NONE: u8 = 0;
    /// TCP over IPv4.
    pub const TCPV4: u8 = 1;
    /// UDP fragmentation (UFO); not advertised, not supported.
    pub const UDP: u8 = 3;
    /// TCP over IPv6.
    pub const TCPV6: u8 = 4;
    /// UDP segmentation (USO); not advertised, not supported yet.
    pub const UDP_L4: u8 = 5;
    /// Flag: the sender set ECN (CWR goes on the first segment only).
    pub const ECN: u8 = 0x80;
}

/// Why a frame could not be finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoError {
    /// Headers that are too short, inconsistent with each other or with the
    /// offload fields, or a GSO type this module does not implement.
    Malformed,
    /// The pool ran out of buffers for the segments.
    NoBuffer,
}

impl GsoError {
    fn reason(self) -> DropReason {
        match self {
            GsoError::Malformed => DropReason::OffloadError,
            GsoError::NoBuffer => DropReason::NoBuffer,
        }
    }
}

/// Where a TCP frame's headers are (shared with [`crate::gro`], which
/// merges what this module cuts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpLayout {
    pub(crate) l3: usize,
    pub(crate) l4: usize,
    /// Length of all headers (Ethernet to the end of the TCP options).
    pub(crate) hdr: usize,
    /// End of the IP packet (anything after it is Ethernet padding).
    pub(crate) end: usize,
    pub(crate) v6: bool,
}

/// Parses Ethernet (one optional VLAN tag), IPv4 or IPv6 (no extension
/// headers) and TCP, checking every length against the frame.
pub(crate) fn parse_tcp(p: &[u8]) -> Result<TcpLayout, GsoError> {
    use GsoError::Malformed;
    let eth = EthernetFrame::new_checked(p).map_err(|_| Malformed)?;
    let (ethertype, l3) = eth.l3_ethertype().ok_or(Malformed)?;
    let (l4, end, v6) = match ethertype {
        ETHERTYPE_IPV4 => {
            let ip = Ipv4Packet::new_checked(&p[l3..]).map_err(|_| Malformed)?;
            let ihl = ip.header_len();
            let tot_len = ip.total_len() as usize;
            // A fragment (MF set or an offset) cannot be a TCP segment to cut.
            if ip.version() != 4 || ip.protocol() != IPPROTO_TCP || ip.is_fragment() {
                return Err(Malformed);
            }
            if tot_len < ihl || l3 + tot_len > p.len() {
                return Err(Malformed);
            }
            (l3 + ihl, l3 + tot_len, false)
        }
        ETHERTYPE_IPV6 => {
            let ip = Ipv6Packet::new_checked(&p[l3..]).map_err(|_| Malformed)?;
            // Extension headers are not walked: the kernel's own TSO
            // frames from a TAP carry none.
            if ip.version() != 6 || ip.next_header() != IPPROTO_TCP {
                return Err(Malformed);
            }
            let payload = ip.payload_len() as usize;
            let end = l3 + ipv6::HEADER_LEN + payload;
            // Zero is a jumbogram (BIG TCP): not supported.
            if payload == 0 || end > p.len() {
                return Err(Malformed);
            }
            (l3 + ipv6::HEADER_LEN, end, true)
        }
        _ => return Err(Malformed),
    };
    let tcp = TcpPacket::new_checked(&p[l4..end]).map_err(|_| Malformed)?;
    Ok(TcpLayout {
        l3,
        l4,
        hdr: l4 + tcp.header_len(),
        end,
        v6,
    })
}

/// Sum of the pseudo-header of the packet whose IP header starts at `l3`.
pub(crate) fn pseudo(p: &[u8], lay: &TcpLayout, l4_len: usize) -> u32 {
    if lay.v6 {
        let ip = Ipv6Packet::new_unchecked(&p[lay.l3..]);
        pseudo_header_v6(&ip.src_addr(), &ip.dst_addr(), IPPROTO_TCP, l4_len as u32)
    } else {
        let ip = Ipv4Packet::new_unchecked(&p[lay.l3..]);
        let (src, dst) = (ip.src_addr().octets(), ip.dst_addr().octets());
        pseudo_header_v4(src, dst, IPPROTO_TCP, l4_len as u16)
    }
}

/// Fills in a pending L4 checksum: the one's-complement sum from
/// `csum_start` to the end of the packet, stored at `csum_start +
/// csum_offset`, whose field holds the pseudo-header seed. This is Linux's
/// `skb_checksum_help`, and works for TCP, UDP and anything else.
pub fn finish_checksum(packet: &mut [u8], off: &Offload) -> Result<(), GsoError> {
    let start = off.csum_start as usize;
    let at = start + off.csum_offset as usize;
    if start >= packet.len() || at + 2 > packet.len() {
        return Err(GsoError::Malformed);
    }
    let c = finish_l4(checksum::sum(0, &packet[start..]));
    packet[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Checks that a GSO frame's offload fields agree with its parsed headers.
fn check_gso(off: &Offload, lay: &TcpLayout, len: usize) -> Result<(), GsoError> {
    let base = off.gso_type & !gso_type::ECN;
    let family_ok = match base {
        gso_type::TCPV4 => !lay.v6,
        gso_type::TCPV6 => lay.v6,
        _ => false,
    };
    let csum_ok = !off.needs_csum
        || (off.csum_start as usize == lay.l4 && off.csum_offset as usize == tcp::CHECKSUM_OFFSET);
    // hdr_len is skb_headlen in Linux: at least the headers, at most the frame.
    let hdr_ok =
        off.hdr_len == 0 || (off.hdr_len as usize >= lay.hdr && off.hdr_len as usize <= len);
    if family_ok && csum_ok && hdr_ok && off.gso_size > 0 {
        Ok(())
    } else {
        Err(GsoError::Malformed)
    }
}

/// Cuts a TCP GSO frame into segments of at most `gso_size` payload bytes,
/// appended to `out` in order, each a finished frame (IP lengths and
/// checksums, TCP sequence numbers, flags and checksum). On error nothing
/// is appended and the pool is as before. The original frame is untouched.
pub fn segment_tcp(pool: &mut Pool, frame: &Frame, out: &mut Vec<Frame>) -> Result<(), GsoError> {
    let off = frame.offload;
    let (lay, mss, payload, nsegs) = {
        let p = pool.data(frame);
        let lay = parse_tcp(p)?;
        check_gso(&off, &lay, p.len())?;
        let mss = off.gso_size as usize;
        let payload = lay.end - lay.hdr;
        (lay, mss, payload, payload.div_ceil(mss).max(1))
    };
    let seg_max = lay.hdr + mss.min(payload);
    // Refuse early rather than take the whole pool and give it back.
    let free = if seg_max <= CHUNK_DATA {
        pool.free_chunks()
    } else {
        pool.free_large()
    };
    if nsegs > free {
        return Err(GsoError::NoBuffer);
    }
    let first = out.len();
    for i in 0..nsegs {
        let Some(mut seg) = pool.alloc_for(seg_max) else {
            for f in out.drain(first..) {
                pool.free(f);
            }
            return Err(GsoError::NoBuffer);
        };
        seg.in_port = frame.in_port;
        seg.offload = Offload::default();
        let start = lay.hdr + i * mss;
        let chunk = mss.min(lay.end - start);
        let seg_len = lay.hdr + chunk;
        // Copy headers and this segment's payload through a borrow of the
        // source, then a borrow of the segment (one pool, two buffers).
        copy_into(pool, frame, &mut seg, 0..lay.hdr, 0);
        copy_into(pool, frame, &mut seg, start..start + chunk, lay.hdr);
        pool.set_len(&mut seg, seg_len);
        let s = pool.data_mut(&mut seg);
        fix_segment(s, &lay, i, nsegs, mss);
        out.push(seg);
    }
    Ok(())
}

/// Copies `src_range` of `from`'s packet to offset `to_off` of `to`'s room.
pub(crate) fn copy_into(
    pool: &mut Pool,
    from: &Frame,
    to: &mut Frame,
    src_range: std::ops::Range<usize>,
    to_off: usize,
) {
    let src = pool.data(from)[src_range.clone()].as_ptr();
    let n = src_range.len();
    let dst = pool.room_mut(to)[to_off..to_off + n].as_mut_ptr();
    // SAFETY: both ranges were bounds-checked by the slicing above; `from`
    // and `to` are different buffers of the pool (a frame is never aliased:
    // `to` was just allocated), so they do not overlap, and the caller owns
    // both frames.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, n) };
}

/// Rewrites the copied headers of segment `i` of `n`.
fn fix_segment(s: &mut [u8], lay: &TcpLayout, i: usize, n: usize, mss: usize) {
    let l4_len = s.len() - lay.l4;
    if lay.v6 {
        let pl = (s.len() - lay.l3 - ipv6::HEADER_LEN) as u16;
        Ipv6Packet::new_unchecked(&mut s[lay.l3..]).set_payload_len(pl);
    } else {
        let mut ip = Ipv4Packet::new_unchecked(&mut s[lay.l3..lay.l4]);
        ip.set_total_len((lay.l4 - lay.l3 + l4_len) as u16);
        ip.set_ident(ip.ident().wrapping_add(i as u16));
        ip.fill_checksum();
    }
    let acc = pseudo(s, lay, l4_len);
    let mut tcp = TcpPacket::new_unchecked(&mut s[lay.l4..]);
    tcp.set_seq_number(tcp.seq_number().wrapping_add((i * mss) as u32));
    let mut f = tcp.flags();
    if i + 1 < n {
        f &= !(flags::FIN | flags::PSH);
    }
    // CWR only on the first segment, as tcp_gso_segment does (RFC 3168
    // section 6.1.2: CWR is set on the first new data after a reduction).
    if i > 0 {
        f &= !flags::CWR;
    }
    tcp.set_flags(f);
    tcp.fill_checksum(acc);
}

/// Finishes one frame that needs no new buffers: a pending checksum, or a
/// GSO frame with at most one segment's worth of payload (which only needs
/// its checksum). Returns false when the frame must be segmented.
fn finish_in_place(pool: &mut Pool, frame: &mut Frame) -> Result<bool, GsoError> {
    let off = frame.offload;
    if off.gso_type != gso_type::NONE {
        let p = pool.data(frame);
        let lay = parse_tcp(p)?;
        check_gso(&off, &lay, p.len())?;
        if lay.end - lay.hdr > off.gso_size as usize {
            return Ok(false);
        }
        if !off.needs_csum {
            // A GSO frame always comes with its checksum pending; compute
            // it in full rather than guess.
            let len = lay.end - lay.l4;
            let acc = pseudo(p, &lay, len);
            let p = pool.data_mut(frame);
            TcpPacket::new_unchecked(&mut p[lay.l4..lay.end]).fill_checksum(acc);
        }
    }
    if off.needs_csum {
        finish_checksum(pool.data_mut(frame), &off)?;
    }
    frame.offload = Offload::default();
    Ok(true)
}

/// Finishes every frame of `frames` that carries offload work: pending
/// checksums are filled in, GSO segments are cut into MTU-sized frames.
/// Each GSO frame is replaced by its segments in place, so the order of
/// the burst is kept. Frames that cannot be finished are dropped and
/// counted on `counters` (OffloadError, or NoBuffer when the pool is dry).
pub fn complete_burst(pool: &mut Pool, frames: &mut Vec<Frame>, counters: &PortCounters) {
    let mut i = 0;
    while i < frames.len() {
        if frames[i].offload.is_plain() {
            i += 1;
            continue;
        }
        match finish_in_place(pool, &mut frames[i]) {
            Ok(true) => {
                i += 1;
                continue;
            }
            Ok(false) => {}
            Err(e) => {
                counters.count_drop(e.reason());
                pool.free(frames.remove(i));
                continue;
            }
        }
        let frame = frames.remove(i);
        let before = frames.len();
        match segment_tcp(pool, &frame, frames) {
            Ok(()) => {
                let k = frames.len() - before;
                // Move the segments from the end to where the frame was.
                frames[i..].rotate_right(k);
                i += k;
            }
            Err(e) => counters.count_drop(e.reason()),
        }
        pool.free(frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::PoolConfig;
    use crate::wire::ETH_HDR;
    use proptest::prelude::*;
    use smoltcp::wire::{
        EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket,
    };

    const MSS: usize = 1448;

    fn pool() -> Pool {
        Pool::new(PoolConfig {
            chunks: 512,
            large: 4,
            umem: false,
        })
        .unwrap()
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// Ethernet + IP + TCP (with 12 bytes of timestamp-like options) + data,
    /// with the TCP checksum field holding the pseudo-header seed, as a TAP
    /// delivers a TSO frame.
    fn tcp_frame(v6: bool, data: &[u8], flags: u8) -> (Vec<u8>, Offload) {
        let l3 = ETH_HDR;
        let ip_hdr = if v6 { 40 } else { 20 };
        let l4 = l3 + ip_hdr;
        let tcp_hdr = 32;
        let mut p = vec![0u8; l4 + tcp_hdr + data.len()];
        p[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        p[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        let l4_len = tcp_hdr + data.len();
        if v6 {
            p[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
            p[l3] = 0x60;
            p[l3 + 4..l3 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            p[l3 + 6] = IPPROTO_TCP;
            p[l3 + 7] = 64;
            p[l3 + 8..l3 + 24]
                .copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            p[l3 + 24..l3 + 40]
                .copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        } else {
            p[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
            p[l3] = 0x45;
            p[l3 + 2..l3 + 4].copy_from_slice(&((ip_hdr + l4_len) as u16).to_be_bytes());
            p[l3 + 4..l3 + 6].copy_from_slice(&0xfff0u16.to_be_bytes());
            p[l3 + 6] = 0x40;
            p[l3 + 8] = 64;
            p[l3 + 9] = IPPROTO_TCP;
            p[l3 + 12..l3 + 16].copy_from_slice(&[10, 1, 2, 1]);
            p[l3 + 16..l3 + 20].copy_from_slice(&[10, 1, 2, 2]);
            let c = checksum::checksum(&p[l3..l4]);
            p[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        let t = l4;
        p[t..t + 2].copy_from_slice(&40000u16.to_be_bytes());
        p[t + 2..t + 4].copy_from_slice(&5201u16.to_be_bytes());
        p[t + 4..t + 8].copy_from_slice(&0xffff_f000u32.to_be_bytes()); // wraps
        p[t + 8..t + 12].copy_from_slice(&77u32.to_be_bytes());
        p[t + 12] = 8 << 4;
        p[t + 13] = flags;
        p[t + 14..t + 16].copy_from_slice(&512u16.to_be_bytes());
        p[t + 20..t + 32].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        p[t + 32..].copy_from_slice(data);
        let lay = parse_tcp(&p).unwrap();
        let seed = checksum::fold(pseudo(&p, &lay, l4_len));
        p[t + 16..t + 18].copy_from_slice(&seed.to_be_bytes());
        let off = Offload {
            needs_csum: true,
            data_valid: false,
            gso_type: if v6 { gso_type::TCPV6 } else { gso_type::TCPV4 },
            hdr_len: (t + 32) as u16,
            gso_size: MSS as u16,
            csum_start: t as u16,
            csum_offset: 16,
            csum_lost: false,
        };
        (p, off)
    }

    /// Checks one segment with smoltcp; returns (seq, flags byte, payload).
    fn check_segment(bytes: &[u8], v6: bool) -> (u32, u8, Vec<u8>) {
        let eth = EthernetFrame::new_checked(bytes).unwrap();
        let (src, dst, tcp_bytes) = if v6 {
            assert_eq!(eth.ethertype(), EthernetProtocol::Ipv6);
            let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
            assert_eq!(ip.next_header(), IpProtocol::Tcp);
            assert_eq!(ip.payload_len() as usize, bytes.len() - ETH_HDR - 40);
            (
                IpAddress::Ipv6(ip.src_addr()),
                IpAddress::Ipv6(ip.dst_addr()),
                ip.payload().to_vec(),
            )
        } else {
            assert_eq!(eth.ethertype(), EthernetProtocol::Ipv4);
            let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
            assert!(ip.verify_checksum(), "IPv4 header checksum");
            assert_eq!(ip.total_len() as usize, bytes.len() - ETH_HDR);
            (
                IpAddress::Ipv4(ip.src_addr()),
                IpAddress::Ipv4(ip.dst_addr()),
                ip.payload().to_vec(),
            )
        };
        let tcp = TcpPacket::new_checked(&tcp_bytes[..]).unwrap();
        assert!(tcp.verify_checksum(&src, &dst), "TCP checksum");
        (
            tcp.seq_number().0 as u32,
            tcp_bytes[13],
            tcp.payload().to_vec(),
        )
    }

    fn segments_of(v6: bool, total: usize, flags: u8) {
        let data = payload(total);
        let (bytes, off) = tcp_frame(v6, &data, flags);
        let mut pool = pool();
        let mut f = pool.alloc_copy(&bytes).unwrap();
        assert!(f.is_large(), "the fixture is a 64 KB frame");
        f.offload = off;
        let counters = PortCounters::default();
        let mut frames = vec![f];
        complete_burst(&mut pool, &mut frames, &counters);
        assert_eq!(counters.total_drops(), 0);
        assert_eq!(frames.len(), total.div_ceil(MSS));
        let mut got = Vec::new();
        let hdr = ETH_HDR + if v6 { 40 } else { 20 } + 32;
        for (i, s) in frames.iter().enumerate() {
            let b = pool.data(s);
            let last = i + 1 == frames.len();
            assert!(s.offload.is_plain());
            assert!(b.len() <= 1514 + if v6 { 20 } else { 0 });
            let want = if last { total - i * MSS } else { MSS };
            assert_eq!(b.len(), hdr + want);
            let (seq, fl, pl) = check_segment(b, v6);
            assert_eq!(seq, 0xffff_f000u32.wrapping_add((i * MSS) as u32));
            let expect = if last {
                flags
            } else {
                flags & !(flags::FIN | flags::PSH)
            };
            let expect = if i > 0 { expect & !flags::CWR } else { expect };
            assert_eq!(fl, expect, "flags of segment {i}");
            if !v6 {
                let id = u16::from_be_bytes([b[18], b[19]]);
                assert_eq!(id, 0xfff0u16.wrapping_add(i as u16));
            }
            got.extend_from_slice(&pl);
        }
        assert!(got == data, "payloads concatenate to the original");
        for f in frames.drain(..) {
            pool.free(f);
        }
        assert_eq!(pool.in_flight(), 0);
    }

    #[test]
    fn a_64k_tcpv4_gso_frame_becomes_valid_mss_sized_segments() {
        // ACK|PSH|FIN|CWR: PSH and FIN stay only on the last, CWR on the first.
        segments_of(false, 65_000, 0x10 | 0x08 | 0x01 | 0x80);
    }

    #[test]
    fn a_64k_tcpv6_gso_frame_becomes_valid_mss_sized_segments() {
        segments_of(true, 64_000, 0x10 | 0x08);
    }

    #[test]
    fn a_payload_that_is_a_multiple_of_the_mss_has_no_empty_last_segment() {
        segments_of(false, MSS * 10, 0x18);
    }

    #[test]
    fn a_needs_csum_frame_gets_a_valid_checksum_in_place() {
        let (bytes, mut off) = tcp_frame(false, &payload(100), 0x18);
        off.gso_type = 0;
        off.gso_size = 0;
        let mut pool = pool();
        let mut f = pool.alloc_copy(&bytes).unwrap();
        f.offload = off;
        let mut frames = vec![f];
        complete_burst(&mut pool, &mut frames, &PortCounters::default());
        assert_eq!(frames.len(), 1);
        assert!(frames[0].offload.is_plain());
        let (_, _, pl) = check_segment(pool.data(&frames[0]), false);
        assert_eq!(pl, payload(100));
    }

    #[test]
    fn a_small_gso_frame_is_finished_without_copying() {
        let (bytes, off) = tcp_frame(true, &payload(500), 0x18);
        let mut pool = pool();
        let mut f = pool.alloc_copy(&bytes).unwrap();
        f.offload = off;
        let mut frames = vec![f];
        complete_burst(&mut pool, &mut frames, &PortCounters::default());
        assert_eq!(frames.len(), 1);
        check_segment(pool.data(&frames[0]), true);
    }

    #[test]
    fn order_is_kept_and_bad_frames_are_dropped_and_counted() {
        let mut pool = pool();
        let plain = pool.alloc_copy(&[0xaa; 60]).unwrap();
        let (bytes, off) = tcp_frame(false, &payload(5000), 0x10);
        let mut gso = pool.alloc_copy(&bytes).unwrap();
        gso.offload = off;
        // TCPv6 claimed over an IPv4 packet: inconsistent.
        let mut bad = pool.alloc_copy(&bytes).unwrap();
        bad.offload = Offload {
            gso_type: gso_type::TCPV6,
            ..off
        };
        let tail = pool.alloc_copy(&[0xbb; 60]).unwrap();
        let counters = PortCounters::default();
        let mut frames = vec![plain, gso, bad, tail];
        complete_burst(&mut pool, &mut frames, &counters);
        assert_eq!(counters.drops[DropReason::OffloadError as usize].get(), 1);
        assert_eq!(frames.len(), 1 + 4 + 1);
        assert_eq!(pool.data(&frames[0])[0], 0xaa);
        assert_eq!(pool.data(&frames[5])[0], 0xbb);
        for f in frames.drain(..) {
            pool.free(f);
        }
        assert_eq!(pool.in_flight(), 0);
    }

    #[test]
    fn hdr_len_shorter_than_the_parsed_headers_is_refused() {
        let (bytes, mut off) = tcp_frame(false, &payload(5000), 0x10);
        off.hdr_len = 40;
        let mut pool = pool();
        let mut f = pool.alloc_copy(&bytes).unwrap();
        f.offload = off;
        let counters = PortCounters::default();
        let mut frames = vec![f];
        complete_burst(&mut pool, &mut frames, &counters);
        assert!(frames.is_empty());
        assert_eq!(counters.total_drops(), 1);
        assert_eq!(pool.in_flight(), 0);
    }

    proptest! {
        #[test]
        fn random_bytes_with_random_offload_headers_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..3000),
            needs_csum in any::<bool>(),
            gso in prop_oneof![Just(0u8), Just(1), Just(4), Just(0x81), Just(5), any::<u8>()],
            hdr_len in any::<u16>(),
            gso_size in prop_oneof![Just(0u16), 1u16..100, any::<u16>()],
            csum_start in prop_oneof![0u16..100, any::<u16>()],
            csum_offset in prop_oneof![Just(16u16), Just(6), any::<u16>()],
        ) {
            let mut pool = Pool::new(PoolConfig { chunks: 64, large: 2, umem: false }).unwrap();
            let mut f = pool.alloc_copy(&bytes).unwrap();
            f.offload = Offload { needs_csum, data_valid: false, gso_type: gso, hdr_len, gso_size, csum_start, csum_offset, csum_lost: false };
            let mut frames = vec![f];
            complete_burst(&mut pool, &mut frames, &PortCounters::default());
            for f in frames.drain(..) {
                prop_assert!(f.offload.is_plain());
                pool.free(f);
            }
            prop_assert_eq!(pool.in_flight(), 0);
        }

        #[test]
        fn a_real_tcp_frame_with_mangled_fields_never_panics(
            v6 in any::<bool>(),
            n in 0usize..9000,
            pos in any::<prop::sample::Index>(),
            val in any::<u8>(),
            mss in 1u16..3000,
        ) {
            let (mut bytes, mut off) = tcp_frame(v6, &payload(n), 0x18);
            let i = pos.index(bytes.len().min(80));
            bytes[i] = val;
            off.gso_size = mss;
            let mut pool = Pool::new(PoolConfig { chunks: 256, large: 2, umem: false }).unwrap();
            let mut f = pool.alloc_copy(&bytes).unwrap();
            f.offload = off;
            let mut frames = vec![f];
            complete_burst(&mut pool, &mut frames, &PortCounters::default());
            for f in frames.drain(..) {
                pool.free(f);
            }
            prop_assert_eq!(pool.in_flight(), 0);
        }
    }
}
