//! Reading import files: a JSON array, `{"signals": [...]}`, or NDJSON, optionally gzipped
//! (by `.gz` extension or gzip magic bytes). Signals come out in file order, as raw JSON text.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Counts bytes read from the file (compressed, when gzipped) for the progress bar.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// An open import file: its signals, one at a time.
pub struct Input {
    lines: Box<dyn BufRead + Send>,
    /// A whole-document JSON file, already split.
    parsed: Option<std::vec::IntoIter<Box<RawValue>>>,
    pub bytes_read: Arc<AtomicU64>,
    pub size: u64,
    line_number: u64,
}

#[derive(Deserialize)]
struct Wrapped {
    signals: Vec<Box<RawValue>>,
}

impl Input {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let bytes_read = Arc::new(AtomicU64::new(0));
        let mut raw = BufReader::with_capacity(1 << 20, Counting { inner: file, read: Arc::clone(&bytes_read) });
        let gzipped = path.extension().is_some_and(|ext| ext == "gz") || raw.fill_buf()?.starts_with(&[0x1f, 0x8b]);
        let mut lines: Box<dyn BufRead + Send> = if gzipped {
            Box::new(BufReader::with_capacity(1 << 20, flate2::read::MultiGzDecoder::new(raw)))
        } else {
            Box::new(raw)
        };
        // A file whose first non-blank byte is `[`, or `{"signals"`, is one JSON document.
        let first = loop {
            let buf = lines.fill_buf()?;
            match buf.iter().position(|b| !b.is_ascii_whitespace()) {
                Some(at) => break Some(buf[at]),
                None if buf.is_empty() => break None,
                None => {
                    let n = buf.len();
                    lines.consume(n);
                }
            }
        };
        let mut input = Input { lines, parsed: None, bytes_read, size, line_number: 0 };
        match first {
            Some(b'[') => {
                let signals: Vec<Box<RawValue>> = serde_json::from_reader(&mut input.lines)
                    .with_context(|| format!("{} is not a valid JSON array", path.display()))?;
                input.parsed = Some(signals.into_iter());
            }
            Some(b'{') if looks_wrapped(&mut input.lines)? => {
                let wrapped: Wrapped = serde_json::from_reader(&mut input.lines)
                    .with_context(|| format!("{} is not a valid {{\"signals\": [...]}} document", path.display()))?;
                input.parsed = Some(wrapped.signals.into_iter());
            }
            None => bail!("{} is empty", path.display()),
            _ => {} // NDJSON: read line by line.
        }
        Ok(input)
    }

    /// The next signal's JSON text, or `None` at the end. NDJSON lines are passed on as they
    /// are (the edge reports invalid ones); blank lines are skipped.
    pub fn next_signal(&mut self) -> anyhow::Result<Option<String>> {
        if let Some(parsed) = &mut self.parsed {
            return Ok(parsed.next().map(|raw| raw.get().to_owned()));
        }
        let mut line = String::new();
        loop {
            line.clear();
            if self.lines.read_line(&mut line).with_context(|| format!("reading line {}", self.line_number + 1))? == 0 {
                return Ok(None);
            }
            self.line_number += 1;
            let trimmed = line.trim();
            if !trimmed.is_empty() {
                return Ok(Some(trimmed.to_owned()));
            }
        }
    }
}

/// Whether an object-first file is `{"signals": ...}` (one document) rather than NDJSON whose
/// first line is an object: NDJSON has a newline before the end of the first buffer's object.
fn looks_wrapped(reader: &mut Box<dyn BufRead + Send>) -> anyhow::Result<bool> {
    let buf = reader.fill_buf()?;
    let head = String::from_utf8_lossy(&buf[..buf.len().min(4096)]);
    let compact: String = head.chars().filter(|c| !c.is_whitespace()).collect();
    Ok(compact.starts_with("{\"signals\":["))
}
