//! Software GRO: in-order TCP frames of one flow merged into one segment
//! before they leave through a port with offloads (a TAP with a
//! virtio-net header), so the container's kernel takes one 64 KB segment
//! instead of 44 frames, as wireguard-go and Tailscale do for TUN.
//!
//! Frames from a port without GRO (AF_XDP) are MTU-sized; between TAPs the
//! switch already moves whole segments (DESIGN.md, data path 8). This is
//! the reverse of [`crate::gso`]: a merged frame cut by
//! [`gso::segment_tcp`](crate::gso::segment_tcp) gives back the frames it
//! was made of, byte for byte.
//!
//! A frame joins the run of its flow when Linux's `inet_gro_receive` and
//! `tcp_gro_receive` would merge it:
//! - its Ethernet, IP and TCP headers equal the run's first frame's, except
//!   the IPv4 total length, id and checksum (IPv6 payload length), the TCP
//!   sequence number and checksum, and PSH. So ack, window, TTL, TOS, DF
//!   and the TCP options are equal; the kernel too compares the options
//!   word by word, so timestamps must be equal, not merely increasing.
//! - its sequence number follows the run's last byte, and an IPv4 id is the
//!   first frame's plus its place in the run (what Linux senders and
//!   segmentation write);
//! - its flags are ACK, with PSH only on the last frame of a run; SYN, FIN,
//!   RST, URG, ECE and CWR frames go alone;
//! - it carries data, no more than the first frame's (the run's
//!   `gso_size`), and only the last frame of a run may carry less;
//! - the merged IP packet stays within 65,535 bytes;
//! - its TCP checksum is pending (`needs_csum`, as a partial checksum from
//!   a veth arrives, see [`crate::partial_csum`]) or verified here, and an
//!   IPv4 header checksum is verified: the merged segment goes to the
//!   kernel with its checksum pending, which the kernel trusts, so a frame
//!   that was damaged on the way must not be laundered into one.
//!
//! Frames of one flow keep their order: a merged frame takes the place of
//! its run's first frame, and every frame merged into it came before any
//! later frame of its flow that was not. Frames of different flows may end
//! up in another order relative to each other, which nothing relies on.
//!
//! Only frames from a port that hands over MTU-sized frames without the
//! sender's offload state are looked at: AF_XDP, whose frames carry
//! `csum_lost` (also after VXLAN decapsulation). A TAP's frames already
//! come as the sender's segments, so a burst from a TAP costs one flag
//! test per frame here, not a look at its bytes (measured with callgrind:
//! about 48 instructions per frame for that look at a UDP frame).
//!
//! Nothing here allocates once the scratch vectors have grown to the
//! largest burst, and nothing panics on hostile bytes: every header is
//! parsed by [`gso`](crate::gso)'s checked parser first.

use crate::counters::PortCounters;
use crate::frame::{Frame, Offload};
use crate::gso::{self, gso_type, TcpLayout};
use crate::pool::{Pool, LARGE_HEADROOM, LARGE_SIZE};
use crate::wire::checksum::{self, fold};
use crate::wire::tcp::{self, flags, TcpPacket};
use crate::wire::{
    ethernet, ipv4, ipv6, EthernetFrame, Ipv4Packet, Ipv6Packet, ETHERTYPE_IPV4, ETHERTYPE_IPV6,
    ETHERTYPE_VLAN, ETH_HDR, IPPROTO_TCP,
};

/// Largest IPv4 total length, and largest IPv6 payload length.
const MAX_IP_LEN: usize = 65_535;

// The largest merged frame (an Ethernet header with one VLAN tag, an IPv6
// header and a full IPv6 payload) fits a large buffer.
const _: () = assert!(
    ETH_HDR + ethernet::VLAN_TAG_LEN + ipv6::HEADER_LEN + MAX_IP_LEN <= LARGE_SIZE - LARGE_HEADROOM
);

/// Longest headers of a frame that merges: Ethernet with a VLAN tag, IPv4
/// with options (IPv6 without extension headers is shorter), TCP with
/// options.
const MAX_HDR: usize = ETH_HDR + ethernet::VLAN_TAG_LEN + 60 + 60;

/// `member` value of a frame in no run.
const NO_RUN: u32 = u32::MAX;

/// A frame that may join or start a run.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    lay: TcpLayout,
    seq: u32,
    payload: usize,
    psh: bool,
    id: u16,
}

/// Frames of one flow that merge into one segment.
#[derive(Debug)]
struct Run {
    /// Index in the burst of the first frame, and of the last one so far.
    first: usize,
    last: usize,
    frames: usize,
    lay: TcpLayout,
    /// A digest of the addresses and ports ([`flow_key`]): equal for one
    /// flow; a collision only costs a full header compare.
    key: u64,
    /// Payload bytes of every frame but the last.
    gso_size: usize,
    /// Payload bytes so far.
    payload: usize,
    next_seq: u32,
    next_id: u16,
    /// The run takes more frames: none was short or had PSH.
    open: bool,
    /// The last frame merged had PSH.
    psh: bool,
    /// The first frame's checksums were verified (on the first merge).
    first_checked: bool,
    /// The merged frame was built and replaces the run's frames.
    built: bool,
}

