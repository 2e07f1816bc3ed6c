//! Encapsulation and decapsulation cost per packet for 64- and 1450-byte
//! inner frames (issue 5's microbenchmark). Encapsulation works on a pool
//! frame and strips the outer headers again after each iteration (a
//! `pull_front`, a few ns), so the frame never runs out of headroom;
//! decapsulation runs `receive` (parse checks, table lookups, inner parse,
//! learning, counters) on one outer packet, without touching the frame.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use overlay::*;
use pmd::meta;

// The frame builders and the table setup, shared with `podbench vxlan`.
#[path = "../../bench/src/vxlan.rs"]
#[allow(dead_code)]
mod shared;
use shared::{encap, inner_udp, outer_packet, LOCAL, PEER};

fn bench(c: &mut Criterion) {
    let mut pool = shared::pool();
    let tables = shared::tables();
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
        let outer = outer_packet(&inner);
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
