//! `sigstage rollups rebuild`: the rollups (migration 9) computed again from the signal tables,
//! for a database that held signals before its views existed, or after rows were written or
//! removed by hand. `sigstage rollups compact`: the per-visitor and per-lead rollups merged to
//! one part now, as the sink does on its schedule (see `sink::compact`).

use anyhow::Context;
use runtime::config::Config;
use schemas::migrations::{views, ROLLUPS};

#[derive(clap::Subcommand)]
pub enum RollupsCommand {
    /// Empty every rollup and fill it again from signals_cold and signals_hot, through the
    /// statements of its views. Run it with the sink stopped: rows it writes meanwhile would be
    /// counted twice, or not at all.
    Rebuild,
    /// Merge the rollups kept per visitor and per lead to one part each, which their questions
    /// read fastest. The sink does it every SIGSTAGE_ROLLUPS_COMPACT_INTERVAL_MS; safe at any
    /// time, the sink running or not.
    Compact,
}

pub async fn run(config: &Config, command: RollupsCommand) -> anyhow::Result<()> {
    let clickhouse = &config.clickhouse;
    let client = runtime::clickhouse::client(clickhouse);
    let hint = || {
        format!(
            "database {:?} at {} (is ClickHouse up, and migrated? `sigstage migrate`)",
            clickhouse.database, clickhouse.url
        )
    };
    if let RollupsCommand::Compact = command {
        let took = sink::compact::compact(&client, clickhouse.cluster.as_deref())
            .await
            .with_context(|| format!("compacting the rollups of {}", hint()))?;
        for (rollup, took) in took {
            eprintln!("rollups: {rollup} merged to one part ({:.1} s)", took.as_secs_f64());
        }
        return Ok(());
    }
    for rollup in ROLLUPS {
        // On a cluster, each node's share is its local table; a Distributed table holds none.
        let truncate = match &clickhouse.cluster {
            Some(cluster) => format!("TRUNCATE TABLE {rollup}_local ON CLUSTER {cluster}"),
            None => format!("TRUNCATE TABLE {rollup}"),
        };
        client.query(&truncate).execute().await.with_context(|| format!("emptying {rollup} in {}", hint()))?;
    }
    for view in views() {
        let started = std::time::Instant::now();
        // Through the Distributed tables on a cluster: any spread of a rollup's rows over the
        // shards reads the same, since every query folds them with GROUP BY.
        let insert = format!("INSERT INTO {} {}", view.target, view.select);
        client.query(&insert).execute().await.with_context(|| format!("filling {} in {}", view.target, hint()))?;
        eprintln!(
            "rollups: {} filled from {} as view {} would ({:.1} s)",
            view.target,
            view.source,
            view.name,
            started.elapsed().as_secs_f64()
        );
    }
    eprintln!("rollups: rebuilt {} from the signal tables of {}", ROLLUPS.join(", "), clickhouse.database);
    Ok(())
}
