//! The dedupe window as the design first named it, a moka cache, kept only as the comparison
//! of the `dedupe` bench: `EvictionPolicy::lru()` (no TinyLFU admission filter, so nothing is
//! turned away), each entry expiring one window after its signal's receive time (a restored
//! entry keeps what is left of its lifetime), early evictions counted by the listener.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use stream::dedupe::{Prehashed, Verdict};

#[derive(Clone, Copy)]
struct Entry {
    signal_id: u64,
    seen_ms: u64,
}

struct ByAge {
    window_ms: u64,
}

impl ByAge {
    fn left(&self, entry: &Entry) -> Duration {
        let end_ms = entry.seen_ms.saturating_add(self.window_ms);
        Duration::from_millis(end_ms.saturating_sub(runtime::time::now_ms()))
    }
}

impl moka::Expiry<u128, Entry> for ByAge {
    fn expire_after_create(&self, _: &u128, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(self.left(entry))
    }

    fn expire_after_update(&self, _: &u128, entry: &Entry, _: Instant, _: Option<Duration>) -> Option<Duration> {
        Some(self.left(entry))
    }
}

pub struct MokaWindow {
    seen: moka::sync::Cache<u128, Entry, Prehashed>,
    window_ms: u64,
}

impl MokaWindow {
    pub fn new(max_entries: usize, window: Duration) -> Self {
        // Counted as `Deduper` counts them (the listener runs only on an eviction).
        let counting = Arc::new(AtomicU64::new(0));
        let window_ms = window.as_millis() as u64;
        let seen = moka::sync::Cache::builder()
            .max_capacity(max_entries as u64)
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(ByAge { window_ms })
            .eviction_listener(move |_, _, cause| {
                if cause == RemovalCause::Size {
                    counting.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build_with_hasher(Prehashed);
        Self { seen, window_ms }
    }

    pub fn check(&mut self, hash: u128, signal_id: u64, at_ms: u64) -> Verdict {
        if let Some(entry) = self.seen.get(&hash) {
            if entry.seen_ms.saturating_add(self.window_ms) >= at_ms {
                return Verdict::Repeat { first: entry.signal_id };
            }
        }
        self.seen.insert(hash, Entry { signal_id, seen_ms: at_ms });
        Verdict::First
    }

    /// What `Deduper::expire` does once a batch: let the cache do its pending work.
    pub fn expire(&mut self) {
        self.seen.run_pending_tasks();
    }
}
