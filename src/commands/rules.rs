//! `sigstage rules add | suggest | list | remove`: an org's mapping rules. Processors pick changes up
//! within SIGSTAGE_CONTROL_REFRESH_MS, without a restart.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use control::rules;
use runtime::config::Config;
use schemas::rules::RuleSpec;

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Add a rule, given as JSON (see the README for the format). Prints the rule with its id.
    Add {
        #[arg(long)]
        org: String,
        /// The rule's JSON, or `-` to read it from stdin.
        #[arg(conflicts_with = "file", required_unless_present = "file")]
        json: Option<String>,
        /// Read the rule's JSON from this file.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Propose a rule for a signal queue group, read off its sample (the lead fields a person
    /// would map); prints its JSON, which `rules add --org ORG -` takes as it is or edited.
    Suggest {
        #[arg(long)]
        org: String,
        /// The group's source, as `sigstage queue` shows it.
        #[arg(long)]
        source: String,
        /// The group's event (leave out for signals without one).
        #[arg(long, default_value = "")]
        event: String,
    },
    /// List an org's rules, in the order they apply, one JSON object per line.
    List {
        #[arg(long)]
        org: String,
    },
    /// Remove a rule by its id.
    Remove {
        #[arg(long)]
        org: String,
        rule_id: String,
    },
    /// What a rule would change in the signals already stored (by event time, SINCE to UNTIL):
    /// signals newly mapped and attributed, visitors identified, new leads. Writes nothing.
    Preview {
        rule_id: String,
        #[arg(long)]
        org: String,
        /// A day (2026-03-01, UTC) or an RFC 3339 time.
        #[arg(long)]
        since: String,
        /// Exclusive; default now.
        #[arg(long)]
        until: Option<String>,
    },
}

pub async fn run(config: &Config, command: RulesCommand) -> anyhow::Result<()> {
    let client = runtime::clickhouse::client(&config.clickhouse);
    match command {
        RulesCommand::Add { org, json, file } => {
            let text = match (json.as_deref(), file) {
                (Some("-"), _) => {
                    let mut text = String::new();
                    std::io::stdin().read_to_string(&mut text).context("reading the rule from stdin")?;
                    text
                }
                (Some(json), _) => json.to_owned(),
                (None, Some(file)) => {
                    std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?
                }
                (None, None) => unreachable!("clap requires the JSON or --file"),
            };
            let spec: RuleSpec = serde_json::from_str(&text).context("the rule is not valid JSON for a rule")?;
            let rule = rules::add(&client, &org, spec).await?;
            println!("{}", serde_json::to_string(&rule)?);
            eprintln!("rule {} added to {org}; processors apply it within the refresh interval", rule.id);
        }
        RulesCommand::Suggest { org, source, event } => {
            let rule = control::signal_queue::suggest(&client, &org, &source, &event).await?;
            println!("{}", serde_json::to_string_pretty(&rule)?);
            if !rule.map.contains_key("email") {
                eprintln!(
                    "no email found in the sample: add one to \"map\" before saving, or the rule attributes nothing"
                );
            }
        }
        RulesCommand::List { org } => {
            for rule in rules::list(&client, Some(&org)).await? {
                println!("{}", serde_json::to_string(&rule)?);
            }
        }
        RulesCommand::Remove { org, rule_id } => {
            let rule = rules::remove(&client, &org, &rule_id).await?;
            eprintln!("rule {} ({}) removed from {org}", rule.id, rule.spec.name);
        }
        RulesCommand::Preview { rule_id, org, since, until } => {
            let time = |flag: &str, value: &str| {
                control::history::parse_time(value)
                    .with_context(|| format!("{flag} {value:?} is not a day (2026-03-01) or an RFC 3339 time"))
            };
            let since_ms = time("--since", &since)?;
            let until_ms = until.as_deref().map(|until| time("--until", until)).transpose()?;
            let until_ms = until_ms.unwrap_or_else(runtime::time::now_ms);
            let rule = rules::list(&client, Some(&org))
                .await?
                .into_iter()
                .find(|rule| rule.id == rule_id)
                .with_context(|| format!("org {org} has no rule {rule_id} (`sigstage rules list --org {org}`)"))?;
            eprintln!("reading {org}'s stored signals from {since} to {}", until.as_deref().unwrap_or("now"));
            let preview = control::history::preview(&client, &rule, since_ms, until_ms).await?;
            println!("{}", serde_json::to_string_pretty(&preview)?);
        }
    }
    Ok(())
}
