//! `sigstage retention set | show | enforce | sql`: how many days of each org's signals to keep
//! ([`control::retention`]).

use anyhow::Context;
use clap::Subcommand;
use control::retention::{self, Retention};
use runtime::config::Config;

#[derive(Subcommand)]
pub enum RetentionCommand {
    /// Keep DAYS of an org's signals, by event time (0: for ever); the sink enforces it within
    /// SIGSTAGE_RETENTION_INTERVAL_MS, `retention enforce` at once.
    Set {
        #[arg(long)]
        org: String,
        #[arg(long)]
        days: u32,
    },
    /// Every org's retention.
    Show,
    /// Enforce every org's retention now, and wait until ClickHouse has.
    Enforce,
    /// Print the TTL statements a server with TTL gets for ORG=DAYS pairs (without ClickHouse).
    Sql {
        /// ORG=DAYS pairs.
        policies: Vec<String>,
        #[arg(long)]
        cluster: Option<String>,
    },
}

pub async fn run(config: &Config, command: RetentionCommand) -> anyhow::Result<()> {
    let client = runtime::clickhouse::client(&config.clickhouse);
    let cluster = config.clickhouse.cluster.as_deref();
    match command {
        RetentionCommand::Set { org, days } => {
            anyhow::ensure!(schemas::valid_org_id(&org), "--org {org:?} is not an org id");
            retention::set(&client, &org, days).await.context("has `sigstage migrate` run?")?;
            let kept = if days == 0 { "for ever".to_owned() } else { format!("for {days} days") };
            eprintln!("org {org}'s signals are kept {kept}; `sigstage retention enforce` applies it now");
        }
        RetentionCommand::Show => {
            println!("{:<30} DAYS", "ORG");
            for policy in retention::policies(&client).await? {
                println!("{:<30} {}", policy.org_id, policy.days);
            }
        }
        RetentionCommand::Enforce => {
            let enforced = retention::enforce(&client, cluster, &mut None).await?;
            eprintln!(
                "retention enforced: {} TTL change(s), {} expired row(s) deleted",
                enforced.ttl_changes, enforced.rows_deleted
            );
        }
        RetentionCommand::Sql { policies, cluster } => {
            let policies = policies
                .iter()
                .map(|pair| {
                    let (org, days) = pair.split_once('=').context("a policy is ORG=DAYS")?;
                    let days = days.parse().with_context(|| format!("{pair}: DAYS is a number"))?;
                    Ok(Retention { org_id: org.to_owned(), days, version: 0 })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            for table in retention::TABLES {
                println!("{};", retention::ttl_statement(table, &policies, cluster.as_deref()));
            }
        }
    }
    Ok(())
}
