//! Versioned ClickHouse DDL, applied in order by `sigstage migrate`.
//!
//! Every statement must be accepted by ClickHouse 18.16 (Debian's package, used locally and in CI)
//! and by current ClickHouse: no DateTime64, Map, JSON, TTL or codecs. Times are epoch
//! milliseconds in `UInt64`; mutable rows are `ReplacingMergeTree(version)` and are read with
//! `FINAL` (or `argMax`), so re-inserting a row is how it is updated.

/// One migration: a version, a name for humans, and `;`-terminated statements.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// The statements of this migration, without comments, in file order.
    pub fn statements(&self) -> Vec<String> {
        let without_comments: String = self
            .sql
            .lines()
            .filter(|line| !line.trim_start().starts_with("--"))
            .flat_map(|line| [line, "\n"])
            .collect();
        without_comments
            .split(';')
            .map(|statement| statement.trim().to_owned())
            .filter(|statement| !statement.is_empty())
            .collect()
    }

    /// A stable fingerprint of the SQL, recorded when the migration runs, so an edit to a
    /// migration that already ran is caught instead of silently diverging.
    pub fn checksum(&self) -> String {
        // FNV-1a, 64 bit: stable across Rust versions, unlike `DefaultHasher`.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.sql.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{hash:016x}")
    }
}

/// Where a database's tables live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout<'a> {
    /// One server: every table as its migration writes it.
    Single,
    /// A ClickHouse cluster (its name in the servers' `remote_servers`): the signal tables
    /// sharded and replicated, every other table replicated to every node.
    Cluster { name: &'a str, database: &'a str },
}

/// The tables sharded on a cluster, each with its shard key: a prefix of its `ORDER BY` key,
/// so every version of a row lands on one shard (and `FINAL` folds them there). A visitor's
/// cold signals and links share a shard; a lead's hot signals and its row share another.
/// The rollups (migrations 9 and 10) are sharded too: their views write each node's share of an
/// insert to that node's local table, so a rollup has a shard's part of every key, and is read
/// through its Distributed table with GROUP BY (its key only says where a direct insert goes).
pub const SHARDED: [(&str, &str); 9] = [
    ("signals_hot", "cityHash64(org_id, lead_email)"),
    ("signals_cold", "cityHash64(org_id, anonymous_id)"),
    ("identities", "cityHash64(org_id, anonymous_id)"),
    ("leads", "cityHash64(org_id, email)"),
    ("signals_daily", "cityHash64(org_id)"),
    ("active_daily", "cityHash64(org_id)"),
    ("lead_touches", "cityHash64(org_id, lead_email)"),
    ("lead_summaries", "cityHash64(org_id, lead_email)"),
    ("visitors", "cityHash64(org_id, anonymous_id)"),
];

/// Where a mutation of `table` goes: on a cluster, every node's local table of a sharded one
/// (`ON CLUSTER`), or the table on every node; on one server, the table.
pub fn mutation_target(table: &str, cluster: Option<&str>) -> String {
    match cluster {
        Some(cluster) if SHARDED.iter().any(|(name, _)| *name == table) => {
            format!("{table}_local ON CLUSTER {cluster}")
        }
        Some(cluster) => format!("{table} ON CLUSTER {cluster}"),
        None => table.to_owned(),
    }
}

/// The tables materialized views fill (migrations 9 and 10). `sigstage copy` leaves them out: copying
/// the signal tables fills them again through the views.
pub const ROLLUPS: [&str; 4] = ["signals_daily", "active_daily", "lead_summaries", "visitors"];

/// The rollups kept per visitor or lead, which questions fold key by key: each row a key has in
/// another part costs every such fold, so the sink merges them to one part on a schedule.
pub const ENTITY_ROLLUPS: [&str; 2] = ["lead_summaries", "visitors"];

const CREATE_VIEW: &str = "CREATE MATERIALIZED VIEW IF NOT EXISTS ";

