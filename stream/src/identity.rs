//! Identity resolution: which lead (email) each anonymous visitor turned out to be. A signal
//! carrying both a visitor id and an email (a Segment `identify` with `traits.email`, or any
//! other) links them; from then on that visitor's signals are attributed to the lead. Records
//! are keyed `org:visitor`, so a visitor's signals all pass through the processor that owns
//! its partition, in order; that processor holds the links and writes each new one to the
//! `identities` topic (compacted, in the same transaction as the signal), from which it (or the
//! next owner) restores them. The same topic carries each lead the first time its partition's
//! processor sees it, so `lead.created` is announced once per partition (a lead whose signals
//! arrive under several visitor keys can be announced by each of their partitions: receivers
//! dedupe on the lead's email).
//!
//! Re-identification (a visitor linked to one lead, then to another): later signals go to the
//! new lead, and rows already attributed stay where they are. The link says which lead it
//! replaces (`previous_email`), and the sink does not rehydrate for it, so no signal counts
//! under two leads. A link's version (`linked_ms`) comes from processing order: the edge's
//! receive time, and always above the visitor's previous link, never a client's clock.

use std::collections::{HashMap, HashSet};

use rdkafka::message::{Headers, Message};
use schemas::identities::{Forgotten, Identity};
use schemas::record::headers;
use xxhash_rust::xxh3::Xxh3;

use crate::dedupe::Prehashed;

#[derive(Default)]
pub struct Identities {
    /// xxh3-128 of `org \0 anonymousId` → email and the link's version.
    links: HashMap<u128, (String, u64), Prehashed>,
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
        self.links.get(&key(org, anonymous_id)).map(|(email, _)| email.as_str())
    }

    /// Records that `anonymous_id` of `org` is `email`, as seen at `at_ms`.
    pub fn link(&mut self, org: &str, anonymous_id: &str, email: &str, at_ms: u64) -> Linked {
        let slot = self.links.entry(key(org, anonymous_id));
        match slot {
            std::collections::hash_map::Entry::Occupied(mut known) => {
                let (known_email, version) = known.get_mut();
                if known_email == email {
                    return Linked::Known;
                }
                let version = at_ms.max(*version + 1);
                let previous = std::mem::replace(known_email, email.to_owned());
                known.get_mut().1 = version;
                Linked::News { previous: Some(previous), version }
            }
            std::collections::hash_map::Entry::Vacant(vacant) => {
                vacant.insert((email.to_owned(), at_ms));
                Linked::News { previous: None, version: at_ms }
            }
        }
    }

    /// Forgets `value` of `org`: the link of a visitor, or a lead (an email).
    pub fn forget(&mut self, org: &str, value: &str) {
        let key = key(org, value);
        self.links.remove(&key);
        self.leads.remove(&key);
    }

    /// Puts back the link or lead an `identities` record holds (the changelog of this state; its
    /// format is [`schemas::identities`]), or forgets what a tombstone (no value) names. False
    /// when the record is neither.
    pub fn restore_record(&mut self, record: &impl Message) -> bool {
        if record.payload().is_none() {
            return match record.key().and_then(Forgotten::of_key) {
                Some(Forgotten::Link { org, visitor }) => {
                    self.links.remove(&key(org, visitor));
                    true
                }
                Some(Forgotten::Lead { org, email }) => {
                    self.leads.remove(&key(org, email));
                    true
                }
                None => false,
            };
        }
        let kind = record.headers().and_then(|h| h.iter().find(|h| h.key == headers::IDENTITY_KIND)?.value);
        match Identity::decode(kind, record.payload().unwrap_or_default()) {
            Ok(Identity::Lead(lead)) => {
                self.new_lead(&lead.org, &lead.email);
            }
            Ok(Identity::Link(link)) => self.restore_link(&link.org, &link.anonymous_id, &link.email, link.linked_ms),
            Err(_) => return false,
        }
        true
    }

    fn restore_link(&mut self, org: &str, anonymous_id: &str, email: &str, version: u64) {
        self.links.insert(key(org, anonymous_id), (email.to_owned(), version));
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

/// What linking a visitor changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Linked {
    /// Already linked to that lead.
    Known,
    /// A first link, or a re-identification (`previous` lead), with the link's version.
    News { previous: Option<String>, version: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_per_org_news_only_once_and_versioned_in_processing_order() {
        let mut identities = Identities::default();
        assert_eq!(identities.link("acme", "a1", "jane@acme.io", 100), Linked::News { previous: None, version: 100 });
        assert_eq!(identities.link("acme", "a1", "jane@acme.io", 200), Linked::Known);
        assert_eq!(identities.lead_of("acme", "a1"), Some("jane@acme.io"));
        assert_eq!(identities.lead_of("other", "a1"), None);
        // Re-identified by a signal stamped earlier (another edge's clock): still a later version.
        let reidentified = identities.link("acme", "a1", "joe@acme.io", 50);
        assert_eq!(reidentified, Linked::News { previous: Some("jane@acme.io".into()), version: 101 });
        assert_eq!(identities.len(), 1);
        assert!(identities.new_lead("acme", "jane@acme.io"));
        assert!(!identities.new_lead("acme", "jane@acme.io"));
        assert!(identities.new_lead("other", "jane@acme.io"));
    }
}
