//! The one shape of a stage that works batch by batch: a [`BatchReader`] reads, and the stage
//! restores what it keeps for newly assigned partitions, then processes and commits each batch.
//! The stream processor, the ClickHouse sink and the webhook dispatcher are implementations of
//! [`BatchStage`]; the loop around them is [`run_batches`].
//!
//! Answers say why a stage ends: `Ok(Flow::Stop)` when it was asked to stop, an error when it
//! failed (the supervisor logs it, shows it in `/readyz` and starts the stage again).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use rdkafka::consumer::StreamConsumer;
use rdkafka::message::BorrowedMessage;
use tokio::sync::watch;

use super::{record_batch, Stage, StageError, Status};
use crate::kafka::reader::BatchReader;
use crate::kafka::Assignments;

/// Whether a stage goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Go,
    /// Asked to stop before the step was done; nothing of it was committed.
    Stop,
}

/// A stage that works batch by batch.
pub trait BatchStage: Send {
    /// The label of the stage's metrics.
    const NAME: &'static str;

    /// Partitions newly given to this instance, before any of their records is processed:
    /// restore what is kept for them (a stage that keeps nothing per partition goes on).
    fn assigned(
        &mut self,
        consumer: &Arc<StreamConsumer<Assignments>>,
        partitions: &[i32],
        stop: &mut watch::Receiver<bool>,
    ) -> impl Future<Output = Result<Flow, StageError>> + Send {
        let _ = (consumer, partitions, stop);
        async { Ok(Flow::Go) }
    }

    /// Processes one batch and commits it (its outputs and its offsets).
    fn process(
        &mut self,
        consumer: &Arc<StreamConsumer<Assignments>>,
        batch: &[BorrowedMessage<'_>],
        stop: &mut watch::Receiver<bool>,
    ) -> impl Future<Output = Result<Flow, StageError>> + Send;

    /// After the last batch, once asked to stop.
    fn stopped(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Resolves with the error of work the stage left running between batches (the stream's
    /// transaction in flight) when that work fails; never otherwise. Watched while the next
    /// batch is awaited, so a failure ends the run even when no record comes.
    fn failure(&mut self) -> impl Future<Output = StageError> + Send {
        std::future::pending()
    }
}

/// Runs `stage` on what `reader` reads until `stop` turns true; answers the error that ended
/// it otherwise.
pub async fn run_batches<S: BatchStage>(
    reader: &mut BatchReader,
    stage: &mut S,
    status: &Stage,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), StageError> {
    let consumer = Arc::clone(reader.consumer());
    status.set(Status::Running);
    loop {
        let read = tokio::select! {
            read = reader.next(stop) => read?,
            error = stage.failure() => return Err(error),
        };
        let Some(read) = read else { break };
        if !read.assigned.is_empty() {
            status.set(Status::Restoring { partitions: read.assigned.clone(), records: 0 });
            if stage.assigned(&consumer, &read.assigned, stop).await? == Flow::Stop {
                break;
            }
            status.set(Status::Running);
        }
        if !read.batch.is_empty() {
            let started = Instant::now();
            if stage.process(&consumer, &read.batch, stop).await? == Flow::Stop {
                break;
            }
            record_batch(S::NAME, &read.batch, started);
        }
    }
    stage.stopped().await;
    Ok(())
}
