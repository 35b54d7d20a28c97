//! `sigstage keys create | revoke | list`.

use anyhow::{bail, Context};
use clap::Subcommand;
use control::keys::{self, Endpoint, NewKey};
use runtime::config::Config;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key for an org (created if new). Prints only the key, on stdout.
    Create {
        #[arg(long)]
        org: String,
        /// What people call it (shown by the console and the admin API).
        #[arg(long)]
        name: Option<String>,
        /// Shared secret senders must send as X-Api-Secret.
        #[arg(long)]
        secret: Option<String>,
        /// When the key stops working, RFC 3339 (e.g. 2027-01-31T00:00:00Z).
        #[arg(long)]
        expires_at: Option<String>,
        /// Limit the key to these endpoint types (signal_staging, collect, ingress, tracking); default all.
        #[arg(long, value_delimiter = ',')]
        endpoints: Vec<String>,
    },
    /// Revoke a key, given the key itself or its key id. Takes effect within the refresh interval.
    Revoke { key: String },
    /// List an org's keys (never the keys themselves: they are stored hashed).
    List {
        #[arg(long)]
        org: String,
    },
}

pub async fn run(config: &Config, command: KeysCommand) -> anyhow::Result<()> {
    let client = runtime::clickhouse::client(&config.clickhouse);
    match command {
        KeysCommand::Create { org, name, secret, expires_at, endpoints } => {
            let expires_at_ms =
                expires_at.as_deref().map(|value| parse_rfc3339_ms("--expires-at", value)).transpose()?;
            let endpoints = endpoints
                .iter()
                .map(|name| {
                    Endpoint::parse(name).with_context(|| {
                        format!("--endpoints: {name:?} is not an endpoint type (signal_staging, collect, ingress, tracking)")
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let secret = secret.as_deref().filter(|secret| !secret.is_empty());
            let new = NewKey { org_id: &org, name: name.as_deref(), secret, expires_at_ms, endpoints: &endpoints };
            let created = keys::create(&client, new).await.context("creating the key (has `sigstage migrate` run?)")?;
            eprintln!("created {} for org {org}; store the key now, it is not shown again", created.key_id);
            println!("{}", created.key);
        }
        KeysCommand::Revoke { key } => {
            let row = keys::revoke(&client, &key).await?;
            eprintln!("revoked {} ({}…) of org {}", row.key_id, row.key_prefix, row.org_id);
        }
        KeysCommand::List { org } => {
            let now = runtime::time::now_ms();
            println!(
                "{:<22} {:<14} {:<8} {:<7} {:<26} {:<26} ENDPOINTS",
                "KEY_ID", "PREFIX", "STATUS", "SECRET", "EXPIRES", "CREATED"
            );
            for row in keys::list(&client, &org).await? {
                let status = match (row.active, row.expires_at_ms) {
                    (0, _) => "revoked",
                    (_, expiry) if expiry != 0 && expiry <= now => "expired",
                    _ => "active",
                };
                let expires = if row.expires_at_ms == 0 { "never".to_owned() } else { format_ms(row.expires_at_ms) };
                let endpoints = if row.endpoints.is_empty() { "all".to_owned() } else { row.endpoints.join(",") };
                let secret = if row.secret_hash.is_empty() { "no" } else { "yes" };
                println!(
                    "{:<22} {:<14} {:<8} {:<7} {:<26} {:<26} {endpoints}",
                    row.key_id,
                    format!("{}…", row.key_prefix),
                    status,
                    secret,
                    expires,
                    format_ms(row.created_at_ms)
                );
            }
        }
    }
    Ok(())
}

/// An RFC 3339 time given as `flag`, in epoch milliseconds.
pub fn parse_rfc3339_ms(flag: &str, value: &str) -> anyhow::Result<u64> {
    let parsed = OffsetDateTime::parse(value, &Rfc3339)
        .with_context(|| format!("{flag} {value:?} is not an RFC 3339 time such as 2027-01-31T00:00:00Z"))?;
    let ms = parsed.unix_timestamp_nanos() / 1_000_000;
    if ms <= 0 {
        bail!("{flag} {value:?} is before 1970");
    }
    Ok(ms as u64)
}

fn format_ms(ms: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|time| time.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}
