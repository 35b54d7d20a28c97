//! The stream processor and the ClickHouse sink run in-process against a test's topics and
//! database, and ways to wait until they have worked through what was written.

use std::time::{Duration, Instant};

use runtime::config::Config;
use runtime::kafka::topics;
use std::process::Stdio;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use runtime::stage::{self, Stages};
use tokio::process::Child;
use tokio::sync::watch;

use crate::support::edge::count_records;

/// A processor or sink running in-process until `stop`, supervised as `sigstage` runs it: a
/// failure (a lost broker ending a transaction) restarts it.
pub struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

pub fn start_processor(config: &Config) -> Running {
    runtime::telemetry::init_logs(runtime::config::LogFormat::Human);
    let (stop, stopped) = watch::channel(false);
    let (kafka, clickhouse) = (config.kafka.clone(), runtime::clickhouse::client(&config.clickhouse));
    let settings = stream::runner::Settings { refresh: Duration::from_millis(200), ..Default::default() };
    let task = tokio::spawn(async move {
        runtime::kafka::prepare_topics(&kafka).await.expect("topics");
        let id = runtime::kafka::transactional_id(&kafka, "stream");
        stage::supervise(Stages::default().stage("stream"), stopped, |stage, stop| {
            let (kafka, clickhouse, settings, id) = (kafka.clone(), clickhouse.clone(), settings.clone(), id.clone());
            async move { stream::runner::run(&kafka, clickhouse, settings, &id, stage, stop).await }
        })
        .await
    });
    Running { stop, task }
}

impl Running {
    pub async fn stop(self) {
        self.stop.send(true).expect("still running");
        self.task.await.expect("no panic");
    }
}

