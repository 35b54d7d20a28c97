//! `sigstage migrate`, and `sigstage migrate --print`.

use std::io::Write;

use anyhow::Context;
use runtime::config::{ClickHouseConfig, Config};
use runtime::migrate;
use schemas::migrations::{Layout, View, MIGRATIONS};

#[derive(clap::Args)]
pub struct MigrateArgs {
    /// Print every DDL statement migrate would send for this configuration
    /// (SIGSTAGE_CLICKHOUSE_DATABASE, SIGSTAGE_CLICKHOUSE_CLUSTER), each ended by `;`, and exit
    /// without connecting to ClickHouse.
    #[arg(long)]
    pub print: bool,
}

pub async fn run(config: &Config) -> anyhow::Result<()> {
    let report = runtime::migrate::run(&config.clickhouse).await.with_context(|| {
        format!(
            "migrating database {:?} at {} (is ClickHouse up? `make stack-up` starts it)",
            config.clickhouse.database, config.clickhouse.url
        )
    })?;
    eprintln!(
        "migrate: database {}: applied {:?}, {} already applied",
        config.clickhouse.database, report.applied, report.already_applied
    );
    // A view made now counts only what is written from now on.
    let applied = MIGRATIONS.iter().filter(|migration| report.applied.contains(&migration.version));
    if applied.flat_map(|migration| migration.statements()).any(|statement| View::of(&statement).is_some()) {
        let client = runtime::clickhouse::client(&config.clickhouse);
        let stored: u64 = client
            .query("SELECT (SELECT count() FROM signals_hot) + (SELECT count() FROM signals_cold)")
            .fetch_one()
            .await
            .context("counting the signal rows already stored")?;
        if stored > 0 {
            eprintln!(
                "migrate: new rollups count only what is written from now on; to count the {stored} signal rows \
                 already stored, stop the sink and run `sigstage rollups rebuild`"
            );
        }
    }
    Ok(())
}

/// `migrate --print`: the statements of [`plan`] on stdout, a `--` comment line before each
/// group, so the output is a script `clickhouse-client --multiquery` reads, and a DBA can review.
pub fn print(config: &Config) -> anyhow::Result<()> {
    let clickhouse = &config.clickhouse;
    let layout = migrate::layout(clickhouse);
    let plan = plan(clickhouse)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "-- sigstage migrate --print: database {}, {}; every statement in order, run only for what \
         schema_migrations does not record yet",
        clickhouse.database,
        layout.recorded()
    )?;
    if layout == Layout::Single {
        writeln!(out, "-- table names are unqualified: migrate runs them in database {}", clickhouse.database)?;
    }
    for (what, statements) in plan {
        writeln!(out, "\n-- {what}")?;
        for statement in statements {
            writeln!(out, "{statement};")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Every DDL statement `runtime::migrate::run` sends for `config`, in its order, by group: the
/// database, the `schema_migrations` table, then each migration. Between them, migrate records
/// the layout (version 0) and each migration it applies in `schema_migrations`, and skips a
/// migration recorded already.
pub fn plan(config: &ClickHouseConfig) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let layout = migrate::layout(config);
    let mut plan = vec![
        ("database".to_owned(), vec![migrate::create_database(config)]),
        (
            format!("schema_migrations, where migrate then records `{}` as version 0", layout.recorded()),
            migrate::migrations_table(&layout)?,
        ),
    ];
    for migration in MIGRATIONS {
        let what = format!("migration {} ({}), checksum {}", migration.version, migration.name, migration.checksum());
        plan.push((what, migrate::statements(&layout, migration)?));
    }
    Ok(plan)
}
