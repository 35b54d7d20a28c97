//! `sigstage run | ingest | stream | sink`: one HTTP server per process with the health
//! endpoints, plus the roles asked for.

use std::path::{Path, PathBuf};

use anyhow::Context;
use common::config::Config;
use common::control::keys::{self, Endpoint, KeySet, NewKey};
use common::health::{self, Health};
use common::kafka::MetadataClient;
use tokio::net::TcpListener;

/// Which roles a process runs.
#[derive(Debug, Clone, Copy)]
pub struct Roles {
    pub ingest: bool,
    pub stream: bool,
    pub sink: bool,
}

impl Roles {
    pub const ALL: Roles = Roles { ingest: true, stream: true, sink: true };
    pub const INGEST: Roles = Roles { ingest: true, stream: false, sink: false };
    pub const STREAM: Roles = Roles { ingest: false, stream: true, sink: false };
    pub const SINK: Roles = Roles { ingest: false, stream: false, sink: true };

    fn names(self) -> String {
        [(self.ingest, "ingest"), (self.stream, "stream"), (self.sink, "sink")]
            .iter()
            .filter_map(|(on, name)| on.then_some(*name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub async fn run(config: Config, roles: Roles, demo_key_file: Option<PathBuf>) -> anyhow::Result<()> {
    let clickhouse = common::clickhouse::client(&config.clickhouse);
    let health = Health {
        kafka: MetadataClient::new(&config.kafka)
            .context("creating the Kafka client (check SIGSTAGE_KAFKA_BROKERS)")?,
        clickhouse: clickhouse.clone(),
        metrics: common::telemetry::init_metrics(),
    };
    let app = health::router(health);

    let demo_key = match &demo_key_file {
        Some(path) => Some(demo_key(&clickhouse, path).await?),
        None => None,
    };
    let listener = TcpListener::bind(config.http.addr).await.with_context(|| {
        format!(
            "cannot listen on {} (SIGSTAGE_HTTP_ADDR): is another sigstage already running there?",
            config.http.addr
        )
    })?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, roles = %roles.names(), "listening");
    println!("sigstage ready: {} on http://{addr} (health: /healthz /readyz /metrics)", roles.names());
    if let Some(key) = demo_key {
        println!("demo org key: {key}");
        println!("try: curl -s http://{addr}/readyz");
    }
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The demo org's key from `path`, or a new one written there when it is missing or no longer
/// works (revoked, expired, database reset).
async fn demo_key(clickhouse: &clickhouse::Client, path: &Path) -> anyhow::Result<String> {
    let known = KeySet::load(clickhouse).await.context("loading API keys (has `sigstage migrate` run?)")?;
    if let Ok(saved) = std::fs::read_to_string(path) {
        let saved = saved.trim();
        if known.authenticate(saved, None, Endpoint::SignalStaging, common::time::now_ms()).is_ok() {
            return Ok(saved.to_owned());
        }
    }
    let created = keys::create(clickhouse, NewKey { org_id: "demo", ..NewKey::default() }).await?;
    write_private(path, &created.key).with_context(|| format!("saving the demo key to {}", path.display()))?;
    Ok(created.key)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM; only Ctrl-C stops the server");
            let _ = interrupt.await;
            return;
        }
    };
    tokio::select! {
        _ = interrupt => {},
        _ = terminate.recv() => {},
    }
    tracing::info!("shutting down");
}
