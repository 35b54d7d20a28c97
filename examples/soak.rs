//! The edge under a slow-client attack beside the same load without it, in one run: rounds of
//! ROUND seconds alternate calm and attacked. Every round sends single signals at RATE a second
//! (open loop, from 127.0.0.1) and times each 202. An attacked round also holds STALLED
//! connections that send half a head and stop (from 127.0.0.2 to 127.0.0.9, reopened as the edge
//! closes them) and SLOW bodies trickled a byte every half second (from 127.0.0.10). Prints each
//! round, then the medians of each kind, the ratio of their p99s, the edge's resident memory
//! through the run, and whether every 202 is a record in `signals.raw`.
//!
//! `cargo run --release --example soak -- URL KEY RATE ROUND_SECONDS ROUNDS EDGE_PID` with the
//! edge's `SIGSTAGE_*` environment (see `scripts/bench/soak.sh`; STALLED and SLOW from the
//! environment, 2000 and 100 by default).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, key, rate, round_s, rounds, pid] = args.as_slice() else {
        anyhow::bail!("usage: soak URL KEY RATE ROUND_SECONDS ROUNDS EDGE_PID");
    };
    let (rate, round, rounds): (u64, u64, u64) = (rate.parse()?, round_s.parse()?, rounds.parse()?);
    let pid: u32 = pid.parse()?;
    let stalled: usize = std::env::var("STALLED").map_or(Ok(2000), |v| v.parse())?;
    let slow: usize = std::env::var("SLOW").map_or(Ok(100), |v| v.parse())?;
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let addr: SocketAddr = url.trim_start_matches("http://").parse()?;
    let config = runtime::config::Config::from_env()?;
    let http = reqwest::Client::builder().local_address(Some("127.0.0.1".parse()?)).build()?;
    let endpoint = format!("{url}/api/signal-staging/webhook/{key}");

    let (mut calm, mut attacked) = (Vec::new(), Vec::new());
    let (mut accepted, mut refused) = (0u64, 0u64);
    let mut rss = vec![rss_mib(pid)];
    for n in 0..rounds * 2 {
        let attack = n % 2 == 1;
        let attackers = if attack { attack_tasks(addr, key, stalled, slow) } else { Vec::new() };
        let (mut latencies, mut sends) = (Vec::new(), tokio::task::JoinSet::new());
        let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
        let mut sampled = Instant::now();
        for i in 0..rate * round {
            ticker.tick().await;
            let request = http
                .post(&endpoint)
                .header("content-type", "application/json")
                .body(format!(r#"{{"email":"soak{n}-{i}@example.com","event":"soak"}}"#));
            sends.spawn(async move {
                let started = Instant::now();
                let status = request.send().await.map(|answer| answer.status().as_u16()).unwrap_or(0);
                (status, started.elapsed())
            });
            if sampled.elapsed() >= Duration::from_secs(1) {
                rss.push(rss_mib(pid));
                sampled = Instant::now();
            }
        }
        while let Some(sent) = sends.join_next().await {
            let (status, took) = sent?;
            match status {
                202 => {
                    accepted += 1;
                    latencies.push(took);
                }
                _ => refused += 1,
            }
        }
        for attacker in attackers {
            attacker.abort();
        }
        latencies.sort_unstable();
        let (p50, p99) = (quantile(&latencies, 0.5), quantile(&latencies, 0.99));
        let kind = if attack { "attacked" } else { "calm" };
        println!(
            "round {n} {kind:>8}: {} accepted, p50 {:.1} ms, p99 {:.1} ms, edge RSS {} MiB",
            latencies.len(),
            ms(p50),
            ms(p99),
            rss_mib(pid)
        );
        if attack { &mut attacked } else { &mut calm }.push((p50, p99));
    }
    let median = |rounds: &mut Vec<(Duration, Duration)>, p99: bool| {
        let mut values: Vec<Duration> = rounds.iter().map(|(p50, p99s)| if p99 { *p99s } else { *p50 }).collect();
        values.sort_unstable();
        values[values.len() / 2]
    };
    let (calm_p50, calm_p99) = (median(&mut calm, false), median(&mut calm, true));
    let (attack_p50, attack_p99) = (median(&mut attacked, false), median(&mut attacked, true));
    println!("calm:     p50 {:.1} ms, p99 {:.1} ms (median of {} rounds)", ms(calm_p50), ms(calm_p99), calm.len());
    println!(
        "attacked: p50 {:.1} ms, p99 {:.1} ms ({stalled} stalled connections, {slow} slow bodies)",
        ms(attack_p50),
        ms(attack_p99)
    );
    println!("p99 attacked / calm: {:.2}", attack_p99.as_secs_f64() / calm_p99.as_secs_f64().max(1e-9));
    let (first, last, most) = (rss[0], *rss.last().unwrap_or(&0), rss.iter().copied().max().unwrap_or(0));
    println!("edge RSS: {first} MiB at the start, {most} MiB at most, {last} MiB at the end");

    let records = tokio::task::spawn_blocking(move || raw_records(&config)).await??;
    println!("{accepted} signals got 202, {refused} requests did not; signals.raw holds {records} records");
    anyhow::ensure!(records == accepted, "every 202 must be a record: {records} records for {accepted} 202s");
    Ok(())
}

/// The attack of one round: tasks that hold stalled connections and trickle bodies until aborted.
fn attack_tasks(addr: SocketAddr, key: &str, stalled: usize, slow: usize) -> Vec<tokio::task::JoinHandle<()>> {
    let half_head = format!("POST /api/signal-staging/webhook/{key} HTTP/1.1\r\nHost: {addr}\r\n");
    let slow_head = format!("{half_head}Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n");
    let mut tasks = Vec::new();
    for n in 0..stalled {
        let (head, source) = (half_head.clone(), format!("127.0.0.{}", 2 + n % 8));
        tasks.push(tokio::spawn(async move {
            loop {
                if let Some(mut stream) = connect_from(&source, addr).await {
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.read_to_end(&mut Vec::new()).await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    for _ in 0..slow {
        let head = slow_head.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                if let Some(mut stream) = connect_from("127.0.0.10", addr).await {
                    let _ = stream.write_all(head.as_bytes()).await;
                    while stream.write_all(b" ").await.is_ok() {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    tasks
}

async fn connect_from(source: &str, addr: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(format!("{source}:0").parse().ok()?).ok()?;
    socket.connect(addr).await.ok()
}

/// Records in every partition of `signals.raw`.
fn raw_records(config: &runtime::config::Config) -> anyhow::Result<u64> {
    let topic = config.kafka.topic(runtime::kafka::topics::SIGNALS_RAW);
    let reader = runtime::kafka::partition_reader(&config.kafka)?;
    let metadata = reader.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
    let partitions = metadata.topics().first().map_or(0, |t| t.partitions().len() as i32);
    let mut records = 0;
    for partition in 0..partitions {
        let (low, high) = reader.fetch_watermarks(&topic, partition, Duration::from_secs(10))?;
        records += (high - low) as u64;
    }
    Ok(records)
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted.get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or_default()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).unwrap_or(0) / 1024
}
