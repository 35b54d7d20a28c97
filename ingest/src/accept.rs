//! The part every endpoint shares once it has signals in hand: plan limits, signal ids, Kafka
//! records, production, usage counting, and the per-signal answer.

use bytes::Bytes;
use rdkafka::message::{Header, OwnedHeaders};
use schemas::record::{record_key, RawHeaders};
use serde::Serialize;

use crate::error::EdgeError;
use crate::gate::Caller;
use crate::sender::{Lane, OutRecord, SendError};
use crate::Edge;

/// A checked signal, ready to produce.
pub struct Prepared {
    pub payload: Bytes,
    pub source: String,
    pub hinted: bool,
    pub cold_storage: bool,
    pub identity: Option<String>,
}

/// What the sender of an accepted signal is told.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Accepted {
    pub id: u64,
    pub source: String,
    pub cold_storage: bool,
}

/// Which endpoint a signal came through; recorded in a header and in metrics.
#[derive(Debug, Clone, Copy)]
pub enum Via {
    Webhook,
    Batch,
    Bulk,
    Collect,
    Ingress,
    /// The Segment Tracking API (`/v1/...`); its `/v1/import` goes to the historical lane.
    Tracking,
    TrackingImport,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Webhook => "webhook",
            Via::Batch => "batch",
            Via::Bulk => "bulk",
            Via::Collect => "collect",
            Via::Ingress => "ingress",
            Via::Tracking => "tracking",
            Via::TrackingImport => "tracking_import",
        }
    }

    fn lane(self) -> Lane {
        match self {
            Via::Bulk | Via::TrackingImport => Lane::Historical,
            _ => Lane::Live,
        }
    }
}

pub const SIGNALS_TOTAL: &str = "sigstage_ingest_signals_total";

impl Edge {
    /// Produces every signal the plan admits and answers for each, in order.
    pub async fn produce(&self, caller: &Caller, via: Via, signals: Vec<Prepared>) -> Vec<Result<Accepted, EdgeError>> {
        let now_ms = runtime::time::now_ms();
        let admission = self.gate.reserve(&caller.org, signals.len());
        let mut records = Vec::with_capacity(admission.admitted);
        let mut answers = Vec::with_capacity(signals.len());
        for (index, signal) in signals.into_iter().enumerate() {
            if index >= admission.admitted {
                answers.push(Err(EdgeError::PlanLimitReached { retry_after_s: seconds_to_next_month(now_ms) }));
                continue;
            }
            let id = self.ids.next(now_ms);
            records.push(encode(caller, via, id, now_ms, &signal));
            answers.push(Ok(Accepted { id, source: signal.source, cold_storage: signal.cold_storage }));
        }
        let lane = match via.lane() {
            Lane::Live if caller.historical => Lane::Historical,
            Lane::Live if self.overflow.routes(&caller.org, records.len(), now_ms) => Lane::Historical,
            lane => lane,
        };
        let sent = self.sender.send(lane, records).await;
        let mut produced = 0;
        for (answer, result) in answers.iter_mut().zip(sent) {
            match result {
                Ok(()) => produced += 1,
                Err(SendError::Unavailable(error)) => {
                    tracing::warn!(%error, org = %caller.org, "signal not produced");
                    *answer = Err(EdgeError::Unavailable { retry_after_s: 2 });
                }
                Err(SendError::Refused(error)) => {
                    *answer = Err(EdgeError::InvalidPayload(format!("the broker refused this signal: {error}")));
                }
            }
        }
        self.gate.settle(&caller.org, admission, produced);
        metrics::counter!(SIGNALS_TOTAL, "endpoint" => via.as_str(), "outcome" => "accepted")
            .increment(produced as u64);
        for answer in &answers {
            if let Err(error) = answer {
                self.count_rejected(caller, via, error, 1);
            }
        }
        answers
    }

    /// Counts refused signals in usage and metrics.
    pub fn count_rejected(&self, caller: &Caller, via: Via, error: &EdgeError, signals: usize) {
        self.gate.count_rejected(&caller.org, error.code(), signals);
        metrics::counter!(SIGNALS_TOTAL, "endpoint" => via.as_str(), "outcome" => error.code())
            .increment(signals as u64);
    }
}

/// The Kafka record of a prepared signal: `org:identity` key, raw bytes, headers.
pub fn encode(caller: &Caller, via: Via, id: u64, now_ms: u64, signal: &Prepared) -> OutRecord {
    let raw = RawHeaders {
        signal_id: id,
        org: &caller.org,
        key_id: &caller.key_id,
        endpoint: via.as_str(),
        source: signal.source.as_str(),
        source_hinted: signal.hinted,
        received_ms: now_ms,
        history_rules: None,
    };
    let headers = raw.write(OwnedHeaders::new_with_capacity(7), |headers, key, value| {
        headers.insert(Header { key, value: Some(value) })
    });
    OutRecord { key: record_key(&caller.org, signal.identity.as_deref(), id), payload: signal.payload.clone(), headers }
}

/// Seconds until the first day of next month, UTC: when a monthly plan limit resets.
fn seconds_to_next_month(now_ms: u64) -> u64 {
    let Ok(now) = time::OffsetDateTime::from_unix_timestamp((now_ms / 1000) as i64) else { return 3600 };
    let (year, month) = match now.month() {
        time::Month::December => (now.year() + 1, time::Month::January),
        month => (now.year(), month.next()),
    };
    time::Date::from_calendar_date(year, month, 1)
        .map(|date| (date.midnight().assume_utc() - now).whole_seconds().max(1) as u64)
        .unwrap_or(3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_limits_reset_at_the_start_of_next_month() {
        // 2026-11-30T23:59:00Z → 60 s; 2026-12-31T00:00:00Z → 1 day.
        assert_eq!(seconds_to_next_month(1_796_083_140_000), 60);
        assert_eq!(seconds_to_next_month(1_798_675_200_000), 86_400);
    }
}
