//! End-to-end latency under steady load: signals POSTed to a running `sigstage run` at RATE per
//! second for SECONDS, each timed from its 202 to the moment its row is visible in ClickHouse
//! (polled every 20 ms, so figures are at most 20 ms late). Prints p50, p99 and the maximum.
//!
//! `cargo run --release --example latency -- URL KEY RATE SECONDS [NOISY_KEY NOISY_RATE [BATCH]]`
//! with the `SIGSTAGE_*` environment of the same database (see `scripts/bench/sink.sh`). With a
//! noisy key, another org sends NOISY_RATE signals a second meanwhile (not timed): the others'
//! latency beside a noisy org (`scripts/bench/overflow.sh`). With BATCH, that load goes as
//! Segment `/v1/batch` requests of BATCH events (the live lane, as a busy Segment source sends),
//! so it can reach a good part of the pipeline's capacity. `LATENCY_ORG` names the timed key's
//! org (`latency` by default): the poll reads that org's rows only, so it stays as fast whatever
//! else the database holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runtime::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (url, key, rate, seconds, noisy) = match args.as_slice() {
        [_, url, key, rate, seconds] => (url, key, rate, seconds, None),
        [_, url, key, rate, seconds, noisy_key, noisy_rate, batch @ ..] if batch.len() <= 1 => {
            let batch = batch.first().map_or(Ok(1), |batch| batch.parse::<u64>())?;
            (url, key, rate, seconds, Some((noisy_key.clone(), noisy_rate.parse::<u64>()?, batch)))
        }
        _ => anyhow::bail!("usage: latency URL KEY RATE SECONDS [NOISY_KEY NOISY_RATE [BATCH]]"),
    };
    let (rate, seconds): (u64, u64) = (rate.parse()?, seconds.parse()?);
    let load = match noisy {
        Some((noisy_key, noisy_rate, batch)) if batch > 1 => {
            Some(tokio::spawn(batches(reqwest::Client::new(), url.clone(), noisy_key, noisy_rate, batch, seconds)))
        }
        Some((noisy_key, noisy_rate, _)) => {
            let endpoint = format!("{url}/api/signal-staging/webhook/{noisy_key}");
            Some(tokio::spawn(noise(reqwest::Client::new(), endpoint, noisy_rate, seconds)))
        }
        None => None,
    };
    let clickhouse = runtime::clickhouse::client(&Config::from_env()?.clickhouse);
    let org = std::env::var("LATENCY_ORG").unwrap_or_else(|_| "latency".into());
    let http = reqwest::Client::new();
    let accepted: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let total = rate * seconds;
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut sends = tokio::task::JoinSet::new();
    for n in 0..total {
        ticker.tick().await;
        let (http, sent) = (http.clone(), Arc::clone(&accepted));
        let endpoint = format!("{url}/api/signal-staging/webhook/{key}");
        let body =
            format!(r#"{{"type":"track","event":"Latency","anonymousId":"lat-{}","messageId":"m{n}"}}"#, n % 500);
        sends.spawn(async move {
            let answer = http.post(endpoint).header("content-type", "application/json").body(body).send().await?;
            let at = Instant::now();
            let json: serde_json::Value = serde_json::from_slice(&answer.error_for_status()?.bytes().await?)?;
            let id = json["id"].as_u64();
            sent.lock().expect("lock").insert(id.ok_or_else(|| anyhow::anyhow!("no id in {json}"))?, at);
            anyhow::Ok(())
        });
        // Poll while sending, so visibility is seen as it happens.
        if n % (rate / 50).max(1) == 0 {
            poll(&clickhouse, &org, &accepted).await?;
        }
    }
    while let Some(result) = sends.join_next().await {
        result??;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !accepted.lock().expect("lock").is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        poll(&clickhouse, &org, &accepted).await?;
    }
    if let Some(load) = load {
        load.await?;
    }
    let left = accepted.lock().expect("lock").len();
    anyhow::ensure!(left == 0, "{left} signals never became visible");
    let mut latencies = SEEN.lock().expect("lock").clone();
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "{} signals at {rate}/s: 202 to row visible p50 {} ms, p99 {} ms, max {} ms",
        latencies.len(),
        at(0.5),
        at(0.99),
        latencies.last().copied().unwrap_or(0)
    );
    Ok(())
}

/// Another org's signals at `rate` a second for `seconds`, untimed.
async fn noise(http: reqwest::Client, endpoint: String, rate: u64, seconds: u64) {
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    for n in 0..rate * seconds {
        ticker.tick().await;
        let body =
            format!(r#"{{"type":"track","event":"Noise","anonymousId":"noise-{}","messageId":"n{n}"}}"#, n % 5000);
        let request = http.post(&endpoint).header("content-type", "application/json").body(body);
        tokio::spawn(async move {
            let _ = request.send().await;
        });
    }
}

/// Another org's Segment events at `rate` a second for `seconds`, as `/v1/batch` requests of
/// `batch` events, untimed; says how many were refused.
async fn batches(http: reqwest::Client, url: String, key: String, rate: u64, batch: u64, seconds: u64) {
    let requests = (rate / batch).max(1);
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / requests));
    let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut sends = tokio::task::JoinSet::new();
    for n in 0..requests * seconds {
        ticker.tick().await;
        let events: Vec<String> = (0..batch)
            .map(|i| {
                format!(
                    r#"{{"type":"track","event":"Load","anonymousId":"load-{}","messageId":"l{n}-{i}","properties":{{"plan":"growth","seats":25}},"context":{{"ip":"203.0.113.9","page":{{"path":"/pricing"}}}}}}"#,
                    (n * batch + i) % 50_000
                )
            })
            .collect();
        let body = format!(r#"{{"batch":[{}]}}"#, events.join(","));
        let request = http.post(format!("{url}/v1/batch")).basic_auth(&key, Some("")).body(body);
        let refused = Arc::clone(&refused);
        sends.spawn(async move {
            if !request.send().await.is_ok_and(|answer| answer.status().is_success()) {
                refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
    }
    while sends.join_next().await.is_some() {}
    let refused = refused.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "load: {} events in {} requests of {batch}, {refused} requests refused",
        requests * seconds * batch,
        requests * seconds
    );
}

static SEEN: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// Moves the signals now visible from `accepted` to the latencies.
async fn poll(
    clickhouse: &clickhouse::Client,
    org: &str,
    accepted: &Mutex<HashMap<u64, Instant>>,
) -> anyhow::Result<()> {
    let visible: Vec<u64> = clickhouse
        .query(
            "SELECT signal_id FROM signals_cold WHERE org_id = ? AND event = 'Latency' \
             AND received_ms > toUInt64(now() - 600) * 1000",
        )
        .bind(org)
        .fetch_all()
        .await?;
    let now = Instant::now();
    let mut accepted = accepted.lock().expect("lock");
    let mut seen = SEEN.lock().expect("lock");
    for id in visible {
        if let Some(at) = accepted.remove(&id) {
            seen.push(now.duration_since(at).as_millis() as u64);
        }
    }
    Ok(())
}
