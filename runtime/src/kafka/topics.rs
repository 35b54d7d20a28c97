//! sigstage's topics: their names, how records are placed among partitions, and the topic
//! admin every role runs first (create what is missing, own the settings, check co-partitioning).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer};

use super::clients::{MetadataClient, MAX_RECORD_BYTES};
use crate::config::KafkaConfig;

// Topic names, before the deployment's prefix (see [`KafkaConfig::topic`]).
pub const SIGNALS_RAW: &str = "signals.raw";
pub const SIGNALS_HISTORICAL: &str = "signals.raw.historical";
pub const SIGNALS_PROCESSED: &str = "signals.processed";
pub const IDENTITIES: &str = "identities";
pub const WEBHOOKS_OUTBOX: &str = "webhooks.outbox";
pub const SIGNALS_DLQ: &str = "signals.dlq";
/// The stream's dedupe changelog: each content hash first seen, with its signal id and time, a
/// batch's entries of a partition to a record.
pub const DEDUPE: &str = "stream.dedupe";
/// Claims, renewals and releases of edge instance ids (one partition: its order decides).
pub const INSTANCES: &str = "instances";

/// Every topic sigstage writes.
pub const ALL: [&str; 8] =
    [SIGNALS_RAW, SIGNALS_HISTORICAL, SIGNALS_PROCESSED, IDENTITIES, WEBHOOKS_OUTBOX, SIGNALS_DLQ, DEDUPE, INSTANCES];

/// Topics whose partition p must hold the same keys: a processor that owns raw partition p
/// (live and historical) writes its outputs and state to partition p and restores from there.
pub const COPARTITIONED: [&str; 5] = [SIGNALS_RAW, SIGNALS_HISTORICAL, SIGNALS_PROCESSED, IDENTITIES, DEDUPE];

/// Topics that carry state: compacted, so they keep the latest record of each key for good.
pub const COMPACTED: [&str; 1] = [IDENTITIES];

/// State kept for a window only: deleted once older than the window.
pub const WINDOWED: [&str; 1] = [DEDUPE];

/// The partition a record keyed `key` goes to among `partitions`, as every sigstage producer
/// places it: librdkafka's default partitioner (`consistent_random`), the CRC-32 of the key.
pub fn partition_of(key: &[u8], partitions: i32) -> i32 {
    (crc32fast::hash(key) % partitions.max(1) as u32) as i32
}

/// How long the dedupe window remembers a signal.
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Why sigstage's topics are not fit to run on.
#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("topic {topic}: {code}")]
    Refused { topic: String, code: RDKafkaErrorCode },
    #[error(
        "topics {0} must have the same partition count: a processor that owns partition p of the raw \
         topics writes to and rebuilds its state from partition p of the others. Give them the same \
         count (with the pipeline stopped and drained, since keys move to other partitions)"
    )]
    NotCopartitioned(String),
}

/// Creates every sigstage topic that is missing, brings the settings sigstage owns (retention,
/// compaction, `min.insync.replicas`, record size) of existing ones up to date, and refuses to
/// go on when the co-partitioned topics differ in partition count. Every role runs this first.
pub async fn prepare_topics(config: &KafkaConfig) -> Result<(), TopicsError> {
    let names: Vec<String> = ALL.iter().map(|name| config.topic(name)).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    ensure_topics(config, &names).await?;
    // A topic just created may not be in every broker's metadata yet: it shows no partitions.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let counts = loop {
        let counts = partition_counts(config, &names).await?;
        let settled = names.iter().all(|name| counts.get(*name).is_some_and(|&count| count > 0));
        if settled || std::time::Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let copartitioned: Vec<(String, usize)> = COPARTITIONED
        .iter()
        .map(|name| {
            let topic = config.topic(name);
            let count = counts.get(&topic).copied().unwrap_or(0);
            (topic, count)
        })
        .collect();
    if copartitioned.iter().any(|(_, count)| *count != copartitioned[0].1) {
        let list = copartitioned.iter().map(|(topic, count)| format!("{topic} ({count})")).collect::<Vec<_>>();
        return Err(TopicsError::NotCopartitioned(list.join(", ")));
    }
    Ok(())
}

