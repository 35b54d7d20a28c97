//! The ingest edge: the HTTP endpoints senders call. It authenticates the key, applies the org's
//! limits, does the cheap checks needed to answer, and writes raw signals to Kafka, answering 202
//! only once the broker has them. It never waits on ClickHouse in the request path: keys and
//! limits are held in memory ([`gate`]).

pub mod accept;
pub mod activity;
pub mod body;
pub mod clock;
pub mod collect;
pub mod error;
pub mod gate;
pub mod gcra;
pub mod ids;
pub mod inspect;
pub mod lease;
pub mod overflow;
pub mod routes;
pub mod sender;
pub mod signals;
pub mod tracking;
pub mod usage;
pub mod verify;

use std::sync::Arc;

use axum::http::request::Parts;
use control::keys::Endpoint;
use runtime::config::HttpConfig;

use crate::error::EdgeError;
use crate::gate::{Caller, Gate};
use crate::ids::IdGenerator;
use crate::sender::Sender;

/// Everything a request handler needs.
pub struct Edge {
    pub gate: Arc<Gate>,
    pub sender: Sender,
    pub ids: IdGenerator,
    pub max_body_bytes: usize,
    pub max_bulk_body_bytes: usize,
    pub max_batch_signals: usize,
    pub max_bulk_signals: usize,
    pub tracking: runtime::config::TrackingLimits,
    pub overflow: overflow::Overflow,
}

impl Edge {
    pub fn new(gate: Arc<Gate>, sender: Sender, instance_id: u16, http: &HttpConfig) -> Self {
        Self {
            gate,
            sender,
            ids: IdGenerator::new(instance_id),
            max_body_bytes: http.max_body_bytes,
            max_bulk_body_bytes: http.max_bulk_body_bytes,
            max_batch_signals: http.max_batch_signals,
            max_bulk_signals: http.max_bulk_signals,
            tracking: http.tracking,
            overflow: overflow::Overflow::new(overflow::Limits {
                share_percent: http.overflow.share_percent,
                min_per_second: http.overflow.min_per_second,
            }),
        }
    }

    /// Authenticates the key (and secret) for `endpoint`, then applies the org's request rate.
    /// A key that requires a provider's signature is taken only where signatures are checked
    /// (the signal-staging and ingress endpoints, through [`Edge::verify`]).
    pub async fn admit(&self, key: &str, secret: Option<&[u8]>, endpoint: Endpoint) -> Result<Caller, EdgeError> {
        let now_ms = runtime::time::now_ms();
        let caller = self.gate.authenticate(key, secret, endpoint, now_ms).await.map_err(EdgeError::Unauthorized)?;
        if let (Some(signing), Endpoint::Collect | Endpoint::Tracking) = (&caller.signing, endpoint) {
            let error = EdgeError::Signature(verify::unchecked(signing));
            self.gate.count_rejected(&caller.org, error.code(), 1);
            return Err(error);
        }
        if let Err(retry_after_s) = self.gate.check_rate(&caller.org, now_ms) {
            let error = EdgeError::RateLimited { retry_after_s };
            self.gate.count_rejected(&caller.org, error.code(), 1);
            return Err(error);
        }
        Ok(caller)
    }
}

impl Edge {
    /// Checks the provider signature the caller's key requires, if any, over `body` as sent.
    pub fn verify(&self, caller: &Caller, request: &Parts, body: &[u8]) -> Result<(), EdgeError> {
        let Some(signing) = &caller.signing else { return Ok(()) };
        let signed = verify::Signed { method: &request.method, uri: &request.uri, headers: &request.headers, body };
        let now_s = (runtime::time::now_ms() / 1000) as i64;
        verify::verify(signing, &signed, now_s).map_err(EdgeError::Signature)
    }
}

/// Registers the edge's metrics at zero, with their descriptions.
pub fn register_metrics() {
    metrics::describe_counter!(accept::SIGNALS_TOTAL, "signals answered, by endpoint type and outcome");
    metrics::describe_counter!(routes::REQUESTS_TOTAL, "requests answered, by route and status class");
    metrics::describe_histogram!(routes::REQUEST_SECONDS, "time to answer a request, by route");
    metrics::describe_counter!(
        overflow::OVERFLOW_TOTAL,
        "live signals written to the overflow (historical) lane because their org was past its share"
    );
    metrics::counter!(overflow::OVERFLOW_TOTAL).absolute(0);
    metrics::describe_counter!(
        verify::SIGNATURES_TOTAL,
        "provider signatures checked, by provider and result (verified, missing, invalid, stale, unchecked)"
    );
    for endpoint in Endpoint::ALL {
        metrics::counter!(accept::SIGNALS_TOTAL, "endpoint" => endpoint.as_str(), "outcome" => "accepted").absolute(0);
    }
}