/// Software GRO state of one PMD thread: scratch space reused burst after
/// burst.
#[derive(Debug, Default)]
pub struct Gro {
    /// The run of each frame of the burst, or `NO_RUN`.
    member: Vec<u32>,
    runs: Vec<Run>,
    /// Merged frames, by run (`None` for runs left unmerged).
    merged: Vec<Option<Frame>>,
    /// The burst after merging, swapped with the caller's vector.
    out: Vec<Frame>,
}

impl Gro {
    /// Empty scratch space.
    pub fn new() -> Gro {
        Gro::default()
    }

    /// Merges runs of TCP frames in `frames`, all bound for one port that
    /// accepts GSO segments. Frames already carrying a GSO segment and
    /// frames that merge with nothing stay as they are. When no large
    /// buffer is free a run stays unmerged, counted in
    /// `counters.gro_no_buffer`.
    pub fn merge_burst(
        &mut self,
        pool: &mut Pool,
        frames: &mut Vec<Frame>,
        counters: &PortCounters,
    ) {
        if frames.len() < 2 || !self.find_runs(pool, frames) {
            return;
        }
        self.build_runs(pool, frames, counters);
        self.out.clear();
        for (i, f) in frames.drain(..).enumerate() {
            let r = self.member.get(i).copied().unwrap_or(NO_RUN);
            if r == NO_RUN || !self.runs[r as usize].built {
                self.out.push(f);
                continue;
            }
            if i == self.runs[r as usize].first {
                if let Some(m) = self.merged[r as usize].take() {
                    self.out.push(m);
                }
            }
            pool.free(f);
        }
        std::mem::swap(frames, &mut self.out);
    }

    /// Assigns frames to runs; true when some run has two frames or more.
    fn find_runs(&mut self, pool: &Pool, frames: &[Frame]) -> bool {
        self.member.clear();
        self.runs.clear();
        let mut merges = false;
        for (i, f) in frames.iter().enumerate() {
            if !f.offload.csum_lost || f.offload.gso_type != gso_type::NONE {
                continue;
            }
            let p = pool.data(f);
            if !maybe_tcp(p) {
                continue;
            }
            let Ok(lay) = gso::parse_tcp(p) else {
                continue;
            };
            let c = candidate(p, &f.offload, lay);
            if c.is_none() && self.runs.is_empty() {
                continue;
            }
            let key = flow_key(p, &lay);
            let open = self.runs.iter().rposition(|r| r.open && r.key == key);
            let Some(c) = c else {
                // A TCP frame that cannot merge (a pure ACK, a FIN) ends
                // its flow's run, so the run's frames do not overtake it.
                if let Some(r) = open {
                    self.runs[r].open = false;
                }
                continue;
            };
            if let Some(r) = open {
                if self.try_append(pool, frames, r, i, &c) {
                    merges = true;
                    continue;
                }
                // Whatever follows this frame in its flow comes after it,
                // so the old run takes nothing more.
                self.runs[r].open = false;
            }
            if !c.psh {
                let r = self.runs.len();
                self.set_member(i, r);
                self.runs.push(Run {
                    first: i,
                    last: i,
                    frames: 1,
                    lay: c.lay,
                    key,
                    gso_size: c.payload,
                    payload: c.payload,
                    next_seq: c.seq.wrapping_add(c.payload as u32),
                    next_id: c.id.wrapping_add(1),
                    open: true,
                    psh: false,
                    first_checked: false,
                    built: false,
                });
            }
        }
        merges
    }

    /// Adds frame `i` to run `r` when it may follow the run's last frame.
    fn try_append(
        &mut self,
        pool: &Pool,
        frames: &[Frame],
        r: usize,
        i: usize,
        c: &Candidate,
    ) -> bool {
        let run = &self.runs[r];
        let lay = &run.lay;
        let fits = c.lay.l3 == lay.l3
            && c.lay.l4 == lay.l4
            && c.lay.hdr == lay.hdr
            && c.lay.v6 == lay.v6
            && c.seq == run.next_seq
            && c.payload <= run.gso_size
            && (lay.v6 || c.id == run.next_id)
            && ip_len(lay, run.payload + c.payload) <= MAX_IP_LEN;
        if !fits {
            return false;
        }
        let first = &frames[run.first];
        let (a, b) = (pool.data(first), pool.data(&frames[i]));
        if !same_headers(a, b, lay) || !checksums_ok(b, &c.lay, &frames[i].offload) {
            return false;
        }
        if !run.first_checked {
            if !checksums_ok(a, lay, &first.offload) {
                // The first frame goes alone; this one may start a run.
                return false;
            }
            self.runs[r].first_checked = true;
        }
        let run = &mut self.runs[r];
        run.last = i;
        run.frames += 1;
        run.payload += c.payload;
        run.next_seq = c.seq.wrapping_add(c.payload as u32);
        run.next_id = c.id.wrapping_add(1);
        run.psh = c.psh;
        run.open = !c.psh && c.payload == run.gso_size;
        self.set_member(i, r);
        true
    }

