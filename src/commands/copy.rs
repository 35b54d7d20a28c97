//! `sigstage copy --from-url URL`: every table of another sigstage database (one server's, or a
//! cluster's through its `Distributed` tables) into this one, migrated first in this one's
//! layout. The way from one ClickHouse server to a cluster, and back.
//!
//! Each table streams from the source's HTTP interface to this one's in ClickHouse's Native
//! format, column by column as the migrations made them, so memory stays bounded whatever a
//! table holds. Every physical row is copied (the versions a ReplacingMergeTree has not folded
//! yet too), and the copy of each table is counted, without `FINAL`, against its source. The
//! rollups are not copied: their views fill them again as the signal tables arrive.

use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use reqwest::Client;
use runtime::config::{ClickHouseConfig, Config};
use schemas::migrations::ROLLUPS;

#[derive(Args)]
pub struct CopyArgs {
    /// The source ClickHouse's HTTP URL (of any node, for a cluster).
    #[arg(long)]
    from_url: String,
    /// The source database [default: this one's name, SIGSTAGE_CLICKHOUSE_DATABASE].
    #[arg(long)]
    from_database: Option<String>,
    /// The source's user.
    #[arg(long, default_value = "default")]
    from_user: String,
    /// A file holding the source user's password (its first line), if it has one: a password
    /// on the command line would show in every process listing.
    #[arg(long)]
    from_password_file: Option<std::path::PathBuf>,
}

/// A ClickHouse server spoken to over HTTP: its URL, database and credentials.
struct Server<'a> {
    url: &'a str,
    database: &'a str,
    user: &'a str,
    password: Option<String>,
    /// Settings sent with every statement.
    settings: &'a [(&'a str, &'a str)],
}

impl Server<'_> {
    /// A POST of `statement` as the body; an INSERT's data follows its statement in the URL instead.
    fn post(&self, client: &Client, statement: &str) -> reqwest::RequestBuilder {
        self.request(client, &[]).body(statement.to_owned())
    }

    fn request(&self, client: &Client, params: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let mut all = vec![("database", self.database)];
        all.extend_from_slice(self.settings);
        all.extend_from_slice(params);
        let request = client.post(self.url).query(&all).header("X-ClickHouse-User", self.user);
        match &self.password {
            Some(password) => request.header("X-ClickHouse-Key", password),
            None => request,
        }
    }

    /// The answer to `query`, which must succeed, as text.
    async fn text(&self, client: &Client, query: &str) -> anyhow::Result<String> {
        let response = self.post(client, query).send().await.with_context(|| format!("reaching {}", self.url))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{} ({}) answered {status}: {}", self.url, self.database, text.trim());
        }
        Ok(text)
    }

    async fn count(&self, client: &Client, table: &str) -> anyhow::Result<u64> {
        let text = self.text(client, &format!("SELECT count() FROM {table}")).await?;
        text.trim().parse().with_context(|| format!("counting {table} at {}: {text:?}", self.url))
    }
}

pub async fn run(config: &Config, args: CopyArgs) -> anyhow::Result<()> {
    let target = &config.clickhouse;
    let from_database = args.from_database.as_deref().unwrap_or(&target.database);
    if args.from_url.trim_end_matches('/') == target.url.trim_end_matches('/') && from_database == target.database {
        bail!("--from-url and --from-database name this database itself; copy from another one");
    }
    let password = match &args.from_password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Some(text.lines().next().unwrap_or_default().to_owned())
        }
        None => None,
    };
    super::migrate::run(config).await?;
    let to = Server {
        url: &target.url,
        database: &target.database,
        user: &target.user,
        password: target.password.as_ref().map(|password| password.expose().to_owned()),
        settings: if target.cluster.is_some() { &runtime::clickhouse::CLUSTER_SETTINGS } else { &[] },
    };
    let from = Server {
        url: &args.from_url,
        database: from_database,
        user: &args.from_user,
        password,
        // Any node of a cluster reads every shard; these settings are harmless on one server.
        settings: &runtime::clickhouse::CLUSTER_SETTINGS,
    };
    let client = Client::new();
    let tables: Vec<String> = schemas::migrations::tables()
        .into_iter()
        // The views fill the rollups again from the signal tables copied.
        .filter(|table| !ROLLUPS.contains(&table.as_str()))
        .collect();
    // Into an empty database only: a copy run twice would hold every row twice.
    for table in &tables {
        let held = to.count(&client, table).await?;
        if held > 0 {
            bail!(
                "{table} in {} at {} holds {held} rows already: copy into a database no role has written \
                 to (a new SIGSTAGE_CLICKHOUSE_DATABASE), with every role stopped",
                target.database,
                target.url
            );
        }
    }
    let started = Instant::now();
    let mut total = 0;
    for table in &tables {
        total += copy_table(&client, &from, &to, target, table).await?;
    }
    eprintln!(
        "copy: {total} rows of {} tables from {} ({from_database}) into {} ({}), each counted against its source, in {:.1?}",
        tables.len(),
        args.from_url,
        target.url,
        target.database,
        started.elapsed()
    );
    Ok(())
}

/// Streams `table` from `from` into `to`; answers the rows copied, counted in both.
async fn copy_table(
    client: &Client,
    from: &Server<'_>,
    to: &Server<'_>,
    target: &ClickHouseConfig,
    table: &str,
) -> anyhow::Result<u64> {
    let started = Instant::now();
    let expected = from.count(client, table).await?;
    // The columns rows are written with (not MATERIALIZED or ALIAS ones), named: any order will do.
    let columns = to
        .text(
            client,
            &format!(
                "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = '{table}' \
                 AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') FORMAT TSV"
            ),
        )
        .await?;
    let columns = columns.lines().collect::<Vec<_>>().join(", ");
    let read = from
        .post(client, &format!("SELECT {columns} FROM {table} FORMAT Native"))
        .send()
        .await
        .with_context(|| format!("reading {table} from {}", from.url))?;
    if !read.status().is_success() {
        let status = read.status();
        bail!("reading {table} from {}: {status}: {}", from.url, read.text().await?.trim());
    }
    let written = to
        .request(client, &[("query", &format!("INSERT INTO {table} ({columns}) FORMAT Native"))])
        .body(reqwest::Body::wrap_stream(read.bytes_stream()))
        .send()
        .await
        .with_context(|| format!("writing {table} to {}", to.url))?;
    if !written.status().is_success() {
        let status = written.status();
        bail!("writing {table} to {} ({}): {status}: {}", to.url, target.database, written.text().await?.trim());
    }
    let copied = to.count(client, table).await?;
    if copied != expected {
        bail!("{table}: {copied} rows copied of {expected}; is a role still writing to the source?");
    }
    eprintln!("copy: {table}: {copied} rows in {:.1?}", started.elapsed());
    Ok(copied)
}
