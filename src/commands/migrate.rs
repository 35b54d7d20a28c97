//! `sigstage migrate`.

use anyhow::Context;
use runtime::config::Config;

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
    Ok(())
}
