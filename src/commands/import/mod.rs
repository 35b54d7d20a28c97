//! `sigstage import FILE...`: historical imports through the bulk endpoint, in chunks, with
//! bounded concurrency, retries, a progress bar, a summary, and `--resume`.
//!
//! Progress is recorded next to each file in `FILE.import-progress`: the chunk size, then the
//! index of every chunk the edge confirmed. `--resume` skips those chunks, so an interrupted
//! import re-sends only what was not confirmed. Signals the edge refused for good (invalid,
//! over the plan limit) are written to `FILE.rejected.ndjson` with the reason.

mod input;
mod progress;
mod send;

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::sync::{mpsc, Mutex};

use self::input::Input;
use self::progress::Progress;
use self::send::{ChunkError, Sender};

/// Largest body a chunk is allowed to reach, well under the edge's bulk limit.
const MAX_CHUNK_BYTES: usize = 8 << 20;

#[derive(clap::Args)]
pub struct ImportArgs {
    /// Files: a JSON array, {"signals": [...]}, or NDJSON; gzipped files too.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// API key of the org to import into.
    #[arg(long)]
    key: String,
    /// The key's shared secret, when it has one.
    #[arg(long)]
    secret: Option<String>,
    /// Base URL of the sigstage edge.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Signals per request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    chunk_size: u32,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    concurrency: u32,
    /// Skip chunks an earlier run confirmed (see FILE.import-progress).
    #[arg(long)]
    resume: bool,
    /// Attempts per chunk before giving up on it (a later --resume retries it).
    #[arg(long, default_value_t = 10)]
    max_attempts: u32,
}

/// Totals over every file.
#[derive(Default)]
struct Totals {
    accepted: u64,
    rejected: BTreeMap<String, u64>,
    skipped_chunks: u64,
    failed_chunks: u64,
}

pub async fn run(args: ImportArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(args.concurrency as usize)
        .build()
        .context("building the HTTP client")?;
    let sender = Arc::new(Sender {
        client,
        url: format!("{}/api/signal-staging/bulk/{}", args.url.trim_end_matches('/'), args.key),
        secret: args.secret.clone(),
        max_attempts: args.max_attempts.max(1),
    });
    let started = Instant::now();
    let mut totals = Totals::default();
    for file in &args.files {
        import_file(file, &args, &sender, &mut totals).await?;
    }
    let rejected: u64 = totals.rejected.values().sum();
    let reasons: Vec<String> = totals.rejected.iter().map(|(code, n)| format!("{code}: {n}")).collect();
    println!(
        "import done in {:.1}s: {} accepted, {} rejected{}{}{}",
        started.elapsed().as_secs_f64(),
        totals.accepted,
        rejected,
        if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) },
        if totals.skipped_chunks > 0 {
            format!(", {} chunks skipped (already confirmed)", totals.skipped_chunks)
        } else {
            String::new()
        },
        if totals.failed_chunks > 0 { format!(", {} chunks failed", totals.failed_chunks) } else { String::new() },
    );
    if totals.failed_chunks > 0 {
        bail!("{} chunks were not delivered; run the same command with --resume to retry them", totals.failed_chunks);
    }
    Ok(())
}

struct Chunk {
    index: u64,
    signals: Vec<String>,
}

