//! `sigstage trace ID --org ORG`: everything sigstage did with one signal, read from where it is
//! stored ([`control::trace`]), as lines to read or (`--json`) the admin API's answer.

use anyhow::{bail, Context};
use clap::Args;
use runtime::config::Config;

#[derive(Args)]
pub struct TraceArgs {
    /// The signal's id (the `signal_id` of its rows, in the live tail and the lead views).
    id: u64,
    /// The org the signal belongs to.
    #[arg(long)]
    org: String,
    /// Print the trace as JSON, as GET /api/admin/orgs/{org}/signals/{id} answers it.
    #[arg(long)]
    json: bool,
}

pub async fn run(config: &Config, args: TraceArgs) -> anyhow::Result<()> {
    let client = runtime::clickhouse::client(&config.clickhouse);
    let trace = control::trace::signal(&client, &args.org, args.id)
        .await
        .with_context(|| format!("reading signal {} from ClickHouse at {}", args.id, config.clickhouse.url))?;
    let Some(trace) = trace else { bail!(control::trace::missing(&args.org, args.id)) };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&trace)?);
        return Ok(());
    }
    println!("signal {} of org {}", trace.signal_id, trace.org_id);
    match &trace.origin {
        Some(origin) => {
            println!("  came in with key {} on {} (the {} lane)", origin.key_id, origin.endpoint, origin.lane)
        }
        None => println!("  came in before sigstage kept where signals come in"),
    }
    println!("  dedupe: {}", trace.dedupe);
    for row in &trace.rows {
        let who = match row.table.as_str() {
            "signals_cold" => format!("anonymous, visitor {:?}", row.anonymous_id),
            _ => format!("lead {} ({}), visitor {:?}", row.lead_email, row.attributed_by, row.anonymous_id),
        };
        println!(
            "  {}: {} {} {:?}, event time {} ms, received {} ms, written {} ms; {who}",
            row.table, row.source, row.kind, row.event, row.event_ms, row.received_ms, row.written_ms
        );
        if row.mapped != 0 {
            println!("    mapped by rules {:?}: {}", row.rules, row.fields);
        }
    }
    for link in &trace.links {
        println!("  linked visitor {:?} to lead {} at {} ms", link.anonymous_id, link.email, link.linked_ms);
    }
    for lead in &trace.leads_created {
        println!("  first signal of lead {lead}");
    }
    for event in &trace.events {
        println!("  caused event {} ({})", event.event_id, event.event_type);
    }
    for attempt in &trace.deliveries {
        let error = if attempt.error.is_empty() { String::new() } else { format!(": {}", attempt.error) };
        println!(
            "    delivery of {} to subscription {}: attempt {}, HTTP {}, {}{error}",
            attempt.event_id, attempt.subscription_id, attempt.attempt, attempt.status_code, attempt.outcome
        );
    }
    Ok(())
}
