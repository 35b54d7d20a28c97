//! The edge's per-signal work without network or broker: the cheap checks (JSON, depth,
//! source, lead), the record key and headers. Beside it, in the same run, plain serde_json
//! validation of the same bytes, the least any JSON edge must do. Reads as signals per second.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ingest::accept::{encode, Via};
use ingest::gate::Caller;
use ingest::signals::prepare;

#[path = "mix.rs"]
mod mix;
use mix::mix;

fn edge_path(c: &mut Criterion) {
    let signals = mix();
    let caller =
        Caller { org: Arc::from("acme"), key_id: Arc::from("key_0123456789abcdef"), signing: None, historical: false };
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

/// The Tracking API's per-event work (the pass that reads each event's members, writeKey out,
/// receivedAt in, clock skew corrected, the checks made on the members read), beside the bulk
/// path's check alone on the same Segment events.
fn tracking(c: &mut Criterion) {
    let events: Vec<String> = (0..300)
        .map(|n| {
            format!(
                r#"{{"type":"track","event":"Form Submitted","messageId":"m-{n}","anonymousId":"a-{n}","userId":"u-{n}","timestamp":"2026-11-24T12:00:00.000Z","properties":{{"form_name":"demo","seats":25,"plan":"growth"}},"context":{{"library":{{"name":"analytics-python","version":"2.4.0"}},"ip":"203.0.113.9","page":{{"path":"/pricing","url":"https://acme.io/pricing?utm_source=ads"}},"userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36"}}}}"#
            )
        })
        .collect();
    let received = ingest::tracking::Received::now();
    let mut group = c.benchmark_group("tracking");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("bulk_check", |b| {
        b.iter(|| {
            for event in &events {
                black_box(
                    prepare(bytes::Bytes::copy_from_slice(event.as_bytes()), Some("segment"), None).expect("valid"),
                );
            }
        })
    });
    group.bench_function("tracking_normalize_then_check", |b| {
        b.iter(|| {
            for event in &events {
                let members = ingest::tracking::members(event).expect("an object");
                let normalized =
                    ingest::tracking::normalize_members(&members, None, Some("2026-11-24T12:00:01.000Z"), &received)
                        .expect("valid");
                black_box(ingest::tracking::segment_signal(&members, normalized).expect("valid"));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, edge_path, tracking);
criterion_main!(benches);
