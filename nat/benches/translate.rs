//! NAT translate cost: an established flow with 1, 10,000 and 1,000,000
//! flows in the table (one hot flow, and flows picked at random so the
//! table's size shows), new-flow setup, the sweep per slab slot, and the
//! bytes a tracked connection costs.
//!
//! Each translate iteration first copies a 60-byte template frame (the
//! rewrite works in place), which is included in the time.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nat::{L4Csum, Nat, NatConfig, Verdict};
use pmd::meta::{self, PacketMeta};

/// A UDP frame from `src:sport` to `dst:dport`, 18 bytes of payload.
fn udp(src: u32, sport: u16, dst: u32, dport: u16) -> [u8; 60] {
    let mut f = [0u8; 60];
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

fn config(max: u32) -> NatConfig {
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
fn flow(i: u32) -> [u8; 60] {
    let host = u32::from(Ipv4Addr::new(172, 30, 1, 0)) + (i % 250);
    let port = 10_000 + ((i / 250) % 100) as u16;
    let dst = u32::from(Ipv4Addr::new(100, 64, 0, 0)) + i;
    udp(host, port, dst, 53)
}

fn filled(n: u32) -> Nat {
    let mut nat = Nat::new(config(n.max(1) + 1024));
    for i in 0..n {
        let mut f = flow(i);
        let m = meta::parse(&f).unwrap();
        let v = nat.outbound(&mut f, &m, L4Csum::Complete, 0);
        assert_eq!(v, Verdict::ToUplink);
    }
    assert_eq!(nat.len(), n as usize);
    nat
}

fn translate(c: &mut Criterion) {
    let mut g = c.benchmark_group("nat_translate_established");
    g.throughput(Throughput::Elements(1));
    for n in [1u32, 10_000, 1_000_000] {
        let mut nat = filled(n);
        println!(
            "table of {n} flows: {:.1} bytes per tracked connection (entry {} B)",
            nat.bytes_per_connection(),
            nat::ENTRY_BYTES
        );
        let hot = flow(n / 2);
        let m: PacketMeta = meta::parse(&hot).unwrap();
        g.bench_with_input(BenchmarkId::new("one_hot_flow", n), &n, |b, _| {
            let mut buf = [0u8; 60];
            b.iter(|| {
                buf.copy_from_slice(&hot);
                black_box(nat.outbound(&mut buf, &m, L4Csum::Complete, 1_000_000_000))
            })
        });
        // 4096 flows spread over the table, visited in turn.
        let mut x = 0x9e37_79b9u32;
        let picks: Vec<[u8; 60]> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                flow(x % n)
            })
            .collect();
        g.bench_with_input(BenchmarkId::new("random_flows", n), &n, |b, _| {
            let mut buf = [0u8; 60];
            let mut k = 0;
            b.iter(|| {
                buf.copy_from_slice(&picks[k & 4095]);
                k += 1;
                black_box(nat.outbound(&mut buf, &m, L4Csum::Complete, 1_000_000_000))
            })
        });
    }
    g.finish();
}

fn setup(c: &mut Criterion) {
    let mut g = c.benchmark_group("nat_new_flow");
    g.throughput(Throughput::Elements(1));
    g.bench_function("udp_snat_setup", |b| {
        b.iter_custom(|iters| {
            let mut nat = Nat::new(config(iters as u32 + 16));
            let base = udp(u32::from(Ipv4Addr::new(172, 30, 1, 1)), 10_000, 0, 53);
            let m = meta::parse(&base).unwrap();
            let dst0 = u32::from(Ipv4Addr::new(100, 64, 0, 0));
            let mut buf = base;
            let start = Instant::now();
            for i in 0..iters {
                buf.copy_from_slice(&base);
                buf[30..34].copy_from_slice(&(dst0 + i as u32).to_be_bytes());
                black_box(nat.outbound(&mut buf, &m, L4Csum::Complete, 0));
            }
            start.elapsed()
        })
    });
    g.finish();
}

fn sweep(c: &mut Criterion) {
    let mut g = c.benchmark_group("nat_sweep");
    let mut nat = filled(1_000_000);
    g.throughput(Throughput::Elements(4096));
    // Nothing has expired: the cost of visiting 4096 live slots.
    g.bench_function("4096_live_slots_of_1M", |b| {
        b.iter(|| black_box(nat.sweep(1_000_000_000, 4096)))
    });
    g.finish();
    // Everything expired: removing 1M flows in 4096-slot steps.
    let start = Instant::now();
    let mut removed = 0;
    let mut calls = 0;
    while !nat.is_empty() {
        removed += nat.sweep(100_000_000_000, 4096);
        calls += 1;
    }
    let t: Duration = start.elapsed();
    println!(
        "sweep of 1M expired flows: {removed} removed in {calls} calls of 4096 slots, {:.1} ns per flow, {:.1} us per call",
        t.as_nanos() as f64 / removed as f64,
        t.as_micros() as f64 / calls as f64
    );
}

criterion_group!(benches, translate, setup, sweep);
criterion_main!(benches);
