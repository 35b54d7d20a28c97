//! Logs (`tracing`, human or JSON) and metrics (Prometheus text at `/metrics`).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global log subscriber. `RUST_LOG` filters (default `info`). Logs go to stderr,
/// so stdout stays free for command output that scripts capture.
pub fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    // A second initialisation (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

pub const BUILD_INFO: &str = "sigstage_build_info";

/// Bucket bounds of every `*_seconds` histogram, from a millisecond to a minute.
const SECONDS_BUCKETS: [f64; 14] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Bucket bounds of every `*_records` histogram.
const RECORDS_BUCKETS: [f64; 8] = [1.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0];

/// Installs the global metrics recorder once and returns the handle `/metrics` renders, with the
/// build-info gauge set. Each role then registers its own metrics at zero, so a first scrape
/// lists them all.
pub fn init_metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .and_then(|builder| {
                    builder.set_buckets_for_metric(Matcher::Suffix("_records".into()), &RECORDS_BUCKETS)
                })
                .expect("bucket bounds are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Only this function installs a recorder, and only once.
            let _ = metrics::set_global_recorder(recorder);
            metrics::describe_gauge!(BUILD_INFO, "1, labelled with the version of sigstage running");
            metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}
