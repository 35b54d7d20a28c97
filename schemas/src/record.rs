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
    /// On a stored signal sent again by `sigstage rules apply` (control::history): the ids of the
    /// rules to apply to it, comma-separated. The stream leaves such a record out of dedupe.
    pub const HISTORY_RULES: &str = "sigstage-history-rules";
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

/// What the edge learned of a signal, as the headers of its raw record: written by the edge
/// with [`RawHeaders::write`], read back by a processor with [`RawHeaders::read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawHeaders<'a> {
    pub signal_id: u64,
    pub org: &'a str,
    pub key_id: &'a str,
    pub endpoint: &'a str,
    pub source: &'a str,
    pub source_hinted: bool,
    pub received_ms: u64,
    /// Set on a stored signal sent again to apply rules to it ([`headers::HISTORY_RULES`]).
    pub history_rules: Option<&'a str>,
}

impl<'a> RawHeaders<'a> {
    /// Adds each header to `headers` with `insert` (name, value), in one order.
    pub fn write<H>(&self, headers: H, insert: impl Fn(H, &'static str, &str) -> H) -> H {
        let headers = insert(headers, headers::SIGNAL_ID, &self.signal_id.to_string());
        let headers = insert(headers, headers::ORG, self.org);
        let headers = insert(headers, headers::KEY_ID, self.key_id);
        let headers = insert(headers, headers::ENDPOINT, self.endpoint);
        let headers = insert(headers, headers::SOURCE, self.source);
        let headers = insert(headers, headers::RECEIVED_MS, &self.received_ms.to_string());
        let headers = match self.source_hinted {
            true => insert(headers, headers::SOURCE_HINTED, "1"),
            false => headers,
        };
        match self.history_rules {
            Some(rules) => insert(headers, headers::HISTORY_RULES, rules),
            None => headers,
        }
    }

    /// Reads the headers back, in one pass over (name, value) pairs. A record without an org or
    /// a signal id did not come through the edge: the error names the missing header. A
    /// missing source is `generic`, a missing receive time 0.
    pub fn read(pairs: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>) -> Result<Self, &'static str> {
        let mut read = RawHeaders {
            signal_id: 0,
            org: "",
            key_id: "",
            endpoint: "",
            source: "generic",
            source_hinted: false,
            received_ms: 0,
            history_rules: None,
        };
        let (mut org, mut signal_id) = (None, None);
        for (name, value) in pairs {
            let Some(value) = value.and_then(|value| std::str::from_utf8(value).ok()) else { continue };
            match name {
                headers::SIGNAL_ID => signal_id = value.parse().ok(),
                headers::ORG => org = Some(value),
                headers::KEY_ID => read.key_id = value,
                headers::ENDPOINT => read.endpoint = value,
                headers::SOURCE => read.source = value,
                headers::SOURCE_HINTED => read.source_hinted = value == "1",
                headers::RECEIVED_MS => read.received_ms = value.parse().unwrap_or(0),
                headers::HISTORY_RULES => read.history_rules = Some(value),
                _ => {}
            }
        }
        read.org = org.ok_or("missing_org_header")?;
        read.signal_id = signal_id.ok_or("missing_signal_id_header")?;
        Ok(read)
    }
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

    #[test]
    fn what_the_edge_writes_a_processor_reads() {
        let written = RawHeaders {
            signal_id: 1_234_567,
            org: "acme",
            key_id: "key_1",
            endpoint: "batch",
            source: "segment",
            source_hinted: true,
            received_ms: 1_795_000_000_000,
            history_rules: Some("rule_a,rule_b"),
        };
        let pairs = written.write(Vec::new(), |mut pairs, name, value| {
            pairs.push((name, value.to_owned()));
            pairs
        });
        let read = RawHeaders::read(pairs.iter().map(|(name, value)| (*name, Some(value.as_bytes()))));
        assert_eq!(read, Ok(written));
        let unhinted = RawHeaders { source_hinted: false, history_rules: None, ..written };
        let pairs = unhinted.write(Vec::new(), |mut pairs, name, value| {
            pairs.push((name, value.to_owned()));
            pairs
        });
        assert!(pairs.iter().all(|(name, _)| *name != headers::SOURCE_HINTED));
        let read = RawHeaders::read(pairs.iter().map(|(name, value)| (*name, Some(value.as_bytes()))));
        assert_eq!(read, Ok(unhinted));
        let no_org = pairs.iter().filter(|(name, _)| *name != headers::ORG);
        assert_eq!(
            RawHeaders::read(no_org.map(|(name, value)| (*name, Some(value.as_bytes())))),
            Err("missing_org_header")
        );
    }
}
