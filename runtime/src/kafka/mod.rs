//! Kafka, split by subject. Every Kafka client in sigstage is built in [`clients`]; the rest is
//! what the stages do with them.

pub mod assignments;
pub mod batch;
pub mod clients;
pub mod dead_letter;
pub mod errors;
pub mod reader;
pub mod topics;

pub use assignments::Assignments;
pub use batch::{abort_transaction, commit_offsets, commit_transaction, next_offsets};
pub use clients::{
    consumer, consumer_with_context, partition_reader, producer, stage_consumer, transactional_id,
    transactional_producer, MetadataClient, ReaderContext, MAX_RECORD_BYTES, SESSION_TIMEOUT, TRANSACTION_TIMEOUT,
};
pub use dead_letter::{dead_letter, header_pairs, DEAD_LETTER_MAX_BYTES};
pub use errors::{is_refused_for_good, is_transient, needs_fresh_producer};
pub use topics::{ensure_topics, partition_of, prepare_topics, TopicsError, DEDUPE_WINDOW};
