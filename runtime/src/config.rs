//! Typed configuration, read once at start-up from `SIGSTAGE_*` environment variables.
//!
//! Every variable has a default that works with the local stack (`make stack-up`). A bad value or
//! an unknown `SIGSTAGE_*` name (usually a typo) stops start-up with a message naming it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// Every variable sigstage reads: name, default, and what a valid value looks like.
pub const VARIABLES: &[(&str, &str, &str)] = &[
    (HTTP_ADDR, "127.0.0.1:8080", "host:port the HTTP server binds"),
    (HTTP_MAX_BODY_BYTES, "1048576", "largest single, batch, collect or activity body, after decompression"),
    (HTTP_MAX_BULK_BODY_BYTES, "33554432", "largest bulk body, after decompression"),
    (HTTP_MAX_BATCH_SIGNALS, "2500", "most signals one batch request may hold (Segment's limit)"),
    (HTTP_MAX_BULK_SIGNALS, "10000", "most signals one bulk request may hold"),
    (
        OVERFLOW_SHARE_PERCENT,
        "50",
        "percent of an edge's recent live signals past which an org's signals go to the overflow (historical) lane, while another org sends too (100: never)",
    ),
    (
        OVERFLOW_MIN_PER_SECOND,
        "5000",
        "live signals per second an edge must take before any org overflows (below it, one lane in order serves everyone best)",
    ),
    (HTTP_HEAD_TIMEOUT_MS, "10000", "how long a client may take to send a request's head, and to send anything at all once connected"),
    (
        HTTP_BODY_MIN_RATE,
        "1024",
        "bytes per second a request body must keep arriving at, over each window of the head timeout (slower: 408)",
    ),
    (
        HTTP_IDLE_TIMEOUT_MS,
        "60000",
        "how long a connection may move no byte between requests or while an answer streams (keep it above 15 s: live tails send a keep-alive every 15 s)",
    ),
    (HTTP_SHUTDOWN_TIMEOUT_MS, "10000", "how long a stopping listener waits for requests in flight before it closes them"),
    (
        HTTP_MAX_CONNECTIONS,
        "4096",
        "connections each listener (edge, admin) holds at once, lowered to half the open-file limit left after 256 (503 past it)",
    ),
    (HTTP_MAX_CONNECTIONS_PER_CLIENT, "256", "connections (or, through a trusted proxy, requests in flight) one client address holds at once"),
    (
        HTTP_TRUSTED_PROXIES,
        "",
        "addresses or CIDR ranges of proxies whose X-Forwarded-For names the client, comma-separated (empty: none)",
    ),
    (TRACKING_MAX_EVENT_BYTES, "32768", "Segment Tracking API: largest event, alone or in a batch (Segment: 32 KB)"),
    (TRACKING_MAX_BATCH_BYTES, "512000", "Segment Tracking API: largest /v1/batch request, decompressed (Segment: 500 KB)"),
    (TRACKING_MAX_BATCH_EVENTS, "2500", "Segment Tracking API: most events in one /v1/batch (Segment: 2500)"),
    (KAFKA_BROKERS, "127.0.0.1:9092", "comma-separated bootstrap brokers"),
    (TOPIC_PREFIX, "sigstage.", "prefix of every topic name"),
    (KAFKA_PARTITIONS, "4", "partitions of topics sigstage creates"),
    (KAFKA_LINGER_MS, "1", "producer batching delay; each 202 waits for it"),
    (KAFKA_MESSAGE_TIMEOUT_MS, "10000", "how long a produce may wait for the broker"),
    (KAFKA_QUEUE_MAX_MESSAGES, "100000", "records a producer may hold unacknowledged before refusing more"),
    (
        KAFKA_REPLICATION_FACTOR,
        "auto",
        "replicas of each topic sigstage creates: a number, or auto (3, or the brokers there are when fewer)",
    ),
    (
        KAFKA_MIN_INSYNC_REPLICAS,
        "auto",
        "replicas that must have a record before it is acknowledged: a number, or auto (2, or 1 below 3 replicas)",
    ),
    (
        KAFKA_RETENTION_HOURS,
        DEFAULT_RETENTION_HOURS,
        "hours each event topic keeps records, as topic=hours pairs (-1: forever); identities is compacted",
    ),
    (CLICKHOUSE_URL, "http://127.0.0.1:8123", "ClickHouse HTTP endpoint"),
    (CLICKHOUSE_DATABASE, "sigstage", "ClickHouse database"),
    (CLICKHOUSE_USER, "default", "ClickHouse user"),
    (CLICKHOUSE_PASSWORD, "", "ClickHouse password"),
    (
        CLICKHOUSE_COMPRESSION,
        "none",
        "compression of inserts and results: none (fastest near ClickHouse) or lz4 (less network)",
    ),
    (
        CLICKHOUSE_CLUSTER,
        "",
        "a cluster of the servers' remote_servers to make the schema on: signal tables sharded and replicated, the rest on every node (empty: one server)",
    ),
    (
        ROLLUPS_COMPACT_INTERVAL_MS,
        "3600000",
        "how often the sink merges the per-visitor and per-lead rollups to one part, which their questions read fastest (0: never)",
    ),
    (
        RETENTION_INTERVAL_MS,
        "3600000",
        "how often the sink enforces each org's retention (sigstage retention set): a TTL where the server has one, else a delete of expired rows (0: never)",
    ),
    (ADMIN_ADDR, "127.0.0.1:8081", "host:port of the admin listener (/api/admin), apart from the public one"),
    (ADMIN_TOKEN, "", "bearer token for /api/admin, full access (empty, with no SIGSTAGE_ADMIN_TOKENS: admin API off)"),
    (ADMIN_TOKENS, "", "more admin tokens, as id:scope:token pairs separated by commas; scope read (GET only) or full"),
    (ADMIN_MAX_TAILS, "8", "live tails (server-sent events) the admin API serves at once; more are answered 429"),
    (ADMIN_TAIL_IDLE_MS, "1800000", "how long a live tail may send no signal before it ends (the console offers to reopen it)"),
    (
        CONTROL_REFRESH_MS,
        "5000",
        "how often keys, limits, rules and subscriptions are reloaded, and usage and the signal queue flushed",
    ),
    (INSTANCE_ID, "", "this edge's id in signal ids, 0-1023, refused while another running edge holds it (default: the lowest free one)"),
    (
        WEBHOOKS_ALLOW_PRIVATE,
        "false",
        "deliver webhooks to private, loopback and link-local addresses (local development)",
    ),
    (
        WEBHOOKS_RETRY_SCHEDULE,
        "5s,5m,30m,2h,5h,10h,10h",
        "waits before each retry of a failed delivery (Svix's schedule); the delivery fails after the last",
    ),
    (WEBHOOKS_TIMEOUT_MS, "10000", "how long a receiver may take to answer"),
    (
        WEBHOOKS_DISABLE_AFTER,
        "5d",
        "how long every attempt to an endpoint may fail before its subscription is disabled",
    ),
    (
        WEBHOOKS_PROXY,
        "",
        "an HTTP proxy for deliveries, as a URL (default: none; HTTP(S)_PROXY from the environment is ignored)",
    ),
    (LOG_FORMAT, "human", "log format: human or json"),
    (FAULT, "", "tests only: abort at a fault point, as point or point:n (debug builds; release builds refuse it)"),
];

