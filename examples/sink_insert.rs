//! The sink's ClickHouse write path (processed records parsed, turned into rows, written as
//! batched RowBinary inserts of 5000) beside `clickhouse-client` inserting the same rows from a
//! JSONEachRow file, alternating, into a freshly truncated `signals_cold`. Prints rows/s medians.
//!
//! `cargo run --release --example sink_insert -- ROWS ROUNDS` with the `SIGSTAGE_*` environment
//! of a migrated database (see `scripts/bench/sink.sh`).

use std::io::Write;
use std::time::Instant;

use runtime::config::Config;
use schemas::processed::{self, Processed};
use sink::rows::SignalRow;

#[path = "../benches/mix.rs"]
mod mix;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, rows, rounds] = args.as_slice() else {
        anyhow::bail!("usage: sink_insert ROWS ROUNDS");
    };
    let (count, rounds): (usize, usize) = (rows.parse()?, rounds.parse()?);
    let config = Config::from_env()?;
    let client = runtime::clickhouse::client(&config.clickhouse);
    let records = processed_records(count);
    let file = std::env::temp_dir().join(format!("sigstage-sink-bench-{}.jsonl", std::process::id()));
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
        for record in &records {
            let processed = processed::decode(record)?;
            serde_json::to_writer(&mut out, &SignalRow::of(&processed, None, 1))?;
            out.write_all(b"\n")?;
        }
    }
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        client.query("TRUNCATE TABLE signals_cold").execute().await?;
        let started = Instant::now();
        let output = std::process::Command::new("clickhouse-client")
            .args(["--database", &config.clickhouse.database, "--query", "INSERT INTO signals_cold FORMAT JSONEachRow"])
            .stdin(std::fs::File::open(&file)?)
            .output()?;
        anyhow::ensure!(output.status.success(), "clickhouse-client: {}", String::from_utf8_lossy(&output.stderr));
        let client_rate = count as f64 / started.elapsed().as_secs_f64();
        client.query("TRUNCATE TABLE signals_cold").execute().await?;
        let started = Instant::now();
        for chunk in records.chunks(5000) {
            let parsed: Vec<Processed<'_>> = chunk.iter().map(|r| processed::decode(r)).collect::<Result<_, _>>()?;
            let rows: Vec<SignalRow<'_>> = parsed.iter().map(|p| SignalRow::of(p, None, 1)).collect();
            runtime::clickhouse::insert::<SignalRow<'static>, _>(&client, "signals_cold", &rows).await?;
        }
        let sink_rate = count as f64 / started.elapsed().as_secs_f64();
        let written: u64 = client.query("SELECT count() FROM signals_cold").fetch_one().await?;
        anyhow::ensure!(written == count as u64, "the sink wrote {written} of {count} rows");
        eprintln!("round {round}: clickhouse-client {client_rate:.0} rows/s, sink {sink_rate:.0} rows/s");
        theirs.push(client_rate);
        ours.push(sink_rate);
    }
    std::fs::remove_file(&file)?;
    let (ours, theirs) = (median(ours), median(theirs));
    println!("clickhouse-client {theirs:.0} rows/s, sink {ours:.0} rows/s, ratio {:.2}", ours / theirs);
    Ok(())
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
