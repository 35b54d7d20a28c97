//! The stream processor's per-record work without Kafka (UTF-8 check, simd-json parse with
//! reused buffers, dedupe, detection, identity resolution, encoding the processed record) over
//! the shared signal mix, beside simd-json parsing alone of the same bytes in the same run.
//! Reads as signals per second on one core.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use stream::inbound::Inbound;
use stream::processor::Processor;

#[path = "mix.rs"]
mod mix;

const SOURCES: [&str; 5] = ["segment", "segment", "segment", "generic", "activity"];

fn processing(c: &mut Criterion) {
    let signals = mix::mix();
    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Elements(signals.len() as u64));
    group.bench_function("simd_json_parse_only", |b| {
        let mut buffer = Vec::with_capacity(64 * 1024);
        let mut buffers = simd_json::Buffers::new(64 * 1024);
        b.iter(|| {
            for signal in &signals {
                buffer.clear();
                buffer.extend_from_slice(signal);
                black_box(simd_json::to_borrowed_value_with_buffers(&mut buffer, &mut buffers).is_ok());
            }
        })
    });
    // Now, so the dedupe window holds what it is given (entries expire by receive time).
    let received_ms = runtime::time::now_ms();
    group.bench_function("process_batch", |b| {
        // A fresh processor per batch, so every signal is new to dedupe (set-up not timed).
        b.iter_batched_ref(
            || Processor::new(100_000, Duration::from_secs(3600)),
            |processor| {
                for (i, signal) in signals.iter().enumerate() {
                    let inbound = Inbound {
                        org: "acme",
                        signal_id: i as u64,
                        source: SOURCES[i % SOURCES.len()],
                        key_id: "k_bench",
                        endpoint: "/v1/signals",
                        received_ms,
                        history_rules: None,
                        lane: "live",
                        key: b"acme:a",
                        payload: signal,
                    };
                    black_box(processor.process(&inbound));
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, processing);
criterion_main!(benches);
