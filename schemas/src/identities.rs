//! The `identities` topic: compacted, one record per visitor link and per lead first seen,
//! written by the stream (the changelog of its identity state, from which it restores) and
//! read by the sink (the `identities` and `leads` tables). Its header `sigstage-identity-kind`
//! says which ([`LINK`] or [`LEAD`]); its key says what it is about ([`Identity::key`]), so
//! compaction keeps the latest link of each visitor and every lead.

use serde::{Deserialize, Serialize};

/// The header value of a link record (also what a record without the header is).
pub const LINK: &str = "link";
/// The header value of a lead record.
pub const LEAD: &str = "lead";

/// One link, as written to `identities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityLink {
    pub org: String,
    pub anonymous_id: String,
    /// Normalised: trimmed, lower-case.
    pub email: String,
    /// The lead the visitor was linked to before, when this is a re-identification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_email: Option<String>,
    /// Traits captured for lead enrichment, when the signal had them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The signal that made the link.
    pub signal_id: u64,
    /// The link's version: later links of a visitor have higher ones.
    pub linked_ms: u64,
}

/// A lead seen for the first time, as written to `identities` (beside the links): the sinks
/// keep the leads table from these, and a processor rebuilds which leads it has announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLead {
    pub org: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The signal that named the lead first.
    pub signal_id: u64,
    pub created_ms: u64,
}

/// One record of the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Link(IdentityLink),
    Lead(NewLead),
}

impl Identity {
    /// The record's key: `link:ORG:VISITOR` or `lead:ORG:EMAIL`.
    pub fn key(&self) -> String {
        match self {
            Identity::Link(link) => Forgotten::Link { org: &link.org, visitor: &link.anonymous_id }.key(),
            Identity::Lead(lead) => Forgotten::Lead { org: &lead.org, email: &lead.email }.key(),
        }
    }

    /// Its `sigstage-identity-kind` header value.
    pub fn kind(&self) -> &'static str {
        match self {
            Identity::Link(_) => LINK,
            Identity::Lead(_) => LEAD,
        }
    }

    /// Its value, as JSON.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Identity::Link(link) => serde_json::to_vec(link),
            Identity::Lead(lead) => serde_json::to_vec(lead),
        }
        .expect("strings and numbers serialize")
    }

    /// A record of the topic, from its kind header (`None`: a link) and its value.
    pub fn decode(kind: Option<&[u8]>, value: &[u8]) -> Result<Self, serde_json::Error> {
        match kind {
            Some(kind) if kind == LEAD.as_bytes() => serde_json::from_slice(value).map(Identity::Lead),
            _ => serde_json::from_slice(value).map(Identity::Link),
        }
    }
}

/// What a tombstone (a record without a value) of the topic removes: the key of a link or a
/// lead, written when a person is deleted, so that no restore brings them back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgotten<'a> {
    Link { org: &'a str, visitor: &'a str },
    Lead { org: &'a str, email: &'a str },
}

impl<'a> Forgotten<'a> {
    pub fn key(&self) -> String {
        match self {
            Forgotten::Link { org, visitor } => format!("link:{org}:{visitor}"),
            Forgotten::Lead { org, email } => format!("lead:{org}:{email}"),
        }
    }

    /// The link or lead a record key names (org ids hold no `:`).
    pub fn of_key(key: &'a [u8]) -> Option<Self> {
        let key = std::str::from_utf8(key).ok()?;
        let (kind, rest) = key.split_once(':')?;
        let (org, value) = rest.split_once(':')?;
        match kind {
            "link" => Some(Forgotten::Link { org, visitor: value }),
            "lead" => Some(Forgotten::Lead { org, email: value }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_stream_writes_the_sink_and_a_restore_read() {
        let link = Identity::Link(IdentityLink {
            org: "acme".into(),
            anonymous_id: "v1".into(),
            email: "jo@acme.io".into(),
            previous_email: Some("old@acme.io".into()),
            name: None,
            company: Some("Acme".into()),
            title: None,
            signal_id: 3,
            linked_ms: 4,
        });
        let lead = Identity::Lead(NewLead {
            org: "acme".into(),
            email: "jo@acme.io".into(),
            name: Some("Jo".into()),
            company: None,
            title: None,
            signal_id: 3,
            created_ms: 4,
        });
        for identity in [link, lead] {
            let read = Identity::decode(Some(identity.kind().as_bytes()), &identity.encode()).expect("decodes");
            assert_eq!(read, identity);
        }
        assert_eq!(
            Identity::decode(None, br#"{"org":"a","anonymous_id":"v","email":"e","signal_id":1,"linked_ms":2}"#)
                .expect("a link")
                .key(),
            "link:a:v"
        );
    }

    #[test]
    fn tombstone_keys_name_what_they_remove() {
        let link = Forgotten::Link { org: "acme", visitor: "v:1" };
        assert_eq!(link.key(), "link:acme:v:1");
        assert_eq!(Forgotten::of_key(link.key().as_bytes()), Some(link));
        let lead = Forgotten::Lead { org: "acme", email: "jo@acme.io" };
        assert_eq!(Forgotten::of_key(lead.key().as_bytes()), Some(lead));
        assert_eq!(Forgotten::of_key(b"other:acme:x"), None);
    }
}