/// Waits until the processor's group has committed everything in the raw topic.
pub async fn caught_up(config: &Config) {
    let raw = config.kafka.topic(topics::SIGNALS_RAW);
    let total = count_records(config, &raw);
    let group: StreamConsumer =
        runtime::kafka::consumer(&config.kafka, &config.kafka.topic("stream")).expect("consumer");
    let mut partitions = TopicPartitionList::new();
    for partition in 0..config.kafka.partitions {
        partitions.add_partition(&raw, partition);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let committed: i64 = group
            .committed_offsets(partitions.clone(), Duration::from_secs(5))
            .map(|list| list.elements().iter().map(|e| if let Offset::Offset(o) = e.offset() { o } else { 0 }).sum())
            .unwrap_or(0);
        if committed >= total {
            return;
        }
        assert!(Instant::now() < deadline, "processor committed {committed} of {total} records");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The ClickHouse sink against `clickhouse` (the test's database, or a proxy in front of it).
pub fn start_sink(config: &Config, clickhouse: clickhouse::Client) -> Running {
    let (stop, stopped) = watch::channel(false);
    let kafka = config.kafka.clone();
    let settings = sink::runner::Settings {
        batch_wait: Duration::from_millis(50),
        refresh: Duration::from_millis(200),
        ..Default::default()
    };
    let task = tokio::spawn(async move {
        runtime::kafka::prepare_topics(&kafka).await.expect("topics");
        stage::supervise(Stages::default().stage("sink"), stopped, |stage, stop| {
            let (kafka, clickhouse, settings) = (kafka.clone(), clickhouse.clone(), settings.clone());
            async move { sink::runner::run(&kafka, clickhouse, settings, stage, stop).await }
        })
        .await
    });
    Running { stop, task }
}

/// Polls `query` (one UInt64) until it answers `expected`; panics with the last answer after 30 s.
/// A row of `first_and_last_touch`: lead, first source, event and time, last source, event and
/// time, signals, signals sent while anonymous.
pub type TouchRow = (String, String, String, u64, String, String, u64, u64, u64);

/// A question of the analysts' library (`schemas/queries/`) for `org` over every day, with
/// `params`, bound as `sigstage query` binds it.
pub fn library_query(name: &str, org: &str, params: &[(&str, &str)]) -> String {
    let query = schemas::queries::Query::named(name).unwrap_or_else(|| panic!("no query {name}"));
    let all_days = [("org", org), ("since", "2000-01-01"), ("until", "2100-12-31")];
    let values = all_days.iter().chain(params).map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
    query.bind(&values).unwrap_or_else(|error| panic!("{error}"))
}

pub async fn await_count(client: &clickhouse::Client, query: &str, expected: u64) {
    await_count_within(client, query, expected, Duration::from_secs(30)).await
}

/// The sink's tables hold no row twice, counted physically (without FINAL, which would hide
/// doubles).
pub async fn assert_no_row_twice(client: &clickhouse::Client) {
    assert_no_row_twice_in(client, "").await
}

/// [`assert_no_row_twice`] on the tables named with `suffix` (`_local`: a cluster node's own).
pub async fn assert_no_row_twice_in(client: &clickhouse::Client, suffix: &str) {
    for (table, key) in [("signals_hot", "signal_id"), ("signals_cold", "signal_id"), ("identities", "anonymous_id")] {
        await_count(client, &format!("SELECT count() - uniqExact({key}) FROM {table}{suffix}"), 0).await;
    }
}

/// [`await_count`] after a stage failed or was killed: its group membership lapses first, and
/// a restart may wait out the supervisor's longest backoff before it restores and reads.
pub async fn await_recovered(client: &clickhouse::Client, query: &str, expected: u64) {
    // A stage whose commit hung on a lost coordinator gives up after the watchdog, then backs off.
    let within = runtime::kafka::batch::TRANSACTION_WATCHDOG + runtime::stage::MAX_BACKOFF + Duration::from_secs(60);
    await_count_within(client, query, expected, within).await
}

async fn await_count_within(client: &clickhouse::Client, query: &str, expected: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let answer = client.query(query).fetch_one::<u64>().await;
        if matches!(answer, Ok(n) if n == expected) {
            return;
        }
        assert!(Instant::now() < deadline, "{query}: {answer:?}, expected {expected}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `sigstage ROLE` as a process of the test's deployment (`vars`, plus `extra` variables), on a
/// port of its own, killed if the test drops it.
pub fn spawn_role(vars: &std::collections::BTreeMap<String, String>, role: &str, extra: &[(&str, &str)]) -> Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_sigstage"))
        .arg(role)
        .envs(vars)
        .env("SIGSTAGE_HTTP_ADDR", "127.0.0.1:0")
        .envs(extra.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| panic!("sigstage {role} starts: {error}"))
}

/// A `sigstage ROLE` process that printed its ready line.
pub struct Ready {
    pub child: Child,
    /// The address of its HTTP listener, from the ready line.
    pub addr: String,
    /// The address of its admin listener, when it was given an admin token.
    pub admin: Option<String>,
    /// The demo org's key, for `run --demo-key-file`.
    pub demo_key: Option<String>,
    /// Everything it logs, once it has exited.
    pub logs: tokio::task::JoinHandle<String>,
}

/// Starts `sigstage ARGS` (a role and its options) with `vars` and `extra`, on a port of its
/// own: the process once its ready lines are out, or its exit status and logs when it ends
/// before that.
pub async fn start_ready(
    vars: &std::collections::BTreeMap<String, String>,
    args: &[&str],
    extra: &[(&str, &str)],
) -> Result<Ready, (std::process::ExitStatus, String)> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sigstage"))
        .args(args)
        .envs(vars)
        .env("SIGSTAGE_HTTP_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .envs(extra.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| panic!("sigstage {args:?} starts: {error}"));
    let mut stderr = child.stderr.take().expect("stderr");
    let logs = tokio::spawn(async move {
        let mut logs = String::new();
        let _ = stderr.read_to_string(&mut logs).await;
        logs
    });
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let with_admin =
        vars.contains_key("SIGSTAGE_ADMIN_TOKEN") || extra.iter().any(|(name, _)| *name == "SIGSTAGE_ADMIN_TOKEN");
    let addr = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("a ready line or an exit within 60 s")
            .expect("stdout readable");
        match line {
            Some(line) if line.starts_with("sigstage ready: ") => {
                let addr = line.split("http://").nth(1).and_then(|rest| rest.split_whitespace().next());
                break addr.expect("the ready line names the address").to_owned();
            }
            Some(_) => continue,
            None => {
                let status = child.wait().await.expect("exit status");
                return Err((status, logs.await.expect("logs")));
            }
        }
    };
    // The admin listener's line, then the demo key's, follow the ready line when asked for.
    let mut next = async || {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await;
        line.expect("the ready lines within 10 s").expect("stdout readable").unwrap_or_default()
    };
    let admin = match with_admin {
        true => {
            let line = next().await;
            line.strip_prefix("admin API on http://").and_then(|rest| rest.split('/').next()).map(str::to_owned)
        }
        false => None,
    };
    let demo_key = match args.contains(&"--demo-key-file") {
        true => next().await.strip_prefix("demo org key: ").map(str::to_owned),
        false => None,
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Ready { child, addr, admin, demo_key, logs })
}

impl Ready {
    /// Stops it with SIGTERM; answers what it logged.
    pub async fn stop(mut self) -> String {
        let pid = self.child.id().expect("pid").to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
        // Stages still starting (joining their group, fencing older transactions) finish that first.
        let exit = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("stops within 60 s")
            .expect("exit status");
        assert!(exit.success(), "{exit}");
        self.logs.await.expect("logs")
    }
}

/// `GET /readyz` of the process listening on `addr`: the status code and the body.
pub async fn readyz(addr: &str) -> (u16, serde_json::Value) {
    let answer = http(addr, "GET /readyz", "").await;
    let status = answer.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

/// The value of the first series of metric `name` whose labels contain `labels`, in a
/// `/metrics` answer.
pub fn metric(metrics: &str, name: &str, labels: &str) -> Option<f64> {
    let line = metrics.lines().find(|line| line.starts_with(name) && line.contains(labels))?;
    line.rsplit(' ').next()?.parse().ok()
}

/// A request to `addr` over a connection of its own (`Connection: close`): the whole answer, head
/// and body.
pub async fn http(addr: &str, request_line: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{request_line} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
}
