//! `sigstage keys create | revoke | list | signing`.

use anyhow::{bail, Context};
use clap::Subcommand;
use control::keys::{self, Endpoint, NewKey};
use control::signing;
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
        /// Send everything the key sends to the historical lane, read only when the live one is
        /// idle (a backfill, a known noisy integration).
        #[arg(long)]
        historical: bool,
    },
    /// Revoke a key, given the key itself or its key id. Takes effect within the refresh interval.
    Revoke { key: String },
    /// List an org's keys (never the keys themselves: they are stored hashed).
    List {
        #[arg(long)]
        org: String,
    },
    /// Require a provider's signature on every request a key makes, checked at the edge before
    /// its 202 (the signing secret is read from the first line of stdin, so it stays out of
    /// shell history); or stop requiring one with --remove.
    Signing {
        /// The key's id (`key_…`, as `keys list` shows it).
        key_id: String,
        #[arg(long)]
        org: String,
        /// stripe, github, hubspot, shopify, slack or standard_webhooks.
        #[arg(long, required_unless_present = "remove")]
        provider: Option<String>,
        #[arg(long, conflicts_with = "provider")]
        remove: bool,
    },
}

pub async fn run(config: &Config, command: KeysCommand) -> anyhow::Result<()> {
    let client = runtime::clickhouse::client(&config.clickhouse);
    match command {
        KeysCommand::Create { org, name, secret, expires_at, endpoints, historical } => {
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
            let new = NewKey {
                org_id: &org,
                name: name.as_deref(),
                secret,
                expires_at_ms,
                endpoints: &endpoints,
                historical,
            };
            let created = keys::create(&client, new).await.context("creating the key (has `sigstage migrate` run?)")?;
            eprintln!("created {} for org {org}; store the key now, it is not shown again", created.key_id);
            println!("{}", created.key);
        }
        KeysCommand::Revoke { key } => {
            let row = keys::revoke(&client, &key).await?;
            eprintln!("revoked {} ({}…) of org {}", row.key_id, row.key_prefix, row.org_id);
        }
        KeysCommand::Signing { key_id, org, provider, remove } => {
            keys::find_of(&client, &org, &key_id).await?;
            match provider {
                Some(provider) if !remove => {
                    eprintln!("reading {provider}'s signing secret for {key_id} from stdin (one line)");
                    let mut secret = String::new();
                    std::io::stdin().read_line(&mut secret).context("reading the signing secret from stdin")?;
                    let set = signing::set(&client, &org, &key_id, &provider, secret.trim()).await?;
                    eprintln!(
                        "{key_id} now takes only requests signed by {}; the edge applies it within the control refresh interval",
                        set.provider.as_str()
                    );
                }
                _ => {
                    signing::remove(&client, &org, &key_id).await?;
                    eprintln!("{key_id} no longer requires a signature");
                }
            }
        }
        KeysCommand::List { org } => {
            let now = runtime::time::now_ms();
            let mut providers = signing::providers(&client, &org).await?;
            let historical = keys::historical_of(&client, &org).await?;
            println!(
                "{:<22} {:<14} {:<8} {:<7} {:<18} {:<26} {:<26} ENDPOINTS",
                "KEY_ID", "PREFIX", "STATUS", "SECRET", "SIGNED_BY", "EXPIRES", "CREATED"
            );
            for row in keys::list(&client, &org).await? {
                let status = match (row.active, row.expires_at_ms) {
                    (0, _) => "revoked",
                    (_, expiry) if expiry != 0 && expiry <= now => "expired",
                    _ => "active",
                };
                let expires = if row.expires_at_ms == 0 { "never".to_owned() } else { format_ms(row.expires_at_ms) };
                let mut endpoints = if row.endpoints.is_empty() { "all".to_owned() } else { row.endpoints.join(",") };
                if historical.contains(&row.key_id) {
                    endpoints.push_str(" (historical lane)");
                }
                let secret = if row.secret_hash.is_empty() { "no" } else { "yes" };
                let signed_by = providers.remove(&row.key_id).unwrap_or_else(|| "-".to_owned());
                println!(
                    "{:<22} {:<14} {:<8} {:<7} {:<18} {:<26} {:<26} {endpoints}",
                    row.key_id,
                    format!("{}…", row.key_prefix),
                    status,
                    secret,
                    signed_by,
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
