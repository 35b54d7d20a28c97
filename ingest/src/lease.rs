//! Instance ids leased through Kafka, so no two running edges mint signal ids with the same
//! instance bits. The `instances` topic has one partition and broker timestamps: a log of
//! claims, renewals (every [`RENEW_EVERY`]) and releases that every edge reads in the same
//! order, so every edge reaches the same verdicts. A claim of an id wins unless another holder
//! claimed it first and renewed it within the last [`LEASE`] (see [`Registry`]).
//!
//! An edge given `SIGSTAGE_INSTANCE_ID` refuses to start when a live holder has that id; one
//! without takes the lowest free id. A holder that could not renew for longer than a lease (the
//! broker out of reach) may find its id taken by a newcomer: it hears the newcomer's winning
//! claim and reports the lease lost, and the process stops rather than mint ids another holds.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use runtime::config::KafkaConfig;
use runtime::kafka::{self, topics};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::ids::MAX_INSTANCE;

/// How long a claim holds without a renewal.
pub const LEASE: Duration = Duration::from_secs(30);
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How long to wait for the log to show a claim just written.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Claim,
    Renew,
    Release,
}

/// One record of the `instances` log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: u16,
    pub holder: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub holder: String,
    /// Broker time of the holder's last claim or renewal.
    pub seen_ms: i64,
}

/// Who holds each id, as the log says, applied in the log's order.
#[derive(Debug, Default)]
pub struct Registry {
    owners: HashMap<u16, Owner>,
}

impl Registry {
    /// Applies one record written at broker time `at_ms`; for a claim, answers whether it won.
    pub fn apply(&mut self, entry: &Entry, at_ms: i64) -> Option<bool> {
        let live = |owner: &Owner| owner.seen_ms >= at_ms - LEASE.as_millis() as i64;
        match entry.kind {
            Kind::Claim => {
                let taken = self.owners.get(&entry.id).is_some_and(|owner| owner.holder != entry.holder && live(owner));
                if !taken {
                    self.owners.insert(entry.id, Owner { holder: entry.holder.clone(), seen_ms: at_ms });
                }
                Some(!taken)
            }
            Kind::Renew => {
                if let Some(owner) = self.owners.get_mut(&entry.id).filter(|owner| owner.holder == entry.holder) {
                    owner.seen_ms = at_ms;
                }
                None
            }
            Kind::Release => {
                if self.owners.get(&entry.id).is_some_and(|owner| owner.holder == entry.holder) {
                    self.owners.remove(&entry.id);
                }
                None
            }
        }
    }

    /// The live holder of `id` at `now_ms`, if any.
    pub fn holder(&self, id: u16, now_ms: i64) -> Option<&Owner> {
        self.owners.get(&id).filter(|owner| owner.seen_ms >= now_ms - LEASE.as_millis() as i64)
    }

    /// The lowest id without a live holder at `now_ms`, other than those in `skip`.
    pub fn free(&self, now_ms: i64, skip: &[u16]) -> Option<u16> {
        (0..=MAX_INSTANCE).find(|id| !skip.contains(id) && self.holder(*id, now_ms).is_none())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "instance id {id} is in use by another running instance ({holder}, renewed {ago_s} s ago): give each \
         instance its own SIGSTAGE_INSTANCE_ID, or leave it unset to lease a free one"
    )]
    InUse { id: u16, holder: String, ago_s: i64 },
    #[error("every instance id (0-{MAX_INSTANCE}) is held by a running instance")]
    NoneFree,
    #[error("the instance id log ({topic}): {source} (is the broker up?)")]
    Kafka { topic: String, source: KafkaError },
    #[error("the claim of instance id {0} did not show in the log within {CLAIM_TIMEOUT:?}")]
    Unconfirmed(u16),
}

/// A leased instance id, renewed in the background until [`Lease::release`].
pub struct Lease {
    pub id: u16,
    pub holder: String,
    /// Becomes `Some(why)` if another holder took the id.
    pub lost: watch::Receiver<Option<String>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

struct Log {
    topic: String,
    producer: FutureProducer,
    reader: StreamConsumer<kafka::ReaderContext>,
    registry: Registry,
}

impl Log {
    fn error(&self, source: KafkaError) -> LeaseError {
        LeaseError::Kafka { topic: self.topic.clone(), source }
    }

