//! `sigstage query NAME --org ORG`: a question of the analysts' library (`schemas/queries/`)
//! asked of ClickHouse, the answer printed as a table, CSV or JSON lines.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{bail, Context};
use runtime::config::Config;
use schemas::queries::{BindError, Query, QUERIES};

#[derive(clap::Args)]
pub struct QueryArgs {
    /// The question, by its file name in schemas/queries/ without `.sql` (see --list).
    name: Option<String>,
    /// List the questions, what each answers and the parameters it takes, and exit.
    #[arg(long)]
    list: bool,
    /// The org asked about.
    #[arg(long)]
    org: Option<String>,
    /// The first day of the range, YYYY-MM-DD (default: 30 days before --until).
    #[arg(long)]
    since: Option<String>,
    /// The last day of the range, included, YYYY-MM-DD (default: today, UTC).
    #[arg(long)]
    until: Option<String>,
    /// Another parameter of the question, NAME=VALUE: `--param lead=jo@acme.io` for
    /// lead_timeline; `--param first=… --param then=… --param days=7` for funnel.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// How to print the answer.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Print the SQL with its parameters written in, and exit without asking ClickHouse.
    #[arg(long)]
    print: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

impl Format {
    /// The ClickHouse output format: one 18.16 and current ClickHouse both write.
    fn clickhouse(self) -> &'static str {
        match self {
            Format::Table => "PrettyCompactNoEscapes",
            Format::Csv => "CSVWithNames",
            Format::Json => "JSONEachRow",
        }
    }
}

pub async fn run(config: &Config, args: QueryArgs) -> anyhow::Result<()> {
    if args.list {
        return list();
    }
    let Some(name) = &args.name else { bail!("name a question (sigstage query --list shows them)") };
    let query = Query::named(name)
        .with_context(|| format!("no question {name:?} in the library (sigstage query --list shows them)"))?;
    let sql = query.bind(&values(&args)?).map_err(|error| match error {
        BindError::Missing { ref name, .. } if !["org", "since", "until"].contains(&name.as_str()) => {
            anyhow::anyhow!("{error}: give it with --param {name}=VALUE")
        }
        error => error.into(),
    })?;
    if args.print {
        println!("{sql}");
        return Ok(());
    }
    let client = runtime::clickhouse::client(&config.clickhouse);
    let mut answer = client.query_raw(&sql).fetch_bytes(args.format.clickhouse())?;
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = answer.next().await.with_context(|| {
        format!(
            "asking {name} of database {:?} at {} (is ClickHouse up, and migrated? `sigstage migrate`)",
            config.clickhouse.database, config.clickhouse.url
        )
    })? {
        out.write_all(&chunk)?;
    }
    out.flush()?;
    Ok(())
}

/// The parameters as the query binds them: --org, the range (with its defaults) and each
/// --param.
fn values(args: &QueryArgs) -> anyhow::Result<BTreeMap<String, String>> {
    let mut values = BTreeMap::new();
    let given = [("org", &args.org), ("since", &args.since), ("until", &args.until)];
    for (name, value) in given {
        if let Some(value) = value {
            values.insert(name.to_owned(), value.clone());
        }
    }
    for param in &args.params {
        let (name, value) = param.split_once('=').with_context(|| format!("--param {param:?}: write it NAME=VALUE"))?;
        if values.insert(name.to_owned(), value.to_owned()).is_some() {
            bail!("--param {name} is given twice, or is --org, --since or --until: give each once");
        }
    }
    schemas::queries::default_range(&mut values)?;
    Ok(values)
}

fn list() -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for query in QUERIES {
        let params: Vec<String> = query.params().iter().map(|(name, kind)| format!("--{name} {kind}")).collect();
        writeln!(out, "{}\n    {}\n    takes: {}\n", query.name, query.about(), params.join(" "))?;
    }
    Ok(())
}
