//! The bulk baseline: produce the records of an NDJSON file to Kafka as fast as the broker takes
//! them, with the producer settings the edge uses (acks=all, idempotent, lz4), the same record
//! shape (an `org:identity`-like key and the edge's six headers) and the same shape of work (one
//! batch of records queued, then every delivery awaited, `CONCURRENCY` batches in flight), for
//! `SECONDS`. Prints records/s. Nothing else: no HTTP, no checks.
//!
//! `cargo run --release --example bare_producer -- BROKERS TOPIC FILE.ndjson SECONDS CONCURRENCY`

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use rdkafka::producer::{FutureProducer, FutureRecord};
use runtime::config::Config;

#[path = "../benches/record_shape.rs"]
mod record_shape;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, topic, file, seconds, concurrency] = args.as_slice() else {
        anyhow::bail!("usage: bare_producer BROKERS TOPIC FILE.ndjson SECONDS CONCURRENCY");
    };
    let mut vars = std::collections::BTreeMap::new();
    vars.insert("SIGSTAGE_KAFKA_BROKERS".to_owned(), brokers.clone());
    let config = Config::from_vars(&vars)?;
    let producer = runtime::kafka::producer(&config.kafka)?;
    let records: Vec<Bytes> =
        std::fs::read_to_string(file)?.lines().filter(|l| !l.is_empty()).map(|l| Bytes::from(l.to_owned())).collect();
    let deadline = Instant::now() + Duration::from_secs(seconds.parse()?);
    let started = Instant::now();
    let workers = (0..concurrency.parse::<usize>()?).map(|worker| {
        let (producer, records, topic) = (&producer, &records, topic.as_str());
        async move {
            let mut sent = 0u64;
            while Instant::now() < deadline {
                sent += send_batch(producer, topic, records, worker).await;
            }
            sent
        }
    });
    let sent: u64 = join_all(workers).await.into_iter().sum();
    let elapsed = started.elapsed().as_secs_f64();
    println!("{sent} records in {elapsed:.2}s: {:.0} records/s", sent as f64 / elapsed);
    Ok(())
}

async fn send_batch(producer: &FutureProducer, topic: &str, records: &[Bytes], worker: usize) -> u64 {
    let deliveries: Vec<_> = records
        .iter()
        .enumerate()
        .filter_map(|(i, payload)| {
            let key = record_shape::key(worker, i);
            let record = FutureRecord::to(topic).key(&key).payload(payload.as_ref()).headers(record_shape::headers());
            producer.send_result(record).ok()
        })
        .collect();
    join_all(deliveries).await.into_iter().filter(|d| matches!(d, Ok(Ok(_)))).count() as u64
}
