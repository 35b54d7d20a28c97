//! `sigstage run | ingest | stream | sink`: one HTTP server per process with the health
//! endpoints, plus the roles asked for.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use control::keys::{self, Endpoint, KeySet, NewKey};
use ingest::gate::Gate;
use ingest::lease::Lease;
use ingest::sender::Sender;
use ingest::Edge;
use runtime::config::Config;
use runtime::health::{self, Health};
use runtime::kafka::MetadataClient;
use runtime::stage::{self, Stages};
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
    stage::arm_fault(config.fault.clone());
    let clickhouse = runtime::clickhouse::client(&config.clickhouse);
    let stages = Stages::default();
    let health = Health {
        kafka: MetadataClient::new(&config.kafka)
            .context("creating the Kafka client (check SIGSTAGE_KAFKA_BROKERS)")?,
        clickhouse: clickhouse.clone(),
        metrics: runtime::telemetry::init_metrics(),
        stages: stages.clone(),
    };
    if roles.ingest {
        ingest::register_metrics();
    }
    if roles.stream {
        stream::register_metrics();
    }
    if roles.sink {
        sink::register_metrics();
    }
    let mut app = health::router(health);

    runtime::kafka::prepare_topics(&config.kafka)
        .await
        .with_context(|| format!("preparing topics on {} (is the broker up?)", config.kafka.brokers))?;
    // Before the edge loads its keys, so the demo key works from the first request.
    let demo_key = match &demo_key_file {
        Some(path) => Some(demo_key(&clickhouse, path).await?),
        None => None,
    };
    let (edge, lease) = if roles.ingest {
        let (edge, lease) = start_edge(&config, &clickhouse).await?;
        (Some(edge), Some(lease))
    } else {
        (None, None)
    };
    if let Some(edge) = &edge {
        app = app.merge(ingest::routes::router(Arc::clone(edge)));
    }
    let signal = shutdown_signal()?;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    // A lost instance id stops the process too: it must not mint ids another instance holds.
    let mut lost = lease.as_ref().map(|lease| lease.lost.clone());
    tokio::spawn(async move {
        match &mut lost {
            Some(lost) => tokio::select! {
                () = signal => {}
                _ = lost.wait_for(Option::is_some) => {}
            },
            None => signal.await,
        }
        let _ = stop_tx.send(true);
    });
    // Every stage runs supervised: a failure restarts it (it rejoins its group and restores
    // its state), and /readyz names it meanwhile.
    let mut supervised = Vec::new();
    if roles.stream {
        let (kafka, clickhouse) = (config.kafka.clone(), clickhouse.clone());
        let settings = stream::runner::Settings {
            refresh: Duration::from_millis(config.control_refresh_ms),
            ..stream::runner::Settings::default()
        };
        let transactional_id = runtime::kafka::transactional_id(&config.kafka, "stream");
        supervised.push(tokio::spawn(stage::supervise(stages.stage("stream"), stop.clone(), move |stage, stop| {
            let (kafka, clickhouse, settings, id) =
                (kafka.clone(), clickhouse.clone(), settings.clone(), transactional_id.clone());
            async move { stream::runner::run(&kafka, clickhouse, settings, &id, stage, stop).await }
        })));
    }
    if roles.sink {
        let (kafka, sink_clickhouse) = (config.kafka.clone(), clickhouse.clone());
        let config_refresh_ms = config.control_refresh_ms;
        supervised.push(tokio::spawn(stage::supervise(stages.stage("sink"), stop.clone(), move |stage, stop| {
            let (kafka, clickhouse) = (kafka.clone(), sink_clickhouse.clone());
            let settings = sink::runner::Settings {
                refresh: Duration::from_millis(config_refresh_ms),
                ..sink::runner::Settings::default()
            };
            async move { sink::runner::run(&kafka, clickhouse, settings, stage, stop).await }
        })));
        if let Some(every) = config.rollups_compact_every {
            let cluster = config.clickhouse.cluster.clone();
            tokio::spawn(sink::compact::run(clickhouse.clone(), cluster, every, stop.clone()));
        }
        if let Some(every) = config.retention_every {
            let cluster = config.clickhouse.cluster.clone();
            tokio::spawn(sink::retention::run(clickhouse.clone(), cluster, every, stop.clone()));
        }
        let (kafka, clickhouse) = (config.kafka.clone(), clickhouse.clone());
        let (settings, refresh) = (config.webhooks.clone(), Duration::from_millis(config.control_refresh_ms));
        supervised.push(tokio::spawn(stage::supervise(stages.stage("webhooks"), stop.clone(), move |stage, stop| {
            let (kafka, clickhouse, settings) = (kafka.clone(), clickhouse.clone(), settings.clone());
            async move { sink::webhooks::run(&kafka, settings, clickhouse, refresh, stage, stop).await }
        })));
    }
    let listener = TcpListener::bind(config.http.addr).await.with_context(|| {
        format!(
            "cannot listen on {} (SIGSTAGE_HTTP_ADDR): is another sigstage already running there?",
            config.http.addr
        )
    })?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, roles = %roles.names(), "listening");
    runtime::serve::describe_metrics();
    let cap = runtime::serve::connection_cap(&config.http.serve, if config.admin_tokens.is_empty() { 1 } else { 2 });
    // The admin API only on a listener of its own (loopback by default), and only with a token.
    let admin = if config.admin_tokens.is_empty() {
        None
    } else {
        let listener = TcpListener::bind(config.admin_addr).await.with_context(|| {
            format!("cannot listen on {} (SIGSTAGE_ADMIN_ADDR): is something else there?", config.admin_addr)
        })?;
        let admin_addr = listener.local_addr()?;
        tracing::info!(addr = %admin_addr, tokens = config.admin_tokens.len(), "admin API listening");
        // Senders on this machine reach a listener bound to every address through loopback.
        let public =
            if addr.ip().is_unspecified() { std::net::SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
        let settings = admin::Settings {
            kafka: Some(config.kafka.clone()),
            tokens: config.admin_tokens.clone(),
            public_url: format!("http://{public}"),
            tails: admin::TailLimits { most: config.admin_max_tails, idle: config.admin_tail_idle },
            people: admin::PeopleReach {
                cluster: config.clickhouse.cluster.clone(),
                refresh: Duration::from_millis(config.control_refresh_ms),
            },
        };
        let router = admin::router(clickhouse.clone(), settings);
        let (limits, stop) = (config.http.serve.clone(), stop.clone());
        let serving = tokio::spawn(runtime::serve::serve("admin", listener, router, limits, cap, stop));
        Some((admin_addr, serving))
    };
    // The ready lines are for whoever started the process; if stdout is closed, serve anyway.
    let mut ready = format!("sigstage ready: {} on http://{addr} (health: /healthz /readyz /metrics)\n", roles.names());
    if let Some((admin_addr, _)) = &admin {
        ready.push_str(&format!(
            "admin API on http://{admin_addr}/api/admin/ (Authorization: Bearer <token>); console on http://{admin_addr}/console\n"
        ));
    }
    if let Some(key) = demo_key {
        ready.push_str(&format!(
            "demo org key: {key}\n\
             try: curl -s -X POST http://{addr}/api/signal-staging/webhook/{key} -H 'Content-Type: application/json' \
             -d '{{\"email\": \"test@example.com\", \"event\": \"test\"}}'\n"
        ));
    }
    let mut stdout = std::io::stdout();
    let _ = std::io::Write::write_all(&mut stdout, ready.as_bytes()).and_then(|()| std::io::Write::flush(&mut stdout));
    runtime::serve::serve("edge", listener, app, config.http.serve.clone(), cap, stop.clone()).await;
    for stage in supervised {
        stage.await.context("a stage panicked")?;
    }
    if let Some((_, admin)) = admin {
        admin.await.context("the admin listener panicked")?;
    }

    if let Some(edge) = edge {
        // Requests have finished; make sure what they queued reaches the broker and ClickHouse.
        if let Err(error) = edge.sender.flush(Duration::from_secs(10)) {
            tracing::error!(%error, "some queued signals were not delivered before shutdown");
        }
        if let Err(error) = edge.gate.flush_usage().await {
            tracing::warn!(%error, "usage counts since the last flush were not written");
        }
    }
    if let Some(lease) = lease {
        if let Some(why) = lease.lost.borrow().clone() {
            anyhow::bail!("{why}; start it again to lease a free id (or give it an unused SIGSTAGE_INSTANCE_ID)");
        }
        lease.release().await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn start_edge(config: &Config, clickhouse: &clickhouse::Client) -> anyhow::Result<(Arc<Edge>, Lease)> {
    let gate = Gate::load(clickhouse.clone()).await.with_context(|| {
        format!(
            "loading keys and limits from ClickHouse at {} database {:?} (is it up, and has `sigstage migrate` run?)",
            config.clickhouse.url, config.clickhouse.database
        )
    })?;
    let gate = Arc::new(gate);
    Arc::clone(&gate).spawn_refresh(Duration::from_millis(config.control_refresh_ms));
    let sender = Sender::new(&config.kafka).context("creating the Kafka producers")?;
    let lease = ingest::lease::acquire(&config.kafka, config.instance_id).await?;
    Ok((Arc::new(Edge::new(gate, sender, lease.id, &config.http)), lease))
}

/// The demo org's key from `path`, or a new one written there when it is missing or no longer
/// works (revoked, expired, database reset).
async fn demo_key(clickhouse: &clickhouse::Client, path: &Path) -> anyhow::Result<String> {
    let known = KeySet::load(clickhouse).await.context("loading API keys (has `sigstage migrate` run?)")?;
    if let Ok(saved) = std::fs::read_to_string(path) {
        let saved = saved.trim();
        if known.authenticate(saved, None, Endpoint::SignalStaging, runtime::time::now_ms()).is_ok() {
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

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, so a signal
/// that arrives before the server starts polling still shuts it down gracefully.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
        tracing::info!("shutting down");
    })
}
