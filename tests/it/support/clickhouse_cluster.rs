//! A ClickHouse cluster of a test's own, started and stopped through `scripts/stack.sh
//! clickhouse-cluster` (ZooKeeper and four ClickHouse 18.16 servers: cluster `sigstage`, two
//! shards of two replicas), in a temporary folder, on ports of its own.

use std::path::PathBuf;

use super::brokers::{free_base, stack, walk};
use super::{unique, TestDb};

pub struct PrivateClickHouseCluster {
    dir: PathBuf,
    /// ZooKeeper's port; node N answers HTTP on base + 10 N.
    base: u16,
}

impl PrivateClickHouseCluster {
    /// Starts ZooKeeper and the four servers, and waits until each answers and sees ZooKeeper.
    pub fn start() -> Self {
        let cluster = PrivateClickHouseCluster {
            dir: std::env::temp_dir().join(unique("clickhouse-cluster")),
            base: free_base(50),
        };
        cluster.restart();
        cluster
    }

    /// Starts every server that is not running (a killed node is started again), and waits.
    pub fn restart(&self) {
        stack(&["clickhouse-cluster", &self.dir.display().to_string(), &self.base.to_string()]);
    }

    /// SIGKILLs node `n` (1-4): no clean shutdown, its ZooKeeper session left to expire.
    pub fn kill(&self, n: u16) {
        self.kill_of(&format!("node-{n}/clickhouse.pid"));
    }

    /// SIGKILLs ZooKeeper: every node loses its session, and their replicated tables refuse
    /// writes (reads go on) until [`Self::restart`] brings it back.
    pub fn kill_zookeeper(&self) {
        self.kill_of("zookeeper/zookeeper.pid");
    }

    /// SIGKILLs the process `pidfile` (under the cluster's folder) names, and waits until it is gone.
    fn kill_of(&self, pidfile: &str) {
        let pid = std::fs::read_to_string(self.dir.join(pidfile)).expect("a pid file");
        let status = std::process::Command::new("kill").args(["-KILL", pid.trim()]).status().expect("kill runs");
        assert!(status.success(), "{pidfile} (pid {pid}) was running");
        // `stack.sh clickhouse-cluster` starts what a pid file names no live process for.
        while std::process::Command::new("kill").args(["-0", pid.trim()]).status().is_ok_and(|status| status.success())
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Node `n`'s (1-4) HTTP URL: nodes 1 and 2 are shard 1, nodes 3 and 4 shard 2.
    pub fn url(&self, n: u16) -> String {
        format!("http://127.0.0.1:{}", self.base + 10 * n)
    }

    /// A test database on this cluster (`SIGSTAGE_CLICKHOUSE_CLUSTER`), migrated, whose stages
    /// talk to node `n`.
    pub async fn migrated_db(&self, n: u16) -> TestDb {
        TestDb::migrated_with(|vars| {
            vars.insert("SIGSTAGE_CLICKHOUSE_URL".into(), self.url(n));
            vars.insert("SIGSTAGE_CLICKHOUSE_CLUSTER".into(), "sigstage".into());
        })
        .await
    }

    /// A client of node `n`, in `database`.
    pub fn client(&self, n: u16, database: &str) -> clickhouse::Client {
        clickhouse::Client::default().with_url(self.url(n)).with_database(database).with_validation(false)
    }

    fn log_tails(&self) -> String {
        let mut out = String::new();
        for entry in walk(&self.dir)
            .into_iter()
            .filter(|path| path.ends_with("clickhouse-server.err.log") || path.ends_with("zookeeper.log"))
        {
            let log = std::fs::read_to_string(&entry).unwrap_or_default();
            out.push_str(&format!("--- {}\n{}\n", entry.display(), &log[log.len().saturating_sub(3000)..]));
        }
        out
    }
}

impl Drop for PrivateClickHouseCluster {
    fn drop(&mut self) {
        stack(&["stop", &self.dir.display().to_string()]);
        if std::thread::panicking() {
            eprintln!("private ClickHouse cluster ({}):\n{}", self.dir.display(), self.log_tails());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
