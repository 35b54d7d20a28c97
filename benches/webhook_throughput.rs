//! Webhook deliveries/s through the real workers (signing, HTTP POST, attempt log written to
//! ClickHouse) to a local receiver that answers 200, for SUBSCRIPTIONS subscriptions with
//! EVENTS events each, all queued at once.
//!
//! `cargo run --release --example webhook_throughput -- SUBSCRIPTIONS EVENTS` with the
//! `SIGSTAGE_*` environment of a migrated database (see `scripts/bench-sink.sh`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use common::config::Config;
use common::control::webhooks::Subscription;
use sink::webhooks::delivery::Deliverer;
use sink::webhooks::worker::{Event, Job, Worker};
use tokio::sync::mpsc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, subscriptions, events] = args.as_slice() else {
        anyhow::bail!("usage: webhook_throughput SUBSCRIPTIONS EVENTS");
    };
    let (subscriptions, events): (usize, usize) = (subscriptions.parse()?, events.parse()?);
    let mut config = Config::from_env()?;
    config.webhooks.allow_private = true;
    let clickhouse = common::clickhouse::client(&config.clickhouse);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, Router::new().route("/", post(|| async { "OK" }))).await });

    let deliverer = Arc::new(Deliverer::new(&config.webhooks)?);
    let (log, log_rx) = mpsc::channel(10_000);
    let log_writer = tokio::spawn(sink::webhooks::worker::write_log(clickhouse.clone(), log_rx));
    let pending = Arc::new(AtomicUsize::new(subscriptions * events));
    let body =
        br#"{"id":"1.lead.created","type":"lead.created","org":"bench","created_ms":1,"data":{"email":"a@b.io"}}"#;
    let started = Instant::now();
    for s in 0..subscriptions {
        let subscription = Subscription {
            org_id: "bench".into(),
            subscription_id: format!("sub_bench_{s}"),
            url: format!("http://{addr}/"),
            event_types: vec!["lead.created".into()],
            active: 1,
            secret: "whsec_c2VjcmV0c2VjcmV0c2VjcmV0".into(),
            disabled_reason: String::new(),
            created_ms: 0,
            version: 0,
        };
        let (jobs, queue) = mpsc::channel(events);
        let worker = Worker {
            subscription,
            deliverer: Arc::clone(&deliverer),
            config: config.webhooks.clone(),
            clickhouse: clickhouse.clone(),
            log: log.clone(),
        };
        tokio::spawn(worker.run(queue));
        for e in 0..events {
            let event =
                Arc::new(Event { id: format!("{e}.lead.created"), kind: "lead.created".into(), body: body.to_vec() });
            jobs.send(Job { event, pending: Arc::clone(&pending) }).await?;
        }
    }
    while pending.load(Ordering::Acquire) > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let rate = (subscriptions * events) as f64 / started.elapsed().as_secs_f64();
    drop(log);
    log_writer.await?;
    println!("{} deliveries to {subscriptions} subscriptions: {rate:.0} deliveries/s", subscriptions * events);
    Ok(())
}
