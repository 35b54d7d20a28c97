//! Times every query of the analysts' library (`schemas/queries/`) and, where a rollup answers
//! it, the same question over the raw signal tables (`scripts/bench/analyst/raw/`), beside it:
//! RUNS runs each, the median, the answer discarded by the server (FORMAT Null), and whether
//! the two answer the same (compared as TSV). Prints a Markdown table.
//!
//! `cargo run --release --example analyst_queries -- ORG SINCE UNTIL LEAD RUNS` with the
//! `SIGSTAGE_*` environment of a filled database (see `scripts/bench/analyst.sh`).

use std::collections::BTreeMap;
use std::time::Instant;

use runtime::config::Config;
use schemas::queries::{Query, QUERIES};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, org, since, until, lead, runs] = args.as_slice() else {
        anyhow::bail!("usage: analyst_queries ORG SINCE UNTIL LEAD RUNS");
    };
    let runs: usize = runs.parse()?;
    let config = Config::from_env()?;
    let client = runtime::clickhouse::client(&config.clickhouse);
    let raw_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench/analyst/raw");
    println!("| query | median of {runs} (s) | over the raw tables (s) | same answer |\n|---|---|---|---|");
    for query in QUERIES {
        let mut values: BTreeMap<String, String> = [("org", org), ("since", since), ("until", until)]
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.clone()))
            .collect();
        let extra: &[(&str, &str)] = match query.name {
            "lead_timeline" => &[("lead", lead)],
            "funnel" => &[("first", "Pricing Page Viewed"), ("then", "Demo Requested"), ("days", "7")],
            _ => &[],
        };
        values.extend(extra.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
        let sql = query.bind(&values)?;
        let ours = time(&client, &sql, runs).await?;
        let (raw, same) = match std::fs::read_to_string(raw_dir.join(format!("{}.sql", query.name))) {
            Ok(raw) => {
                let raw = Query { name: query.name, sql: Box::leak(raw.into_boxed_str()) }.bind(&values)?;
                let tsv = |sql: &str| runtime::clickhouse::answer_bytes(client.query_raw(sql), "TSV");
                let same = tsv(&sql).await? == tsv(&raw).await?;
                (format!("{:.3}", time(&client, &raw, runs).await?), if same { "yes" } else { "**no**" })
            }
            Err(_) => ("(no rollup: it reads the raw tables)".to_owned(), ""),
        };
        println!("| `{}` | {ours:.3} | {raw} | {same} |", query.name);
    }
    // The invariant as an operator runs it after a deploy: over the org's last week of signals.
    let invariant = Query::named("unlinked_cold_signals").expect("the invariant");
    let last: String = client
        .query("SELECT toString(max(event_date)) FROM signals_cold WHERE org_id = ?")
        .bind(org)
        .fetch_one()
        .await?;
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let first = (time::Date::parse(&last, &format)? - time::Duration::days(6)).to_string();
    let week: BTreeMap<String, String> = [("org", org.clone()), ("since", first), ("until", last)]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    let seconds = time(&client, &invariant.bind(&week)?, runs).await?;
    println!("| `unlinked_cold_signals`, the last 7 days | {seconds:.3} | (no rollup: it reads the raw tables) |  |");
    Ok(())
}

/// The median time of `runs` runs of `sql`, in seconds.
async fn time(client: &clickhouse::Client, sql: &str, runs: usize) -> anyhow::Result<f64> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        runtime::clickhouse::answer_bytes(client.query_raw(sql), "Null").await?;
        times.push(started.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}
