//! Dedupe, exact within its window. A signal's identity is (org, Segment `messageId`) when it
//! has one, so a redelivery re-serialised by another client is still caught; otherwise a hash of
//! its content that ignores key order and whitespace. Each identity is remembered with the
//! signal id that first carried it, in hour buckets: nothing is turned away while there is room,
//! and entries leave only by age (a bucket at a time), or, when `max_entries` is reached, the
//! oldest bucket goes early, said by a warning and a metric.
//!
//! Memory: one hash-map slot of 32 bytes per entry (a 16-byte hash, the 8-byte signal id and
//! the bucket), about 37 to 73 bytes with the map's spare capacity; 10 M entries fit in 750 MB.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use rdkafka::message::Message;
use simd_json::prelude::*;
use simd_json::{BorrowedValue, StaticNode};
use xxhash_rust::xxh3::{xxh3_128, Xxh3};

pub const ENTRIES: &str = "sigstage_stream_dedupe_entries";
pub const EVICTED_EARLY: &str = "sigstage_stream_dedupe_evicted_early_total";

/// Buckets per window: an entry lives between the window and the window plus one bucket.
const BUCKETS: u64 = 24;

pub struct Deduper {
    seen: HashMap<u128, Entry, Prehashed>,
    /// Entries per bucket still held, oldest first: `(bucket, count)`.
    counts: std::collections::BTreeMap<u64, usize>,
    bucket_ms: u64,
    window_ms: u64,
    max_entries: usize,
}

#[derive(Clone, Copy)]
struct Entry {
    signal_id: u64,
    bucket: u64,
}

/// What the window says of a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not seen within the window: remembered now.
    First,
    /// Seen before, first carried by this signal id.
    Repeat { first: u64 },
}

impl Deduper {
    pub fn new(max_entries: usize, window: Duration) -> Self {
        let window_ms = window.as_millis().max(BUCKETS as u128) as u64;
        Self {
            seen: HashMap::with_hasher(Prehashed),
            counts: Default::default(),
            bucket_ms: window_ms / BUCKETS,
            window_ms,
            max_entries: max_entries.max(1),
        }
    }

    /// The identity of a signal of `org` from `source`: its Segment `messageId`, else its content.
    pub fn identity(org: &str, source: &str, value: &BorrowedValue<'_>) -> u128 {
        let message_id = value.get("messageId").and_then(|id| id.as_str()).filter(|id| !id.trim().is_empty());
        let mut hasher = Xxh3::new();
        hasher.update(org.as_bytes());
        // A separator no org id contains, so ("ab", "c…") and ("a", "bc…") differ.
        hasher.update(&[0xff]);
        match message_id {
            Some(id) if source == "segment" => {
                hasher.update(b"messageId\0");
                hasher.update(id.trim().as_bytes());
            }
            _ => hasher.update(&canonical(value).to_le_bytes()),
        }
        hasher.digest128()
    }

    /// Whether `hash` was seen within the window; remembers it (first carried by `signal_id`,
    /// at `at_ms`) when it was not.
    pub fn check(&mut self, hash: u128, signal_id: u64, at_ms: u64) -> Verdict {
        if let Some(entry) = self.seen.get(&hash) {
            if self.is_live(entry.bucket, at_ms) {
                return Verdict::Repeat { first: entry.signal_id };
            }
        }
        self.insert(hash, signal_id, at_ms);
        Verdict::First
    }

    /// Puts back the entries a changelog record holds (see [`Changelog`]); those older than the
    /// window as of `now_ms` are skipped, as is a malformed record. Answers how many were kept.
    pub fn restore_record(&mut self, record: &impl Message, now_ms: u64) -> usize {
        let (key, value) = (record.key().unwrap_or_default(), record.payload().unwrap_or_default());
        let timestamp_ms = record.timestamp().to_millis().unwrap_or(0).max(0) as u64;
        changelog_entries(key, value, timestamp_ms)
            .filter(|&(hash, signal_id, seen_ms)| self.restore(hash, signal_id, seen_ms, now_ms))
            .count()
    }

    /// Puts back an entry from the changelog (first seen at `seen_ms`); older ones than the
    /// window as of `now_ms` are skipped. True when kept.
    pub fn restore(&mut self, hash: u128, signal_id: u64, seen_ms: u64, now_ms: u64) -> bool {
        if seen_ms + self.window_ms < now_ms {
            return false;
        }
        self.insert(hash, signal_id, seen_ms);
        true
    }