pub const HTTP_ADDR: &str = "SIGSTAGE_HTTP_ADDR";
pub const HTTP_MAX_BODY_BYTES: &str = "SIGSTAGE_HTTP_MAX_BODY_BYTES";
pub const HTTP_MAX_BULK_BODY_BYTES: &str = "SIGSTAGE_HTTP_MAX_BULK_BODY_BYTES";
pub const HTTP_MAX_BATCH_SIGNALS: &str = "SIGSTAGE_HTTP_MAX_BATCH_SIGNALS";
pub const HTTP_MAX_BULK_SIGNALS: &str = "SIGSTAGE_HTTP_MAX_BULK_SIGNALS";
pub const OVERFLOW_SHARE_PERCENT: &str = "SIGSTAGE_OVERFLOW_SHARE_PERCENT";
pub const OVERFLOW_MIN_PER_SECOND: &str = "SIGSTAGE_OVERFLOW_MIN_PER_SECOND";
pub const HTTP_HEAD_TIMEOUT_MS: &str = "SIGSTAGE_HTTP_HEAD_TIMEOUT_MS";
pub const HTTP_BODY_MIN_RATE: &str = "SIGSTAGE_HTTP_BODY_MIN_RATE";
pub const HTTP_IDLE_TIMEOUT_MS: &str = "SIGSTAGE_HTTP_IDLE_TIMEOUT_MS";
pub const HTTP_SHUTDOWN_TIMEOUT_MS: &str = "SIGSTAGE_HTTP_SHUTDOWN_TIMEOUT_MS";
pub const HTTP_MAX_CONNECTIONS: &str = "SIGSTAGE_HTTP_MAX_CONNECTIONS";
pub const HTTP_MAX_CONNECTIONS_PER_CLIENT: &str = "SIGSTAGE_HTTP_MAX_CONNECTIONS_PER_CLIENT";
pub const HTTP_TRUSTED_PROXIES: &str = "SIGSTAGE_HTTP_TRUSTED_PROXIES";
pub const TRACKING_MAX_EVENT_BYTES: &str = "SIGSTAGE_TRACKING_MAX_EVENT_BYTES";
pub const TRACKING_MAX_BATCH_BYTES: &str = "SIGSTAGE_TRACKING_MAX_BATCH_BYTES";
pub const TRACKING_MAX_BATCH_EVENTS: &str = "SIGSTAGE_TRACKING_MAX_BATCH_EVENTS";
pub const KAFKA_BROKERS: &str = "SIGSTAGE_KAFKA_BROKERS";
pub const TOPIC_PREFIX: &str = "SIGSTAGE_TOPIC_PREFIX";
pub const KAFKA_PARTITIONS: &str = "SIGSTAGE_KAFKA_PARTITIONS";
pub const KAFKA_LINGER_MS: &str = "SIGSTAGE_KAFKA_LINGER_MS";
pub const KAFKA_MESSAGE_TIMEOUT_MS: &str = "SIGSTAGE_KAFKA_MESSAGE_TIMEOUT_MS";
pub const KAFKA_QUEUE_MAX_MESSAGES: &str = "SIGSTAGE_KAFKA_QUEUE_MAX_MESSAGES";
pub const KAFKA_REPLICATION_FACTOR: &str = "SIGSTAGE_KAFKA_REPLICATION_FACTOR";
pub const KAFKA_MIN_INSYNC_REPLICAS: &str = "SIGSTAGE_KAFKA_MIN_INSYNC_REPLICAS";
pub const KAFKA_RETENTION_HOURS: &str = "SIGSTAGE_KAFKA_RETENTION_HOURS";
pub const CLICKHOUSE_URL: &str = "SIGSTAGE_CLICKHOUSE_URL";
pub const CLICKHOUSE_DATABASE: &str = "SIGSTAGE_CLICKHOUSE_DATABASE";
pub const CLICKHOUSE_USER: &str = "SIGSTAGE_CLICKHOUSE_USER";
pub const CLICKHOUSE_PASSWORD: &str = "SIGSTAGE_CLICKHOUSE_PASSWORD";
pub const CLICKHOUSE_COMPRESSION: &str = "SIGSTAGE_CLICKHOUSE_COMPRESSION";
pub const CLICKHOUSE_CLUSTER: &str = "SIGSTAGE_CLICKHOUSE_CLUSTER";
pub const ROLLUPS_COMPACT_INTERVAL_MS: &str = "SIGSTAGE_ROLLUPS_COMPACT_INTERVAL_MS";
pub const RETENTION_INTERVAL_MS: &str = "SIGSTAGE_RETENTION_INTERVAL_MS";
pub const ADMIN_ADDR: &str = "SIGSTAGE_ADMIN_ADDR";
pub const ADMIN_TOKEN: &str = "SIGSTAGE_ADMIN_TOKEN";
pub const ADMIN_TOKENS: &str = "SIGSTAGE_ADMIN_TOKENS";
pub const ADMIN_MAX_TAILS: &str = "SIGSTAGE_ADMIN_MAX_TAILS";
pub const ADMIN_TAIL_IDLE_MS: &str = "SIGSTAGE_ADMIN_TAIL_IDLE_MS";
pub const CONTROL_REFRESH_MS: &str = "SIGSTAGE_CONTROL_REFRESH_MS";
pub const LOG_FORMAT: &str = "SIGSTAGE_LOG_FORMAT";
pub const INSTANCE_ID: &str = "SIGSTAGE_INSTANCE_ID";
pub const FAULT: &str = "SIGSTAGE_FAULT";
pub const WEBHOOKS_ALLOW_PRIVATE: &str = "SIGSTAGE_WEBHOOKS_ALLOW_PRIVATE";
pub const WEBHOOKS_RETRY_SCHEDULE: &str = "SIGSTAGE_WEBHOOKS_RETRY_SCHEDULE";
pub const WEBHOOKS_PROXY: &str = "SIGSTAGE_WEBHOOKS_PROXY";
pub const WEBHOOKS_TIMEOUT_MS: &str = "SIGSTAGE_WEBHOOKS_TIMEOUT_MS";
pub const WEBHOOKS_DISABLE_AFTER: &str = "SIGSTAGE_WEBHOOKS_DISABLE_AFTER";