const DROP_TABLE: &str = "DROP TABLE IF EXISTS ";

/// The table (or view) `statement` drops, when it is a `DROP TABLE IF EXISTS name`.
fn dropped_table(statement: &str) -> Option<&str> {
    let table = statement.strip_prefix(DROP_TABLE)?.trim();
    (!table.is_empty() && !table.contains(char::is_whitespace)).then_some(table)
}

/// The table `statement` creates, when it is a `CREATE TABLE IF NOT EXISTS name ...`.
pub fn created_table(statement: &str) -> Option<&str> {
    statement.strip_prefix("CREATE TABLE IF NOT EXISTS ")?.split_whitespace().next()
}

impl Layout<'_> {
    /// How `layout` is recorded in `schema_migrations` (as the name of version 0).
    pub fn recorded(&self) -> String {
        match self {
            Layout::Single => "layout: single".to_owned(),
            Layout::Cluster { name, .. } => format!("layout: cluster {name}"),
        }
    }

    /// `statement` (a `CREATE TABLE IF NOT EXISTS name (...) ENGINE = Engine(args) ...`, or a
    /// `CREATE MATERIALIZED VIEW IF NOT EXISTS name TO target AS SELECT ... FROM source ...`, of
    /// a migration) as this layout creates it. On a cluster, every statement runs `ON CLUSTER`;
    /// a sharded table becomes `name_local` (`Replicated*MergeTree` under the shard's path)
    /// beneath a `Distributed` table of the name analysts use, and any other table is one
    /// `Replicated*MergeTree` copied to every node. A view goes from a sharded local table to
    /// another, on each node. A `DROP TABLE IF EXISTS name` drops it on every node, and its
    /// local table beneath it when it is sharded.
    pub fn create(&self, statement: &str) -> Result<Vec<String>, String> {
        let Layout::Cluster { name: cluster, database } = *self else { return Ok(vec![statement.to_owned()]) };
        if let Some(table) = dropped_table(statement) {
            // A sharded table is its Distributed table and the local one beneath it.
            let sharded = SHARDED.iter().any(|(name, _)| *name == table);
            let drop = |table: &str| format!("{DROP_TABLE}{database}.{table} ON CLUSTER {cluster}");
            return Ok(if sharded { vec![drop(table), drop(&format!("{table}_local"))] } else { vec![drop(table)] });
        }
        if statement.starts_with(CREATE_VIEW) {
            return Ok(vec![View::of(statement)
                .and_then(|view| local_view(cluster, database, &view))
                .ok_or_else(|| format!("not a view TO a sharded table FROM a sharded table: {statement}"))?]);
        }
        let table = created_table(statement).ok_or_else(|| format!("not a CREATE TABLE IF NOT EXISTS: {statement}"))?;
        let columns_and_engine = statement["CREATE TABLE IF NOT EXISTS ".len() + table.len()..].trim_start();
        let (columns, engine_and_keys) =
            columns_and_engine.rsplit_once(") ENGINE = ").ok_or_else(|| format!("no ENGINE: {statement}"))?;
        let (engine, args_and_keys) =
            engine_and_keys.split_once('(').ok_or_else(|| format!("no engine arguments: {statement}"))?;
        let (args, keys) =
            args_and_keys.split_once(')').ok_or_else(|| format!("unclosed engine arguments: {statement}"))?;
        let replicated = |local: &str, path: &str, replica: &str| {
            let args = if args.trim().is_empty() { String::new() } else { format!(", {args}") };
            format!(
                "CREATE TABLE IF NOT EXISTS {database}.{local} ON CLUSTER {cluster} {columns}) \
                 ENGINE = Replicated{engine}('/clickhouse/tables/{path}/{database}/{local}', '{replica}'{args}){keys}"
            )
        };
        Ok(match SHARDED.iter().find(|(sharded, _)| *sharded == table) {
            Some((_, key)) => {
                let local = format!("{table}_local");
                vec![
                    replicated(&local, "{shard}", "{replica}"),
                    format!(
                        "CREATE TABLE IF NOT EXISTS {database}.{table} ON CLUSTER {cluster} AS {database}.{local} \
                         ENGINE = Distributed({cluster}, {database}, {local}, {key})"
                    ),
                ]
            }
            None => vec![replicated(table, "all", "{shard}-{replica}")],
        })
    }
}

