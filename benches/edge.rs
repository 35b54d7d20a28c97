//! The edge's per-signal work without network or broker: the cheap checks (JSON, depth,
//! source, lead), the record key and headers. Beside it, in the same run, plain serde_json
//! validation of the same bytes, the least any JSON edge must do. Reads as signals per second.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ingest::accept::{encode, Via};
use ingest::control::Caller;
use ingest::signals::prepare;

#[path = "mix.rs"]
mod mix;
use mix::mix;

fn edge_path(c: &mut Criterion) {
    let signals = mix();
    let caller = Caller { org: Arc::from("acme"), key_id: Arc::from("key_0123456789abcdef") };
    let mut group = c.benchmark_group("edge");
    group.throughput(Throughput::Elements(signals.len() as u64));
    group.bench_function("serde_json_validate_only", |b| {
        b.iter(|| {
            for signal in &signals {
                black_box(serde_json::from_slice::<serde::de::IgnoredAny>(signal).is_ok());
            }
        })
    });
    group.bench_function("check_detect_key_encode", |b| {
        b.iter(|| {
            for (id, signal) in signals.iter().enumerate() {
                let prepared = prepare(signal.clone(), None, None).expect("valid");
                black_box(encode(&caller, Via::Webhook, id as u64, 1_795_000_000_000, &prepared));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, edge_path);
criterion_main!(benches);
