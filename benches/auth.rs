//! Key authentication, the first thing every request does: a SHA-256 of the key, a hash-map
//! lookup and (for keys with a secret) a constant-time compare. Reads as requests per second.

use control::keys::{hash_hex, ApiKeyRow, Endpoint, KeySet};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn key_set(count: usize) -> (KeySet, Vec<String>) {
    let keys: Vec<String> = (0..count).map(|i| format!("sgk_{i:048x}")).collect();
    let rows = keys.iter().enumerate().map(|(i, key)| ApiKeyRow {
        key_id: format!("key_{i}"),
        org_id: format!("org{}", i % 100),
        key_hash: hash_hex(key),
        key_prefix: key[..12].to_owned(),
        secret_hash: if i % 2 == 0 { hash_hex("secret") } else { String::new() },
        endpoints: Vec::new(),
        active: 1,
        expires_at_ms: 0,
        created_at_ms: 0,
        version: 0,
    });
    (KeySet::from_rows(rows, [], []), keys)
}

fn authenticate(c: &mut Criterion) {
    let (set, keys) = key_set(10_000);
    let mut group = c.benchmark_group("auth");
    group.throughput(Throughput::Elements(keys.len() as u64));
    group.bench_function("authenticate_10k_keys", |b| {
        b.iter(|| {
            for key in &keys {
                let _ = black_box(set.authenticate(black_box(key), Some(b"secret"), Endpoint::SignalStaging, 1));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, authenticate);
criterion_main!(benches);
