//! Criterion: the partial-checksum check on frames from a port that lost
//! the checksum state, per 1514-byte TCP frame (see bench/src/csum.rs).

use bench::csum::{one, tcp_frame, CsumMode};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn partial_csum(c: &mut Criterion) {
    let mut g = c.benchmark_group("partial_csum");
    for (name, mode) in [
        ("parse", CsumMode::Parse),
        ("resolve_partial", CsumMode::ResolvePartial),
        ("resolve_complete", CsumMode::ResolveComplete),
        ("finish", CsumMode::Finish),
    ] {
        let mut frame = tcp_frame(mode != CsumMode::ResolveComplete);
        let seed = [frame[50], frame[51]];
        g.bench_function(name, |b| b.iter(|| one(mode, black_box(&mut frame), seed)));
    }
    g.finish();
}

criterion_group!(benches, partial_csum);
criterion_main!(benches);
