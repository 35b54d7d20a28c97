//! Identity resolution: which lead (email) each anonymous visitor turned out to be. A signal
//! carrying both an anonymousId and an email (a Segment `identify` with `traits.email`, or any
//! other) links them; from then on that visitor's signals are attributed to the lead. Records
//! are keyed `org:identity`, so a visitor's signals all pass through the processor that owns
//! its partition, in order; that processor holds the links and writes each new one to the
//! `identities` topic, from which it (or the next owner) rebuilds them. The same topic carries
//! each lead the first time a processor sees it, so `lead.created` is announced once per
//! partition owner (a lead whose signals arrive under several visitor keys can be announced by
//! each of their partitions: receivers dedupe on the lead's email).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::dedupe::Prehashed;

/// One link, as written to `identities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityLink {
    pub org: String,
    pub anonymous_id: String,
    /// Normalised: trimmed, lower-case.
    pub email: String,
    /// Traits captured for lead enrichment, when the signal had them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The signal that made the link.
    pub signal_id: u64,
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

#[derive(Default)]
pub struct Identities {
    /// xxh3-128 of `org \0 anonymousId` → email.
    links: HashMap<u128, String, Prehashed>,
    /// xxh3-128 of `org \0 email`, for every lead already announced.
    leads: HashSet<u128, Prehashed>,
}

/// xxh3-128 of `org \0 value`: a map key that costs no allocation to look up.
fn key(org: &str, value: &str) -> u128 {
    let mut hasher = Xxh3::new();
    hasher.update(org.as_bytes());
    hasher.update(&[0]);
    hasher.update(value.as_bytes());
    hasher.digest128()
}

impl Identities {
    pub fn lead_of(&self, org: &str, anonymous_id: &str) -> Option<&str> {
        self.links.get(&key(org, anonymous_id)).map(String::as_str)
    }

    /// Records that `anonymous_id` of `org` is `email`; true when this is news (a first link,
    /// or a visitor identified as someone else).
    pub fn link(&mut self, org: &str, anonymous_id: &str, email: &str) -> bool {
        match self.links.insert(key(org, anonymous_id), email.to_owned()) {
            Some(previous) => previous != email,
            None => true,
        }
    }

    /// Records that `email` is a lead of `org`; true the first time.
    pub fn new_lead(&mut self, org: &str, email: &str) -> bool {
        self.leads.insert(key(org, email))
    }

    pub fn len(&self) -> usize {
        self.links.len()
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_per_org_and_news_only_once() {
        let mut identities = Identities::default();
        assert!(identities.link("acme", "a1", "jane@acme.io"));
        assert!(!identities.link("acme", "a1", "jane@acme.io"));
        assert_eq!(identities.lead_of("acme", "a1"), Some("jane@acme.io"));
        assert_eq!(identities.lead_of("other", "a1"), None);
        assert!(identities.link("acme", "a1", "joe@acme.io"), "re-identified");
        assert_eq!(identities.len(), 1);
        assert!(identities.new_lead("acme", "jane@acme.io"));
        assert!(!identities.new_lead("acme", "jane@acme.io"));
        assert!(identities.new_lead("other", "jane@acme.io"));
    }
}
