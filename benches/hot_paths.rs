//! Micro-benchmarks of the per-message and per-tick hot paths: parsing a viewer frame,
//! counting it in the session slot, and serialising a campaign's stats once per tick.
//! Run with `cargo bench --bench hot_paths`; results go to BENCHMARKS.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use livetally::protocol::{self, Frames};
use livetally::store::{NodeShare, Stats};
use livetally::tally::session::SessionSlot;

fn parse(c: &mut Criterion) {
    let frame = r#"{"type":"interact","kind":"like","count":1,"seq":123456}"#;
    let mut g = c.benchmark_group("protocol::parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("interact with seq", |b| b.iter(|| protocol::parse(black_box(frame))));
    g.finish();
}

fn add(c: &mut Criterion) {
    let slot = SessionSlot::new("session-0001".into(), "viewer-0001".into(), 1, 0, 4);
    let mut seq = 0u64;
    let mut g = c.benchmark_group("SessionSlot::add");
    g.throughput(Throughput::Elements(1));
    g.bench_function("like with seq", |b| {
        b.iter(|| {
            seq += 1;
            slot.add(black_box(0), black_box(1), Some(seq))
        })
    });
    g.finish();
}

fn build(c: &mut Criterion) {
    let mut stats = Stats {
        viewers: 4_500_000,
        peak_viewers: 4_612_345,
        peak_at: Some(1_790_000_000_000),
        unique_viewers: 5_123_456,
        interactors: 1_234_567,
        registrations: 98_765,
        share_visits: 41_000_000,
        ..Default::default()
    };
    for (k, n) in [
        ("like", 912_345_678u64),
        ("cheer", 1_234_567),
        ("comment", 45_678),
        ("share", 9_876),
    ] {
        stats.interactions.insert(k.into(), n);
    }
    for r in ["eu", "us", "asia", "other", "unknown"] {
        stats.regions.insert(r.into(), 900_000);
    }
    for ch in ["wechat", "whatsapp", "x", "other"] {
        stats.share_visits_by_channel.insert(ch.into(), 10_000_000);
    }
    stats.nodes = (0..45)
        .map(|i| NodeShare {
            node: format!("node-{i:03}"),
            viewers: 100_000,
            updated_at: 1_790_000_000_000,
        })
        .collect();
    let mut g = c.benchmark_group("broadcast::Frames::build");
    g.throughput(Throughput::Elements(1));
    g.bench_function("45 nodes, 4 kinds, 5 regions", |b| {
        b.iter(|| {
            Frames::build(
                black_box("launch-2026"),
                black_box(1_790_000_000_123),
                black_box(&stats),
            )
        })
    });
    g.finish();
}

criterion_group!(hot_paths, parse, add, build);
criterion_main!(hot_paths);
