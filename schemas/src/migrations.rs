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
                    statement.starts_with("CREATE TABLE IF NOT EXISTS"),
                    "migration {}: not idempotent: {statement}",
                    migration.version
                );
                for banned in ["DateTime64", "Map(", "JSON", " TTL ", "CODEC("] {
                    assert!(!statement.contains(banned), "{banned} is not valid on ClickHouse 18.16: {statement}");
                }
            }
        }
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
