//! `sigstage people delete | lift | suppressions | audit`: deleting a person everywhere and
//! keeping them out ([`control::people`]).

use std::time::Duration;

use clap::{Args, Subcommand};
use control::people::{self, Reach, Subject};
use runtime::config::Config;

#[derive(Subcommand)]
pub enum PeopleCommand {
    /// Delete a person (an email, or a visitor and the email it is linked to) from every table and
    /// the identities topic, and suppress them so nothing of theirs is stored again.
    Delete(Person),
    /// Lift a suppression (and those the person's deletion made with it).
    Lift(Person),
    /// The org's suppressed emails and visitors.
    Suppressions {
        #[arg(long)]
        org: String,
    },
    /// Deletions, suppressions and lifts: who, when, what, how many rows.
    Audit {
        #[arg(long)]
        org: String,
    },
}

#[derive(Args)]
pub struct Person {
    #[arg(long)]
    org: String,
    #[arg(long, required_unless_present = "anonymous_id", conflicts_with = "anonymous_id")]
    email: Option<String>,
    #[arg(long)]
    anonymous_id: Option<String>,
}

/// Who the audit names for the command line.
fn actor() -> String {
    format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()))
}

pub async fn run(config: &Config, command: PeopleCommand) -> anyhow::Result<()> {
    let client = runtime::clickhouse::client(&config.clickhouse);
    match command {
        PeopleCommand::Delete(person) => {
            let subject = Subject::parse(person.email.as_deref(), person.anonymous_id.as_deref())?;
            let reach = Reach {
                kafka: &config.kafka,
                cluster: config.clickhouse.cluster.as_deref(),
                refresh: Duration::from_millis(config.control_refresh_ms),
            };
            let deleted =
                people::delete(&client, &reach, &person.org, &subject, &actor(), |step| eprintln!("people: {step}"))
                    .await?;
            for (table, rows) in &deleted.rows {
                println!("{table:<20} {rows} rows deleted");
            }
            eprintln!(
                "deleted {} email(s) and {} visitor(s) of org {}: {} rows, {} tombstones; they stay suppressed \
                 until `sigstage people lift`",
                deleted.person.emails.len(),
                deleted.person.visitors.len(),
                person.org,
                deleted.rows.iter().map(|(_, rows)| rows).sum::<u64>(),
                deleted.tombstones
            );
        }
        PeopleCommand::Lift(person) => {
            let subject = Subject::parse(person.email.as_deref(), person.anonymous_id.as_deref())?;
            let lifted = people::lift(&client, &person.org, &subject, &actor()).await?;
            eprintln!(
                "lifted the suppression of {} email(s) and {} visitor(s): their new signals are stored again",
                lifted.emails.len(),
                lifted.visitors.len()
            );
        }
        PeopleCommand::Suppressions { org } => {
            println!("{:<14} {:<40} {:<20} SINCE_MS", "KIND", "VALUE", "BY");
            for row in people::suppressions(&client, &org).await? {
                println!("{:<14} {:<40} {:<20} {}", row.kind, row.value, row.actor, row.version);
            }
        }
        PeopleCommand::Audit { org } => {
            for row in people::audit(&client, &org).await? {
                println!("{}", serde_json::to_string(&row)?);
            }
        }
    }
    Ok(())
}