/// A materialized view of the migrations: it fills `target` from each insert into `source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub name: String,
    pub target: String,
    pub source: String,
    /// Its `SELECT … FROM source …`: what it writes for an insert of those rows.
    pub select: String,
}

impl View {
    /// The view `statement` creates, when it is a `CREATE MATERIALIZED VIEW IF NOT EXISTS name
    /// TO target AS SELECT … FROM source …` with its `FROM` at the start of a line.
    pub fn of(statement: &str) -> Option<View> {
        let (name, rest) = statement.strip_prefix(CREATE_VIEW)?.split_once(' ')?;
        let (target, rest) = rest.strip_prefix("TO ")?.split_once(char::is_whitespace)?;
        let select = rest.trim_start().strip_prefix("AS")?.trim_start();
        let source = select.rsplit_once("\nFROM ")?.1.split_whitespace().next()?;
        Some(View { name: name.into(), target: target.into(), source: source.into(), select: select.into() })
    }
}

/// Every table the migrations leave (not their views), in order: one a later migration drops is
/// gone.
pub fn tables() -> Vec<String> {
    left_by_migrations(|statement| created_table(statement).map(str::to_owned), |table| table)
}

/// Every materialized view the migrations leave, in order: one a later migration drops is gone.
pub fn views() -> Vec<View> {
    left_by_migrations(View::of, |view| &view.name)
}

/// What the migrations' statements make (`made`, named by `name`) and no later one drops.
fn left_by_migrations<T>(made: impl Fn(&str) -> Option<T>, name: impl Fn(&T) -> &str) -> Vec<T> {
    let mut left: Vec<T> = Vec::new();
    for statement in MIGRATIONS.iter().flat_map(|migration| migration.statements()) {
        if let Some(dropped) = dropped_table(&statement) {
            left.retain(|thing| name(thing) != dropped);
        } else if let Some(thing) = made(&statement) {
            left.push(thing);
        }
    }
    left
}

/// `view` on every node of `cluster`, from the local table of its sharded source to the local
/// table of its sharded target.
fn local_view(cluster: &str, database: &str, view: &View) -> Option<String> {
    let sharded = |table: &str| SHARDED.iter().any(|(name, _)| *name == table);
    let (projection, after_from) = view.select.rsplit_once("\nFROM ")?;
    let tail = after_from[view.source.len()..].trim_start();
    let View { name, target, source, .. } = view;
    (sharded(target) && sharded(source)).then(|| {
        let view = format!(
            "{CREATE_VIEW}{database}.{name} ON CLUSTER {cluster} TO {database}.{target}_local AS {projection}\n\
             FROM {database}.{source}_local {tail}"
        );
        view.trim_end().to_owned()
    })
}

/// The table that records which migrations ran; created before any migration.
pub const MIGRATIONS_TABLE_DDL: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32,
    name String,
    checksum String,
    applied_at_ms UInt64
) ENGINE = ReplacingMergeTree(applied_at_ms) ORDER BY version";

