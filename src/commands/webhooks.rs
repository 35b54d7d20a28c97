//! `sigstage webhooks create | list | disable | enable | deliveries | resend | recover |
//! rate-limit`: an org's webhook subscriptions and their delivery history.

use clap::Subcommand;
use control::{deliveries, webhooks};
use runtime::config::Config;

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// Subscribe a URL to event types. Prints the subscription; its secret is shown only here.
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        url: String,
        /// Event types: signal.created, lead.created, lead.identified.
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
    },
    /// An org's subscriptions, one JSON object per line (without secrets).
    List {
        #[arg(long)]
        org: String,
    },
    /// Stop delivering to a subscription.
    Disable { subscription_id: String },
    /// Deliver to a subscription again (also after the sink disabled it).
    Enable { subscription_id: String },
    /// The delivery log of a subscription, newest first, one JSON object per attempt.
    Deliveries {
        subscription_id: String,
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// Deliver an event to a subscription again (a new attempt schedule, the same webhook-id).
    Resend { subscription_id: String, event_id: String },
    /// Deliver again every event a subscription was not delivered since a time: what its
    /// endpoint missed while it was down or disabled (enable it too).
    Recover {
        subscription_id: String,
        /// An RFC 3339 time (2026-11-24T08:00:00Z) or how long ago (6h, 3d).
        #[arg(long)]
        since: String,
    },
    /// Cap the deliveries per second to a subscription's endpoint (0: no cap).
    RateLimit { subscription_id: String, per_second: u32 },
}

pub async fn run(config: &Config, command: WebhooksCommand) -> anyhow::Result<()> {
    let client = runtime::clickhouse::client(&config.clickhouse);
    match command {
        WebhooksCommand::Create { org, url, events } => {
            let created = webhooks::create(&client, &org, &url, events).await?;
            println!("{}", serde_json::to_string(&created)?);
            eprintln!(
                "subscription {} created; keep its secret now, it is not shown again. Deliveries are signed \
                 with it (X-Sigstage-Signature: hex HMAC-SHA256 of the body).",
                created.subscription_id
            );
        }
        WebhooksCommand::List { org } => {
            for subscription in webhooks::list(&client, Some(&org)).await? {
                println!("{}", serde_json::to_string(&subscription.without_secret())?);
            }
        }
        WebhooksCommand::Disable { subscription_id } => {
            webhooks::set_active(&client, &subscription_id, false, "").await?;
            eprintln!("subscription {subscription_id} disabled");
        }
        WebhooksCommand::Enable { subscription_id } => {
            webhooks::set_active(&client, &subscription_id, true, "").await?;
            eprintln!("subscription {subscription_id} enabled");
        }
        WebhooksCommand::Deliveries { subscription_id, limit } => {
            webhooks::get(&client, &subscription_id).await?;
            for attempt in webhooks::deliveries(&client, &subscription_id, limit).await? {
                println!("{}", serde_json::to_string(&attempt)?);
            }
        }
        WebhooksCommand::Resend { subscription_id, event_id } => {
            deliveries::resend(&client, &subscription_id, &event_id).await?;
            eprintln!("event {event_id} queued for {subscription_id}");
        }
        WebhooksCommand::Recover { subscription_id, since } => {
            let since_ms = since_ms(&since)?;
            let queued = deliveries::recover(&client, &subscription_id, since_ms).await?;
            eprintln!("{queued} events queued for {subscription_id}, every one it was not delivered since {since}");
        }
        WebhooksCommand::RateLimit { subscription_id, per_second } => {
            deliveries::set_rate_limit(&client, &subscription_id, per_second).await?;
            match per_second {
                0 => eprintln!("no rate limit for {subscription_id}"),
                n => eprintln!("{subscription_id}: at most {n} deliveries per second"),
            }
        }
    }
    Ok(())
}

/// `--since`: an RFC 3339 time, or a duration ago.
fn since_ms(since: &str) -> anyhow::Result<u64> {
    match runtime::time::parse_duration(since) {
        Some(ago) => Ok(runtime::time::now_ms().saturating_sub(ago.as_millis() as u64)),
        None => super::keys::parse_rfc3339_ms("--since", since),
    }
}
