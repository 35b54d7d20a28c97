//! What a stream processor writes back to the control plane: the signal queue's counts.

use common::control::queue;

use crate::processor::Processor;

/// Writes the signal queue's counts since the last flush; on failure they are kept for the next.
pub async fn flush_queue(client: &clickhouse::Client, processor: &mut Processor) {
    let groups = processor.queue().take();
    if groups.is_empty() {
        return;
    }
    if let Err(error) = queue::append(client, &groups).await {
        tracing::warn!(%error, groups = groups.len(), "signal queue counts not written; keeping them for the next flush");
        processor.queue().restore(groups);
    }
}
