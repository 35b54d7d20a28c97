//! The signal queue as a processor keeps it between flushes: signals no rule of their org
//! matched, counted by (org, source, event), with the first payload seen as the sample. A
//! group costs one allocation when it first appears; every later signal of it, none.

use std::collections::HashMap;

use control::signal_queue::{self, QueuedGroup, SAMPLE_MAX_BYTES};

#[derive(Default)]
pub struct SignalQueue {
    /// `org \0 source \0 event` → the group.
    groups: HashMap<String, QueuedGroup>,
    scratch: String,
}

impl SignalQueue {
    pub fn count(&mut self, org: &str, source: &str, event: &str, at_ms: u64, payload: &[u8]) {
        self.scratch.clear();
        for (i, part) in [org, source, event].into_iter().enumerate() {
            if i > 0 {
                self.scratch.push('\0');
            }
            self.scratch.push_str(part);
        }
        if let Some(group) = self.groups.get_mut(self.scratch.as_str()) {
            group.signals += 1;
            group.first_seen_ms = group.first_seen_ms.min(at_ms);
            group.last_seen_ms = group.last_seen_ms.max(at_ms);
            return;
        }
        self.groups.insert(
            self.scratch.clone(),
            QueuedGroup {
                org_id: org.to_owned(),
                source: source.to_owned(),
                event: event.to_owned(),
                signals: 1,
                first_seen_ms: at_ms,
                last_seen_ms: at_ms,
                sample: sample(payload),
            },
        );
    }

    /// Empties the samples of `org` that mention `value` (a deleted person's email or visitor).
    pub fn scrub(&mut self, org: &str, value: &str) {
        for group in self.groups.values_mut().filter(|group| group.org_id == org) {
            if group.sample.contains(value) {
                group.sample.clear();
            }
        }
    }

    /// The groups counted since the last call.
    pub fn take(&mut self) -> Vec<QueuedGroup> {
        self.groups.drain().map(|(_, group)| group).collect()
    }

    /// Puts back groups that could not be written, adding to what was counted since.
    pub fn restore(&mut self, groups: Vec<QueuedGroup>) {
        for group in groups {
            let key = format!("{}\0{}\0{}", group.org_id, group.source, group.event);
            match self.groups.get_mut(&key) {
                Some(newer) => {
                    newer.signals += group.signals;
                    newer.first_seen_ms = newer.first_seen_ms.min(group.first_seen_ms);
                    newer.last_seen_ms = newer.last_seen_ms.max(group.last_seen_ms);
                }
                None => {
                    self.groups.insert(key, group);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

fn sample(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload);
    let mut end = text.len().min(SAMPLE_MAX_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Writes the signal queue's counts since the last flush; on failure they are kept for the next.
pub async fn flush(client: &clickhouse::Client, queue: &mut SignalQueue) {
    let unwritten = write(client, queue.take()).await;
    queue.restore(unwritten);
}

/// Writes counts taken from a queue; answers those not written, to put back for the next flush.
pub async fn write(client: &clickhouse::Client, groups: Vec<QueuedGroup>) -> Vec<QueuedGroup> {
    if groups.is_empty() {
        return groups;
    }
    match signal_queue::append(client, &groups).await {
        Ok(()) => Vec::new(),
        Err(error) => {
            tracing::warn!(%error, groups = groups.len(), "signal queue counts not written; keeping them for the next flush");
            groups
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_count_and_survive_a_failed_flush() {
        let mut queue = SignalQueue::default();
        queue.count("acme", "segment", "Clicked", 20, b"{\"n\":1}");
        queue.count("acme", "segment", "Clicked", 10, b"{\"n\":2}");
        queue.count("acme", "generic", "Clicked", 30, b"{}");
        let mut taken = queue.take();
        taken.sort_by(|a, b| a.source.cmp(&b.source));
        assert_eq!(
            taken.iter().map(|g| (g.source.as_str(), g.signals, g.first_seen_ms, g.last_seen_ms)).collect::<Vec<_>>(),
            [("generic", 1, 30, 30), ("segment", 2, 10, 20)]
        );
        assert_eq!(taken[1].sample, "{\"n\":1}");
        assert!(queue.is_empty());
        queue.count("acme", "segment", "Clicked", 40, b"{}");
        queue.restore(taken);
        let mut again = queue.take();
        again.sort_by(|a, b| a.source.cmp(&b.source));
        assert_eq!((again[1].signals, again[1].first_seen_ms, again[1].last_seen_ms), (3, 10, 40));
    }

    #[test]
    fn samples_are_cut_at_a_character_boundary() {
        let long = "é".repeat(SAMPLE_MAX_BYTES);
        let cut = sample(long.as_bytes());
        assert!(cut.len() <= SAMPLE_MAX_BYTES && cut.len() >= SAMPLE_MAX_BYTES - 1);
    }
}
