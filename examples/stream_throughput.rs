//! The end-to-end stream figure: signals/s through a real processor (consumer group, parse,
//! dedupe, rules, identity, outputs, state and offsets committed in one transaction per batch)
//! from a pre-filled raw topic, beside a bare rdkafka consumer (same client settings) reading the
//! same records, and a bare copier that reads them and writes each unchanged to another topic in
//! batches of 5000 (acks awaited per batch), without and with a transaction per batch: the Kafka
//! work a processor cannot avoid, and what exactly-once adds to it.
//! Each round fills a fresh raw topic with `RECORDS` signals of the bench mix (edge headers
//! included, every one distinct), then times both readers from their first record to their
//! last, so group joins and start-up are left out. Alternates for `ROUNDS`; prints medians.
//!
//! `cargo run --release --example stream_throughput -- RECORDS ROUNDS` with the `SIGSTAGE_*`
//! environment of a migrated database and a broker (see `scripts/bench/stream.sh`).

use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::consumer::{Consumer, DefaultConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::producer::Producer;
use rdkafka::{Message, Offset, TopicPartitionList};
use runtime::config::Config;
use runtime::kafka::topics;
use runtime::stage::Stages;
use schemas::record::headers;
use tokio::sync::watch;

#[path = "../benches/mix.rs"]
mod mix;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, records, rounds] = args.as_slice() else {
        anyhow::bail!("usage: stream_throughput RECORDS ROUNDS");
    };
    let (records, rounds): (usize, usize) = (records.parse()?, rounds.parse()?);
    let base = Config::from_env()?;
    let (mut bare, mut copied, mut copied_txn, mut processed) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let mut config = base.clone();
        config.kafka.topic_prefix = format!("{}r{}-{}.", base.kafka.topic_prefix, std::process::id(), round);
        fill(&config, records).await?;
        let bare_rate = bare_consumer(&config, records).await?;
        let copier_rate = copier(&config, records, false).await?;
        let copier_txn_rate = copier(&config, records, true).await?;
        let processor_rate = processor(&config, records).await?;
        if round == 1 {
            // What the processor writes per signal, read back from its outputs.
            let per_signal = |n: u64| n as f64 / records as f64;
            let (_, raw_bytes) = footprint(&config, topics::SIGNALS_RAW).await?;
            let (mut all_records, mut all_bytes, mut each) = (0, 0, String::new());
            for topic in [topics::SIGNALS_PROCESSED, topics::DEDUPE, topics::IDENTITIES, topics::WEBHOOKS_OUTBOX] {
                let (written, bytes) = footprint(&config, topic).await?;
                each += &format!("; {topic}: {:.3} records, {:.0} B", per_signal(written), per_signal(bytes));
                (all_records, all_bytes) = (all_records + written, all_bytes + bytes);
            }
            println!(
                "per signal the processor writes {:.2} records of {:.0} B in all (the raw record: {:.0} B){each}",
                per_signal(all_records),
                per_signal(all_bytes),
                per_signal(raw_bytes)
            );
        }
        eprintln!(
            "round {round}: bare consumer {bare_rate:.0} records/s, copier {copier_rate:.0} records/s, \
             transactional copier {copier_txn_rate:.0} records/s, processor {processor_rate:.0} signals/s"
        );
        bare.push(bare_rate);
        copied.push(copier_rate);
        copied_txn.push(copier_txn_rate);
        processed.push(processor_rate);
    }
    let (bare, copied, copied_txn, processed) = (median(bare), median(copied), median(copied_txn), median(processed));
    println!(
        "bare consumer {bare:.0} records/s, copier {copied:.0} records/s, transactional copier {copied_txn:.0} \
         records/s, processor {processed:.0} signals/s; exactly-once costs the copier {:.2} of its rate; the \
         processor is {:.2} of the consumer, {:.2} of the copier, {:.2} of the transactional copier",
        copied_txn / copied,
        processed / bare,
        processed / copied,
        processed / copied_txn
    );
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Writes `count` distinct signals of the mix, as the edge would, to the raw topic.
async fn fill(config: &Config, count: usize) -> anyhow::Result<()> {
    let raw = config.kafka.topic(topics::SIGNALS_RAW);
    runtime::kafka::prepare_topics(&config.kafka).await?;
    let producer = runtime::kafka::producer(&config.kafka)?;
    let mix = mix::mix();
    for chunk_start in (0..count).step_by(5000) {
        let sends = (chunk_start..count.min(chunk_start + 5000)).map(|i| {
            let signal = &mix[i % mix.len()];
            // Distinct bytes and Segment messageIds per record, or dedupe would drop the repeats.
            let body = std::str::from_utf8(&signal[1..])
                .expect("utf-8")
                .replace("\"messageId\":\"", &format!("\"messageId\":\"{i}-"));
            let payload = format!("{{\"n\":{i},{body}");
            let id = i.to_string();
            let key = format!("bench:v{}", i % 10_000);
            let source = ["segment", "segment", "segment", "generic", "activity"][i % 5];
            let headers = OwnedHeaders::new()
                .insert(Header { key: headers::ORG, value: Some("bench") })
                .insert(Header { key: headers::SIGNAL_ID, value: Some(id.as_str()) })
                .insert(Header { key: headers::SOURCE, value: Some(source) })
                .insert(Header { key: headers::RECEIVED_MS, value: Some("1795000000000") });
            let (producer, raw) = (&producer, raw.as_str());
            async move {
                let record = FutureRecord::to(raw).key(&key).payload(&payload).headers(headers);
                producer.send(record, Duration::from_secs(30)).await.map(drop).map_err(|(error, _)| error)
            }
        });
        for result in join_all(sends).await {
            result?;
        }
    }
    Ok(())
}