/// Seven days for what flows through, 30 for dead letters (someone has to look at them).
const DEFAULT_RETENTION_HOURS: &str =
    "signals.raw=168,signals.raw.historical=168,signals.processed=168,webhooks.outbox=168,signals.dlq=720";

/// The least `signals.processed` may keep: a day, so a sink can be replayed over one.
const MIN_PROCESSED_RETENTION_HOURS: i64 = 24;

/// Never shown: a proxy URL may carry credentials.
const SECRET_VARIABLES: &[&str] = &[CLICKHOUSE_PASSWORD, ADMIN_TOKEN, ADMIN_TOKENS, WEBHOOKS_PROXY];

#[derive(Debug, Clone)]
pub struct Config {
    pub http: HttpConfig,
    pub kafka: KafkaConfig,
    pub clickhouse: ClickHouseConfig,
    /// How often the sink compacts the rollups kept per visitor and lead; `None`: never.
    pub rollups_compact_every: Option<Duration>,
    /// How often the sink enforces each org's retention; `None`: never.
    pub retention_every: Option<Duration>,
    /// The admin listener's address.
    pub admin_addr: SocketAddr,
    /// Bearer tokens of the admin API; none disables it.
    pub admin_tokens: Vec<AdminToken>,
    /// Live tails served at once, and how long one may send nothing.
    pub admin_max_tails: usize,
    pub admin_tail_idle: Duration,
    pub control_refresh_ms: u64,
    /// Part of every signal id; give each instance its own to rule out collisions.
    pub instance_id: Option<u16>,
    pub log_format: LogFormat,
    pub webhooks: WebhookConfig,
    /// The fault point armed by a test, and on which pass it fires (see [`crate::stage::fault_point`]).
    pub fault: Option<(String, u32)>,
}

/// How the webhook sink delivers.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub allow_private: bool,
    /// The wait before each retry; a delivery has `retry_schedule.len() + 1` attempts.
    pub retry_schedule: Vec<Duration>,
    pub timeout_ms: u64,
    /// How long an endpoint may fail every attempt before its subscription is disabled.
    pub disable_after: Duration,
    /// The only proxy deliveries may go through, when set.
    pub proxy: Option<String>,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub addr: SocketAddr,
    pub max_body_bytes: usize,
    pub max_bulk_body_bytes: usize,
    /// Signals one batch request may hold.
    pub max_batch_signals: usize,
    /// Signals one bulk request may hold.
    pub max_bulk_signals: usize,
    /// The Segment Tracking API's limits.
    pub tracking: TrackingLimits,
    /// When an org's live signals go to the overflow lane.
    pub overflow: OverflowLimits,
    /// What both listeners (edge and admin) allow a connection.
    pub serve: ServeLimits,
}

/// When an org sends more than its share of an edge's live signals (`ingest::overflow`).
#[derive(Debug, Clone, Copy)]
pub struct OverflowLimits {
    pub share_percent: u64,
    pub min_per_second: u64,
}

