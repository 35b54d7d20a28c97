//! `sigstage limits set | show`: an org's request rate and monthly raw-signal plan limit.

use anyhow::{bail, Context};
use clap::Subcommand;
use control::limits::{self, OrgLimits, PlanLimit, RateLimit};
use runtime::config::Config;

#[derive(Subcommand)]
pub enum LimitsCommand {
    /// Set an org's limits. Instances pick changes up within SIGSTAGE_CONTROL_REFRESH_MS.
    Set {
        #[arg(long)]
        org: String,
        /// Sustained requests per second (0 removes the rate limit).
        #[arg(long)]
        rate_per_second: Option<u32>,
        /// Requests allowed at once above the sustained rate (default: the rate).
        #[arg(long)]
        burst: Option<u32>,
        /// Raw signals per calendar month, UTC (0: unlimited).
        #[arg(long)]
        monthly_signals: Option<u64>,
        /// Accept signals over the monthly limit and count them as overage.
        #[arg(long, action = clap::ArgAction::Set)]
        overages: Option<bool>,
    },
    /// Show an org's limits and this month's usage.
    Show {
        #[arg(long)]
        org: String,
    },
}

pub async fn run(config: &Config, command: LimitsCommand) -> anyhow::Result<()> {
    let client = runtime::clickhouse::client(&config.clickhouse);
    match command {
        LimitsCommand::Set { org, rate_per_second, burst, monthly_signals, overages } => {
            if !schemas::valid_org_id(&org) {
                bail!("org id {org:?} is not valid: use 1-64 letters, digits, '_', '-' or '.'");
            }
            if rate_per_second.is_none() && burst.is_none() && monthly_signals.is_none() && overages.is_none() {
                bail!("nothing to set: give --rate-per-second, --burst, --monthly-signals or --overages");
            }
            let current = OrgLimits::load(&client).await.context("reading limits (has `sigstage migrate` run?)")?;
            if rate_per_second.is_some() || burst.is_some() {
                let rate = rate_per_second
                    .or(current.rate.get(&org).map(|r| r.requests_per_second))
                    .context("--burst needs --rate-per-second (the org has no rate limit yet)")?;
                let limit =
                    (rate > 0).then(|| RateLimit { requests_per_second: rate, burst: burst.unwrap_or(rate).max(1) });
                limits::set_rate(&client, &org, limit).await?;
            }
            if monthly_signals.is_some() || overages.is_some() {
                let previous = current.plan.get(&org).copied();
                let plan = PlanLimit {
                    monthly_raw_signals: monthly_signals.or(previous.map(|p| p.monthly_raw_signals)).unwrap_or(0),
                    allow_overages: overages.or(previous.map(|p| p.allow_overages)).unwrap_or(false),
                };
                limits::set_plan(&client, &org, plan).await?;
            }
            eprintln!("limits of {org} updated");
        }
        LimitsCommand::Show { org } => {
            let current = OrgLimits::load(&client).await.context("reading limits (has `sigstage migrate` run?)")?;
            match current.rate.get(&org) {
                Some(rate) => println!("rate: {} requests/s, burst {}", rate.requests_per_second, rate.burst),
                None => println!("rate: unlimited"),
            }
            match current.plan.get(&org).filter(|plan| plan.monthly_raw_signals > 0) {
                Some(plan) => println!(
                    "plan: {} raw signals/month, overages {}",
                    plan.monthly_raw_signals,
                    if plan.allow_overages { "allowed" } else { "refused" }
                ),
                None => println!("plan: unlimited"),
            }
            println!("used this month: {}", current.month_used.get(&org).copied().unwrap_or(0));
        }
    }
    Ok(())
}
