//! Kafka brokers of a test's own, started and stopped through `scripts/stack.sh` (the same
//! script and settings as the local stack), in a temporary folder: one broker, or a cluster of
//! three. Tests that stop or kill brokers use these, so the shared test broker is never touched.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

use crate::support::unique;

pub struct PrivateKafka {
    dir: PathBuf,
    /// Client port of each node; a node's controller listens 10 ports above it.
    ports: Vec<u16>,
}

impl PrivateKafka {
    /// One broker (replication 1), not started yet.
    pub fn single() -> Self {
        let base = free_base();
        PrivateKafka { dir: std::env::temp_dir().join(unique("kafka")), ports: vec![base + 1] }
    }

    /// Three brokers (replication 3, `min.insync.replicas` 2), not started yet.
    pub fn cluster() -> Self {
        let base = free_base();
        PrivateKafka {
            dir: std::env::temp_dir().join(unique("kafka-cluster")),
            ports: vec![base + 1, base + 2, base + 3],
        }
    }

    /// The bootstrap list of every node.
    pub fn brokers(&self) -> String {
        self.ports.iter().map(|port| format!("127.0.0.1:{port}")).collect::<Vec<_>>().join(",")
    }

    /// Starts every node that is not running (formatting it the first time), and waits until each
    /// answers.
    pub fn start(&self) {
        let dir = self.dir.display().to_string();
        match self.ports.as_slice() {
            [port] => stack(&["broker", &dir, &port.to_string(), &(port + 10).to_string()]),
            [first, ..] => stack(&["cluster", &dir, &(first - 1).to_string()]),
            [] => unreachable!("a broker has a port"),
        }
    }

    /// Stops every node cleanly.
    pub fn stop(&self) {
        stack(&["stop", &self.dir.display().to_string()]);
    }

    /// SIGKILLs node `n` (1-based) of a cluster: no clean shutdown, no leadership handed over.
    pub fn kill(&self, node: usize) {
        let pidfile = self.dir.join(format!("node-{node}/kafka.pid"));
        let pid = std::fs::read_to_string(&pidfile).expect("node's pid file");
        let status = Command::new("kill").args(["-KILL", pid.trim()]).status().expect("kill runs");
        assert!(status.success(), "node {node} (pid {pid}) was running");
        // `stack.sh cluster` restarts a node whose pid file names no live process; the JVM is gone
        // once `kill -0` fails.
        while Command::new("kill").args(["-0", pid.trim()]).status().is_ok_and(|status| status.success()) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn log_tails(&self) -> String {
        let mut out = String::new();
        for entry in walk(&self.dir).into_iter().filter(|path| path.ends_with("logs/server.log")) {
            let log = std::fs::read_to_string(&entry).unwrap_or_default();
            out.push_str(&format!("--- {}\n{}\n", entry.display(), &log[log.len().saturating_sub(3000)..]));
        }
        out
    }
}

impl Drop for PrivateKafka {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("private Kafka ({}):\n{}", self.dir.display(), self.log_tails());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn stack(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/stack.sh");
    let output = Command::new(script).args(args).output().expect("scripts/stack.sh runs");
    assert!(output.status.success(), "stack.sh {args:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
}

/// A base port such that base+1..=base+3 and base+11..=base+13 are free now.
fn free_base() -> u16 {
    loop {
        let base = TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
        let Some(base) = base.checked_sub(1).filter(|base| *base < 65_000) else { continue };
        let ports = [1, 2, 3, 11, 12, 13].map(|offset| base + offset);
        if ports.iter().all(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok()) {
            return base;
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}