    async fn write(&self, entry: &Entry) -> Result<(), LeaseError> {
        let payload = serde_json::to_vec(entry).expect("an entry serializes");
        let key = entry.id.to_string();
        let record = FutureRecord::to(&self.topic).key(&key).payload(&payload);
        self.producer.send(record, Duration::from_secs(10)).await.map(|_| ()).map_err(|(error, _)| self.error(error))
    }

    /// Reads the next record and applies it; answers it with its claim verdict.
    async fn next(&mut self) -> Result<Option<(Entry, Option<bool>)>, LeaseError> {
        match self.reader.recv().await {
            Ok(message) => {
                let at = message.timestamp().to_millis().unwrap_or_else(|| runtime::time::now_ms() as i64);
                let Some(entry) = message.payload().and_then(|p| serde_json::from_slice::<Entry>(p).ok()) else {
                    return Ok(None);
                };
                let verdict = self.registry.apply(&entry, at);
                Ok(Some((entry, verdict)))
            }
            Err(KafkaError::PartitionEOF(_)) => Ok(None),
            Err(error) => Err(self.error(error)),
        }
    }

    /// Reads to the log's end.
    async fn catch_up(&mut self) -> Result<(), LeaseError> {
        loop {
            match self.reader.recv().await {
                Ok(message) => {
                    let at = message.timestamp().to_millis().unwrap_or_default();
                    if let Some(entry) = message.payload().and_then(|p| serde_json::from_slice::<Entry>(p).ok()) {
                        self.registry.apply(&entry, at);
                    }
                }
                Err(KafkaError::PartitionEOF(_)) => return Ok(()),
                Err(error) => return Err(self.error(error)),
            }
        }
    }

