//! `sigstage`: every role of the pipeline and its administration, in one binary.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use runtime::config::{Config, LogFormat};

#[derive(Parser)]
#[command(name = "sigstage", version, about = "Signal-staging pipeline over Kafka and ClickHouse")]
struct Cli {
    /// Log as JSON lines instead of human-readable text (overrides SIGSTAGE_LOG_FORMAT).
    #[arg(long, global = true)]
    json_logs: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every role (ingest, stream, sink) in one process.
    Run {
        /// Keep a demo org's API key in this file (created if missing or no longer valid) and
        /// print it with a curl example once ready.
        #[arg(long)]
        demo_key_file: Option<PathBuf>,
    },
    /// Run the HTTP ingest edge only.
    Ingest,
    /// Run the stream processors only.
    Stream,
    /// Run the ClickHouse and webhook sinks only.
    Sink,
    /// Apply pending ClickHouse migrations (idempotent); `--print` shows their DDL instead.
    Migrate(commands::migrate::MigrateArgs),
    /// Copy every table of another sigstage database (one server's or a cluster's) into this
    /// one, migrated first: from one ClickHouse server to a cluster, and back.
    Copy(commands::copy::CopyArgs),
    /// Create, list and revoke API keys.
    #[command(subcommand)]
    Keys(commands::keys::KeysCommand),
    /// Import historical signals from files through the bulk endpoint.
    Import(commands::import::ImportArgs),
    /// Set and show per-org rate and plan limits.
    #[command(subcommand)]
    Limits(commands::limits::LimitsCommand),
    /// Add, list and remove an org's mapping rules.
    #[command(subcommand)]
    Rules(commands::rules::RulesCommand),
    /// Rebuild the analysts' rollups from the signal tables (with the sink stopped), or compact them.
    #[command(subcommand)]
    Rollups(commands::rollups::RollupsCommand),
    /// Ask a question of the analysts' query library (schemas/queries/); --list shows them.
    Query(commands::query::QueryArgs),
    /// Show the signal queue: signals no mapping rule matched, by source and event.
    Queue(commands::queue::QueueArgs),
    /// Create and manage webhook subscriptions; see and re-send deliveries.
    #[command(subcommand)]
    Webhooks(commands::webhooks::WebhooksCommand),
    /// Show everything sigstage did with one signal: its rows, links, leads, events, deliveries.
    Trace(commands::trace::TraceArgs),
    /// Set, show and enforce how many days of each org's signals to keep.
    #[command(subcommand)]
    Retention(commands::retention::RetentionCommand),
    /// Delete a person everywhere (GDPR Article 17), and suppress, lift and audit.
    #[command(subcommand)]
    People(commands::people::PeopleCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("sigstage: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    if cli.json_logs {
        config.log_format = LogFormat::Json;
    }
    runtime::telemetry::init_logs(config.log_format);

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sigstage: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run { demo_key_file } => {
                commands::serve::run(config, commands::serve::Roles::ALL, demo_key_file).await
            }
            Command::Ingest => commands::serve::run(config, commands::serve::Roles::INGEST, None).await,
            Command::Stream => commands::serve::run(config, commands::serve::Roles::STREAM, None).await,
            Command::Sink => commands::serve::run(config, commands::serve::Roles::SINK, None).await,
            Command::Migrate(args) if args.print => commands::migrate::print(&config),
            Command::Migrate(_) => commands::migrate::run(&config).await,
            Command::Copy(args) => commands::copy::run(&config, args).await,
            Command::Keys(command) => commands::keys::run(&config, command).await,
            Command::Limits(command) => commands::limits::run(&config, command).await,
            Command::Rules(command) => commands::rules::run(&config, command).await,
            Command::Rollups(command) => commands::rollups::run(&config, command).await,
            Command::Query(args) => commands::query::run(&config, args).await,
            Command::Queue(args) => commands::queue::run(&config, args).await,
            Command::Webhooks(command) => commands::webhooks::run(&config, command).await,
            Command::Trace(args) => commands::trace::run(&config, args).await,
            Command::People(command) => commands::people::run(&config, command).await,
            Command::Retention(command) => commands::retention::run(&config, command).await,
            Command::Import(args) => commands::import::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sigstage: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