/// Creates the named topics (full names) with the configured partitions, replicas and
/// settings; for topics that exist, sets what differs from those settings.
pub async fn ensure_topics(config: &KafkaConfig, names: &[&str]) -> Result<(), TopicsError> {
    use rdkafka::admin::{AlterConfig, ResourceSpecifier};
    let admin: AdminClient<DefaultClientContext> = super::clients::base(config).create()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let (replicas, min_insync) = replication(config).await?;
    let settings: Vec<Vec<(&str, String)>> =
        names.iter().map(|name| topic_settings(config, name, min_insync)).collect();
    let new_topics: Vec<NewTopic<'_>> = names
        .iter()
        .zip(&settings)
        .map(|(name, settings)| {
            let short = name.strip_prefix(config.topic_prefix.as_str()).unwrap_or(name);
            let partitions = if short == INSTANCES { 1 } else { config.partitions };
            let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replicas));
            settings.iter().fold(topic, |topic, (key, value)| topic.set(key, value))
        })
        .collect();
    let mut existing = Vec::new();
    for (result, settings) in admin.create_topics(&new_topics, &options).await?.into_iter().zip(&settings) {
        match result {
            Ok(_) => {}
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => existing.push((topic, settings)),
            Err((topic, code)) => return Err(TopicsError::Refused { topic, code }),
        }
    }
    if existing.is_empty() {
        return Ok(());
    }
    let resources: Vec<ResourceSpecifier<'_>> =
        existing.iter().map(|(topic, _)| ResourceSpecifier::Topic(topic.as_str())).collect();
    let described = admin.describe_configs(&resources, &options).await?;
    let mut changes = Vec::new();
    for ((topic, settings), described) in existing.iter().zip(described) {
        let described = described.map_err(|code| TopicsError::Refused { topic: topic.clone(), code })?;
        let stale: Vec<String> = settings
            .iter()
            .filter(|(key, value)| described.get(key).and_then(|entry| entry.value.as_deref()) != Some(value.as_str()))
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        if !stale.is_empty() {
            tracing::info!(%topic, settings = %stale.join(" "), "updating topic settings");
            let change = AlterConfig::new(ResourceSpecifier::Topic(topic.as_str()));
            changes.push(settings.iter().fold(change, |change, (key, value)| change.set(key, value)));
        }
    }
    if !changes.is_empty() {
        for result in admin.alter_configs(&changes, &options).await? {
            result.map_err(|(resource, code)| TopicsError::Refused { topic: format!("{resource:?}"), code })?;
        }
    }
    Ok(())
}

/// Replicas and `min.insync.replicas` of new topics: the configured ones, or three replicas (as
/// many as there are brokers, below three) and one fewer in sync (at most two, at least one).
async fn replication(config: &KafkaConfig) -> Result<(i32, i32), KafkaError> {
    let replicas = match config.replication_factor {
        Some(replicas) => replicas,
        None => (MetadataClient::new(config)?.ping(Duration::from_secs(10)).await? as i32).clamp(1, 3),
    };
    let min_insync = config.min_insync_replicas.unwrap_or((replicas - 1).clamp(1, 2));
    if replicas < 3 {
        tracing::info!(replicas, "topics are created with fewer than 3 replicas: losing a broker loses records");
    }
    Ok((replicas, min_insync))
}

/// The settings sigstage owns on topic `name` (full name).
fn topic_settings(config: &KafkaConfig, name: &str, min_insync: i32) -> Vec<(&'static str, String)> {
    let short = name.strip_prefix(config.topic_prefix.as_str()).unwrap_or(name);
    let mut settings =
        vec![("max.message.bytes", MAX_RECORD_BYTES.to_string()), ("min.insync.replicas", min_insync.to_string())];
    if WINDOWED.contains(&short) {
        // A batch's entries per record, each record dropped once its newest entry is older
        // than the window; an hour a segment so the oldest hour goes as a whole.
        settings.push(("cleanup.policy", "delete".into()));
        settings.push(("retention.ms", (DEDUPE_WINDOW.as_millis() + 3_600_000).to_string()));
        settings.push(("segment.ms", "3600000".into()));
    } else if short == INSTANCES {
        // Ordered by the broker's clock; an hour is many lease lengths.
        settings.push(("cleanup.policy", "delete".into()));
        settings.push(("retention.ms", "3600000".into()));
        settings.push(("segment.ms", "600000".into()));
        settings.push(("message.timestamp.type", "LogAppendTime".into()));
    } else if COMPACTED.contains(&short) {
        // The latest record of each key, kept for good; a segment a day so compaction can run.
        settings.push(("cleanup.policy", "compact".into()));
        settings.push(("segment.ms", (24 * 3_600_000).to_string()));
    } else if let Some(&hours) = config.retention_hours.get(short) {
        settings.push(("cleanup.policy", "delete".into()));
        settings.push(("retention.ms", if hours < 0 { "-1".into() } else { (hours * 3_600_000).to_string() }));
    }
    settings
}

/// How many partitions each of the named topics has.
async fn partition_counts(
    config: &KafkaConfig,
    names: &[&str],
) -> Result<std::collections::HashMap<String, usize>, KafkaError> {
    let client: BaseProducer = super::clients::base(config).create()?;
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut counts = std::collections::HashMap::new();
        for name in names {
            let metadata = client.client().fetch_metadata(Some(&name), Duration::from_secs(10))?;
            for topic in metadata.topics() {
                counts.insert(topic.name().to_owned(), topic.partitions().len());
            }
        }
        Ok(counts)
    })
    .await
    .unwrap_or(Err(KafkaError::Canceled))
}
