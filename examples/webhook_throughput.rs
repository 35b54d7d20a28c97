//! Webhook deliveries/s through the real scheduler and workers (queue read from ClickHouse,
//! signing, HTTP POST, queue and attempt log written back) to a local receiver that answers 200,
//! beside its ceiling: a bare loop that signs and POSTs the same events to the same receiver
//! with the same client and the same [`IN_FLIGHT`] attempts at a time, and writes nothing.
//! Each round runs three in turn: the bare loop, EVENTS events to one healthy endpoint alone,
//! then EVENTS events to a healthy endpoint beside one that never answers. The medians' ratios
//! say what the queue costs and whether a hanging endpoint slows the others.
//!
//! `cargo run --release --example webhook_throughput -- EVENTS [ROUNDS]` with the `SIGSTAGE_*`
//! environment of a migrated database (see `scripts/bench/sink.sh`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use control::deliveries::{self, Delivery};
use control::webhooks::{self, StoredEvent, Subscription};
use futures::StreamExt;
use runtime::config::Config;
use sink::webhooks::delivery::Deliverer;
use sink::webhooks::scheduler::Scheduler;
use sink::webhooks::worker::IN_FLIGHT;
use tokio::sync::{watch, Notify};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (events, rounds): (usize, usize) = match args.as_slice() {
        [_, events] => (events.parse()?, 3),
        [_, events, rounds] => (events.parse()?, rounds.parse()?),
        _ => anyhow::bail!("usage: webhook_throughput EVENTS [ROUNDS]"),
    };
    let mut config = Config::from_env()?;
    config.webhooks.allow_private = true;
    config.webhooks.timeout_ms = 300_000;
    let clickhouse = runtime::clickhouse::client(&config.clickhouse);
    let delivered = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let counter = Arc::clone(&delivered);
    let app = Router::new()
        .route(
            "/healthy",
            post(move || {
                counter.fetch_add(1, Ordering::Relaxed);
                async { "OK" }
            }),
        )
        .route("/hanging", post(std::future::pending::<&'static str>));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let base = format!("http://{addr}");
    let deliverer = Deliverer::new(&config.webhooks)?;
    let (mut bare, mut alone, mut beside) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        // Names of their own each time: the bench database keeps earlier runs' queues.
        let run_id = runtime::time::now_ms();
        bare.push(signed_posts(&deliverer, &delivered, events, &base).await);
        alone.push(run(&config, &clickhouse, &delivered, events, &base, &format!("alone_{run_id}"), false).await?);
        beside.push(run(&config, &clickhouse, &delivered, events, &base, &format!("beside_{run_id}"), true).await?);
        println!(
            "round {round}: bare loop {:.0}, alone {:.0}, beside a hanging one {:.0} deliveries/s",
            bare[round - 1],
            alone[round - 1],
            beside[round - 1]
        );
    }
    let (bare, alone, beside) = (median(bare), median(alone), median(beside));
    println!("medians of {rounds} rounds:");
    println!("bare signed-POST loop:             {bare:.0} deliveries/s");
    println!("healthy endpoint alone:            {alone:.0} deliveries/s");
    println!("healthy endpoint beside a hanging: {beside:.0} deliveries/s");
    println!("ratio alone/bare loop: {:.2}", alone / bare);
    println!("ratio beside/alone: {:.2}", beside / alone);
    Ok(())
}

fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// The ceiling: `events` signed POSTs to the healthy receiver, [`IN_FLIGHT`] at a time, with the
/// deliverer the workers use, and no queue; answers POSTs per second.
async fn signed_posts(deliverer: &Deliverer, delivered: &AtomicUsize, events: usize, base: &str) -> f64 {
    let subscription = subscription("bare", base, "healthy");
    delivered.store(0, Ordering::Relaxed);
    let started = Instant::now();
    let answered = futures::stream::iter(0..events)
        .map(|e| {
            let (subscription, event_id) = (&subscription, format!("{e}.lead.created"));
            async move {
                let body = body(&event_id, "bench_bare");
                deliverer.post(subscription, &event_id, "lead.created", body.as_bytes()).await.delivered()
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .filter(|delivered| std::future::ready(*delivered))
        .count()
        .await;
    assert_eq!(answered, events, "the receiver answered every POST");
    events as f64 / started.elapsed().as_secs_f64()
}

fn subscription(name: &str, base: &str, path: &str) -> Subscription {
    Subscription {
        org_id: format!("bench_{name}"),
        subscription_id: format!("sub_{name}_{path}"),
        url: format!("{base}/{path}"),
        event_types: vec!["lead.created".into()],
        active: 1,
        secret: "whsec_c2VjcmV0c2VjcmV0c2VjcmV0".into(),
        disabled_reason: String::new(),
        created_ms: 0,
        version: 0,
    }
}

fn body(event_id: &str, org: &str) -> String {
    format!(r#"{{"id":"{event_id}","type":"lead.created","org":"{org}","data":{{"email":"a@b.io"}}}}"#)
}

/// Queues `events` events for a healthy subscription (and a hanging one), runs the scheduler
/// until the healthy one has them all; answers its deliveries per second.
async fn run(
    config: &Config,
    clickhouse: &clickhouse::Client,
    delivered: &AtomicUsize,
    events: usize,
    base: &str,
    name: &str,
    with_hanging: bool,
) -> anyhow::Result<f64> {
    let mut subscriptions = vec![subscription(name, base, "healthy")];
    if with_hanging {
        subscriptions.push(subscription(name, base, "hanging"));
    }
    let org = format!("bench_{name}");
    let stored: Vec<StoredEvent> = (0..events)
        .map(|e| StoredEvent {
            org_id: org.clone(),
            event_id: format!("{e}.lead.created"),
            event_type: "lead.created".into(),
            body: body(&format!("{e}.lead.created"), &org),
            created_ms: 1,
        })
        .collect();
    webhooks::store_events(clickhouse, &stored).await?;
    let owed: Vec<Delivery> = subscriptions
        .iter()
        .flat_map(|s| stored.iter().map(|e| Delivery::due(&org, &s.subscription_id, &e.event_id, &e.event_type, 0)))
        .collect();
    deliveries::write(clickhouse, &owed).await?;

    delivered.store(0, Ordering::Relaxed);
    let (_keep, subscriptions) = watch::channel(Arc::new(subscriptions));
    let scheduler = Scheduler {
        clickhouse: clickhouse.clone(),
        deliverer: Arc::new(Deliverer::new(&config.webhooks)?),
        config: Arc::new(config.webhooks.clone()),
        subscriptions,
        wake: Arc::new(Notify::new()),
    };
    let (stop, stopped) = watch::channel(false);
    let started = Instant::now();
    let running = tokio::spawn(scheduler.run(stopped));
    while delivered.load(Ordering::Relaxed) < events {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    stop.send(true)?;
    running.await?;
    Ok(rate)
}