    /// Drops the buckets that have left the window by `now_ms`.
    pub fn expire(&mut self, now_ms: u64) {
        let oldest_live = now_ms.saturating_sub(self.window_ms) / self.bucket_ms;
        if self.counts.first_key_value().is_some_and(|(&bucket, _)| bucket < oldest_live) {
            self.counts.retain(|&bucket, _| bucket >= oldest_live);
            self.seen.retain(|_, entry| entry.bucket >= oldest_live);
            metrics::gauge!(ENTRIES).set(self.seen.len() as f64);
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn is_live(&self, bucket: u64, at_ms: u64) -> bool {
        bucket >= at_ms.saturating_sub(self.window_ms) / self.bucket_ms
    }

    fn insert(&mut self, hash: u128, signal_id: u64, at_ms: u64) {
        let bucket = at_ms / self.bucket_ms;
        if let Some(previous) = self.seen.insert(hash, Entry { signal_id, bucket }) {
            self.forget(previous.bucket);
        }
        *self.counts.entry(bucket).or_default() += 1;
        if self.seen.len() > self.max_entries {
            self.evict_oldest_early();
        }
        metrics::gauge!(ENTRIES).set(self.seen.len() as f64);
    }

    fn forget(&mut self, bucket: u64) {
        if let Some(count) = self.counts.get_mut(&bucket) {
            *count -= 1;
            if *count == 0 {
                self.counts.remove(&bucket);
            }
        }
    }

    fn evict_oldest_early(&mut self) {
        let Some((bucket, count)) = self.counts.pop_first() else { return };
        self.seen.retain(|_, entry| entry.bucket != bucket);
        metrics::counter!(EVICTED_EARLY).increment(count as u64);
        tracing::warn!(
            evicted = count,
            max_entries = self.max_entries,
            "the dedupe window is full: its oldest hour was dropped early, so repeats older than the \
             remaining window are no longer caught (raise the entry bound, or expect fewer repeats)"
        );
    }
}

/// Bytes of one entry in a changelog record: the identity hash, the first signal id and the time
/// it was first seen, big-endian.
pub const ENTRY_BYTES: usize = 32;

/// Entries in one changelog record at most (512 KiB, well under the topic's record size).
const RECORD_ENTRIES: usize = 16_384;

/// The entries a batch adds to the window, as changelog records (`stream.dedupe`, kept for the
/// window): one record per raw partition the batch read (more past [`RECORD_ENTRIES`]), written
/// in the batch's transaction, instead of one record per signal. A record's key is the raw
/// offset of its first entry's signal (live or historical: the key is informative, the topic is
/// not compacted), and its time the newest entry's, so retention keeps it until its last entry
/// has left the window.
#[derive(Default)]
pub struct Changelog {
    partitions: std::collections::BTreeMap<i32, Vec<ChangelogRecord>>,
}

pub struct ChangelogRecord {
    pub partition: i32,
    pub key: [u8; 8],
    pub value: Vec<u8>,
    pub timestamp_ms: u64,
}

impl Changelog {
    /// Adds the entry of the signal at `offset` of raw `partition`.
    pub fn push(&mut self, partition: i32, offset: i64, hash: u128, signal_id: u64, seen_ms: u64) {
        let records = self.partitions.entry(partition).or_default();
        if records.last().is_none_or(|record| record.value.len() >= RECORD_ENTRIES * ENTRY_BYTES) {
            let value = Vec::with_capacity(ENTRY_BYTES * 64);
            records.push(ChangelogRecord { partition, key: offset.to_be_bytes(), value, timestamp_ms: 0 });
        }
        let record = records.last_mut().expect("pushed above");
        record.value.extend_from_slice(&hash.to_be_bytes());
        record.value.extend_from_slice(&signal_id.to_be_bytes());
        record.value.extend_from_slice(&seen_ms.to_be_bytes());
        record.timestamp_ms = record.timestamp_ms.max(seen_ms);
    }

    pub fn into_records(self) -> impl Iterator<Item = ChangelogRecord> {
        self.partitions.into_values().flatten()
    }
}

/// The entries `(hash, first signal id, first seen)` of a changelog record. A record written
/// before entries were batched holds one: the hash as its key, the signal id as its value and
/// the time first seen as its timestamp. Anything else holds none.
pub fn changelog_entries<'a>(
    key: &[u8],
    value: &'a [u8],
    timestamp_ms: u64,
) -> impl Iterator<Item = (u128, u64, u64)> + 'a {
    let single = match (<[u8; 16]>::try_from(key), <[u8; 8]>::try_from(value)) {
        (Ok(hash), Ok(signal_id)) => Some((u128::from_be_bytes(hash), u64::from_be_bytes(signal_id), timestamp_ms)),
        _ => None,
    };
    let batched =
        if single.is_none() && key.len() == 8 && value.len().is_multiple_of(ENTRY_BYTES) { value } else { &[] };
    single.into_iter().chain(batched.chunks_exact(ENTRY_BYTES).map(|entry| {
        let (hash, rest) = entry.split_at(16);
        let (signal_id, seen_ms) = rest.split_at(8);
        (
            u128::from_be_bytes(hash.try_into().expect("16 bytes")),
            u64::from_be_bytes(signal_id.try_into().expect("8 bytes")),
            u64::from_be_bytes(seen_ms.try_into().expect("8 bytes")),
        )
    }))
}