/// How long a client may take and how many connections it may hold, on each listener.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// Sending a request's head once connected or kept alive (hyper's `header_read_timeout`),
    /// and the window over which a body's rate is measured.
    pub head_timeout: Duration,
    /// The least bytes per second a body must arrive at.
    pub body_min_rate: u64,
    /// A kept-alive connection's wait for its next request.
    pub idle_timeout: Duration,
    /// A stopping listener's wait for requests in flight.
    pub shutdown_timeout: Duration,
    /// Connections a listener holds at once (before the open-file limit lowers it).
    pub max_connections: usize,
    /// Connections, or requests in flight through a trusted proxy, of one client address.
    pub max_per_client: usize,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpRange>,
}

/// An address range, `10.0.0.0/8` or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl IpRange {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        let ip = match ip {
            V6(v6) => v6.to_ipv4_mapped().map_or(V6(v6), V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (V4(range), V4(ip)) => prefix_matches(&range.octets(), &ip.octets(), self.prefix),
            (V6(range), V6(ip)) => prefix_matches(&range.octets(), &ip.octets(), self.prefix),
            _ => false,
        }
    }
}

fn prefix_matches(range: &[u8], ip: &[u8], prefix: u8) -> bool {
    let (whole, rest) = (usize::from(prefix / 8), prefix % 8);
    range[..whole] == ip[..whole] && (rest == 0 || (range[whole] ^ ip[whole]) >> (8 - rest) == 0)
}

impl FromStr for IpRange {
    type Err = ();

    fn from_str(value: &str) -> Result<Self, ()> {
        let (addr, prefix) = value.split_once('/').unwrap_or((value, ""));
        let addr: std::net::IpAddr = addr.trim().parse().map_err(|_| ())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() { max } else { prefix.trim().parse().map_err(|_| ())? };
        (prefix <= max).then_some(IpRange { addr, prefix }).ok_or(())
    }
}

/// The Segment Tracking API's limits (Segment's own by default).
#[derive(Debug, Clone, Copy)]
pub struct TrackingLimits {
    pub max_event_bytes: usize,
    pub max_batch_bytes: usize,
    pub max_batch_events: usize,
}

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub brokers: String,
    pub topic_prefix: String,
    pub partitions: i32,
    pub linger_ms: u32,
    pub message_timeout_ms: u32,
    pub queue_max_messages: u32,
    /// Replicas of each topic sigstage creates; `None`: three, or as many brokers as there are.
    pub replication_factor: Option<i32>,
    /// `min.insync.replicas` of those topics; `None`: two, or one below three replicas.
    pub min_insync_replicas: Option<i32>,
    /// How long each event topic (name without the prefix) keeps records; -1 is forever.
    pub retention_hours: BTreeMap<String, i64>,
}

impl KafkaConfig {
    /// The full name of a topic: the deployment's prefix, then `name` (`signals.raw`, …).
    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.topic_prefix)
    }
}