/// Every migration, oldest first. Append only: never edit one that has shipped.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "control_plane", sql: include_str!("../migrations/0001_control_plane.sql") },
    Migration { version: 2, name: "usage", sql: include_str!("../migrations/0002_usage.sql") },
    Migration { version: 3, name: "mapping_rules", sql: include_str!("../migrations/0003_mapping_rules.sql") },
    Migration { version: 4, name: "signal_queue", sql: include_str!("../migrations/0004_signal_queue.sql") },
    Migration { version: 5, name: "signals", sql: include_str!("../migrations/0005_signals.sql") },
    Migration { version: 6, name: "webhooks", sql: include_str!("../migrations/0006_webhooks.sql") },
    Migration { version: 7, name: "webhook_queue", sql: include_str!("../migrations/0007_webhook_queue.sql") },
    Migration { version: 8, name: "api_key_names", sql: include_str!("../migrations/0008_api_key_names.sql") },
    Migration { version: 9, name: "rollups", sql: include_str!("../migrations/0009_rollups.sql") },
    Migration { version: 10, name: "lead_summaries", sql: include_str!("../migrations/0010_lead_summaries.sql") },
    Migration { version: 11, name: "key_signing", sql: include_str!("../migrations/0011_key_signing.sql") },
    Migration { version: 12, name: "people", sql: include_str!("../migrations/0012_people.sql") },
    Migration { version: 13, name: "retention", sql: include_str!("../migrations/0013_retention.sql") },
    Migration { version: 14, name: "key_lanes", sql: include_str!("../migrations/0014_key_lanes.sql") },
    Migration { version: 15, name: "history_jobs", sql: include_str!("../migrations/0015_history_jobs.sql") },
    Migration { version: 16, name: "webhook_backfills", sql: include_str!("../migrations/0016_webhook_backfills.sql") },
    Migration { version: 17, name: "signal_origins", sql: include_str!("../migrations/0017_signal_origins.sql") },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_strictly() {
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].version < pair[1].version, "{} then {}", pair[0].version, pair[1].version);
        }
    }

    #[test]
    fn every_statement_is_idempotent_ddl() {
        for migration in MIGRATIONS {
            let statements = migration.statements();
            assert!(!statements.is_empty(), "migration {} is empty", migration.version);
            for statement in statements {
                assert!(
                    statement.starts_with("CREATE TABLE IF NOT EXISTS")
                        || statement.starts_with(CREATE_VIEW)
                        || dropped_table(&statement).is_some(),
                    "migration {}: not idempotent: {statement}",
                    migration.version
                );
                for banned in ["DateTime64", "Map(", "JSON", " TTL ", "CODEC("] {
                    assert!(!statement.contains(banned), "{banned} is not valid on ClickHouse 18.16: {statement}");
                }
            }
        }
    }

    /// A table once dropped is never made again: a replica's path in ZooKeeper can outlive its
    /// table (when a replica was down at the drop), and a concurrent migrate could drop the new one.
    #[test]
    fn a_dropped_table_is_not_made_again() {
        let statements: Vec<String> = MIGRATIONS.iter().flat_map(|migration| migration.statements()).collect();
        for (n, statement) in statements.iter().enumerate() {
            let Some(dropped) = dropped_table(statement) else { continue };
            let made = |s: &String| created_table(s) == Some(dropped) || View::of(s).is_some_and(|v| v.name == dropped);
            assert!(!statements[n..].iter().any(made), "{dropped} is made again after it is dropped");
            assert!(statements[..n].iter().any(made), "{dropped} is dropped but never made");
            assert!(!tables().iter().any(|table| table == dropped), "tables() lists {dropped}");
            assert!(views().iter().all(|view| view.name != dropped), "views() lists {dropped}");
        }
    }

    #[test]
    fn a_cluster_shards_the_signal_tables_and_copies_the_rest_to_every_node() {
        let cluster = Layout::Cluster { name: "sigstage", database: "db" };
        let statements: Vec<String> = MIGRATIONS
            .iter()
            .flat_map(|migration| migration.statements())
            .flat_map(|statement| cluster.create(&statement).expect("every migration has the usual shape"))
            .collect();
        let on_cluster = |statement: &String| {
            statement.contains(" ON CLUSTER sigstage ") || statement.ends_with(" ON CLUSTER sigstage")
        };
        assert!(statements.iter().all(on_cluster), "{statements:#?}");
        // Migration 10 drops lead_touches (for lead_summaries): its view, then the table and its shards.
        let drops: Vec<&String> = statements.iter().filter(|s| s.starts_with("DROP")).collect();
        assert_eq!(
            drops,
            [
                "DROP TABLE IF EXISTS db.lead_touches_from_hot ON CLUSTER sigstage",
                "DROP TABLE IF EXISTS db.lead_touches ON CLUSTER sigstage",
                "DROP TABLE IF EXISTS db.lead_touches_local ON CLUSTER sigstage",
            ]
        );
        for (table, key) in SHARDED {
            let local = statements.iter().find(|s| s.contains(&format!("db.{table}_local ON CLUSTER"))).expect(table);
            assert!(
                local.contains(&format!("('/clickhouse/tables/{{shard}}/db/{table}_local', '{{replica}}'")),
                "{local}"
            );
            let distributed = statements.iter().find(|s| s.contains(&format!("db.{table} ON CLUSTER"))).expect(table);
            assert!(
                distributed.ends_with(&format!("ENGINE = Distributed(sigstage, db, {table}_local, {key})")),
                "{distributed}"
            );
        }
        let hot = statements.iter().find(|s| s.contains("db.signals_hot_local ")).expect("signals_hot");
        assert!(hot.contains("ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/signals_hot_local', '{replica}', written_ms) PARTITION BY toYYYYMM(event_date)"), "{hot}");
        let view = statements.iter().find(|s| s.contains("db.signals_daily_from_hot ")).expect("a view");
        assert!(view.starts_with("CREATE MATERIALIZED VIEW IF NOT EXISTS db.signals_daily_from_hot ON CLUSTER sigstage TO db.signals_daily_local AS SELECT "), "{view}");
        assert!(view.ends_with("\nFROM db.signals_hot_local WHERE attributed_by != 'rehydrated'\nGROUP BY org_id, day, source, kind, event"), "{view}");
        for rollup in ROLLUPS {
            assert!(SHARDED.iter().any(|(table, _)| *table == rollup), "{rollup} is not sharded");
            assert!(views().iter().any(|view| view.target == rollup), "no view fills {rollup}");
        }
        let views = views();
        assert_eq!(views.len(), 7, "{views:#?}");
        assert!(views.iter().all(|view| ["signals_cold", "signals_hot"].contains(&view.source.as_str())), "{views:#?}");
        for view in &views {
            assert!(
                view.select.starts_with("SELECT ") && view.select.contains(&format!("\nFROM {}\n", view.source)),
                "{view:#?}"
            );
        }
        let keys = statements.iter().find(|s| s.contains("db.api_keys ")).expect("api_keys");
        assert!(keys.contains("ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/db/api_keys', '{shard}-{replica}', version) ORDER BY key_id"), "{keys}");
        let queue = statements.iter().find(|s| s.contains("db.signal_queue ")).expect("signal_queue");
        assert!(queue.contains("ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/db/signal_queue', '{shard}-{replica}') PARTITION BY"), "{queue}");
        assert_eq!(
            Layout::Single.create("CREATE TABLE IF NOT EXISTS t (x UInt8) ENGINE = Memory").expect("as is"),
            ["CREATE TABLE IF NOT EXISTS t (x UInt8) ENGINE = Memory"]
        );
        assert!(cluster.create("DROP TABLE t").is_err());
        assert!(cluster
            .create("CREATE MATERIALIZED VIEW IF NOT EXISTS v TO api_keys AS SELECT 1\nFROM signals_hot")
            .is_err());
    }

    #[test]
    fn comments_are_stripped_and_statements_split() {
        let migration = Migration {
            version: 9,
            name: "t",
            sql: "-- a comment; with a semicolon\nCREATE TABLE a (x UInt8) ENGINE = Memory;\n\nCREATE TABLE b (y UInt8) ENGINE = Memory;\n",
        };
        let statements = migration.statements();
        assert_eq!(
            statements,
            ["CREATE TABLE a (x UInt8) ENGINE = Memory", "CREATE TABLE b (y UInt8) ENGINE = Memory"]
        );
    }
}
