//! Stream processors over `signals.raw` (and the historical lane, which yields to the live
//! one): parse, dedupe by content hash, detect what each signal is and who it names, apply the
//! org's mapping rules (unmatched signals are counted in the signal queue), resolve anonymous
//! visitors to leads, and write `signals.processed`, `identities` and `webhooks.outbox`, with
//! poison records sent to `signals.dlq`. A batch's outputs, state changes and offsets are
//! committed in one Kafka transaction.

pub mod dedupe;
pub mod identity;
pub mod inbound;
pub mod outputs;
pub mod processor;
pub mod restore;
pub mod runner;
pub mod signal_queue;

/// Registers the stream's metrics at zero, with their descriptions.
pub fn register_metrics() {
    runtime::stage::register_metrics("stream");
    metrics::describe_counter!(outputs::PROCESSED_TOTAL, "raw records processed, by outcome");
    metrics::describe_gauge!(dedupe::ENTRIES, "signals the dedupe window holds");
    metrics::describe_counter!(
        dedupe::EVICTED_EARLY,
        "dedupe entries dropped before their time because the window was full"
    );
    for outcome in ["processed", "duplicate", "suppressed", "dead_letter"] {
        metrics::counter!(outputs::PROCESSED_TOTAL, "outcome" => outcome).absolute(0);
    }
    metrics::gauge!(dedupe::ENTRIES).set(0.0);
    metrics::counter!(dedupe::EVICTED_EARLY).absolute(0);
}