#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    pub url: String,
    pub database: String,
    pub user: String,
    pub password: Option<Secret>,
    /// LZ4-compress what goes to and comes from ClickHouse.
    pub lz4: bool,
    /// The ClickHouse cluster the schema is made on (`ON CLUSTER`), when there is one.
    pub cluster: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// A value that must never reach a log line: `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{name}={value:?} is not valid: expected {expected}")]
    Invalid { name: &'static str, value: String, expected: String },
    #[error("{name} is not a sigstage variable (known: {known})")]
    Unknown { name: String, known: String },
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: BTreeMap<String, String> =
            std::env::vars().filter(|(name, _)| name.starts_with("SIGSTAGE_")).collect();
        Self::from_vars(&vars)
    }

    /// Builds the config from `SIGSTAGE_*` variables; missing ones take their defaults.
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        if let Some(name) = vars.keys().find(|name| !VARIABLES.iter().any(|(known, ..)| known == name)) {
            let known = VARIABLES.iter().map(|(known, ..)| *known).collect::<Vec<_>>().join(", ");
            return Err(ConfigError::Unknown { name: name.clone(), known });
        }
        let get =
            |name: &'static str| -> &str { vars.get(name).map(String::as_str).unwrap_or_else(|| default_of(name)) };
        let non_empty_secret = |name: &'static str| Some(get(name)).filter(|v| !v.is_empty()).map(Secret::new);

        let config = Config {
            http: HttpConfig {
                addr: parse(HTTP_ADDR, get(HTTP_ADDR), "a socket address such as 127.0.0.1:8080")?,
                max_body_bytes: parse_in(HTTP_MAX_BODY_BYTES, get(HTTP_MAX_BODY_BYTES), 1024..=1 << 30)?,
                max_bulk_body_bytes: parse_in(HTTP_MAX_BULK_BODY_BYTES, get(HTTP_MAX_BULK_BODY_BYTES), 1024..=1 << 32)?,
                max_batch_signals: parse_in(HTTP_MAX_BATCH_SIGNALS, get(HTTP_MAX_BATCH_SIGNALS), 1..=100_000)?,
                max_bulk_signals: parse_in(HTTP_MAX_BULK_SIGNALS, get(HTTP_MAX_BULK_SIGNALS), 1..=100_000)?,
                overflow: OverflowLimits {
                    share_percent: parse_in(OVERFLOW_SHARE_PERCENT, get(OVERFLOW_SHARE_PERCENT), 1..=100)?,
                    min_per_second: parse_in(OVERFLOW_MIN_PER_SECOND, get(OVERFLOW_MIN_PER_SECOND), 0..=10_000_000)?,
                },
                tracking: TrackingLimits {
                    max_event_bytes: parse_in(TRACKING_MAX_EVENT_BYTES, get(TRACKING_MAX_EVENT_BYTES), 64..=4 << 20)?,
                    max_batch_bytes: parse_in(TRACKING_MAX_BATCH_BYTES, get(TRACKING_MAX_BATCH_BYTES), 64..=64 << 20)?,
                    max_batch_events: parse_in(TRACKING_MAX_BATCH_EVENTS, get(TRACKING_MAX_BATCH_EVENTS), 1..=100_000)?,
                },
                serve: ServeLimits {
                    head_timeout: millis(HTTP_HEAD_TIMEOUT_MS, get(HTTP_HEAD_TIMEOUT_MS), 100..=600_000)?,
                    body_min_rate: parse_in(HTTP_BODY_MIN_RATE, get(HTTP_BODY_MIN_RATE), 0..=1 << 30)?,
                    idle_timeout: millis(HTTP_IDLE_TIMEOUT_MS, get(HTTP_IDLE_TIMEOUT_MS), 100..=3_600_000)?,
                    shutdown_timeout: millis(HTTP_SHUTDOWN_TIMEOUT_MS, get(HTTP_SHUTDOWN_TIMEOUT_MS), 0..=600_000)?,
                    max_connections: parse_in(HTTP_MAX_CONNECTIONS, get(HTTP_MAX_CONNECTIONS), 1..=1_000_000)?,
                    max_per_client: parse_in(
                        HTTP_MAX_CONNECTIONS_PER_CLIENT,
                        get(HTTP_MAX_CONNECTIONS_PER_CLIENT),
                        1..=1_000_000,
                    )?,
                    trusted_proxies: get(HTTP_TRUSTED_PROXIES)
                        .split(',')
                        .filter(|range| !range.trim().is_empty())
                        .map(|range| {
                            range.parse().map_err(|()| {
                                invalid(
                                    HTTP_TRUSTED_PROXIES,
                                    range,
                                    "addresses or CIDR ranges such as 10.0.0.0/8,192.168.1.7",
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?,
                },
            },
            kafka: KafkaConfig {
                brokers: check(KAFKA_BROKERS, get(KAFKA_BROKERS), "comma-separated host:port pairs", |v| {
                    v.split(',').all(|broker| {
                        broker
                            .rsplit_once(':')
                            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
                    })
                })?,
                topic_prefix: check(TOPIC_PREFIX, get(TOPIC_PREFIX), "letters, digits, '.', '_' or '-'", |v| {
                    v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                })?,
                partitions: parse_in(KAFKA_PARTITIONS, get(KAFKA_PARTITIONS), 1..=1024)?,
                linger_ms: parse_in(KAFKA_LINGER_MS, get(KAFKA_LINGER_MS), 0..=1000)?,
                message_timeout_ms: parse_in(KAFKA_MESSAGE_TIMEOUT_MS, get(KAFKA_MESSAGE_TIMEOUT_MS), 100..=300_000)?,
                queue_max_messages: parse_in(KAFKA_QUEUE_MAX_MESSAGES, get(KAFKA_QUEUE_MAX_MESSAGES), 1..=10_000_000)?,
                replication_factor: auto_or(KAFKA_REPLICATION_FACTOR, get(KAFKA_REPLICATION_FACTOR))?,
                min_insync_replicas: auto_or(KAFKA_MIN_INSYNC_REPLICAS, get(KAFKA_MIN_INSYNC_REPLICAS))?,
                retention_hours: retention_hours(get(KAFKA_RETENTION_HOURS))?,
            },
            clickhouse: ClickHouseConfig {
                url: check(CLICKHOUSE_URL, get(CLICKHOUSE_URL), "an http:// or https:// URL", |v| {
                    v.strip_prefix("http://")
                        .or_else(|| v.strip_prefix("https://"))
                        .is_some_and(|rest| !rest.is_empty())
                })?,
                database: check(
                    CLICKHOUSE_DATABASE,
                    get(CLICKHOUSE_DATABASE),
                    "letters, digits and '_'",
                    is_identifier,
                )?,
                user: check(CLICKHOUSE_USER, get(CLICKHOUSE_USER), "a non-empty user name", |v| !v.is_empty())?,
                password: non_empty_secret(CLICKHOUSE_PASSWORD),
                lz4: match get(CLICKHOUSE_COMPRESSION) {
                    "none" => false,
                    "lz4" => true,
                    other => return Err(invalid(CLICKHOUSE_COMPRESSION, other, "none or lz4")),
                },
                cluster: match get(CLICKHOUSE_CLUSTER) {
                    "" => None,
                    name => Some(check(CLICKHOUSE_CLUSTER, name, "letters, digits and '_'", is_identifier)?),
                },
            },
            rollups_compact_every: match parse_in(
                ROLLUPS_COMPACT_INTERVAL_MS,
                get(ROLLUPS_COMPACT_INTERVAL_MS),
                0..=604_800_000,
            )? {
                0 => None,
                every => Some(Duration::from_millis(every)),
            },
            retention_every: match parse_in(RETENTION_INTERVAL_MS, get(RETENTION_INTERVAL_MS), 0..=604_800_000)? {
                0 => None,
                every => Some(Duration::from_millis(every)),
            },
            admin_addr: parse(ADMIN_ADDR, get(ADMIN_ADDR), "a socket address such as 127.0.0.1:8081")?,
            admin_tokens: admin_tokens(non_empty_secret(ADMIN_TOKEN), get(ADMIN_TOKENS))?,
            admin_max_tails: parse_in(ADMIN_MAX_TAILS, get(ADMIN_MAX_TAILS), 0..=10_000)?,
            admin_tail_idle: millis(ADMIN_TAIL_IDLE_MS, get(ADMIN_TAIL_IDLE_MS), 1000..=86_400_000)?,
            control_refresh_ms: parse_in(CONTROL_REFRESH_MS, get(CONTROL_REFRESH_MS), 100..=60_000)?,
            instance_id: match get(INSTANCE_ID) {
                "" => None,
                value => Some(parse_in(INSTANCE_ID, value, 0..=1023)?),
            },
            log_format: match get(LOG_FORMAT) {
                "human" => LogFormat::Human,
                "json" => LogFormat::Json,
                other => return Err(invalid(LOG_FORMAT, other, "human or json")),
            },
            webhooks: WebhookConfig {
                allow_private: match get(WEBHOOKS_ALLOW_PRIVATE) {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    other => return Err(invalid(WEBHOOKS_ALLOW_PRIVATE, other, "true or false")),
                },
                retry_schedule: retry_schedule(get(WEBHOOKS_RETRY_SCHEDULE))?,
                timeout_ms: parse_in(WEBHOOKS_TIMEOUT_MS, get(WEBHOOKS_TIMEOUT_MS), 10..=300_000)?,
                disable_after: crate::time::parse_duration(get(WEBHOOKS_DISABLE_AFTER))
                    .filter(|after| !after.is_zero())
                    .ok_or_else(|| {
                        invalid(
                            WEBHOOKS_DISABLE_AFTER,
                            get(WEBHOOKS_DISABLE_AFTER),
                            "a duration such as 5d, 12h or 30s",
                        )
                    })?,
                proxy: match get(WEBHOOKS_PROXY) {
                    "" => None,
                    url if url.starts_with("http://") || url.starts_with("https://") => Some(url.to_owned()),
                    other => {
                        return Err(invalid(WEBHOOKS_PROXY, other, "a proxy URL such as http://proxy.internal:3128"))
                    }
                },
            },
            fault: match get(FAULT) {
                "" => None,
                value if !cfg!(debug_assertions) => {
                    return Err(invalid(
                        FAULT,
                        value,
                        "nothing: fault injection is for tests, and release builds refuse it",
                    ))
                }
                value => {
                    let (point, pass) = value.split_once(':').unwrap_or((value, "1"));
                    Some((point.to_owned(), parse_in(FAULT, pass, 1..=1_000_000)?))
                }
            },
        };
        if let (Some(replicas), Some(min_insync)) = (config.kafka.replication_factor, config.kafka.min_insync_replicas)
        {
            if min_insync > replicas {
                let expected =
                    format!("at most {KAFKA_REPLICATION_FACTOR} ({replicas}), or writes could never succeed");
                return Err(invalid(KAFKA_MIN_INSYNC_REPLICAS, &min_insync.to_string(), expected));
            }
        }
        Ok(config)
    }
}

/// An admin API token: its id (what logs name), what it may do, and the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminToken {
    pub id: String,
    /// Read-only tokens may only GET.
    pub read_only: bool,
    /// The only org this token may see; `None`: every org.
    pub org: Option<String>,
    pub secret: Secret,
}

/// `SIGSTAGE_ADMIN_TOKEN` (id `admin`, full access) and the `id:scope:token` triples of
/// `SIGSTAGE_ADMIN_TOKENS`, where scope is `read` or `full`, optionally `@org` for one org only.
fn admin_tokens(single: Option<Secret>, pairs: &str) -> Result<Vec<AdminToken>, ConfigError> {
    let mut tokens: Vec<AdminToken> = single
        .into_iter()
        .map(|secret| AdminToken { id: "admin".into(), read_only: false, org: None, secret })
        .collect();
    for pair in pairs.split(',').map(str::trim).filter(|pair| !pair.is_empty()) {
        let mut parts = pair.splitn(3, ':');
        let (Some(id), Some(scope), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid(ADMIN_TOKENS, "[redacted]", "id:scope:token pairs, such as ops:read:<token>"));
        };
        let (scope, org) = match scope.split_once('@') {
            Some((scope, org)) if schemas::valid_org_id(org) => (scope, Some(org.to_owned())),
            Some(_) => return Err(invalid(ADMIN_TOKENS, "[redacted]", format!("a valid org after @ for {id:?}"))),
            None => (scope, None),
        };
        let read_only = match scope {
            "read" => true,
            "full" => false,
            _ => {
                return Err(invalid(
                    ADMIN_TOKENS,
                    "[redacted]",
                    format!("scope read or full (or read@org, full@org) for {id:?}"),
                ))
            }
        };
        let id_ok = schemas::valid_org_id(id);
        if !id_ok || secret.len() < 16 || tokens.iter().any(|token| token.id == id) {
            let expected = format!(
                "a unique id of letters, digits, '_', '-' or '.' and a token of at least 16 characters for {id:?}"
            );
            return Err(invalid(ADMIN_TOKENS, "[redacted]", expected));
        }
        tokens.push(AdminToken { id: id.to_owned(), read_only, org, secret: Secret::new(secret) });
    }
    Ok(tokens)
}

fn auto_or(name: &'static str, value: &str) -> Result<Option<i32>, ConfigError> {
    match value.trim() {
        "auto" => Ok(None),
        number => match number.parse::<i32>() {
            Ok(n) if (1..=16).contains(&n) => Ok(Some(n)),
            _ => Err(invalid(name, value, "auto, or an integer from 1 to 16")),
        },
    }
}

/// The defaults, then the `topic=hours` pairs of `value` over them.
fn retention_hours(value: &str) -> Result<BTreeMap<String, i64>, ConfigError> {
    let mut hours = BTreeMap::new();
    for pairs in [DEFAULT_RETENTION_HOURS, value] {
        for pair in pairs.split(',').map(str::trim).filter(|pair| !pair.is_empty()) {
            let bad = |expected: String| invalid(KAFKA_RETENTION_HOURS, value, expected);
            let (topic, number) =
                pair.split_once('=').ok_or_else(|| bad(format!("topic=hours pairs, not {pair:?}")))?;
            if !DEFAULT_RETENTION_HOURS.split(',').any(|default| default.split_once('=').map(|d| d.0) == Some(topic)) {
                let known = DEFAULT_RETENTION_HOURS.split(',').filter_map(|d| Some(d.split_once('=')?.0));
                let known = known.collect::<Vec<_>>().join(", ");
                return Err(bad(format!(
                    "topics among {known} ({topic:?} is not one; identities is compacted, kept whole)"
                )));
            }
            let least = if topic == "signals.processed" { MIN_PROCESSED_RETENTION_HOURS } else { 1 };
            match number.trim().parse::<i64>() {
                Ok(n) if n == -1 || (least..=1_000_000).contains(&n) => hours.insert(topic.to_owned(), n),
                _ => return Err(bad(format!("{topic}: -1 or {least} to 1000000 hours, not {number:?}"))),
            };
        }
    }
    Ok(hours)
}

/// True for names ClickHouse takes unquoted: a letter or `_`, then letters, digits or `_`.
pub fn is_identifier(value: &str) -> bool {
    let mut chars = value.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn default_of(name: &str) -> &'static str {
    VARIABLES.iter().find(|(known, ..)| *known == name).map_or("", |(_, default, _)| default)
}

fn invalid(name: &'static str, value: &str, expected: impl Into<String>) -> ConfigError {
    let value = if SECRET_VARIABLES.contains(&name) { "[redacted]".to_owned() } else { value.to_owned() };
    ConfigError::Invalid { name, value, expected: expected.into() }
}

/// Retry waits, comma-separated durations: at most 20, each at most a day.
fn retry_schedule(value: &str) -> Result<Vec<Duration>, ConfigError> {
    let waits: Option<Vec<Duration>> = value
        .split(',')
        .map(|wait| crate::time::parse_duration(wait).filter(|wait| *wait <= Duration::from_secs(86_400)))
        .collect();
    match waits {
        Some(waits) if waits.len() <= 20 => Ok(waits),
        _ => Err(invalid(
            WEBHOOKS_RETRY_SCHEDULE,
            value,
            "up to 20 comma-separated waits of at most a day each, such as 5s,5m,30m,2h,5h,10h,10h",
        )),
    }
}

fn millis(name: &'static str, value: &str, range: std::ops::RangeInclusive<u64>) -> Result<Duration, ConfigError> {
    parse_in(name, value, range).map(Duration::from_millis)
}

fn parse<T: FromStr>(name: &'static str, value: &str, expected: &'static str) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| invalid(name, value, expected))
}

