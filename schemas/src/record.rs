//! The Kafka record format of raw signals: the value is the signal's raw JSON bytes, exactly as
//! the sender wrote them (one element of a batch for batch and bulk requests); the key is
//! `org:identity`; everything the edge learned is in headers.

/// Header names on `signals.raw` records. Values are UTF-8.
pub mod headers {
    /// The signal id the sender got in its 202 (decimal).
    pub const SIGNAL_ID: &str = "sigstage-signal-id";
    pub const ORG: &str = "sigstage-org";
    /// The id (not the value) of the API key that sent it.
    pub const KEY_ID: &str = "sigstage-key-id";
    /// `webhook`, `batch`, `bulk`, `collect` or `ingress`.
    pub const ENDPOINT: &str = "sigstage-endpoint";
    /// The source the edge detected, or the one the path or `X-Source` named.
    pub const SOURCE: &str = "sigstage-source";
    /// Set (to `1`) when the source came from the path or `X-Source`, not from detection.
    pub const SOURCE_HINTED: &str = "sigstage-source-hinted";
    /// Receive time at the edge, epoch milliseconds (decimal).
    pub const RECEIVED_MS: &str = "sigstage-received-ms";
    /// On `signals.processed`: the signal's content hash (xxh3-128 of org and bytes, 32 hex
    /// digits), from which a processor rebuilds its dedupe window.
    pub const CONTENT_HASH: &str = "sigstage-content-hash";
    /// On `identities`: `link` (an anonymous visitor's email) or `lead` (a lead seen first).
    pub const IDENTITY_KIND: &str = "sigstage-identity-kind";
    /// On `signals.dlq`: why the record could not be processed (`invalid_json`, …).
    pub const DLQ_REASON: &str = "sigstage-dlq-reason";
    /// On `signals.dlq`: the stage that failed (`envelope`, `parse`, `encode`).
    pub const DLQ_STAGE: &str = "sigstage-dlq-stage";
    /// On `signals.dlq`: the error in words.
    pub const DLQ_DETAIL: &str = "sigstage-dlq-detail";
    /// On `signals.dlq`: the record's size in bytes; the value keeps at most its first 64 KiB.
    pub const DLQ_ORIGINAL_BYTES: &str = "sigstage-dlq-original-bytes";
}

/// The record key: `org:identity`. Identity is the anonymousId, else the userId, else the
/// (normalised) email; a signal naming none of them is keyed by its own id, which spreads such
/// signals over partitions (they have no visitor whose order matters).
pub fn record_key(org: &str, identity: Option<&str>, signal_id: u64) -> String {
    match identity {
        Some(identity) => format!("{org}:{identity}"),
        None => format!("{org}:#{signal_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_group_a_visitor_and_spread_the_rest() {
        assert_eq!(record_key("acme", Some("anon-1"), 7), "acme:anon-1");
        assert_eq!(record_key("acme", None, 7), "acme:#7");
    }
}