/// Records/s of a plain consumer group reading the raw topic.
async fn bare_consumer(config: &Config, count: usize) -> anyhow::Result<f64> {
    let consumer: StreamConsumer = runtime::kafka::consumer(&config.kafka, &config.kafka.topic("bare"))?;
    consumer.subscribe(&[&config.kafka.topic(topics::SIGNALS_RAW)])?;
    read(&consumer, count).await
}

/// Records per copier batch: the processor's largest batch.
const COPY_BATCH: usize = 5000;

/// Records/s of a consumer that writes every record unchanged (headers too) to another topic, a batch of
/// [`COPY_BATCH`] at a time, waiting for the batch's acknowledgements; timed on the output topic. With
/// `transactions`, each batch and its offsets are committed in one transaction, as the
/// processor commits them: the difference is what exactly-once costs.
async fn copier(config: &Config, count: usize, transactions: bool) -> anyhow::Result<f64> {
    let name = if transactions { "copies-txn" } else { "copies" };
    let (raw, copies) = (config.kafka.topic(topics::SIGNALS_RAW), config.kafka.topic(name));
    runtime::kafka::ensure_topics(&config.kafka, &[&copies]).await?;
    let watcher: StreamConsumer =
        runtime::kafka::consumer(&config.kafka, &config.kafka.topic(&format!("{name}-watcher")))?;
    watcher.subscribe(&[&copies])?;
    let (kafka, copies_topic) = (config.kafka.clone(), copies.clone());
    let copying = tokio::spawn(async move {
        let group = kafka.topic(&format!("{name}-copier"));
        let consumer: StreamConsumer = runtime::kafka::stage_consumer(&kafka, &group, DefaultConsumerContext)?;
        consumer.subscribe(&[&raw])?;
        let producer = if transactions {
            runtime::kafka::transactional_producer(&kafka, &runtime::kafka::transactional_id(&kafka, name)).await?
        } else {
            runtime::kafka::producer(&kafka)?
        };
        let mut copied = 0;
        while copied < count {
            let mut batch = Vec::with_capacity(COPY_BATCH);
            while batch.len() < COPY_BATCH && copied + batch.len() < count {
                batch.push(consumer.recv().await?);
            }
            if transactions {
                producer.begin_transaction()?;
            }
            let sends = batch.iter().map(|m| {
                // Unchanged: key, value and the edge's headers.
                let mut record = FutureRecord::to(&copies_topic).payload(m.payload().unwrap_or_default());
                if let Some(key) = m.key() {
                    record = record.key(key);
                }
                if let Some(headers) = m.headers() {
                    record = record.headers(headers.detach());
                }
                producer.send(record, Duration::from_secs(30))
            });
            for result in join_all(sends).await {
                result.map_err(|(error, _)| error)?;
            }
            if transactions {
                let group = consumer.group_metadata().ok_or_else(|| anyhow::anyhow!("no group metadata"))?;
                runtime::kafka::commit_transaction(&producer, runtime::kafka::next_offsets(&batch), group, name)
                    .await?;
            }
            copied += batch.len();
        }
        anyhow::Ok(())
    });
    let rate = read(&watcher, count).await;
    copying.await??;
    rate
}

