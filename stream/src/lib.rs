//! Stream processors over `signals.raw` (and the historical lane): parse, dedupe by content
//! hash, detect what each signal is and who it names, resolve anonymous visitors to leads, and
//! write `signals.processed` and `identities`, with poison records sent to `signals.dlq`. Offsets are stored only once a batch's outputs are
//! acknowledged.
//!
//! Still to come (issue 4): mapping rules, the signal queue, the webhook outbox, and the live
//! lane taking precedence over the historical one.

pub mod dedupe;
pub mod identity;
pub mod inbound;
pub mod processor;
pub mod runner;
pub mod window;