    /// Puts frame `i` in run `r`. `member` grows only as far as the last
    /// frame in a run, so a burst with no TCP data costs no writes here.
    fn set_member(&mut self, i: usize, r: usize) {
        if self.member.len() <= i {
            self.member.resize(i + 1, NO_RUN);
        }
        self.member[i] = r as u32;
    }

    /// Builds the merged frame of every run of two frames or more.
    fn build_runs(&mut self, pool: &mut Pool, frames: &[Frame], counters: &PortCounters) {
        self.merged.clear();
        for r in 0..self.runs.len() {
            let run = &self.runs[r];
            let merged = if run.frames < 2 {
                None
            } else {
                let m = build(pool, frames, &self.member, r, run);
                match m {
                    Some(_) => {
                        counters.gro_merged.add(run.frames as u64);
                        counters.gro_segments.add(1);
                    }
                    None => counters.gro_no_buffer.add(run.frames as u64),
                }
                m
            };
            self.runs[r].built = merged.is_some();
            self.merged.push(merged);
        }
    }
}

/// Length of the IP packet (IPv4) or IPv6 payload of a frame with
/// `lay`'s headers and `payload` bytes of data.
fn ip_len(lay: &TcpLayout, payload: usize) -> usize {
    let ip_hdr = if lay.v6 { ipv6::HEADER_LEN } else { 0 };
    lay.hdr - lay.l3 - ip_hdr + payload
}

/// A quick look before the full parse: IPv4 or IPv6 carrying TCP, or a
/// VLAN tag (which [`gso::parse_tcp`] looks behind). Most frames that are
/// not TCP stop here.
#[inline]
fn maybe_tcp(p: &[u8]) -> bool {
    // One length check for every byte looked at: a shorter frame holds no
    // TCP header.
    if p.len() < ETH_HDR + ipv4::HEADER_LEN + tcp::HEADER_LEN {
        return false;
    }
    let l3 = &p[ETH_HDR..];
    match EthernetFrame::new_unchecked(p).ethertype() {
        ETHERTYPE_IPV4 => Ipv4Packet::new_unchecked(l3).protocol() == IPPROTO_TCP,
        ETHERTYPE_IPV6 => Ipv6Packet::new_unchecked(l3).next_header() == IPPROTO_TCP,
        ETHERTYPE_VLAN => true,
        _ => false,
    }
}

/// A digest of a TCP frame's addresses and ports.
fn flow_key(p: &[u8], lay: &TcpLayout) -> u64 {
    let t = TcpPacket::new_unchecked(&p[lay.l4..]);
    let ports = (t.src_port() as u32) << 16 | t.dst_port() as u32;
    let addrs = if lay.v6 {
        let ip = Ipv6Packet::new_unchecked(&p[lay.l3..]);
        fold_words(&ip.src_addr()) ^ fold_words(&ip.dst_addr()).rotate_left(16)
    } else {
        let ip = Ipv4Packet::new_unchecked(&p[lay.l3..]);
        fold_words(&ip.src_addr().octets()) ^ fold_words(&ip.dst_addr().octets()).rotate_left(16)
    };
    (addrs as u64) << 32 | ports as u64
}

/// A TCP frame (parsed as `lay`) that may merge: it has data, ACK (and
/// maybe PSH) only, no Ethernet padding, and a pending checksum, if any,
/// where TCP keeps it.
fn candidate(p: &[u8], off: &Offload, lay: TcpLayout) -> Option<Candidate> {
    if lay.end != p.len() || lay.end <= lay.hdr {
        return None;
    }
    let t = TcpPacket::new_unchecked(&p[lay.l4..]);
    if t.flags() & !flags::PSH != flags::ACK {
        return None;
    }
    if off.needs_csum
        && (off.csum_start as usize != lay.l4 || off.csum_offset as usize != tcp::CHECKSUM_OFFSET)
    {
        return None;
    }
    let id = if lay.v6 {
        0
    } else {
        Ipv4Packet::new_unchecked(&p[lay.l3..]).ident()
    };
    Some(Candidate {
        lay,
        seq: t.seq_number(),
        payload: lay.end - lay.hdr,
        psh: t.flags() & flags::PSH != 0,
        id,
    })
}

