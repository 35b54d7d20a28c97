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
    }
    Ok(())
}
