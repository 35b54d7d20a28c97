//! `sigstage rules add | suggest | list | remove`: an org's mapping rules. Processors pick changes up
//! within SIGSTAGE_CONTROL_REFRESH_MS, without a restart. `preview` and `apply` take a rule to
//! the signals already stored; `jobs`, `resume`, `pause` and `cancel` follow an apply.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use control::{apply, rules};
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
        #[command(flatten)]
        stored: Stored,
    },
    /// Apply a rule to the signals already stored (by event time, SINCE to UNTIL): a job that
    /// sends each one it attributes back through the stream, paced, with a progress bar. It
    /// goes on with `resume` after a crash or Ctrl-C; `--dry-run` is `preview`.
    Apply {
        #[command(flatten)]
        stored: Stored,
        /// Report what it would change, and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Stored signals read a second, at most (live traffic comes first).
        #[arg(long, default_value_t = 5_000)]
        rate: u32,
    },
    /// An org's apply jobs, the newest first, one JSON object per line.
    Jobs {
        #[arg(long)]
        org: String,
    },
    /// Run a paused, interrupted or failed apply job on from where it stopped (run it once: two
    /// runners of one job send its signals twice, which changes nothing but wastes work).
    Resume {
        job_id: String,
        #[arg(long)]
        org: String,
    },
    /// Pause an apply job (its runner stops after the chunk it is on; `resume` goes on).
    Pause {
        job_id: String,
        #[arg(long)]
        org: String,
    },
    /// Cancel an apply job for good (what it sent stays applied).
    Cancel {
        job_id: String,
        #[arg(long)]
        org: String,
    },
}

/// A rule and the stored signals it is taken to (by event time, SINCE to UNTIL).
#[derive(clap::Args)]
pub struct Stored {
    rule_id: String,
    #[arg(long)]
    org: String,
    /// A day (2026-03-01, UTC) or an RFC 3339 time.
    #[arg(long)]
    since: String,
    /// Exclusive; default now.
    #[arg(long)]
    until: Option<String>,
}

/// A day or an RFC 3339 time given as `flag`, in epoch milliseconds.
fn time(flag: &str, value: &str) -> anyhow::Result<u64> {
    control::history::parse_time(value)
        .with_context(|| format!("{flag} {value:?} is not a day (2026-03-01) or an RFC 3339 time"))
}

/// The range `--since`/`--until` name (until: now by default).
fn range(since: &str, until: Option<&str>) -> anyhow::Result<(u64, u64)> {
    let until_ms = until.map(|until| time("--until", until)).transpose()?;
    Ok((time("--since", since)?, until_ms.unwrap_or_else(runtime::time::now_ms)))
}

async fn find_rule(client: &clickhouse::Client, org: &str, rule_id: &str) -> anyhow::Result<schemas::rules::Rule> {
    rules::list(client, Some(org))
        .await?
        .into_iter()
        .find(|rule| rule.id == rule_id)
        .with_context(|| format!("org {org} has no rule {rule_id} (`sigstage rules list --org {org}`)"))
}

/// Runs an apply job here with a progress bar; prints the job as it ended.
async fn run_job(config: &Config, client: &clickhouse::Client, job: apply::Job) -> anyhow::Result<()> {
    runtime::stage::arm_fault(config.fault.clone());
    let producer = runtime::kafka::clients::producer(&config.kafka).context("creating the Kafka producer")?;
    let topic = config.kafka.topic(runtime::kafka::topics::SIGNALS_HISTORICAL);
    let bar = indicatif::ProgressBar::with_draw_target(Some(job.total), indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} read {msg} ETA {eta}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(job.job_id.clone());
    bar.set_position(job.read);
    eprintln!(
        "applying rule {} to {}'s stored signals as job {} (pause: `sigstage rules pause {} --org {}`)",
        job.rule_id, job.org_id, job.job_id, job.job_id, job.org_id
    );
    let refresh = std::time::Duration::from_millis(config.control_refresh_ms);
    let sending = apply::Sending { producer: &producer, topic: &topic, refresh };
    let ended = apply::run(client, &sending, job, |job| {
        bar.set_length(job.total.max(job.read));
        bar.set_position(job.read);
        bar.set_message(format!("{} sent", job.sent));
    })
    .await;
    bar.finish_and_clear();
    let ended = ended?;
    println!("{}", serde_json::to_string(&ended)?);
    match ended.state.as_str() {
        apply::DONE => eprintln!(
            "job {} done: {} stored signals read, {} sent to the stream, which attributes them within seconds",
            ended.job_id, ended.read, ended.sent
        ),
        state => eprintln!(
            "job {} is {state} after {} of {} stored signals; `sigstage rules resume {} --org {}` goes on",
            ended.job_id, ended.read, ended.total, ended.job_id, ended.org_id
        ),
    }
    Ok(())
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
        RulesCommand::Preview { stored: Stored { rule_id, org, since, until } }
        | RulesCommand::Apply { stored: Stored { rule_id, org, since, until }, dry_run: true, .. } => {
            let (since_ms, until_ms) = range(&since, until.as_deref())?;
            let rule = find_rule(&client, &org, &rule_id).await?;
            eprintln!("reading {org}'s stored signals from {since} to {}", until.as_deref().unwrap_or("now"));
            let preview = control::history::preview(&client, &rule, since_ms, until_ms).await?;
            println!("{}", serde_json::to_string_pretty(&preview)?);
        }
        RulesCommand::Apply { stored: Stored { rule_id, org, since, until }, dry_run: false, rate } => {
            let (since_ms, until_ms) = range(&since, until.as_deref())?;
            let rule = find_rule(&client, &org, &rule_id).await?;
            let job = apply::create(&client, &rule, since_ms, until_ms, rate).await?;
            run_job(config, &client, job).await?;
        }
        RulesCommand::Jobs { org } => {
            for job in apply::list(&client, &org).await? {
                println!("{}", serde_json::to_string(&job)?);
            }
        }
        RulesCommand::Resume { job_id, org } => {
            let job = apply::set_state(&client, &org, &job_id, apply::RUNNING).await?;
            run_job(config, &client, job).await?;
        }
        RulesCommand::Pause { job_id, org } => {
            let job = apply::set_state(&client, &org, &job_id, apply::PAUSED).await?;
            eprintln!("job {} paused after {} of {} stored signals", job.job_id, job.read, job.total);
        }
        RulesCommand::Cancel { job_id, org } => {
            let job = apply::set_state(&client, &org, &job_id, apply::CANCELLED).await?;
            eprintln!("job {} cancelled after {} of {} stored signals", job.job_id, job.read, job.total);
        }
    }
    Ok(())
}
