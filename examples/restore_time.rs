//! Restore time against state size: how long a processor given every partition takes to read
//! its state back (dedupe entries from `stream.dedupe`, links from `identities`) before it may
//! process. The changelogs are filled as processors write them: per partition, a dedupe record
//! per batch of 5000 signals (32 bytes an entry) and one link record per identified visitor. Nothing
//! else is read, so neither the size of the signals nor the traffic in the other topics enters.
//!
//! `cargo run --release --example restore_time -- ENTRIES ROUNDS` with the `SIGSTAGE_*`
//! environment of a broker (see `scripts/bench/restore.sh`): sizes of ENTRIES/10 and ENTRIES
//! dedupe entries plus as many links, each restored ROUNDS times; prints medians.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use runtime::config::Config;
use runtime::kafka::{topics, Assignments};
use runtime::stage::Stages;
use schemas::identities::IdentityLink;
use stream::processor::Processor;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, entries, rounds] = args.as_slice() else {
        anyhow::bail!("usage: restore_time ENTRIES ROUNDS");
    };
    let (entries, rounds): (usize, usize) = (entries.parse()?, rounds.parse()?);
    let base = Config::from_env()?;
    for size in [entries / 10, entries] {
        let mut config = base.clone();
        config.kafka.topic_prefix = format!("{}restore{}-{size}.", base.kafka.topic_prefix, std::process::id());
        let filled = Instant::now();
        fill(&config, size).await?;
        eprintln!("{size} dedupe entries and {size} links written in {:.1} s", filled.elapsed().as_secs_f64());
        let mut took = Vec::new();
        for _ in 0..rounds {
            took.push(restore(&config, size).await?);
        }
        took.sort_by(f64::total_cmp);
        let median = took[took.len() / 2];
        println!(
            "state of {size} dedupe entries + {size} links: restored in {median:.2} s (median of {rounds}), \
             {:.0} records/s",
            (2 * size) as f64 / median
        );
    }
    Ok(())
}

/// Writes `size` dedupe entries and `size` links, spread over the partitions.
async fn fill(config: &Config, size: usize) -> anyhow::Result<()> {
    runtime::kafka::prepare_topics(&config.kafka).await?;
    let producer = runtime::kafka::producer(&config.kafka)?;
    let (dedupe, identities) = (config.kafka.topic(topics::DEDUPE), config.kafka.topic(topics::IDENTITIES));
    let now = runtime::time::now_ms() as i64;
    for chunk_start in (0..size).step_by(20_000) {
        let chunk = chunk_start..size.min(chunk_start + 20_000);
        // A processor's batch of 5000, over every partition.
        for batch_start in chunk.clone().step_by(5000) {
            let mut changelog = stream::dedupe::Changelog::default();
            for i in batch_start..chunk.end.min(batch_start + 5000) {
                let partition = (i % config.kafka.partitions as usize) as i32;
                let hash = xxhash_rust::xxh3::xxh3_128(&i.to_le_bytes());
                changelog.push(partition, i as i64, hash, i as u64, now as u64);
            }
            let sends = changelog.into_records().map(|record| {
                let (producer, dedupe) = (&producer, dedupe.as_str());
                async move {
                    let entries = FutureRecord::to(dedupe)
                        .partition(record.partition)
                        .key(&record.key[..])
                        .payload(&record.value)
                        .timestamp(record.timestamp_ms as i64);
                    producer.send(entries, Duration::from_secs(30)).await
                }
            });
            for result in join_all(sends).await {
                result.map_err(|(error, _)| error)?;
            }
        }
        let sends = chunk.map(|i| {
            let partition = (i % config.kafka.partitions as usize) as i32;
            let link = IdentityLink {
                org: "bench".into(),
                anonymous_id: format!("a-{i}"),
                email: format!("lead{i}@example.com"),
                previous_email: None,
                name: Some("Jane Doe".into()),
                company: Some("Acme".into()),
                title: None,
                signal_id: i as u64,
                linked_ms: now as u64,
            };
            let (link_key, link) = (format!("link:bench:a-{i}"), serde_json::to_vec(&link).expect("a link serializes"));
            let (producer, identities) = (&producer, identities.as_str());
            async move {
                let kind = OwnedHeaders::new()
                    .insert(Header { key: schemas::record::headers::IDENTITY_KIND, value: Some("link") });
                let linked =
                    FutureRecord::to(identities).partition(partition).key(&link_key).payload(&link).headers(kind);
                producer.send(linked, Duration::from_secs(30)).await.map(drop).map_err(|(error, _)| error)
            }
        });
        for result in join_all(sends).await {
            result?;
        }
    }
    Ok(())
}

/// Seconds a fresh processor takes to restore every partition; checks it got the whole state.
async fn restore(config: &Config, size: usize) -> anyhow::Result<f64> {
    let consumer = Arc::new(runtime::kafka::stage_consumer(
        &config.kafka,
        &config.kafka.topic("stream"),
        Assignments::new("stream"),
    )?);
    let raw = [config.kafka.topic(topics::SIGNALS_RAW), config.kafka.topic(topics::SIGNALS_HISTORICAL)];
    let partitions: Vec<i32> = (0..config.kafka.partitions).collect();
    let mut processor = Processor::new(10_000_000, runtime::kafka::DEDUPE_WINDOW);
    let stage = Stages::default().stage("stream");
    let (_stop_tx, mut stop) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let restored =
        stream::restore::restore(&config.kafka, &consumer, &raw, &partitions, &mut processor, &stage, &mut stop)
            .await?
            .ok_or_else(|| anyhow::anyhow!("stopped"))?;
    let took = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        restored.hashes == size as u64 && restored.identities == size as u64,
        "restored {restored:?}, expected {size} of each"
    );
    Ok(took)
}
