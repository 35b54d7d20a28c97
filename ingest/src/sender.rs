//! Writes raw signals to Kafka and reports, per record, whether the broker has it.
//!
//! Two producers, one per lane, so a bulk import filling its queue never delays live traffic.
//! Each queue is bounded; a full queue is answered at once (backpressure, 503), never buffered.
//! A producer whose idempotence state the broker refuses (a fatal error: every later send would
//! fail too) is replaced by a fresh one (at most once a second) and its queue purged, so its
//! records fail now (503) and the next ones go out. A lost broker needs nothing of the kind: the
//! producer reconnects by itself, and what waited longer than the message timeout got a 503.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer, PurgeConfig};
use runtime::config::KafkaConfig;
use runtime::kafka::{self, topics};

const RESET_INTERVAL: Duration = Duration::from_secs(1);

/// Live traffic or historical imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Live,
    Historical,
}

/// One record to produce.
pub struct OutRecord {
    pub key: String,
    pub payload: Bytes,
    pub headers: OwnedHeaders,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The producer's queue is full or the broker is unreachable: try again later.
    #[error("broker unavailable: {0}")]
    Unavailable(KafkaError),
    /// The broker refused this record and will refuse it again (e.g. too large).
    #[error("broker refused the signal: {0}")]
    Refused(KafkaError),
}

impl SendError {
    /// Only a record the broker can never take is refused; anything else may work on retry.
    fn from_kafka(error: KafkaError) -> Self {
        match error {
            KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize,
            ) => SendError::Refused(error),
            error => SendError::Unavailable(error),
        }
    }
}

struct LaneProducer {
    topic: String,
    producer: RwLock<Arc<FutureProducer>>,
    last_reset: Mutex<Instant>,
}

impl LaneProducer {
    fn new(config: &KafkaConfig, topic: &str) -> Result<Self, KafkaError> {
        Ok(Self {
            topic: config.topic(topic),
            producer: RwLock::new(Arc::new(kafka::producer(config)?)),
            last_reset: Mutex::new(Instant::now()),
        })
    }

    fn current(&self) -> Arc<FutureProducer> {
        Arc::clone(&self.producer.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Swaps in a fresh producer unless one was created within the last second, then fails
    /// whatever the old one still holds.
    fn reset(&self, config: &KafkaConfig, broken: &Arc<FutureProducer>) {
        let mut last = self.last_reset.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let old = {
            let mut slot = self.producer.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            if !Arc::ptr_eq(&slot, broken) || last.elapsed() < RESET_INTERVAL {
                return;
            }
            match kafka::producer(config) {
                Ok(fresh) => std::mem::replace(&mut *slot, Arc::new(fresh)),
                Err(error) => {
                    tracing::error!(%error, "cannot create a replacement producer");
                    return;
                }
            }
        };
        *last = Instant::now();
        old.purge(PurgeConfig::default().queue().inflight());
        tracing::warn!(topic = %self.topic, "lost the broker; replaced the producer and failed its queued records");
    }
}

pub struct Sender {
    config: KafkaConfig,
    live: LaneProducer,
    historical: LaneProducer,
}

impl Sender {
    pub fn new(config: &KafkaConfig) -> Result<Self, KafkaError> {
        Ok(Self {
            config: config.clone(),
            live: LaneProducer::new(config, topics::SIGNALS_RAW)?,
            historical: LaneProducer::new(config, topics::SIGNALS_HISTORICAL)?,
        })
    }

    /// Queues every record, then waits for every delivery report. Results are in input order.
    pub async fn send(&self, lane: Lane, records: Vec<OutRecord>) -> Vec<Result<(), SendError>> {
        let lane = match lane {
            Lane::Live => &self.live,
            Lane::Historical => &self.historical,
        };
        let producer = lane.current();
        let queued: Vec<_> = records
            .into_iter()
            .map(|record| {
                let message = FutureRecord::to(&lane.topic)
                    .key(record.key.as_bytes())
                    .payload(record.payload.as_ref())
                    .headers(record.headers);
                producer.send_result(message).map_err(|(error, _)| error)
            })
            .collect();
        let results: Vec<Result<(), KafkaError>> = join_all(queued.into_iter().map(|queued| async move {
            match queued?.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((error, _))) => Err(error),
                Err(_canceled) => Err(KafkaError::Canceled),
            }
        }))
        .await;
        if results.iter().any(|result| result.as_ref().is_err_and(kafka::needs_fresh_producer)) {
            lane.reset(&self.config, &producer);
        }
        results.into_iter().map(|result| result.map_err(SendError::from_kafka)).collect()
    }

    /// Waits up to `timeout` for queued records to be delivered (graceful shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.live.current().flush(timeout)?;
        self.historical.current().flush(timeout)
    }
}