async fn import_file(path: &Path, args: &ImportArgs, sender: &Arc<Sender>, totals: &mut Totals) -> anyhow::Result<()> {
    let progress_path = sidecar(path, "import-progress");
    let confirmed = if args.resume { read_progress(&progress_path, args.chunk_size)? } else { HashSet::new() };
    let mut progress_file = open_progress(&progress_path, args.chunk_size, args.resume)?;
    let rejected_path = sidecar(path, "rejected.ndjson");
    let mut rejected_file = None;

    let input = Input::open(path)?;
    let progress = Progress::new(path, input.size, Arc::clone(&input.bytes_read));
    let (chunks_tx, chunks_rx) = mpsc::channel::<Chunk>(args.concurrency as usize);
    let chunk_size = args.chunk_size as usize;
    let reader = tokio::task::spawn_blocking(move || chunk_file(input, chunk_size, &confirmed, &chunks_tx));

    let chunks_rx = Arc::new(Mutex::new(chunks_rx));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    for _ in 0..args.concurrency {
        let (sender, chunks_rx, done_tx) = (Arc::clone(sender), Arc::clone(&chunks_rx), done_tx.clone());
        tokio::spawn(async move {
            loop {
                let Some(chunk) = chunks_rx.lock().await.recv().await else { break };
                let outcome = sender.send_chunk(&chunk.signals).await;
                if done_tx.send((chunk, outcome)).is_err() {
                    break;
                }
            }
        });
    }
    drop(done_tx);

    let mut fatal = None;
    while let Some((chunk, outcome)) = done_rx.recv().await {
        match outcome {
            Ok(outcome) => {
                totals.accepted += outcome.accepted;
                progress.add(outcome.accepted, outcome.rejected.len() as u64);
                for (index, code, message) in &outcome.rejected {
                    *totals.rejected.entry(code.clone()).or_default() += 1;
                    let file = match &mut rejected_file {
                        Some(file) => file,
                        None => rejected_file.insert(std::fs::File::create(&rejected_path).with_context(|| {
                            format!("cannot write rejected signals to {}", rejected_path.display())
                        })?),
                    };
                    let line = format!(
                        "{{\"chunk\":{},\"index\":{index},\"error\":{},\"message\":{},\"signal\":{}}}\n",
                        chunk.index,
                        serde_json::Value::from(code.as_str()),
                        serde_json::Value::from(message.as_str()),
                        serde_json::to_string(&chunk.signals[*index])?,
                    );
                    file.write_all(line.as_bytes())?;
                }
                writeln!(progress_file, "{}", chunk.index)?;
                progress_file.flush()?;
            }
            Err(ChunkError::GaveUp(reason)) => {
                totals.failed_chunks += 1;
                progress.println(&format!("chunk {} of {}: {reason}", chunk.index, path.display()));
            }
            Err(ChunkError::Fatal(reason)) => {
                fatal = Some(reason);
                break;
            }
        }
    }
    progress.finish();
    if let Some(reason) = fatal {
        bail!("{}: {reason}", path.display());
    }
    totals.skipped_chunks += reader.await.context("the file reader stopped")??;
    Ok(())
}

/// Reads `input` into chunks of `chunk_size` signals (fewer when a chunk would pass
/// MAX_CHUNK_BYTES), numbered in file order, and queues those not yet `confirmed`. Answers how
/// many were skipped.
fn chunk_file(
    mut input: Input,
    chunk_size: usize,
    confirmed: &HashSet<u64>,
    out: &mpsc::Sender<Chunk>,
) -> anyhow::Result<u64> {
    let (mut index, mut skipped, mut bytes) = (0u64, 0u64, 0usize);
    let mut signals = Vec::with_capacity(chunk_size);
    let mut emit = |signals: &mut Vec<String>, index: &mut u64| -> bool {
        let chunk = Chunk { index: *index, signals: std::mem::take(signals) };
        *index += 1;
        if confirmed.contains(&chunk.index) {
            skipped += 1;
            return true;
        }
        out.blocking_send(chunk).is_ok()
    };
    while let Some(signal) = input.next_signal()? {
        if !signals.is_empty() && (signals.len() == chunk_size || bytes + signal.len() > MAX_CHUNK_BYTES) {
            if !emit(&mut signals, &mut index) {
                return Ok(skipped);
            }
            bytes = 0;
        }
        bytes += signal.len() + 1;
        signals.push(signal);
    }
    if !signals.is_empty() {
        emit(&mut signals, &mut index);
    }
    Ok(skipped)
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

fn progress_header(chunk_size: u32) -> String {
    format!("sigstage-import v1 chunk-size={chunk_size}")
}

fn read_progress(path: &Path, chunk_size: u32) -> anyhow::Result<HashSet<u64>> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(HashSet::new()) };
    match text.lines().next() {
        Some(header) if header == progress_header(chunk_size) => {}
        Some(header) => bail!(
            "{} was written by a run with different settings ({header}); resume with the same --chunk-size",
            path.display()
        ),
        None => return Ok(HashSet::new()),
    }
    // Only whole lines count: one cut short by an interruption is ignored, and its chunk is
    // simply sent again.
    let body = text.split_once('\n').map_or("", |(_, body)| body);
    Ok(body
        .split_inclusive('\n')
        .filter(|line| line.ends_with('\n'))
        .filter_map(|line| line.trim().parse().ok())
        .collect())
}

fn open_progress(path: &Path, chunk_size: u32, resume: bool) -> anyhow::Result<std::fs::File> {
    let existing = resume && path.exists();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(existing)
        .write(true)
        .truncate(!existing)
        .open(path)
        .with_context(|| format!("cannot write progress to {}", path.display()))?;
    if !existing {
        writeln!(file, "{}", progress_header(chunk_size))?;
    } else if !std::fs::read(path)?.ends_with(b"\n") {
        // End the line an interruption cut short, so the next index starts on its own line.
        writeln!(file)?;
    }
    Ok(file)
}