/// A hash of a JSON value that ignores key order and whitespace: objects combine their
/// members' hashes with a commutative sum, arrays keep their order.
pub fn canonical(value: &BorrowedValue<'_>) -> u128 {
    match value {
        BorrowedValue::Object(members) => members.iter().fold(0x6f_u128, |sum, (key, member)| {
            sum.wrapping_add(joined(&[key.as_bytes(), &[0], &canonical(member).to_le_bytes()]))
        }),
        BorrowedValue::Array(items) => {
            let mut hasher = Xxh3::new();
            hasher.update(b"[");
            for item in items.iter() {
                hasher.update(&canonical(item).to_le_bytes());
            }
            hasher.digest128()
        }
        BorrowedValue::String(text) => joined(&[b"\"", text.as_bytes()]),
        BorrowedValue::Static(node) => match node {
            StaticNode::Null => xxh3_128(b"null"),
            StaticNode::Bool(flag) => xxh3_128(if *flag { b"true" } else { b"false" }),
            // One number, one hash, whichever way it was written (1, 1.0, 1e0).
            StaticNode::I64(n) => number(*n as f64, Some(*n as i128)),
            StaticNode::U64(n) => number(*n as f64, Some(*n as i128)),
            StaticNode::F64(n) => number(*n, (n.fract() == 0.0 && n.abs() < 9.0e15).then_some(*n as i128)),
        },
    }
}

