//! VXLAN encapsulation and decapsulation cost without criterion, for
//! `podbench vxlan` (and callgrind): one frame encapsulated over and over
//! (the outer headers pulled off again after each packet, so it never runs
//! out of headroom), and `overlay::receive` on one outer packet.
//!
//! The frame builders and the table setup are shared with the criterion
//! benchmark `overlay/benches/vxlan.rs`, which includes this file with
//! `#[path]` (a dev-dependency of `overlay` on `bench` would be a cycle
//! through `switch`). So this file uses only `overlay`, `pmd` and `std`.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ::overlay::{
    encapsulate, encapsulate_into, receive, Decap, Encap, LearnedMacs, OverlayCounters, Vni,
    VtepTables, OUTER_LEN, VXLAN_PORT,
};
use pmd::meta::{self, PacketMeta};
use pmd::wire::{checksum, MacAddr};
use pmd::{Pool, PoolConfig};

pub const VNI: Vni = 4242;
/// This VTEP.
pub const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// The one peer VTEP.
pub const PEER: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);

/// An inner Ethernet/IPv4/UDP frame of `len` bytes (`len >= 42`).
pub fn inner_udp(len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&[2, 0, 10, 200, 0, 20]);
    f[6..12].copy_from_slice(&[2, 0, 10, 200, 0, 10]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 200, 0, 10]);
    f[30..34].copy_from_slice(&[10, 200, 0, 20]);
    let c = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f[34..36].copy_from_slice(&40000u16.to_be_bytes());
    f[36..38].copy_from_slice(&53u16.to_be_bytes());
    f[38..40].copy_from_slice(&((len - 34) as u16).to_be_bytes());
    f
}

/// The encapsulation parameters from `src_vtep` to `dst_vtep`.
pub fn encap(dst_vtep: Ipv4Addr, src_vtep: Ipv4Addr) -> Encap {
    Encap {
        vni: VNI,
        src_vtep,
        dst_vtep,
        src_mac: MacAddr([2, 0xaa, 0, 0, 0, 2]),
        dst_mac: MacAddr([2, 0xaa, 0, 0, 0, 1]),
        udp_dst_port: VXLAN_PORT,
        ttl: 64,
    }
}

/// A small heap pool (16 chunks, one large).
pub fn pool() -> Pool {
    Pool::new(PoolConfig {
        chunks: 16,
        large: 1,
        umem: false,
    })
    .unwrap()
}

/// VTEP tables of [`LOCAL`]: network [`VNI`] on the VXLAN port, one peer.
pub fn tables() -> VtepTables {
    let mut tables = VtepTables::new(LOCAL);
    tables.add_network(VNI, VXLAN_PORT, None).unwrap();
    tables.add_peer(VNI, PEER).unwrap();
    tables
}

/// A VXLAN packet from [`PEER`] to [`LOCAL`] around `inner`.
pub fn outer_packet(inner: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 64 + inner.len()];
    buf[64..].copy_from_slice(inner);
    let r = encapsulate_into(&mut buf, 64, inner.len(), &encap(LOCAL, PEER)).unwrap();
    buf[r].to_vec()
}

/// Packets run, how many succeeded, and the time.
pub struct VxlanReport {
    pub packets: u64,
    pub ok: u64,
    pub elapsed: Duration,
}

impl VxlanReport {
    pub fn ns_per_packet(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.packets as f64
    }
}

/// Encapsulates one pool frame holding an `inner_len`-byte inner frame
/// `packets` times toward [`PEER`], pulling the outer headers off after
/// each (criterion's `vxlan/encap/L`).
#[inline(never)]
pub fn run_encap(inner_len: usize, packets: u64) -> VxlanReport {
    let mut pool = pool();
    let inner = inner_udp(inner_len);
    let e = encap(PEER, LOCAL);
    let mut frame = pool.alloc_copy(&inner).unwrap();
    let mut ok = 0;
    let start = Instant::now();
    for _ in 0..packets {
        ok += u64::from(encapsulate(&mut pool, &mut frame, black_box(&e)).is_ok());
        pool.pull_front(&mut frame, OUTER_LEN);
    }
    let elapsed = start.elapsed();
    assert_eq!(frame.len(), inner_len, "frame length drifted");
    pool.free(frame);
    VxlanReport {
        packets,
        ok,
        elapsed,
    }
}

/// Runs `overlay::receive` `packets` times on one VXLAN packet from
/// [`PEER`] around an `inner_len`-byte frame, with the outer headers
/// parsed once before (criterion's `vxlan/decap/L`).
#[inline(never)]
pub fn run_decap(inner_len: usize, packets: u64) -> VxlanReport {
    let tables = tables();
    let counters = OverlayCounters::default();
    let mut learned = LearnedMacs::new(1024, 300);
    let outer = outer_packet(&inner_udp(inner_len));
    let m: PacketMeta = meta::parse(&outer).unwrap();
    let mut ok = 0;
    let start = Instant::now();
    for _ in 0..packets {
        let d = black_box(receive(
            black_box(&outer),
            black_box(&m),
            &tables,
            &mut learned,
            &counters,
            1,
        ));
        ok += u64::from(matches!(d, Decap::Inner { .. }));
    }
    VxlanReport {
        packets,
        ok,
        elapsed: start.elapsed(),
    }
}
