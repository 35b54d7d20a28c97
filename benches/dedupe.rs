//! The dedupe window's cost per signal: the exact hour-bucket map `stream::dedupe::Deduper`
//! keeps, beside the moka cache the design first named (LRU without admission filter, expiry by
//! receive time), in one run. Each iteration checks 100 000 identities, one in four a repeat of
//! an earlier one, into a window of a million entries. With `cargo bench --bench stream`'s
//! per-signal processing cost, it says what share of the processing each would take.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use stream::dedupe::Deduper;

mod moka_window;

const SIGNALS: u64 = 100_000;

fn hashes() -> Vec<u128> {
    (0..SIGNALS)
        .map(|n| {
            let n = if n % 4 == 3 { n / 2 } else { n };
            xxhash_rust::xxh3::xxh3_128(&n.to_le_bytes())
        })
        .collect()
}

fn dedupe(c: &mut Criterion) {
    let hashes = hashes();
    let window = Duration::from_secs(24 * 3600);
    let now = runtime::time::now_ms();
    let mut group = c.benchmark_group("dedupe");
    group.throughput(Throughput::Elements(SIGNALS));
    group.bench_function("hour_bucket_map", |b| {
        b.iter_batched_ref(
            || Deduper::new(1_000_000, window),
            |deduper| {
                for (i, hash) in hashes.iter().enumerate() {
                    black_box(deduper.check(*hash, i as u64, now));
                }
                deduper.expire(now);
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("moka_lru_by_age", |b| {
        b.iter_batched_ref(
            || moka_window::MokaWindow::new(1_000_000, window),
            |moka| {
                for (i, hash) in hashes.iter().enumerate() {
                    black_box(moka.check(*hash, i as u64, now));
                }
                moka.expire();
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, dedupe);
criterion_main!(benches);