/// The 32-bit words of `b` (a multiple of 4 bytes long) mixed into one.
fn fold_words(b: &[u8]) -> u32 {
    b.chunks_exact(4).fold(0u32, |acc, w| {
        acc.rotate_left(5) ^ u32::from_be_bytes([w[0], w[1], w[2], w[3]])
    })
}

/// True when the headers of `a` and `b` (both at least `lay.hdr` long)
/// are equal except for the fields that differ between the frames of one
/// segment: IP lengths, IPv4 id and checksum, TCP sequence number,
/// checksum and PSH. `b`'s headers are copied, those fields set to `a`'s,
/// and the bytes compared.
fn same_headers(a: &[u8], b: &[u8], lay: &TcpLayout) -> bool {
    let mut buf = [0u8; MAX_HDR];
    let Some(h) = buf.get_mut(..lay.hdr) else {
        return false;
    };
    h.copy_from_slice(&b[..lay.hdr]);
    if lay.v6 {
        let ip = Ipv6Packet::new_unchecked(&a[lay.l3..]);
        Ipv6Packet::new_unchecked(&mut h[lay.l3..]).set_payload_len(ip.payload_len());
    } else {
        let ip = Ipv4Packet::new_unchecked(&a[lay.l3..]);
        let mut hip = Ipv4Packet::new_unchecked(&mut h[lay.l3..]);
        hip.set_total_len(ip.total_len());
        hip.set_ident(ip.ident());
        hip.set_checksum(ip.checksum());
    }
    let t = TcpPacket::new_unchecked(&a[lay.l4..]);
    let mut ht = TcpPacket::new_unchecked(&mut h[lay.l4..]);
    ht.set_seq_number(t.seq_number());
    ht.set_checksum(t.checksum());
    ht.set_flags(ht.flags() & !flags::PSH | t.flags() & flags::PSH);
    *h == a[..lay.hdr]
}

/// True when the frame's IPv4 header checksum is right and its TCP
/// checksum is either pending or right.
fn checksums_ok(p: &[u8], lay: &TcpLayout, off: &Offload) -> bool {
    if !lay.v6 && !Ipv4Packet::new_unchecked(&p[lay.l3..]).verify_checksum() {
        return false;
    }
    if off.needs_csum {
        return true;
    }
    let acc = gso::pseudo(p, lay, lay.end - lay.l4);
    // A segment with a right checksum sums to 0xffff (negative zero).
    fold(checksum::sum(acc, &p[lay.l4..lay.end])) == 0xffff
}

