//! Signal ids: positive 63-bit integers, unique across instances, roughly time-ordered.
//!
//! Layout (most significant first): 41 bits of milliseconds since 2025-01-01 (good until 2094),
//! 10 bits of instance id, 12 bits of sequence within the millisecond. An instance leases its id
//! (see [`crate::lease`]): `SIGSTAGE_INSTANCE_ID` when set, refused while another running
//! instance holds it, or else the lowest free one. When
//! 4096 ids are taken in one millisecond, the generator moves on to the next millisecond rather
//! than repeat. Ids are larger than 2^53: JavaScript clients should read them as strings or BigInt.

use std::sync::atomic::{AtomicU64, Ordering};

const EPOCH_MS: u64 = 1_735_689_600_000; // 2025-01-01T00:00:00Z
const INSTANCE_BITS: u32 = 10;
const SEQUENCE_BITS: u32 = 12;
pub const MAX_INSTANCE: u16 = (1 << INSTANCE_BITS) - 1;

pub struct IdGenerator {
    instance: u64,
    /// The last id handed out, without the instance bits: `ms << SEQUENCE_BITS | sequence`.
    last: AtomicU64,
}

impl IdGenerator {
    pub fn new(instance: u16) -> Self {
        Self { instance: u64::from(instance & MAX_INSTANCE), last: AtomicU64::new(0) }
    }

    pub fn next(&self, now_ms: u64) -> u64 {
        let floor = now_ms.saturating_sub(EPOCH_MS) << SEQUENCE_BITS;
        let previous = self
            .last
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| Some(floor.max(last + 1)))
            .unwrap_or_else(|last| last);
        let stamp = floor.max(previous + 1);
        let ms = stamp >> SEQUENCE_BITS;
        let sequence = stamp & ((1 << SEQUENCE_BITS) - 1);
        (ms << (INSTANCE_BITS + SEQUENCE_BITS)) | (self.instance << SEQUENCE_BITS) | sequence
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_increasing_and_positive_even_within_a_millisecond() {
        let ids = IdGenerator::new(5);
        let now = EPOCH_MS + 1_000;
        let taken: Vec<u64> = (0..10_000).map(|_| ids.next(now)).collect();
        assert!(taken.windows(2).all(|w| w[0] < w[1]));
        assert!(taken.iter().all(|&id| id > 0 && id < i64::MAX as u64));
        assert_eq!(taken.iter().collect::<HashSet<_>>().len(), taken.len());
    }

    #[test]
    fn instances_never_collide() {
        let (a, b) = (IdGenerator::new(1), IdGenerator::new(2));
        let now = EPOCH_MS + 7;
        let from_a: HashSet<u64> = (0..5_000).map(|_| a.next(now)).collect();
        assert!((0..5_000).map(|_| b.next(now)).all(|id| !from_a.contains(&id)));
    }

    #[test]
    fn ids_stay_unique_across_threads() {
        let ids = std::sync::Arc::new(IdGenerator::new(3));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let ids = ids.clone();
                std::thread::spawn(move || (0..20_000).map(|_| ids.next(EPOCH_MS + 99)).collect::<Vec<_>>())
            })
            .collect();
        let all: Vec<u64> = handles.into_iter().flat_map(|h| h.join().expect("thread")).collect();
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), all.len());
    }
}
