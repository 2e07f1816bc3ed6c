//! NAT translate cost without criterion, for `podbench nat` (and callgrind):
//! established UDP flows with N flows in the table, one hot flow or 4,096
//! flows spread over the table in turn, and new-flow (SNAT) setup.
//!
//! The frame builders and the table fill are shared with the criterion
//! benchmark `nat/benches/translate.rs`, which includes this file with
//! `#[path]` (a dev-dependency of `nat` on `bench` would be a cycle through
//! `switch`). So this file uses only `nat`, `pmd` and `std`.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ::nat::{L4Csum, Nat, NatConfig, Verdict};
use pmd::meta::{self, PacketMeta};

/// Frame length of every packet (64 on the wire).
pub const FRAME_LEN: usize = 60;
/// "Now" for translating established flows (filled at time 0): 1 s later.
pub const NOW_NS: u64 = 1_000_000_000;
/// Flows visited in turn by the random case.
pub const PICKS: usize = 4096;

/// A UDP frame from `src:sport` to `dst:dport`, 18 bytes of payload.
pub fn udp(src: u32, sport: u16, dst: u32, dport: u16) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f[14] = 0x45;
    f[16..18].copy_from_slice(&46u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&src.to_be_bytes());
    f[30..34].copy_from_slice(&dst.to_be_bytes());
    let c = pmd::wire::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&dport.to_be_bytes());
    f[38..40].copy_from_slice(&26u16.to_be_bytes());
    f[40..42].copy_from_slice(&0x1234u16.to_be_bytes());
    f
}

/// External 10.99.0.2, internal 172.30.0.0/16, at most `max` entries.
pub fn config(max: u32) -> NatConfig {
    let mut c = NatConfig::new(
        Ipv4Addr::new(10, 99, 0, 2),
        "172.30.0.0/16".parse().unwrap(),
        Ipv4Addr::new(172, 30, 0, 1),
    );
    c.max_entries = max;
    c
}

/// Flow `i`: 25,000 internal endpoints (250 hosts x 100 ports, within the
/// 28,232 SNAT ports) to distinct destinations.
pub fn flow(i: u32) -> [u8; FRAME_LEN] {
    let host = u32::from(Ipv4Addr::new(172, 30, 1, 0)) + (i % 250);
    let port = 10_000 + ((i / 250) % 100) as u16;
    let dst = u32::from(Ipv4Addr::new(100, 64, 0, 0)) + i;
    udp(host, port, dst, 53)
}

/// A NAT with flows `0..n` established at time 0.
pub fn filled(n: u32) -> Nat {
    let mut nat = Nat::new(config(n.max(1) + 1024));
    for i in 0..n {
        let mut f = flow(i);
        let m = meta::parse(&f).unwrap();
        let v = nat.outbound(&mut f, &m, 0, L4Csum::Complete, 0);
        assert_eq!(v, Verdict::ToUplink);
    }
    assert_eq!(nat.len(), n as usize);
    nat
}

/// The one hot flow of a table of `n`.
pub fn hot(n: u32) -> [u8; FRAME_LEN] {
    flow(n / 2)
}

/// [`PICKS`] flows spread over a table of `n` (xorshift32), visited in turn.
pub fn picks(n: u32) -> Vec<[u8; FRAME_LEN]> {
    let mut x = 0x9e37_79b9u32;
    (0..PICKS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            flow(x % n)
        })
        .collect()
}

/// Packets run, how many of them got the expected verdict, and the time.
pub struct NatReport {
    pub packets: u64,
    pub ok: u64,
    pub elapsed: Duration,
}

impl NatReport {
    pub fn ns_per_packet(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.packets as f64
    }
}

/// Translates `packets` frames of established flows, `frames[k % len]` for
/// packet `k` (`frames.len()` a power of two), each copied into a buffer
/// first as the criterion benchmark does. `m` is the metadata of
/// `frames[0]` (all frames have the same layout).
#[inline(never)]
pub fn run_established(nat: &mut Nat, frames: &[[u8; FRAME_LEN]], packets: u64) -> NatReport {
    assert!(frames.len().is_power_of_two());
    let mask = frames.len() - 1;
    let m: PacketMeta = meta::parse(&frames[0]).unwrap();
    let mut buf = [0u8; FRAME_LEN];
    let mut ok = 0;
    let start = Instant::now();
    for k in 0..packets as usize {
        buf.copy_from_slice(&frames[k & mask]);
        let v = black_box(nat.outbound(&mut buf, &m, 0, L4Csum::Complete, NOW_NS));
        ok += u64::from(v == Verdict::ToUplink);
    }
    NatReport {
        packets,
        ok,
        elapsed: start.elapsed(),
    }
}

/// Sets up `packets` new UDP flows (one internal endpoint, distinct
/// destinations) in an empty NAT, as criterion's `nat_new_flow`: the
/// table grows as it fills, which is part of the cost.
#[inline(never)]
pub fn run_new_flows(packets: u64) -> NatReport {
    let mut nat = Nat::new(config(packets as u32 + 16));
    let base = udp(u32::from(Ipv4Addr::new(172, 30, 1, 1)), 10_000, 0, 53);
    let m = meta::parse(&base).unwrap();
    let dst0 = u32::from(Ipv4Addr::new(100, 64, 0, 0));
    let mut buf = base;
    let mut ok = 0;
    let start = Instant::now();
    for i in 0..packets {
        buf.copy_from_slice(&base);
        buf[30..34].copy_from_slice(&(dst0 + i as u32).to_be_bytes());
        let v = black_box(nat.outbound(&mut buf, &m, 0, L4Csum::Complete, 0));
        ok += u64::from(v == Verdict::ToUplink);
    }
    let elapsed = start.elapsed();
    assert_eq!(nat.len() as u64, ok, "table size != flows set up");
    NatReport {
        packets,
        ok,
        elapsed,
    }
}