/// The merged frame of run `r`: the first frame, then the data of every
/// other frame of the run in order, with lengths, checksums and the
/// offload fields of one GSO segment. `None` when no large buffer is free.
fn build(pool: &mut Pool, frames: &[Frame], member: &[u32], r: usize, run: &Run) -> Option<Frame> {
    let mut m = pool.alloc_large()?;
    let lay = run.lay;
    let first = &frames[run.first];
    gso::copy_into(pool, first, &mut m, 0..first.len(), 0);
    let mut at = first.len();
    for (i, f) in frames
        .iter()
        .enumerate()
        .take(run.last + 1)
        .skip(run.first + 1)
    {
        if member.get(i) == Some(&(r as u32)) {
            gso::copy_into(pool, f, &mut m, lay.hdr..f.len(), at);
            at += f.len() - lay.hdr;
        }
    }
    // Fits by the length check of every append and the assertion on
    // MAX_IP_LEN above.
    pool.set_len(&mut m, at);
    let s = pool.data_mut(&mut m);
    if lay.v6 {
        let len = (at - lay.l3 - ipv6::HEADER_LEN) as u16;
        Ipv6Packet::new_unchecked(&mut s[lay.l3..]).set_payload_len(len);
    } else {
        let mut ip = Ipv4Packet::new_unchecked(&mut s[lay.l3..]);
        ip.set_total_len((at - lay.l3) as u16);
        ip.fill_checksum();
    }
    // A pending checksum holds the pseudo-header sum of the whole segment,
    // as Linux's TCP leaves it for TSO (`__tcp_v4_send_check`).
    let seed = fold(gso::pseudo(s, &lay, at - lay.l4));
    let mut t = TcpPacket::new_unchecked(&mut s[lay.l4..]);
    if run.psh {
        t.set_flags(t.flags() | flags::PSH);
    }
    t.set_checksum(seed);
    m.in_port = first.in_port;
    m.offload = Offload {
        needs_csum: true,
        gso_type: if lay.v6 {
            gso_type::TCPV6
        } else {
            gso_type::TCPV4
        },
        hdr_len: lay.hdr as u16,
        gso_size: run.gso_size as u16,
        csum_start: lay.l4 as u16,
        csum_offset: tcp::CHECKSUM_OFFSET as u16,
        ..Offload::default()
    };
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::PortCounters;
    use crate::pool::PoolConfig;
    use crate::wire::checksum::{finish_l4, pseudo_header_v4, pseudo_header_v6};
    use proptest::prelude::*;
    use smoltcp::wire::{EthernetFrame, IpAddress, Ipv4Packet, TcpPacket};

    const MSS: usize = 1448;
    const ISN: u32 = 0xffff_f800; // wraps inside a run
    const ID0: u16 = 0xfffe; // wraps too
    const ACK: u8 = flags::ACK;
    const PSH: u8 = flags::PSH;

    /// One TCP frame of a flow, as a sender with timestamps writes it.
    #[derive(Clone)]
    struct Seg {
        v6: bool,
        sport: u16,
        seq: u32,
        id: u16,
        flags: u8,
        len: usize,
        tsval: u32,
        window: u16,
        /// Checksum left to offload (needs_csum), as a veth peer sends it.
        partial: bool,
    }

    impl Seg {
        /// Frame `i` of a run of full-sized data frames.
        fn nth(i: usize) -> Seg {
            Seg {
                v6: false,
                sport: 40000,
                seq: ISN.wrapping_add((i * MSS) as u32),
                id: ID0.wrapping_add(i as u16),
                flags: ACK,
                len: MSS,
                tsval: 7,
                window: 501,
                partial: false,
            }
        }

        /// Frames 0..n of a run, all full-sized.
        fn run(n: usize) -> Vec<Seg> {
            (0..n).map(Seg::nth).collect()
        }

        fn bytes(&self) -> Vec<u8> {
            let l3 = ETH_HDR;
            let l4 = l3 + if self.v6 { 40 } else { 20 };
            let tcp_len = 32 + self.len;
            let mut p = vec![0u8; l4 + tcp_len];
            p[0..6].copy_from_slice(&[2, 0, 0xac, 0x1e, 0, 10]);
            p[6..12].copy_from_slice(&[2, 0x50, 0x44, 0, 0, 1]);
            let seed = if self.v6 {
                p[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
                let ip = &mut p[l3..l4];
                ip[0] = 0x60;
                ip[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
                ip[6] = IPPROTO_TCP;
                ip[7] = 63;
                ip[8] = 0xfd;
                ip[23] = 1;
                ip[24] = 0xfd;
                ip[39] = 2;
                let (mut s, mut d) = ([0u8; 16], [0u8; 16]);
                s.copy_from_slice(&ip[8..24]);
                d.copy_from_slice(&ip[24..40]);
                pseudo_header_v6(&s, &d, IPPROTO_TCP, tcp_len as u32)
            } else {
                p[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
                let ip = &mut p[l3..l4];
                ip[0] = 0x45;
                ip[2..4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
                ip[4..6].copy_from_slice(&self.id.to_be_bytes());
                ip[6] = 0x40; // DF
                ip[8] = 63;
                ip[9] = IPPROTO_TCP;
                ip[12..16].copy_from_slice(&[10, 99, 0, 1]);
                ip[16..20].copy_from_slice(&[172, 30, 0, 10]);
                let c = checksum::checksum(ip);
                ip[10..12].copy_from_slice(&c.to_be_bytes());
                pseudo_header_v4(
                    [10, 99, 0, 1],
                    [172, 30, 0, 10],
                    IPPROTO_TCP,
                    tcp_len as u16,
                )
            };
            let t = &mut p[l4..];
            t[0..2].copy_from_slice(&self.sport.to_be_bytes());
            t[2..4].copy_from_slice(&5201u16.to_be_bytes());
            t[4..8].copy_from_slice(&self.seq.to_be_bytes());
            t[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
            t[12] = 8 << 4;
            t[13] = self.flags;
            t[14..16].copy_from_slice(&self.window.to_be_bytes());
            // NOP, NOP, timestamps (kind 8, length 10).
            t[20..24].copy_from_slice(&[1, 1, 8, 10]);
            t[24..28].copy_from_slice(&self.tsval.to_be_bytes());
            t[28..32].copy_from_slice(&99u32.to_be_bytes());
            for (k, b) in t[32..].iter_mut().enumerate() {
                *b = (self.seq as usize + k).wrapping_mul(31) as u8;
            }
            let c = if self.partial {
                fold(seed)
            } else {
                finish_l4(checksum::sum(seed, t))
            };
            t[16..18].copy_from_slice(&c.to_be_bytes());
            p
        }

        fn offload(&self) -> Offload {
            Offload {
                needs_csum: self.partial,
                csum_start: if self.partial {
                    (ETH_HDR + if self.v6 { 40 } else { 20 }) as u16
                } else {
                    0
                },
                csum_offset: if self.partial { 16 } else { 0 },
                csum_lost: true,
                ..Offload::default()
            }
        }
    }

    fn pool(large: u32) -> Pool {
        Pool::new(PoolConfig {
            chunks: 256,
            large,
            umem: false,
        })
        .unwrap()
    }

    fn frames_of(pool: &mut Pool, segs: &[Seg]) -> Vec<Frame> {
        segs.iter()
            .map(|s| {
                let mut f = pool.alloc_copy(&s.bytes()).unwrap();
                f.offload = s.offload();
                f
            })
            .collect()
    }

    /// Runs GRO over `segs`; returns the bytes and offload state of each
    /// frame that comes out, and the counters. Checks nothing leaked.
    fn merged(segs: &[Seg], large: u32) -> (Vec<(Vec<u8>, Offload)>, PortCounters) {
        let mut pool = pool(large);
        let mut frames = frames_of(&mut pool, segs);
        let counters = PortCounters::default();
        Gro::new().merge_burst(&mut pool, &mut frames, &counters);
        let out = frames
            .iter()
            .map(|f| (pool.data(f).to_vec(), f.offload))
            .collect();
        for f in frames.drain(..) {
            pool.free(f);
        }
        assert_eq!(pool.in_flight(), 0, "every buffer went back to the pool");
        (out, counters)
    }

    fn unchanged(segs: &[Seg]) -> Vec<(Vec<u8>, Offload)> {
        segs.iter().map(|s| (s.bytes(), s.offload())).collect()
    }

    /// The payload of a frame with the fixture's headers (66 or 86 bytes).
    fn payload(frame: &[u8], v6: bool) -> &[u8] {
        &frame[ETH_HDR + if v6 { 40 } else { 20 } + 32..]
    }

    #[test]
    fn an_in_order_run_of_one_flow_becomes_one_gso_segment_the_kernel_accepts() {
        let mut segs = Seg::run(10);
        for s in &mut segs {
            s.partial = true;
        }
        segs[9].len = 300;
        segs[9].flags = ACK | PSH;
        let (out, counters) = merged(&segs, 4);
        assert_eq!(out.len(), 1, "ten frames, one segment");
        let (bytes, off) = &out[0];
        assert_eq!(
            *off,
            Offload {
                needs_csum: true,
                gso_type: gso_type::TCPV4,
                hdr_len: 66,
                gso_size: MSS as u16,
                csum_start: 34,
                csum_offset: 16,
                ..Offload::default()
            }
        );
        let data: Vec<u8> = segs
            .iter()
            .flat_map(|s| payload(&s.bytes(), false).to_vec())
            .collect();
        assert!(
            payload(bytes, false) == data,
            "the data of all ten, in order"
        );
        // What the container's kernel checks: the IPv4 header, and the TCP
        // checksum once the seed is completed over the whole segment.
        let mut done = bytes.clone();
        gso::finish_checksum(&mut done, off).unwrap();
        let ip = Ipv4Packet::new_checked(EthernetFrame::new_checked(&done[..]).unwrap().payload())
            .unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.total_len() as usize, 20 + 32 + 9 * MSS + 300);
        assert_eq!(ip.ident(), ID0, "the first frame's id");
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.verify_checksum(
            &IpAddress::Ipv4(ip.src_addr()),
            &IpAddress::Ipv4(ip.dst_addr())
        ));
        assert_eq!(tcp.seq_number().0 as u32, ISN);
        assert!(tcp.psh(), "the last frame's PSH");
        assert_eq!(counters.gro_merged.get(), 10);
        assert_eq!(counters.gro_segments.get(), 1);
    }

    /// GRO then GSO (as toward a port without offloads) returns `segs`.
    fn round_trip(segs: &[Seg]) {
        let (out, _) = merged(segs, 4);
        assert_eq!(out.len(), 1, "the fixture merges into one segment");
        let mut pool = pool(4);
        let mut f = pool.alloc_copy(&out[0].0).unwrap();
        f.offload = out[0].1;
        let mut again = Vec::new();
        gso::segment_tcp(&mut pool, &f, &mut again).unwrap();
        pool.free(f);
        assert_eq!(again.len(), segs.len());
        for (s, g) in segs.iter().zip(&again) {
            assert!(
                pool.data(g) == s.bytes().as_slice(),
                "frame seq {:#x} is byte-exact",
                s.seq
            );
        }
        for g in again {
            pool.free(g);
        }
    }

    #[test]
    fn a_merged_ipv4_segment_cut_again_by_gso_gives_back_the_frames_byte_for_byte() {
        let mut segs = Seg::run(7);
        segs[6].len = 1;
        segs[6].flags = ACK | PSH;
        round_trip(&segs);
    }

    #[test]
    fn a_merged_ipv6_segment_cut_again_by_gso_gives_back_the_frames_byte_for_byte() {
        let mut segs = Seg::run(5);
        for s in &mut segs {
            s.v6 = true;
        }
        segs[4].len = 1000;
        round_trip(&segs);
        let (out, _) = merged(&segs, 4);
        assert_eq!(out[0].1.gso_type, gso_type::TCPV6);
        assert_eq!(out[0].1.csum_start, 54);
    }

    #[test]
    fn frames_out_of_order_or_repeated_are_not_merged_and_keep_their_order() {
        let s = Seg::run(3);
        for segs in [
            vec![s[0].clone(), s[2].clone(), s[1].clone()],
            vec![s[1].clone(), s[0].clone()],
            vec![s[0].clone(), s[0].clone()],
        ] {
            let (out, counters) = merged(&segs, 4);
            assert_eq!(out, unchanged(&segs));
            assert_eq!(counters.gro_merged.get(), 0);
        }
    }

    #[test]
    fn syn_fin_rst_urg_ece_and_cwr_frames_go_alone() {
        for flag in [
            flags::SYN,
            flags::FIN,
            flags::RST,
            flags::URG,
            flags::ECE,
            flags::CWR,
        ] {
            // The flagged frame in the middle, then first in a run.
            for at in [1, 0] {
                let mut segs = Seg::run(3);
                segs[at].flags |= flag;
                let (out, _) = merged(&segs, 4);
                let want = if at == 0 { 2 } else { 3 };
                assert_eq!(out.len(), want, "flag {flag:#x} on frame {at}");
                let flagged = &out[at].0;
                assert!(
                    flagged == &segs[at].bytes(),
                    "flag {flag:#x}: the frame is untouched"
                );
            }
        }
    }

    #[test]
    fn psh_ends_a_run_and_the_next_frame_starts_another() {
        let mut segs = Seg::run(4);
        segs[1].flags = ACK | PSH;
        let (out, _) = merged(&segs, 4);
        assert_eq!(out.len(), 2);
        assert_eq!(payload(&out[0].0, false).len(), 2 * MSS);
        assert_eq!(out[0].0[ETH_HDR + 20 + 13], ACK | PSH);
        assert_eq!(payload(&out[1].0, false).len(), 2 * MSS);
    }

    #[test]
    fn interleaved_flows_each_merge_into_their_own_segment() {
        let mut segs = Vec::new();
        for i in 0..6 {
            let a = Seg::nth(i);
            let b = Seg {
                sport: 40001,
                ..Seg::nth(i)
            };
            segs.push(a);
            segs.push(b);
        }
        let (out, counters) = merged(&segs, 4);
        assert_eq!(out.len(), 2);
        for (k, port) in [40000u16, 40001].into_iter().enumerate() {
            let t = ETH_HDR + 20;
            assert_eq!(u16::from_be_bytes([out[k].0[t], out[k].0[t + 1]]), port);
            assert_eq!(payload(&out[k].0, false).len(), 6 * MSS);
        }
        assert_eq!(counters.gro_segments.get(), 2);
    }

    #[test]
    fn a_header_field_that_changes_ends_the_run() {
        type Change = fn(&mut Seg);
        let changes: [(&str, Change); 4] = [
            ("timestamp", |s| s.tsval += 1),
            ("window", |s| s.window += 1),
            ("IPv4 id", |s| s.id = s.id.wrapping_add(5)),
            ("size above the first frame's", |s| s.len += 1),
        ];
        for (what, change) in changes {
            let mut segs = Seg::run(4);
            for s in &mut segs[2..] {
                change(s);
            }
            // Frame 3 follows frame 2, whatever changed.
            segs[3].seq = segs[2].seq.wrapping_add(segs[2].len as u32);
            let (out, _) = merged(&segs, 4);
            assert_eq!(out.len(), 2, "{what}: two runs of two");
            assert!(
                payload(&out[0].0, false)
                    == [
                        payload(&segs[0].bytes(), false),
                        payload(&segs[1].bytes(), false)
                    ]
                    .concat(),
                "{what}: the first run holds frames 0 and 1"
            );
        }
    }

    #[test]
    fn a_short_frame_ends_the_run() {
        let mut segs = Seg::run(4);
        segs[1].len = 100;
        segs[2].seq = ISN.wrapping_add((MSS + 100) as u32);
        segs[3].seq = segs[2].seq.wrapping_add(MSS as u32);
        let (out, _) = merged(&segs, 4);
        assert_eq!(out.len(), 2);
        assert_eq!(payload(&out[0].0, false).len(), MSS + 100);
        assert_eq!(payload(&out[1].0, false).len(), 2 * MSS);
    }

    #[test]
    fn a_pure_ack_of_the_flow_is_not_overtaken_by_later_data() {
        let mut segs = Seg::run(2);
        let mut ack = Seg::nth(1);
        ack.len = 0;
        segs.insert(1, ack);
        let (out, _) = merged(&segs, 4);
        assert_eq!(out, unchanged(&segs));
    }

    #[test]
    fn a_frame_with_a_wrong_checksum_is_never_merged() {
        // Complete checksums are verified: a damaged byte in frame 1.
        let segs = Seg::run(3);
        let mut pool = pool(4);
        let mut frames = frames_of(&mut pool, &segs);
        let at = frames[1].len() - 1;
        pool.data_mut(&mut frames[1])[at] ^= 0x40;
        let damaged = pool.data(&frames[1]).to_vec();
        let counters = PortCounters::default();
        Gro::new().merge_burst(&mut pool, &mut frames, &counters);
        assert_eq!(frames.len(), 3);
        assert!(pool.data(&frames[1]) == damaged.as_slice());
        // And a damaged IPv4 header checksum on the first frame.
        for f in frames.drain(..) {
            pool.free(f);
        }
        let mut frames = frames_of(&mut pool, &segs);
        pool.data_mut(&mut frames[0])[ETH_HDR + 10] ^= 1;
        Gro::new().merge_burst(&mut pool, &mut frames, &counters);
        assert_eq!(frames.len(), 2, "frame 0 alone, 1 and 2 merged");
        assert_eq!(frames[0].len(), segs[0].bytes().len());
        for f in frames.drain(..) {
            pool.free(f);
        }
        assert_eq!(pool.in_flight(), 0);
    }

    #[test]
    fn frames_from_a_port_that_kept_its_offload_state_are_left_to_the_sender() {
        // A TAP's frames: the sender's kernel already chose their size.
        let segs = Seg::run(4);
        let mut pool = pool(4);
        let mut frames = frames_of(&mut pool, &segs);
        for f in &mut frames {
            f.offload.csum_lost = false;
        }
        Gro::new().merge_burst(&mut pool, &mut frames, &PortCounters::default());
        assert_eq!(frames.len(), 4);
        for f in frames.drain(..) {
            pool.free(f);
        }
    }

    #[test]
    fn without_a_free_large_buffer_frames_go_unmerged_and_are_counted() {
        let segs = Seg::run(5);
        let (out, counters) = merged(&segs, 0);
        assert_eq!(out, unchanged(&segs));
        assert_eq!(counters.gro_no_buffer.get(), 5);
        assert_eq!(counters.gro_segments.get(), 0);
    }

    #[test]
    fn a_segment_never_exceeds_64_kb() {
        let segs = Seg::run(50);
        let (out, _) = merged(&segs, 4);
        assert_eq!(out.len(), 2);
        // 20 + 32 + 45 * 1448 = 65212 <= 65535 < 20 + 32 + 46 * 1448.
        assert_eq!(payload(&out[0].0, false).len(), 45 * MSS);
        assert_eq!(payload(&out[1].0, false).len(), 5 * MSS);
    }

    #[test]
    fn gso_frames_other_protocols_and_lone_frames_pass_untouched() {
        let mut pool = pool(4);
        let mut frames = frames_of(&mut pool, &[Seg::nth(0), Seg::nth(1)]);
        frames[0].offload.gso_type = gso_type::TCPV4;
        frames[0].offload.gso_size = 700;
        let mut arp = pool.alloc_copy(&[0xffu8; 60]).unwrap();
        arp.offload.csum_lost = true;
        frames.push(arp);
        let before: Vec<Vec<u8>> = frames.iter().map(|f| pool.data(f).to_vec()).collect();
        Gro::new().merge_burst(&mut pool, &mut frames, &PortCounters::default());
        let after: Vec<Vec<u8>> = frames.iter().map(|f| pool.data(f).to_vec()).collect();
        assert_eq!(before, after);
        assert_eq!(frames[0].offload.gso_size, 700);
        for f in frames.drain(..) {
            pool.free(f);
        }
    }

    proptest! {
        #[test]
        fn mangled_runs_never_panic_and_never_lose_a_frame(
            n in 2usize..12,
            pos in any::<prop::sample::Index>(),
            which in any::<prop::sample::Index>(),
            val in any::<u8>(),
            v6 in any::<bool>(),
            partial in any::<bool>(),
            cut in 0usize..100,
        ) {
            let mut segs = Seg::run(n);
            for s in &mut segs {
                s.v6 = v6;
                s.partial = partial;
            }
            let mut pool = pool(2);
            let mut frames = frames_of(&mut pool, &segs);
            let k = which.index(n);
            let len = frames[k].len();
            let i = pos.index(len.min(100));
            pool.data_mut(&mut frames[k])[i] = val;
            let new_len = len - cut.min(len);
            pool.set_len(&mut frames[k], new_len);
            Gro::new().merge_burst(&mut pool, &mut frames, &PortCounters::default());
            let total: usize = frames.iter().map(|f| f.len()).sum();
            prop_assert!(total <= segs.iter().map(|s| s.bytes().len()).sum::<usize>());
            for f in frames.drain(..) {
                pool.free(f);
            }
            prop_assert_eq!(pool.in_flight(), 0);
        }
    }
}
