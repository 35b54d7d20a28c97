//! The consumer context of a stage: partition assignments and the client's statistics.

use std::sync::Mutex;

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::ClientContext;

/// Hears partition assignments, so a stage can restore what it keeps per partition before it
/// processes records of newly assigned ones; and the client's statistics, for the consumer lag
/// of each partition.
#[derive(Default)]
pub struct Assignments {
    stage: &'static str,
    pending: Mutex<Vec<i32>>,
    rebalances: std::sync::atomic::AtomicU64,
    /// Woken by an assignment, so a stage restores at once rather than at its first record.
    assigned: tokio::sync::Notify,
}

impl Assignments {
    /// For the stage named `stage` (the label of its lag metric).
    pub fn new(stage: &'static str) -> Self {
        Self { stage, ..Self::default() }
    }

    /// Resolves once partitions were assigned (or were, since the last wait) that [`Self::take`]
    /// has not answered yet.
    pub async fn assignment(&self) {
        self.assigned.notified().await;
    }

    /// How many rebalances (revocations and assignments) this consumer has seen. A batch read
    /// across one is dropped unwritten: some of its records may belong to partitions now owned
    /// by another member, whose offsets this one could still commit under the new generation
    /// (the coordinator checks the member and generation, not who owns the partition). The
    /// records of partitions still owned are read again from the committed offsets.
    pub fn rebalances(&self) -> u64 {
        self.rebalances.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Partitions assigned since the last call.
    pub fn take(&self) -> Vec<i32> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

impl ClientContext for Assignments {
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, stats) in &statistics.topics {
            for (partition, stats) in &stats.partitions {
                if *partition >= 0 && stats.consumer_lag >= 0 {
                    let labels = [
                        ("stage", self.stage.to_owned()),
                        ("topic", topic.clone()),
                        ("partition", partition.to_string()),
                    ];
                    metrics::gauge!(crate::stage::CONSUMER_LAG, &labels).set(stats.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for Assignments {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let mut pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for element in list.elements() {
                if !pending.contains(&element.partition()) {
                    pending.push(element.partition());
                }
            }
            self.assigned.notify_one();
        }
    }
}
