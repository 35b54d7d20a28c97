//! `sigstage webhooks create | list | disable | enable | deliveries | resend | recover |
//! rate-limit | backfill`: an org's webhook subscriptions and their delivery history.

use anyhow::Context;
use clap::Subcommand;
use control::{backfill, deliveries, webhooks};
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
    /// Send a subscription every stored event of its types in a range that it was not delivered
    /// (history, from before it existed too), through a queue of its own at its own rate: live
    /// deliveries never wait behind it. With --pause, --resume, --cancel or --status, acts on
    /// the subscription's backfill instead.
    Backfill {
        subscription_id: String,
        /// A day (2026-03-01), an RFC 3339 time or how long ago (30d).
        #[arg(long, required_unless_present_any = ["pause", "resume", "cancel", "status"])]
        since: Option<String>,
        /// Exclusive; default now.
        #[arg(long)]
        until: Option<String>,
        /// Only these of its types (comma-separated); default all of them.
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        /// Deliveries a second, at most.
        #[arg(long, default_value_t = backfill::DEFAULT_PER_SECOND)]
        rate: u32,
        /// Show a progress bar until it is done.
        #[arg(long)]
        follow: bool,
        #[arg(long, group = "act")]
        pause: bool,
        #[arg(long, group = "act")]
        resume: bool,
        #[arg(long, group = "act")]
        cancel: bool,
        /// Print its backfills with their progress, one JSON object per line.
        #[arg(long, group = "act")]
        status: bool,
    },
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
        WebhooksCommand::Backfill {
            subscription_id,
            since,
            until,
            events,
            rate,
            follow,
            pause,
            resume,
            cancel,
            status,
        } => {
            let subscription = webhooks::get(&client, &subscription_id).await?;
            let org = subscription.org_id.as_str();
            let backfills = backfill::of_subscription(&client, org, &subscription_id).await?;
            let act = [(pause, backfill::PAUSED), (resume, backfill::RUNNING), (cancel, backfill::CANCELLED)];
            if let Some((_, state)) = act.iter().find(|(asked, _)| *asked) {
                let open = backfills.iter().find(|b| [backfill::RUNNING, backfill::PAUSED].contains(&b.state.as_str()));
                let open = open.with_context(|| format!("{subscription_id} has no backfill running or paused"))?;
                let changed = backfill::set_state(&client, org, &open.backfill_id, state).await?;
                eprintln!("backfill {} of {subscription_id} is {}", changed.backfill_id, changed.state);
                return Ok(());
            }
            if status {
                for backfill in &backfills {
                    let progress = backfill::progress(&client, backfill).await?;
                    println!("{}", serde_json::json!({ "backfill": backfill, "progress": progress }));
                }
                return Ok(());
            }
            let since = since.expect("clap requires --since to start a backfill");
            let until_ms = until.as_deref().map(|until| time_ms("--until", until)).transpose()?;
            let request = backfill::Request {
                subscription_id: &subscription_id,
                since_ms: time_ms("--since", &since)?,
                until_ms: until_ms.unwrap_or_else(runtime::time::now_ms),
                event_types: &events,
                per_second: rate,
            };
            let started = backfill::start(&client, &request).await?;
            println!("{}", serde_json::to_string(&started)?);
            eprintln!(
                "backfill {}: {} events queued for {subscription_id} at {rate} a second;                  `sigstage webhooks backfill {subscription_id} --status` shows how far it is",
                started.backfill_id, started.total
            );
            if follow {
                follow_backfill(&client, started).await?;
            }
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

/// A progress bar over a backfill's deliveries until it is done or cancelled.
async fn follow_backfill(client: &clickhouse::Client, started: backfill::Backfill) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::with_draw_target(Some(started.total), indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(started.backfill_id.clone());
    loop {
        let now = backfill::get(client, &started.org_id, &started.backfill_id).await?;
        let progress = backfill::progress(client, &now).await?;
        bar.set_position(progress.delivered + progress.failed);
        bar.set_message(format!("{} delivered, {} failed, {}", progress.delivered, progress.failed, now.state));
        if [backfill::DONE, backfill::CANCELLED].contains(&now.state.as_str()) {
            bar.finish();
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// A day (2026-03-01), an RFC 3339 time, or how long ago (30d), given as `flag`.
fn time_ms(flag: &str, value: &str) -> anyhow::Result<u64> {
    match runtime::time::parse_duration(value) {
        Some(ago) => Ok(runtime::time::now_ms().saturating_sub(ago.as_millis() as u64)),
        None => control::history::parse_time(value).with_context(|| {
            format!("{flag} {value:?} is not a day (2026-03-01), an RFC 3339 time or a duration (30d)")
        }),
    }
}

/// `--since`: an RFC 3339 time, or a duration ago.
fn since_ms(since: &str) -> anyhow::Result<u64> {
    match runtime::time::parse_duration(since) {
        Some(ago) => Ok(runtime::time::now_ms().saturating_sub(ago.as_millis() as u64)),
        None => super::keys::parse_rfc3339_ms("--since", since),
    }
}