/// xxh3-128 of `parts` one after the other: what one `Xxh3` fed each in turn digests, without
/// that hasher's state (a 256-byte buffer and more) when they fit on the stack, as keys and
/// most values do.
fn joined(parts: &[&[u8]]) -> u128 {
    let mut buffer = [0u8; 128];
    let length: usize = parts.iter().map(|part| part.len()).sum();
    if length > buffer.len() {
        let mut hasher = Xxh3::new();
        parts.iter().for_each(|part| hasher.update(part));
        return hasher.digest128();
    }
    let mut at = 0;
    for part in parts {
        buffer[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    xxh3_128(&buffer[..length])
}

fn number(float: f64, integer: Option<i128>) -> u128 {
    match integer {
        Some(n) => xxh3_128(&[b"i".as_slice(), &n.to_le_bytes()].concat()),
        None => xxh3_128(&[b"f".as_slice(), &float.to_bits().to_le_bytes()].concat()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;

    fn identity(org: &str, source: &str, json: &str) -> u128 {
        let mut bytes = json.as_bytes().to_vec();
        let value = simd_json::to_borrowed_value(&mut bytes).expect("json");
        Deduper::identity(org, source, &value)
    }

    #[test]
    fn parts_hash_as_one_hasher_fed_each_would_so_stored_identities_still_match() {
        for length in [0, 1, 16, 110, 111, 127, 128, 129, 500] {
            let text: Vec<u8> = (0..length).map(|i| (i % 251) as u8).collect();
            let mut hasher = Xxh3::new();
            hasher.update(&text);
            hasher.update(&[0]);
            hasher.update(&[7; 16]);
            assert_eq!(joined(&[&text, &[0], &[7; 16]]), hasher.digest128(), "{length} bytes");
        }
    }

    #[test]
    fn identity_ignores_key_order_and_whitespace_and_segment_uses_the_message_id() {
        let a = identity("acme", "webhook", r#"{"event":"x","n":1,"tags":["a","b"],"p":{"q":1.0}}"#);
        let b =
            identity("acme", "webhook", "{ \"p\": {\"q\": 1}, \"tags\" : [\"a\",\"b\"],\n\"n\":1, \"event\":\"x\"}");
        assert_eq!(a, b);
        assert_ne!(
            a,
            identity("acme", "webhook", r#"{"event":"x","n":1,"tags":["b","a"],"p":{"q":1}}"#),
            "array order"
        );
        assert_ne!(a, identity("acme", "webhook", r#"{"event":"x","n":2,"tags":["a","b"],"p":{"q":1}}"#));
        assert_ne!(a, identity("other", "webhook", r#"{"event":"x","n":1,"tags":["a","b"],"p":{"q":1}}"#), "org");
        assert_ne!(identity("ab", "webhook", "{}"), identity("a", "webhook", "{}"));
        // Re-serialised by another Segment client: same messageId, other fields and order.
        let sent = identity("acme", "segment", r#"{"type":"track","messageId":"m1","sentAt":"2026-01-01T00:00:00Z"}"#);
        let again = identity("acme", "segment", r#"{"sentAt":"2026-01-01T00:00:09Z","messageId":"m1","type":"track"}"#);
        assert_eq!(sent, again);
        assert_ne!(sent, identity("acme", "segment", r#"{"type":"track","messageId":"m2"}"#));
        assert_ne!(
            identity("acme", "webhook", r#"{"messageId":"m1"}"#),
            identity("acme", "webhook", r#"{"messageId":"m1","x":1}"#),
            "only Segment's messageId is an identity"
        );
    }

    #[test]
    fn repeats_are_caught_with_the_first_signal_id_until_they_age_out() {
        let mut deduper = Deduper::new(1000, Duration::from_millis(24 * HOUR));
        let t0 = 100 * HOUR;
        assert_eq!(deduper.check(7, 1, t0), Verdict::First);
        assert_eq!(deduper.check(7, 2, t0 + HOUR), Verdict::Repeat { first: 1 });
        // A repeat does not extend the entry's life.
        assert_eq!(deduper.check(7, 3, t0 + 23 * HOUR), Verdict::Repeat { first: 1 });
        deduper.expire(t0 + 26 * HOUR);
        assert!(deduper.is_empty());
        assert_eq!(deduper.check(7, 4, t0 + 26 * HOUR), Verdict::First);
    }

    #[test]
    fn a_full_window_turns_nothing_away_and_drops_its_oldest_hour() {
        let mut deduper = Deduper::new(3, Duration::from_millis(24 * HOUR));
        let t0 = 100 * HOUR;
        for (hash, hour) in [(1, 0), (2, 1), (3, 2), (4, 3)] {
            assert_eq!(deduper.check(hash, hash as u64, t0 + hour * HOUR), Verdict::First);
        }
        assert_eq!(deduper.len(), 3);
        assert_eq!(deduper.check(4, 9, t0 + 3 * HOUR), Verdict::Repeat { first: 4 }, "the newest was kept");
        assert_eq!(deduper.check(1, 9, t0 + 3 * HOUR), Verdict::First, "the oldest hour went");
    }

    #[test]
    fn a_changelog_holds_each_partitions_entries_and_reads_back_with_the_single_entry_records_before_it() {
        let mut changelog = Changelog::default();
        changelog.push(1, 40, 7, 70, 1_000);
        changelog.push(0, 10, 8, 80, 3_000);
        changelog.push(1, 41, 9, 90, 2_000);
        let records: Vec<_> = changelog.into_records().collect();
        assert_eq!(
            records.iter().map(|r| (r.partition, i64::from_be_bytes(r.key))).collect::<Vec<_>>(),
            [(0, 10), (1, 40)]
        );
        assert_eq!(records[1].timestamp_ms, 2_000, "the newest entry's time");
        let read: Vec<_> = changelog_entries(&records[1].key, &records[1].value, 0).collect();
        assert_eq!(read, [(7, 70, 1_000), (9, 90, 2_000)]);
        // Written by an earlier version: one entry, its time the record's.
        let single: Vec<_> = changelog_entries(&5u128.to_be_bytes(), &50u64.to_be_bytes(), 4_000).collect();
        assert_eq!(single, [(5, 50, 4_000)]);
        assert_eq!(changelog_entries(&[1; 8], &[0; 33], 0).count(), 0, "malformed");
        assert_eq!(changelog_entries(&[], &[], 0).count(), 0);
    }

    #[test]
    fn a_changelog_record_holds_a_bounded_number_of_entries() {
        let mut changelog = Changelog::default();
        for n in 0..RECORD_ENTRIES as u64 + 1 {
            changelog.push(0, n as i64, n as u128, n, n);
        }
        let records: Vec<_> = changelog.into_records().collect();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].key, (RECORD_ENTRIES as i64).to_be_bytes(), "keyed by its own first entry");
        assert_eq!(
            records.iter().map(|r| changelog_entries(&r.key, &r.value, 0).count()).sum::<usize>(),
            RECORD_ENTRIES + 1
        );
    }

    #[test]
    fn restore_skips_what_has_left_the_window() {
        let mut deduper = Deduper::new(10, Duration::from_millis(24 * HOUR));
        let now = 100 * HOUR;
        assert!(deduper.restore(1, 11, now - 2 * HOUR, now));
        assert!(!deduper.restore(2, 12, now - 30 * HOUR, now));
        assert_eq!(deduper.check(1, 99, now), Verdict::Repeat { first: 11 });
        assert_eq!(deduper.check(2, 99, now), Verdict::First);
    }
}
