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
        let base = free_base(20);
        PrivateKafka { dir: std::env::temp_dir().join(unique("kafka")), ports: vec![base + 1] }
    }

    /// Three brokers (replication 3, `min.insync.replicas` 2), not started yet.
    pub fn cluster() -> Self {
        let base = free_base(20);
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

pub fn stack(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/stack.sh");
    let output = Command::new(script).args(args).output().expect("scripts/stack.sh runs");
    assert!(output.status.success(), "stack.sh {args:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
}

/// A base port such that base..base+span are free now, below the system's ephemeral range: a
/// port the OS hands out to another test's listener or outgoing connection (which took a
/// broker's port between this check and the broker's bind once) never falls there.
pub fn free_base(span: u16) -> u16 {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let (low, high) = (10_000u16, ephemeral_low.saturating_sub(20));
    assert!(high > low + 100, "the ephemeral port range starts at {ephemeral_low}: no room below it");
    // One cursor per process (the first port no range has been given from), so two tests
    // never get overlapping ranges; it starts where the process id puts it, apart from another
    // run's.
    static CURSOR: std::sync::Mutex<Option<u16>> = std::sync::Mutex::new(None);
    let mut cursor = CURSOR.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut base = cursor.unwrap_or(low + (std::process::id() % u32::from(high - low)) as u16);
    loop {
        if base + span >= high {
            base = low;
        }
        if (base..base + span).all(|port| TcpListener::bind(("127.0.0.1", port)).is_ok()) {
            *cursor = Some(base + span);
            return base;
        }
        base += span;
    }
}

pub fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
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