fn parse_in<T>(name: &'static str, value: &str, range: std::ops::RangeInclusive<T>) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + fmt::Display,
{
    match value.trim().parse::<T>() {
        Ok(parsed) if range.contains(&parsed) => Ok(parsed),
        _ => Err(invalid(name, value, format!("an integer from {} to {}", range.start(), range.end()))),
    }
}

fn check(
    name: &'static str,
    value: &str,
    expected: &'static str,
    valid: impl Fn(&str) -> bool,
) -> Result<String, ConfigError> {
    if valid(value) {
        Ok(value.to_owned())
    } else {
        Err(invalid(name, value, expected))
    }
}

/// The reference table of [`VARIABLES`], as `docs/configuration.md` shows it between its
/// generated markers (a test keeps the two equal).
pub fn reference_table() -> String {
    let mut table = String::from("| variable | default | meaning |\n|---|---|---|\n");
    for (name, default, meaning) in VARIABLES {
        let default = if default.is_empty() { "(empty)".to_owned() } else { format!("`{default}`") };
        table.push_str(&format!("| `{name}` | {default} | {meaning} |\n"));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration reference is generated from [`VARIABLES`]; `UPDATE_DOCS=1 cargo test -p
    /// runtime` writes it after a change.
    #[test]
    fn the_configuration_reference_is_the_table_in_the_code() {
        const BEGIN: &str = "<!-- generated from runtime/src/config.rs (VARIABLES): begin -->\n";
        const END: &str = "<!-- generated from runtime/src/config.rs (VARIABLES): end -->";
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
        let doc = std::fs::read_to_string(&path).expect("docs/configuration.md");
        let (start, end) = (doc.find(BEGIN).expect("begin marker") + BEGIN.len(), doc.find(END).expect("end marker"));
        let expected = reference_table();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, format!("{}{expected}{}", &doc[..start], &doc[end..])).expect("write the reference");
            return;
        }
        assert_eq!(
            &doc[start..end],
            expected,
            "docs/configuration.md differs from config::VARIABLES: run `UPDATE_DOCS=1 cargo test -p runtime`"
        );
        assert!(VARIABLES.iter().all(|(_, _, meaning)| !meaning.contains('|')), "a meaning would break the table");
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_match_the_design() {
        let config = Config::from_vars(&BTreeMap::new()).expect("defaults are valid");
        assert_eq!(config.http.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(config.kafka.topic("signals.raw"), "sigstage.signals.raw");
        assert_eq!(config.clickhouse.url, "http://127.0.0.1:8123");
        assert_eq!(config.clickhouse.database, "sigstage");
        assert!(config.admin_tokens.is_empty());
        assert_eq!(config.admin_addr.to_string(), "127.0.0.1:8081");
        assert_eq!(config.log_format, LogFormat::Human);
    }

    #[test]
    fn trusted_proxies_are_addresses_and_ranges() {
        let config = Config::from_vars(&vars(&[(HTTP_TRUSTED_PROXIES, "10.1.0.0/16, 192.168.1.7,fd00::/8")]))
            .expect("valid ranges");
        let trusted = |ip: &str| config.http.serve.trusted_proxies.iter().any(|r| r.contains(ip.parse().expect("ip")));
        assert!(trusted("10.1.255.3"));
        assert!(!trusted("10.2.0.1"));
        assert!(trusted("192.168.1.7"));
        assert!(!trusted("192.168.1.8"));
        assert!(trusted("::ffff:10.1.0.9"), "an IPv4 peer seen through an IPv6 socket");
        assert!(trusted("fdab::1"));
        assert!(!trusted("fe80::1"));
        let none = Config::from_vars(&BTreeMap::new()).expect("defaults");
        assert!(none.http.serve.trusted_proxies.is_empty(), "no proxy is trusted by default");
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases = [
            (HTTP_ADDR, "localhost"),
            (KAFKA_BROKERS, "127.0.0.1"),
            (KAFKA_PARTITIONS, "0"),
            (KAFKA_PARTITIONS, "four"),
            (CLICKHOUSE_URL, "127.0.0.1:8123"),
            (CLICKHOUSE_DATABASE, "x; DROP TABLE y"),
            (TOPIC_PREFIX, "a b"),
            (LOG_FORMAT, "xml"),
            (HTTP_MAX_BODY_BYTES, "-1"),
            (INSTANCE_ID, "1024"),
            (HTTP_HEAD_TIMEOUT_MS, "0"),
            (HTTP_TRUSTED_PROXIES, "10.0.0.0/33"),
            (HTTP_TRUSTED_PROXIES, "proxy.internal"),
            (KAFKA_REPLICATION_FACTOR, "0"),
            (KAFKA_MIN_INSYNC_REPLICAS, "two"),
            (KAFKA_RETENTION_HOURS, "signals.raw"),
            (KAFKA_RETENTION_HOURS, "identities=24"),
            (KAFKA_RETENTION_HOURS, "signals.processed=2"),
        ];
        for (name, value) in cases {
            let err = Config::from_vars(&vars(&[(name, value)])).expect_err(name);
            let message = err.to_string();
            assert!(message.starts_with(name), "{message}");
            assert!(message.contains(value), "{message}");
        }
    }

    #[test]
    fn topic_settings_default_to_a_cluster_and_take_overrides() {
        let config = Config::from_vars(&BTreeMap::new()).expect("defaults are valid");
        assert_eq!((config.kafka.replication_factor, config.kafka.min_insync_replicas), (None, None));
        assert_eq!(config.kafka.retention_hours["signals.raw"], 168);
        assert_eq!(config.kafka.retention_hours["signals.dlq"], 720);
        let config = Config::from_vars(&vars(&[
            (KAFKA_REPLICATION_FACTOR, "3"),
            (KAFKA_MIN_INSYNC_REPLICAS, "2"),
            (KAFKA_RETENTION_HOURS, "signals.raw=-1, signals.dlq=24"),
        ]))
        .expect("valid");
        assert_eq!((config.kafka.replication_factor, config.kafka.min_insync_replicas), (Some(3), Some(2)));
        assert_eq!(config.kafka.retention_hours["signals.raw"], -1);
        assert_eq!(config.kafka.retention_hours["signals.dlq"], 24);
        assert_eq!(config.kafka.retention_hours["signals.processed"], 168, "the others keep their defaults");
        let err = Config::from_vars(&vars(&[(KAFKA_REPLICATION_FACTOR, "1"), (KAFKA_MIN_INSYNC_REPLICAS, "2")]))
            .expect_err("more in-sync replicas than replicas");
        assert!(err.to_string().contains("at most SIGSTAGE_KAFKA_REPLICATION_FACTOR (1)"), "{err}");
    }

    #[test]
    fn secrets_are_not_echoed() {
        let config = Config::from_vars(&vars(&[
            (ADMIN_TOKEN, "hunter2"),
            (ADMIN_TOKENS, "ops:read:read-only-token-0123,ci:full:full-access-token-0123"),
        ]))
        .expect("valid");
        let tokens: Vec<(&str, bool, &str)> =
            config.admin_tokens.iter().map(|t| (t.id.as_str(), t.read_only, t.secret.expose())).collect();
        assert_eq!(
            tokens,
            [
                ("admin", false, "hunter2"),
                ("ops", true, "read-only-token-0123"),
                ("ci", false, "full-access-token-0123")
            ]
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("read-only-token-0123"), "{shown}");
        for bad in [
            "ops:read",
            "ops:write:read-only-token-0123",
            "ops:read:short",
            "a:read:0123456789abcdef,a:full:0123456789abcdef",
        ] {
            let err = Config::from_vars(&vars(&[(ADMIN_TOKENS, bad)])).expect_err(bad);
            assert!(!err.to_string().contains("0123"), "the error does not echo a token: {err}");
        }
    }

    #[test]
    fn unknown_variables_are_refused() {
        let err = Config::from_vars(&vars(&[("SIGSTAGE_HTTP_ADRR", "127.0.0.1:1")])).expect_err("typo");
        assert!(err.to_string().starts_with("SIGSTAGE_HTTP_ADRR is not a sigstage variable"), "{err}");
    }
}
