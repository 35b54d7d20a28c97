//! Live webhook delivery latency while a backfill of BACKFILL stored events goes to the same
//! endpoint, beside the same live load with no backfill, through the real scheduler and workers
//! to a local receiver. A live event is stored and queued every 50 ms, as the dispatcher does;
//! its latency runs from its queueing to the receiver. The backfill goes at RATE a second.
//!
//! `cargo run --release --example webhook_backfill -- BACKFILL RATE` with the `SIGSTAGE_*`
//! environment of a migrated database (see `scripts/bench/sink.sh`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use control::backfill;
use control::deliveries::{self, Delivery};
use control::webhooks::{self, StoredEvent};
use runtime::config::Config;
use sink::webhooks::delivery::Deliverer;
use sink::webhooks::scheduler::Scheduler;
use tokio::sync::{watch, Notify};

/// When each webhook-id reached the receiver.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

const LIVE_EVERY: Duration = Duration::from_millis(50);
const CALM_FOR: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, events, rate] = args.as_slice() else {
        anyhow::bail!("usage: webhook_backfill BACKFILL RATE");
    };
    let (events, rate): (u64, u32) = (events.parse()?, rate.parse()?);
    let mut config = Config::from_env()?;
    config.webhooks.allow_private = true;
    let clickhouse = runtime::clickhouse::client(&config.clickhouse);
    let arrivals: Arrivals = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let seen = Arc::clone(&arrivals);
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap| {
            let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            seen.lock().expect("lock").insert(id, Instant::now());
            async { "OK" }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Names of their own each time: the bench database keeps earlier runs' queues.
    let run_id = runtime::time::now_ms();
    let org = format!("bench_backfill_{run_id}");
    let subscription =
        webhooks::create(&clickhouse, &org, &format!("http://{addr}/hook"), vec!["lead.created".into()]).await?;
    eprintln!("storing {events} past events");
    for chunk in (0..events).collect::<Vec<_>>().chunks(20_000) {
        let stored: Vec<StoredEvent> = chunk.iter().map(|&e| event(&org, &format!("past{e}"), 1)).collect();
        webhooks::store_events(&clickhouse, &stored).await?;
    }

    let wake = Arc::new(Notify::new());
    let (_keep, subscriptions) = watch::channel(Arc::new(vec![subscription.clone()]));
    let scheduler = Scheduler {
        clickhouse: clickhouse.clone(),
        deliverer: Arc::new(Deliverer::new(&config.webhooks)?),
        config: Arc::new(config.webhooks.clone()),
        subscriptions,
        wake: Arc::clone(&wake),
    };
    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn(scheduler.run(stopped));
    let live = Live { clickhouse: &clickhouse, org: &org, subscription: &subscription.subscription_id, wake: &wake };

    eprintln!("live events alone for {} s", CALM_FOR.as_secs());
    let calm_until = Instant::now() + CALM_FOR;
    let calm = live.send_while(&arrivals, || Instant::now() < calm_until).await?;

    let request = backfill::Request {
        subscription_id: &subscription.subscription_id,
        since_ms: 0,
        until_ms: runtime::time::now_ms(),
        event_types: &[],
        per_second: rate,
    };
    let started = backfill::start(&clickhouse, &request).await?;
    let began = Instant::now();
    eprintln!("live events while {} past events go out at {rate} a second", started.total);
    let past_arrived = || arrivals.lock().expect("lock").keys().filter(|id| id.starts_with("past")).count() as u64;
    let during = live.send_while(&arrivals, || past_arrived() < started.total).await?;
    let took = began.elapsed();
    stop.send(true)?;
    running.await?;

    let (calm, during) = (percentiles(calm), percentiles(during));
    println!("live delivery latency alone:             p50 {:>6.1} ms  p99 {:>6.1} ms", calm.0, calm.1);
    println!("live delivery latency during a backfill: p50 {:>6.1} ms  p99 {:>6.1} ms", during.0, during.1);
    println!("ratio during/alone: p50 {:.2}, p99 {:.2}", during.0 / calm.0, during.1 / calm.1);
    println!(
        "backfill: {} events in {:.1} s, {:.0} a second (asked {rate})",
        started.total,
        took.as_secs_f64(),
        started.total as f64 / took.as_secs_f64()
    );
    Ok(())
}

fn event(org: &str, id: &str, created_ms: u64) -> StoredEvent {
    StoredEvent {
        org_id: org.to_owned(),
        event_id: format!("{id}.lead.created"),
        event_type: "lead.created".into(),
        body: format!(
            r#"{{"id":"{id}.lead.created","type":"lead.created","org":"{org}","data":{{"email":"a@b.io"}}}}"#
        ),
        created_ms,
    }
}

/// Live events, queued as the dispatcher queues them.
struct Live<'a> {
    clickhouse: &'a clickhouse::Client,
    org: &'a str,
    subscription: &'a str,
    wake: &'a Notify,
}

impl Live<'_> {
    /// Queues a live event every [`LIVE_EVERY`] while `go` holds; answers each one's latency in
    /// milliseconds once all have arrived.
    async fn send_while(&self, arrivals: &Arrivals, go: impl Fn() -> bool) -> anyhow::Result<Vec<f64>> {
        let mut queued: Vec<(String, Instant)> = Vec::new();
        while go() {
            let id = format!("live{}", runtime::time::now_ms() * 1000 + queued.len() as u64 % 1000);
            let stored = event(self.org, &id, runtime::time::now_ms());
            webhooks::store_events(self.clickhouse, std::slice::from_ref(&stored)).await?;
            let at = Instant::now();
            let due = Delivery::due(self.org, self.subscription, &stored.event_id, &stored.event_type, 0);
            deliveries::write(self.clickhouse, &[due]).await?;
            self.wake.notify_one();
            queued.push((stored.event_id, at));
            tokio::time::sleep(LIVE_EVERY).await;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let latencies: Option<Vec<f64>> = {
                let arrived = arrivals.lock().expect("lock");
                queued
                    .iter()
                    .map(|(id, at)| arrived.get(id).map(|when| when.duration_since(*at).as_secs_f64() * 1000.0))
                    .collect()
            };
            if let Some(latencies) = latencies {
                return Ok(latencies);
            }
            anyhow::ensure!(Instant::now() < deadline, "live events did not all arrive within a minute");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The median and the 99th percentile.
fn percentiles(mut values: Vec<f64>) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}
