//! Shared set-up: unique names, per-test databases, and running the `sigstage` binary.

//! The edge in-process and reading topics back are in [`edge`]; the stream, the sink and
//! `sigstage run` as subprocesses are in [`pipeline`]; Kafka brokers and a ClickHouse cluster of
//! a test's own in [`brokers`] and [`clickhouse_cluster`].

pub mod brokers;
pub mod clickhouse_cluster;
pub mod edge;
pub mod pipeline;

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use runtime::config::Config;

/// A name no other test (or earlier run) uses: prefix, process id, time, counter.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        runtime::time::now_ms() % 100_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The environment a test's processes see: the stack's defaults, a fresh database and a fresh
/// topic prefix.
pub fn test_vars() -> BTreeMap<String, String> {
    let mut vars: BTreeMap<String, String> =
        std::env::vars().filter(|(name, _)| name.starts_with("SIGSTAGE_")).collect();
    vars.insert("SIGSTAGE_CLICKHOUSE_DATABASE".into(), unique("sigstage_test"));
    vars.insert("SIGSTAGE_TOPIC_PREFIX".into(), format!("{}.", unique("test")));
    vars
}

pub fn config_of(vars: &BTreeMap<String, String>) -> Config {
    Config::from_vars(vars).expect("test configuration is valid")
}

/// A database of its own, migrated, dropped when the test ends.
pub struct TestDb {
    pub vars: BTreeMap<String, String>,
    pub config: Config,
    pub client: clickhouse::Client,
}

impl TestDb {
    pub async fn migrated() -> Self {
        Self::migrated_with(|_| {}).await
    }

    /// A database of its own on the server (or cluster) `adjust` points the variables at.
    pub async fn migrated_with(adjust: impl FnOnce(&mut BTreeMap<String, String>)) -> Self {
        let mut vars = test_vars();
        adjust(&mut vars);
        let config = config_of(&vars);
        runtime::migrate::run(&config.clickhouse).await.expect("migrations apply (is the stack up? `make stack-up`)");
        let client = runtime::clickhouse::client(&config.clickhouse);
        TestDb { vars, config, client }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // On a cluster, a node the test killed and left down would hold the drop for its
        // default 180 s: the test's cluster goes with it anyway.
        let client = runtime::clickhouse::server_client(&self.config.clickhouse)
            .with_setting("distributed_ddl_task_timeout", "10");
        let on_cluster = self.config.clickhouse.cluster.as_ref().map(|name| format!(" ON CLUSTER {name}"));
        let statement =
            format!("DROP DATABASE IF EXISTS {}{}", self.config.clickhouse.database, on_cluster.unwrap_or_default());
        // Drop runs inside the test's runtime; a thread with its own runtime may block.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(client.query(&statement).execute())
        })
        .join();
    }
}

/// Runs `sigstage ARGS` with exactly `vars` as its `SIGSTAGE_*` environment.
pub fn sigstage(args: &[&str], vars: &BTreeMap<String, String>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sigstage"));
    command.args(args);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("SIGSTAGE_")) {
        command.env_remove(name);
    }
    command.envs(vars).output().expect("the sigstage binary runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The peak resident memory (VmHWM) of process `pid`, in MiB.
pub fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).expect("kB") / 1024
}
