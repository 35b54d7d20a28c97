//! Dedupe by content hash: xxh3-128 of the org and the signal's bytes, remembered in a moka
//! cache bounded by entries and by time. Segment's at-least-once redeliveries and a sender's
//! retries carry the same bytes, so they hash the same and only the first goes on.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use moka::sync::Cache;
use xxhash_rust::xxh3::Xxh3;

pub struct Deduper {
    seen: Cache<u128, (), Prehashed>,
}

/// Hashes keys that are already uniformly random (xxh3 digests) by taking their low 64 bits,
/// instead of running SipHash over them again.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prehashed;

impl BuildHasher for Prehashed {
    type Hasher = PrehashedHasher;

    fn build_hasher(&self) -> PrehashedHasher {
        PrehashedHasher(0)
    }
}

#[derive(Debug, Default)]
pub struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached for keys other than u128: fold them in, still correct if slower.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }

    fn write_u128(&mut self, value: u128) {
        self.0 ^= value as u64;
    }
}

impl Deduper {
    pub fn new(max_entries: u64, window: Duration) -> Self {
        Self { seen: Cache::builder().max_capacity(max_entries).time_to_live(window).build_with_hasher(Prehashed) }
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
