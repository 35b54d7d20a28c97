//! The sink's ClickHouse write path (processed records parsed, turned into rows, written as
//! RowBinary inserts of the sink's largest batch) beside a baseline, alternating, into a freshly truncated
//! `signals_cold`. Prints rows/s medians and their ratio.
//!
//! - `sink_insert ROWS ROUNDS`: the baseline is `clickhouse-client` inserting the same rows from
//!   a JSONEachRow file into the same server.
//! - `sink_insert ROWS ROUNDS CLUSTER_URL`: the baseline is the sink's path into the one server
//!   of the environment, beside the same path into cluster `sigstage` through a node at
//!   CLUSTER_URL (the Distributed table, with the sink's cluster settings), migrated in the same
//!   database.
//!
//! `cargo run --release --example sink_insert -- ROWS ROUNDS [CLUSTER_URL]` with the `SIGSTAGE_*`
//! environment of a migrated database (see `scripts/bench/sink.sh` and `sink-cluster.sh`).

use std::io::Write;
use std::time::Instant;

use runtime::config::{ClickHouseConfig, Config};
use schemas::processed::{self, Processed};
use sink::rows::SignalRow;

#[path = "../benches/mix.rs"]
mod mix;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (rows, rounds, cluster_url) = match args.as_slice() {
        [_, rows, rounds] => (rows, rounds, None),
        [_, rows, rounds, url] => (rows, rounds, Some(url.clone())),
        _ => anyhow::bail!("usage: sink_insert ROWS ROUNDS [CLUSTER_URL]"),
    };
    let (count, rounds): (usize, usize) = (rows.parse()?, rounds.parse()?);
    let config = Config::from_env()?;
    let client = runtime::clickhouse::client(&config.clickhouse);
    let records = processed_records(count);
    let (baseline, ours) = match cluster_url {
        None => ("clickhouse-client", "sink"),
        Some(_) => ("sink into one server", "sink into the cluster"),
    };
    let cluster = cluster_url.map(|url| {
        let settings = ClickHouseConfig { url, cluster: Some("sigstage".into()), ..config.clickhouse.clone() };
        runtime::clickhouse::client(&settings)
    });
    let file = std::env::temp_dir().join(format!("sigstage-sink-bench-{}.jsonl", std::process::id()));
    if cluster.is_none() {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
        for record in &records {
            let processed = processed::decode(record)?;
            serde_json::to_writer(&mut out, &SignalRow::of(&processed, None, 1))?;
            out.write_all(b"\n")?;
        }
    }
    let (mut their_rates, mut our_rates) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        match &cluster {
            None => {
                client.query("TRUNCATE TABLE signals_cold").execute().await?;
                let started = Instant::now();
                let output = std::process::Command::new("clickhouse-client")
                    .args([
                        "--database",
                        &config.clickhouse.database,
                        "--query",
                        "INSERT INTO signals_cold FORMAT JSONEachRow",
                    ])
                    .stdin(std::fs::File::open(&file)?)
                    .output()?;
                anyhow::ensure!(
                    output.status.success(),
                    "clickhouse-client: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                their_rates.push(count as f64 / started.elapsed().as_secs_f64());
            }
            Some(_) => their_rates.push(sink_rate(&client, "TRUNCATE TABLE signals_cold", &records).await?),
        }
        let ours_rate = match &cluster {
            None => sink_rate(&client, "TRUNCATE TABLE signals_cold", &records).await?,
            Some(cluster) => {
                sink_rate(cluster, "TRUNCATE TABLE signals_cold_local ON CLUSTER sigstage", &records).await?
            }
        };
        our_rates.push(ours_rate);
        eprintln!("round {round}: {baseline} {:.0} rows/s, {ours} {ours_rate:.0} rows/s", their_rates[round - 1]);
    }
    if cluster.is_none() {
        std::fs::remove_file(&file)?;
    }
    let (theirs, ours_median) = (median(their_rates), median(our_rates));
    println!("{baseline} {theirs:.0} rows/s, {ours} {ours_median:.0} rows/s, ratio {:.2}", ours_median / theirs);
    Ok(())
}

/// Empties `signals_cold` with `truncate`, writes `records` through the sink's path in inserts of
/// the sink's largest batch, checks every row is there (counted without FINAL) and answers rows/s.
async fn sink_rate(client: &clickhouse::Client, truncate: &str, records: &[Vec<u8>]) -> anyhow::Result<f64> {
    client.query(truncate).execute().await?;
    let started = Instant::now();
    for chunk in records.chunks(sink::runner::Settings::default().batch_max) {
        let parsed: Vec<Processed<'_>> = chunk.iter().map(|r| processed::decode(r)).collect::<Result<_, _>>()?;
        let rows: Vec<SignalRow<'_>> = parsed.iter().map(|p| SignalRow::of(p, None, 1)).collect();
        runtime::clickhouse::insert::<SignalRow<'static>, _>(client, "signals_cold", &rows).await?;
    }
    let rate = records.len() as f64 / started.elapsed().as_secs_f64();
    let written: u64 = client.query("SELECT count() FROM signals_cold").fetch_one().await?;
    anyhow::ensure!(written == records.len() as u64, "the sink wrote {written} of {} rows", records.len());
    Ok(rate)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// `signals.processed` records as the stream writes them, one per signal of the mix.
fn processed_records(count: usize) -> Vec<Vec<u8>> {
    let mix = mix::mix();
    (0..count)
        .map(|i| {
            let payload = std::str::from_utf8(&mix[i % mix.len()]).expect("utf-8");
            format!(
                r#"{{"signal_id":{i},"org":"bench","source":"segment","kind":"track","event":"Form Submitted","anonymous_id":"a-{}","hot":false,"mapped":false,"content_hash":"{i:032x}","received_ms":1795000000000,"event_ms":1795000000000,"fields":{{}},"payload":{payload}}}"#,
                i % 10_000
            )
            .into_bytes()
        })
        .collect()
}
