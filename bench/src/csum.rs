//! What partial checksums from a port that lost the checksum state cost
//! (`pmd::partial_csum`), for `podbench csum` under callgrind and the
//! criterion benchmark `benches/partial_csum.rs`.
//!
//! Every mode parses one 1514-byte TCP frame per packet as the switch does
//! (`meta::parse`); the cost of the check is the difference between
//! `resolve` and `parse`. `finish` adds the software completion a marked
//! frame gets on its way out of a port without checksum offload (the work
//! the sender left to its NIC), restoring the seed after each packet.

use std::hint::black_box;
use std::time::{Duration, Instant};

use pmd::meta;
use pmd::partial_csum;
use pmd::wire::checksum::{self, fold, pseudo_header_v4};
use pmd::Offload;

/// What each packet goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsumMode {
    /// `meta::parse` only: the baseline every frame pays anyway.
    Parse,
    /// Parse and the check, on a frame whose checksum is the seed.
    ResolvePartial,
    /// Parse and the check, on a frame with a complete checksum.
    ResolveComplete,
    /// Parse, the check, and the software completion of the checksum.
    Finish,
}

/// Frame length: a full-MTU TCP segment.
pub const FRAME_LEN: usize = 1514;

/// An Ethernet/IPv4/TCP frame of [`FRAME_LEN`] bytes whose TCP checksum
/// is the pseudo-header seed (as a veth with tx offload sends it), or
/// complete.
pub fn tcp_frame(partial: bool) -> Vec<u8> {
    let mut f = vec![0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((FRAME_LEN - 14) as u16).to_be_bytes());
    f[20] = 0x40;
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&[10, 99, 0, 1]);
    f[30..34].copy_from_slice(&[10, 99, 0, 2]);
    let c = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f[34..36].copy_from_slice(&5201u16.to_be_bytes());
    f[36..38].copy_from_slice(&40000u16.to_be_bytes());
    f[46] = 5 << 4;
    f[47] = 0x10;
    for (i, b) in f[54..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let seed = pseudo_header_v4([10, 99, 0, 1], [10, 99, 0, 2], 6, (FRAME_LEN - 34) as u16);
    let value = if partial {
        fold(seed)
    } else {
        checksum::finish_l4(checksum::sum(seed, &f[34..]))
    };
    f[50..52].copy_from_slice(&value.to_be_bytes());
    f
}

/// Result of a run.
pub struct CsumReport {
    /// Packets processed.
    pub packets: u64,
    /// Packets the check marked partial.
    pub marked: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// One packet of `mode` on `frame`; true when it was marked partial.
#[inline]
pub fn one(mode: CsumMode, frame: &mut [u8], seed: [u8; 2]) -> bool {
    let Ok(m) = meta::parse(frame) else {
        return false;
    };
    if mode == CsumMode::Parse {
        black_box(&m);
        return false;
    }
    let mut off = Offload {
        csum_lost: true,
        ..Offload::default()
    };
    partial_csum::resolve(frame, &m, &mut off);
    if mode == CsumMode::Finish && off.needs_csum {
        let _ = pmd::gso::finish_checksum(frame, &off);
        frame[50..52].copy_from_slice(&seed);
    }
    off.needs_csum
}

/// Runs `packets` packets of `mode`.
pub fn run(mode: CsumMode, packets: u64) -> CsumReport {
    let mut frame = tcp_frame(mode != CsumMode::ResolveComplete);
    let seed = [frame[50], frame[51]];
    let start = Instant::now();
    let mut marked = 0;
    for _ in 0..packets {
        marked += one(mode, black_box(&mut frame), seed) as u64;
    }
    CsumReport {
        packets,
        marked,
        elapsed: start.elapsed(),
    }
}
