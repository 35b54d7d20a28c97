//! The ingest edge: the HTTP endpoints senders call. It authenticates the key, applies the org's
//! limits, does the cheap checks needed to answer, and writes raw signals to Kafka, answering 202
//! only once the broker has them.
