//! The switching pipeline over memory ports, one thread, no PMD threads:
//! bursts of 32 64-byte UDP frames unicast from port 0 to port 1, with one
//! destination MAC and with 1,000 (all learned before the run).
//!
//! Criterion reports time per burst and packets/s; after each case this
//! prints ns/packet, the median over criterion's measurement samples.

use std::cell::RefCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bench::pipeline::{PipelineBench, BURST};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn pipeline(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(BURST as u64));
    for (name, macs) in [("1-mac-pair", 1usize), ("1000-macs", 1000)] {
        let mut b = PipelineBench::new(macs);
        // (iterations, time) of every call; criterion's measurement samples
        // are the last `sample_size` calls, after its warm-up.
        let samples: RefCell<Vec<(u64, Duration)>> = RefCell::new(Vec::new());
        group.bench_function(name, |bencher| {
            bencher.iter_custom(|iters| {
                let start = Instant::now();
                let mut forwarded = 0;
                for _ in 0..iters {
                    forwarded += black_box(b.burst());
                }
                let t = start.elapsed();
                assert_eq!(forwarded as u64, iters * BURST as u64, "frames lost");
                samples.borrow_mut().push((iters, t));
                t
            })
        });
        assert_eq!(b.in_flight(), 0, "frames leaked from the pool");
        let samples = samples.into_inner();
        let n = samples.len().min(100);
        let mut per_packet: Vec<f64> = samples[samples.len() - n..]
            .iter()
            .map(|(iters, t)| t.as_nanos() as f64 / (*iters * BURST as u64) as f64)
            .collect();
        per_packet.sort_by(f64::total_cmp);
        if let Some(median) = per_packet.get(n / 2) {
            println!(
                "pipeline/{name}: {median:.1} ns/packet ({:.2} Mpps), median of {n} samples",
                1e3 / median
            );
        }
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
