//! Encapsulation and decapsulation cost per packet for 64- and 1450-byte
//! inner frames (issue 5's microbenchmark). Encapsulation works on a pool
//! frame and strips the outer headers again after each iteration (a
//! `pull_front`, a few ns), so the frame never runs out of headroom;
//! decapsulation runs `receive` (parse checks, table lookups, inner parse,
//! learning, counters) on one outer packet, without touching the frame.

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use overlay::*;
use pmd::meta;
use pmd::wire::{checksum, MacAddr};
use pmd::{Pool, PoolConfig};

const VNI: Vni = 4242;
const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);

fn inner_udp(len: usize) -> Vec<u8> {
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

fn encap(dst_vtep: Ipv4Addr, src_vtep: Ipv4Addr) -> Encap {
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

fn bench(c: &mut Criterion) {
    let mut pool = Pool::new(PoolConfig {
        chunks: 16,
        large: 1,
        umem: false,
    })
    .unwrap();
    let mut tables = VtepTables::new(LOCAL);
    tables.add_network(VNI, VXLAN_PORT, None).unwrap();
    tables.add_peer(VNI, PEER).unwrap();
    let counters = OverlayCounters::default();

    let mut g = c.benchmark_group("vxlan");
    g.throughput(Throughput::Elements(1));
    for len in [64usize, 1450] {
        let inner = inner_udp(len);
        let e = encap(PEER, LOCAL);
        let mut frame = pool.alloc_copy(&inner).unwrap();
        g.bench_function(format!("encap/{len}"), |b| {
            b.iter(|| {
                encapsulate(&mut pool, &mut frame, black_box(&e)).unwrap();
                pool.pull_front(&mut frame, OUTER_LEN);
            })
        });
        pool.free(frame);

        // A packet from the peer to us.
        let mut buf = vec![0u8; 64 + len];
        buf[64..].copy_from_slice(&inner);
        let r = encapsulate_into(&mut buf, 64, len, &encap(LOCAL, PEER)).unwrap();
        let outer = buf[r].to_vec();
        let m = meta::parse(&outer).unwrap();
        let mut learned = LearnedMacs::new(1024, 300);
        assert!(matches!(
            receive(&outer, &m, &tables, &mut learned, &counters, 1),
            Decap::Inner { .. }
        ));
        g.bench_function(format!("decap/{len}"), |b| {
            b.iter(|| {
                black_box(receive(
                    black_box(&outer),
                    black_box(&m),
                    &tables,
                    &mut learned,
                    &counters,
                    1,
                ))
            })
        });
        // The outer parse the switch does once per received frame anyway,
        // for comparison.
        g.bench_function(format!("outer_parse_plus_decap/{len}"), |b| {
            b.iter(|| {
                let m = meta::parse(black_box(&outer)).unwrap();
                black_box(receive(&outer, &m, &tables, &mut learned, &counters, 1))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
