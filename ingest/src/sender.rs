//! Writes raw signals to Kafka and reports, per record, whether the broker has it.
//!
//! Two producers, one per lane, so a bulk import filling its queue never delays live traffic.
//! Each queue is bounded; a full queue is answered at once (backpressure, 503), never buffered.

use std::time::Duration;

use bytes::Bytes;
use common::config::KafkaConfig;
use common::kafka::{self, topics};
use futures::future::join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

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

pub struct Sender {
    live: FutureProducer,
    historical: FutureProducer,
    live_topic: String,
    historical_topic: String,
}

impl Sender {
    pub fn new(config: &KafkaConfig) -> Result<Self, KafkaError> {
        Ok(Self {
            live: kafka::producer(config)?,
            historical: kafka::producer(config)?,
            live_topic: config.topic(topics::SIGNALS_RAW),
            historical_topic: config.topic(topics::SIGNALS_HISTORICAL),
        })
    }

    /// Queues every record, then waits for every delivery report. Results are in input order.
    pub async fn send(&self, lane: Lane, records: &[OutRecord]) -> Vec<Result<(), SendError>> {
        let (producer, topic) = match lane {
            Lane::Live => (&self.live, &self.live_topic),
            Lane::Historical => (&self.historical, &self.historical_topic),
        };
        let queued: Vec<_> = records
            .iter()
            .map(|record| {
                let message = FutureRecord::to(topic)
                    .key(record.key.as_bytes())
                    .payload(record.payload.as_ref())
                    .headers(record.headers.clone());
                producer.send_result(message).map_err(|(error, _)| SendError::from_kafka(error))
            })
            .collect();
        join_all(queued.into_iter().map(|queued| async move {
            match queued?.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((error, _))) => Err(SendError::from_kafka(error)),
                Err(_canceled) => Err(SendError::Unavailable(KafkaError::Canceled)),
            }
        }))
        .await
    }

    /// Waits up to `timeout` for queued records to be delivered (graceful shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.live.flush(timeout)?;
        self.historical.flush(timeout)
    }
}