/// Signals/s of the stream processor, timed on its output topic.
async fn processor(config: &Config, count: usize) -> anyhow::Result<f64> {
    let watcher: StreamConsumer = runtime::kafka::consumer(&config.kafka, &config.kafka.topic("watcher"))?;
    let processed = config.kafka.topic(topics::SIGNALS_PROCESSED);
    watcher.subscribe(&[&processed])?;
    let (stop_tx, stop) = watch::channel(false);
    let (kafka, clickhouse) = (config.kafka.clone(), runtime::clickhouse::client(&config.clickhouse));
    let running = tokio::spawn(async move {
        let (id, stage) = (runtime::kafka::transactional_id(&kafka, "stream"), Stages::default().stage("stream"));
        stream::runner::run(&kafka, clickhouse, stream::runner::Settings::default(), &id, stage, stop).await
    });
    let rate = read(&watcher, count).await;
    stop_tx.send(true)?;
    running.await?.map_err(|error| anyhow::anyhow!(error))?;
    rate
}

/// Records in `topic` as a `read_committed` reader sees them, and their bytes (keys, values and
/// headers).
async fn footprint(config: &Config, topic: &str) -> anyhow::Result<(u64, u64)> {
    let reader = runtime::kafka::partition_reader(&config.kafka)?;
    let mut partitions = TopicPartitionList::new();
    for partition in 0..config.kafka.partitions {
        partitions.add_partition_offset(&config.kafka.topic(topic), partition, Offset::Beginning)?;
    }
    reader.assign(&partitions)?;
    let (mut open, mut records, mut bytes) = (config.kafka.partitions, 0, 0);
    while open > 0 {
        match tokio::time::timeout(Duration::from_secs(30), reader.recv()).await? {
            Err(KafkaError::PartitionEOF(_)) => open -= 1,
            Err(error) => return Err(error.into()),
            Ok(record) => {
                let headers = record.headers().map_or(0, |headers| {
                    headers.iter().map(|header| header.key.len() + header.value.map_or(0, <[u8]>::len)).sum()
                });
                records += 1;
                bytes +=
                    (record.key().map_or(0, <[u8]>::len) + record.payload().map_or(0, <[u8]>::len) + headers) as u64;
            }
        }
    }
    Ok((records, bytes))
}

/// Reads `count` records; answers records/s from the first to the last.
async fn read(consumer: &StreamConsumer, count: usize) -> anyhow::Result<f64> {
    consumer.recv().await?;
    let started = Instant::now();
    for _ in 1..count {
        tokio::time::timeout(Duration::from_secs(60), consumer.recv()).await??;
    }
    Ok((count - 1) as f64 / started.elapsed().as_secs_f64())
}
