//! End-to-end latency under steady load: signals POSTed to a running `sigstage run` at RATE per
//! second for SECONDS, each timed from its 202 to the moment its row is visible in ClickHouse
//! (polled every 20 ms, so figures are at most 20 ms late). Prints p50, p99 and the maximum.
//!
//! `cargo run --release --example latency -- URL KEY RATE SECONDS [NOISY_KEY NOISY_RATE]` with the
//! `SIGSTAGE_*` environment of the same database (see `scripts/bench/sink.sh`). With a noisy key,
//! another org sends NOISY_RATE signals a second meanwhile (not timed): the others' latency beside
//! a noisy org (`scripts/bench/overflow.sh`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runtime::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (url, key, rate, seconds, noisy) = match args.as_slice() {
        [_, url, key, rate, seconds] => (url, key, rate, seconds, None),
        [_, url, key, rate, seconds, noisy_key, noisy_rate] => {
            (url, key, rate, seconds, Some((noisy_key.clone(), noisy_rate.parse::<u64>()?)))
        }
        _ => anyhow::bail!("usage: latency URL KEY RATE SECONDS [NOISY_KEY NOISY_RATE]"),
    };
    let (rate, seconds): (u64, u64) = (rate.parse()?, seconds.parse()?);
    if let Some((noisy_key, noisy_rate)) = noisy {
        tokio::spawn(noise(
            reqwest::Client::new(),
            format!("{url}/api/signal-staging/webhook/{noisy_key}"),
            noisy_rate,
            seconds,
        ));
    }
    let clickhouse = runtime::clickhouse::client(&Config::from_env()?.clickhouse);
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
            poll(&clickhouse, &accepted).await?;
        }
    }
    while let Some(result) = sends.join_next().await {
        result??;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !accepted.lock().expect("lock").is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        poll(&clickhouse, &accepted).await?;
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

static SEEN: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// Moves the signals now visible from `accepted` to the latencies.
async fn poll(clickhouse: &clickhouse::Client, accepted: &Mutex<HashMap<u64, Instant>>) -> anyhow::Result<()> {
    let visible: Vec<u64> = clickhouse
        .query(
            "SELECT signal_id FROM signals_cold WHERE event = 'Latency' AND received_ms > toUInt64(now() - 600) * 1000",
        )
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
