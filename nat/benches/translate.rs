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
use nat::{L4Csum, Nat};
use pmd::meta::{self, PacketMeta};

// The frame builders and the table fill, shared with `podbench nat`.
#[path = "../../bench/src/nat.rs"]
#[allow(dead_code)]
mod shared;
use shared::{config, filled, udp, NOW_NS};

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
        let hot = shared::hot(n);
        let m: PacketMeta = meta::parse(&hot).unwrap();
        g.bench_with_input(BenchmarkId::new("one_hot_flow", n), &n, |b, _| {
            let mut buf = [0u8; 60];
            b.iter(|| {
                buf.copy_from_slice(&hot);
                black_box(nat.outbound(&mut buf, &m, 0, L4Csum::Complete, NOW_NS))
            })
        });
        // 4096 flows spread over the table, visited in turn.
        let picks = shared::picks(n);
        g.bench_with_input(BenchmarkId::new("random_flows", n), &n, |b, _| {
            let mut buf = [0u8; 60];
            let mut k = 0;
            b.iter(|| {
                buf.copy_from_slice(&picks[k & 4095]);
                k += 1;
                black_box(nat.outbound(&mut buf, &m, 0, L4Csum::Complete, NOW_NS))
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
                black_box(nat.outbound(&mut buf, &m, 0, L4Csum::Complete, 0));
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
