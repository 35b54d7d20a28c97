//! Dedupe by content hash: xxh3-128 of the org and the signal's bytes, remembered in a moka
//! cache bounded by entries and by time. Segment's at-least-once redeliveries and a sender's
//! retries carry the same bytes, so they hash the same and only the first goes on.

use std::time::Duration;

use moka::sync::Cache;
use xxhash_rust::xxh3::Xxh3;

pub struct Deduper {
    seen: Cache<u128, ()>,
}

impl Deduper {
    pub fn new(max_entries: u64, window: Duration) -> Self {
        Self { seen: Cache::builder().max_capacity(max_entries).time_to_live(window).build() }
    }

    /// The content hash of a signal of `org`.
    pub fn hash(org: &str, payload: &[u8]) -> u128 {
        let mut hasher = Xxh3::new();
        hasher.update(org.as_bytes());
        // A separator no org id contains, so ("ab", "c…") and ("a", "bc…") differ.
        hasher.update(&[0xff]);
        hasher.update(payload.trim_ascii());
        hasher.digest128()
    }

    /// True the first time `hash` is offered within the window, false for every repeat.
    /// Atomic: of concurrent offers of one hash, exactly one is first.
    pub fn first_seen(&self, hash: u128) -> bool {
        self.seen.entry(hash).or_insert(()).is_fresh()
    }

    /// Records a hash seen elsewhere (another processor, an earlier run).
    pub fn remember(&self, hash: u128) {
        self.seen.insert(hash, ());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_caught_per_org() {
        let deduper = Deduper::new(1000, Duration::from_secs(60));
        let body = br#"{"event":"x","messageId":"m1"}"#;
        assert!(deduper.first_seen(Deduper::hash("acme", body)));
        assert!(!deduper.first_seen(Deduper::hash("acme", body)));
        assert!(!deduper.first_seen(Deduper::hash("acme", b" {\"event\":\"x\",\"messageId\":\"m1\"}\n")), "padding");
        assert!(deduper.first_seen(Deduper::hash("other", body)), "another org's identical signal is its own");
        assert_ne!(Deduper::hash("ab", b"c"), Deduper::hash("a", b"bc"));
    }

    #[test]
    fn of_concurrent_offers_exactly_one_is_first() {
        let deduper = std::sync::Arc::new(Deduper::new(1000, Duration::from_secs(60)));
        let hash = Deduper::hash("acme", b"{}");
        let firsts: usize = (0..8)
            .map(|_| {
                let deduper = deduper.clone();
                std::thread::spawn(move || (0..1000).filter(|_| deduper.first_seen(hash)).count())
            })
            .map(|handle| handle.join().expect("thread"))
            .sum();
        assert_eq!(firsts, 1);
    }
}
