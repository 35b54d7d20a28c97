//! Times every query of the analysts' library (`schemas/queries/`) over the whole range and over
//! the data's last 30 days (`sigstage query`'s default range) and, where a rollup answers it and
//! `RAW` is not 0, the same question over the raw signal tables (`scripts/bench/analyst/raw/`)
//! beside it: RUNS runs each, the median, the answer discarded by the server (FORMAT Null), and
//! whether the two answer the same (compared as TSV). Prints a Markdown table.
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
    let raw_too = std::env::var("RAW").map_or(true, |raw| raw != "0");
    let config = Config::from_env()?;
    let client = runtime::clickhouse::client(&config.clickhouse);
    let raw_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench/analyst/raw");
    let last: String = client
        .query("SELECT toString(max(event_date)) FROM signals_cold WHERE org_id = ?")
        .bind(org)
        .fetch_one()
        .await?;
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let month = (time::Date::parse(&last, &format)? - time::Duration::days(29)).to_string();
    println!(
        "| query | {since} to {until} (s) | {month} to {last} (s) | over the raw tables, whole range (s) | same answer |\n|---|---|---|---|---|"
    );
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
        let whole = time(&client, &sql, runs).await?;
        let mut recent = values.clone();
        recent.insert("since".to_owned(), month.clone());
        recent.insert("until".to_owned(), last.clone());
        let recent = time(&client, &query.bind(&recent)?, runs).await?;
        let (raw, same) = match std::fs::read_to_string(raw_dir.join(format!("{}.sql", query.name))) {
            Ok(raw) if raw_too => {
                let raw = Query { name: query.name, sql: Box::leak(raw.into_boxed_str()) }.bind(&values)?;
                let tsv = |sql: &str| runtime::clickhouse::answer_bytes(client.query_raw(sql), "TSV");
                let same = tsv(&sql).await? == tsv(&raw).await?;
                (format!("{:.3}", time(&client, &raw, runs).await?), if same { "yes" } else { "**no**" })
            }
            Ok(_) => ("(not timed: RAW=0)".to_owned(), ""),
            Err(_) => ("(no rollup: it reads the raw tables)".to_owned(), ""),
        };
        println!("| `{}` | {whole:.3} | {recent:.3} | {raw} | {same} |", query.name);
    }
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
