//! The import's progress bar: bytes of the file read (with ETA) and signals per second.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: ProgressBar,
    counts: Arc<Counts>,
    ticker: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Counts {
    accepted: AtomicU64,
    rejected: AtomicU64,
}

impl Progress {
    /// A bar over `size` bytes of `path`, following `bytes_read`. Drawn on stderr when it is a
    /// terminal; otherwise (logs, CI) a line every 10 seconds.
    pub fn new(path: &Path, size: u64, bytes_read: Arc<AtomicU64>) -> Self {
        let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{prefix} [{bar:30}] {percent:>3}% {msg} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(path.display().to_string());
        let counts = Arc::new(Counts::default());
        let interactive = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let ticker = {
            let (bar, counts) = (bar.clone(), Arc::clone(&counts));
            let started = Instant::now();
            let mut last_line = Instant::now();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let accepted = counts.accepted.load(Ordering::Relaxed);
                    let rejected = counts.rejected.load(Ordering::Relaxed);
                    let rate = accepted as f64 / started.elapsed().as_secs_f64().max(0.001);
                    let message = format!("{accepted} accepted, {rejected} rejected, {rate:.0} signals/s");
                    bar.set_position(bytes_read.load(Ordering::Relaxed));
                    bar.set_message(message.clone());
                    if !interactive && last_line.elapsed() >= Duration::from_secs(10) {
                        eprintln!("import: {message}");
                        last_line = Instant::now();
                    }
                }
            })
        };
        Progress { bar, counts, ticker }
    }

    pub fn add(&self, accepted: u64, rejected: u64) {
        self.counts.accepted.fetch_add(accepted, Ordering::Relaxed);
        self.counts.rejected.fetch_add(rejected, Ordering::Relaxed);
    }

    pub fn println(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    pub fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}
