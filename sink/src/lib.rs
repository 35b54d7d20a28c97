//! Sinks: batched writes of processed signals to ClickHouse (hot and cold), identities and leads,
//! rehydration of cold signals when their visitor is identified, and signed webhook delivery.

pub mod compact;
pub mod retention;
pub mod rows;
pub mod runner;
pub mod store;
pub mod webhooks;

/// Registers the sinks' metrics at zero, with their descriptions.
pub fn register_metrics() {
    runtime::stage::register_metrics("sink");
    runtime::stage::register_metrics("webhooks");
    compact::register_metrics();
    retention::register_metrics();
    metrics::describe_counter!(runner::ROWS_TOTAL, "rows written to ClickHouse, by table");
    metrics::describe_counter!(runner::ROWS_SKIPPED_TOTAL, "rows of a replay left out because their table held them");
    metrics::describe_counter!(
        runner::ROWS_SUPPRESSED_TOTAL,
        "records not written because their person was deleted and is suppressed"
    );
    metrics::counter!(runner::ROWS_SUPPRESSED_TOTAL).absolute(0);
    metrics::describe_counter!(webhooks::worker::ATTEMPTS_TOTAL, "webhook delivery attempts, by outcome");
    metrics::describe_counter!(
        webhooks::scheduler::DISABLED_TOTAL,
        "webhook subscriptions disabled by the sink (failing for too long, or 410 Gone)"
    );
    metrics::counter!(webhooks::scheduler::DISABLED_TOTAL).absolute(0);
    for table in ["signals_hot", "signals_cold", "identities", "leads"] {
        metrics::counter!(runner::ROWS_TOTAL, "table" => table).absolute(0);
        metrics::counter!(runner::ROWS_SKIPPED_TOTAL, "table" => table).absolute(0);
    }
    for outcome in ["delivered", "disabled", "refused", "gave_up", "retrying"] {
        metrics::counter!(webhooks::worker::ATTEMPTS_TOTAL, "outcome" => outcome).absolute(0);
    }
}
