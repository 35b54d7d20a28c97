//! `sigstage queue --org ORG`: the signal queue, signals no mapping rule matched, grouped by
//! source and event, to write rules from.

use anyhow::Context;
use clap::Args;
use control::signal_queue;
use runtime::config::Config;

#[derive(Args)]
pub struct QueueArgs {
    #[arg(long)]
    org: String,
    /// One JSON object per group (with a sample payload) instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn run(config: &Config, args: QueueArgs) -> anyhow::Result<()> {
    let client = runtime::clickhouse::client(&config.clickhouse);
    let groups = signal_queue::list(&client, &args.org)
        .await
        .context("reading the signal queue (has `sigstage migrate` run?)")?;
    if args.json {
        for group in &groups {
            println!("{}", serde_json::to_string(group)?);
        }
        return Ok(());
    }
    if groups.is_empty() {
        eprintln!("the signal queue of {} is empty: every signal matched a rule, or none arrived", args.org);
        return Ok(());
    }
    println!("{:>10}  {:<12}  {:<40}  {:<24}", "signals", "source", "event", "last seen (UTC)");
    for group in &groups {
        println!(
            "{:>10}  {:<12}  {:<40}  {:<24}",
            group.signals,
            group.source,
            group.event,
            rfc3339(group.last_seen_ms)
        );
    }
    Ok(())
}

fn rfc3339(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}