    /// Claims `id` and reads on to the claim: whether it won.
    async fn claim(&mut self, id: u16, holder: &str) -> Result<bool, LeaseError> {
        self.write(&Entry { id, holder: holder.to_owned(), kind: Kind::Claim }).await?;
        let verdict = tokio::time::timeout(CLAIM_TIMEOUT, async {
            loop {
                if let Some((entry, Some(won))) = self.next().await? {
                    if entry.id == id && entry.holder == holder {
                        return Ok(won);
                    }
                }
            }
        })
        .await;
        verdict.unwrap_or(Err(LeaseError::Unconfirmed(id)))
    }
}

/// Leases `wanted`, or the lowest free id; refuses a wanted id another running instance holds.
pub async fn acquire(config: &KafkaConfig, wanted: Option<u16>) -> Result<Lease, LeaseError> {
    let topic = config.topic(topics::INSTANCES);
    let error = |source| LeaseError::Kafka { topic: topic.clone(), source };
    let reader = kafka::partition_reader(config).map_err(error)?;
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition_offset(&topic, 0, Offset::Beginning).map_err(error)?;
    reader.assign(&partitions).map_err(error)?;
    let producer = kafka::producer(config).map_err(error)?;
    let mut log = Log { topic: topic.clone(), producer, reader, registry: Registry::default() };
    log.catch_up().await?;
    let holder = holder_name();
    let mut lost_ids = Vec::new();
    let id = loop {
        let now = runtime::time::now_ms() as i64;
        let id = match wanted {
            Some(id) => {
                if let Some(owner) = log.registry.holder(id, now).filter(|owner| owner.holder != holder) {
                    return Err(LeaseError::InUse {
                        id,
                        holder: owner.holder.clone(),
                        ago_s: (now - owner.seen_ms) / 1000,
                    });
                }
                id
            }
            None => log.registry.free(now, &lost_ids).ok_or(LeaseError::NoneFree)?,
        };
        if log.claim(id, &holder).await? {
            break id;
        }
        // Another instance claimed it first (at the same moment): try another, or refuse.
        if wanted.is_some() {
            let owner = log.registry.holder(id, now).cloned();
            let holder = owner.map_or_else(|| "another instance".to_owned(), |owner| owner.holder);
            return Err(LeaseError::InUse { id, holder, ago_s: 0 });
        }
        lost_ids.push(id);
        if lost_ids.len() >= 5 {
            return Err(LeaseError::NoneFree);
        }
    };
    let (lost_tx, lost) = watch::channel(None);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(keep(log, id, holder.clone(), lost_tx, stopped));
    tracing::info!(instance_id = id, %holder, "instance id leased");
    Ok(Lease { id, holder, lost, stop, task })
}

impl Lease {
    /// Stops renewing and writes a release, so the id is free at once.
    pub async fn release(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Renews the lease and listens for a newcomer taking the id, until told to stop.
async fn keep(
    mut log: Log,
    id: u16,
    holder: String,
    lost: watch::Sender<Option<String>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut renew = tokio::time::interval(RENEW_EVERY);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let entry = |kind| Entry { id, holder: holder.clone(), kind };
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = renew.tick() => {
                if let Err(error) = log.write(&entry(Kind::Renew)).await {
                    tracing::warn!(%error, instance_id = id, "instance id lease not renewed; retrying");
                }
            }
            read = log.next() => match read {
                Ok(Some((entry, Some(true)))) if entry.id == id && entry.holder != holder => {
                    let why = format!(
                        "instance id {id} was taken by {} while this instance could not renew its lease for {LEASE:?}",
                        entry.holder
                    );
                    tracing::error!(instance_id = id, taken_by = %entry.holder, "{why}");
                    let _ = lost.send(Some(why));
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "instance id log not read; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
    if let Err(error) = log.write(&entry(Kind::Release)).await {
        tracing::warn!(%error, instance_id = id, "instance id not released; it frees itself after {LEASE:?}");
    }
}

/// Who holds a lease, for operators: host, process and a random part (unique per process).
fn holder_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let mut random = [0u8; 4];
    let _ = getrandom::fill(&mut random);
    format!("{}:{}:{}", if host.is_empty() { "host" } else { &host }, std::process::id(), hex::encode(random))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u16, holder: &str, kind: Kind) -> Entry {
        Entry { id, holder: holder.into(), kind }
    }

    #[test]
    fn the_first_live_claim_holds_an_id() {
        let mut registry = Registry::default();
        assert_eq!(registry.apply(&entry(3, "a", Kind::Claim), 1_000), Some(true));
        assert_eq!(registry.apply(&entry(3, "b", Kind::Claim), 1_001), Some(false), "a holds it");
        assert_eq!(registry.apply(&entry(3, "b", Kind::Renew), 20_000), None);
        assert_eq!(registry.holder(3, 20_000).map(|o| o.holder.as_str()), Some("a"), "b's renewal counts for nothing");
        assert_eq!(registry.apply(&entry(3, "a", Kind::Renew), 25_000), None);
        assert_eq!(registry.apply(&entry(3, "c", Kind::Claim), 50_000), Some(false), "renewed 25 s ago: still a's");
        assert_eq!(registry.free(50_000, &[]), Some(0));
        assert_eq!(registry.free(50_000, &[0, 1, 2]), Some(4), "3 is held");
    }

    #[test]
    fn a_lapsed_or_released_id_can_be_claimed() {
        let mut registry = Registry::default();
        registry.apply(&entry(0, "a", Kind::Claim), 0);
        assert!(registry.holder(0, 30_000).is_some());
        assert!(registry.holder(0, 30_001).is_none(), "not renewed for a lease");
        assert_eq!(registry.apply(&entry(0, "b", Kind::Claim), 30_001), Some(true));
        assert_eq!(registry.apply(&entry(0, "a", Kind::Release), 30_002), None);
        assert_eq!(registry.holder(0, 30_002).map(|o| o.holder.as_str()), Some("b"), "a's release is not b's");
        registry.apply(&entry(0, "b", Kind::Release), 30_003);
        assert!(registry.holder(0, 30_003).is_none());
        assert_eq!(registry.apply(&entry(0, "a", Kind::Claim), 30_004), Some(true));
    }

    #[test]
    fn a_holder_claiming_again_keeps_its_id() {
        let mut registry = Registry::default();
        registry.apply(&entry(7, "a", Kind::Claim), 0);
        assert_eq!(registry.apply(&entry(7, "a", Kind::Claim), 10), Some(true));
    }
}
