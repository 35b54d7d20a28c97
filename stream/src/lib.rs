//! Stream processors over `signals.raw` (and the historical lane, which yields to the live
//! one): parse, dedupe by content hash, detect what each signal is and who it names, apply the
//! org's mapping rules (unmatched signals are counted in the signal queue), resolve anonymous
//! visitors to leads, and write `signals.processed`, `identities` and `webhooks.outbox`, with
//! poison records sent to `signals.dlq`. A batch's outputs, state changes and offsets are
//! committed in one Kafka transaction.

pub mod control;
pub mod dedupe;
pub mod identity;
pub mod inbound;
pub mod outputs;
pub mod processor;
pub mod queue;
pub mod restore;
pub mod rules;
pub mod runner;
