//! A first rule for a signal queue group, read off its sample the way a person would: any key
//! that names an email (`email`, `work_email`, `workEmail`, `email_address`, `Email`,
//! `contact.email`, a form field named `email`…) whose value looks like one, and likewise a
//! name, a company and a title. Segment's `traits`, form tools' arrays of named fields (HubSpot's
//! `fields`, Typeform's `answers`, Calendly's `questions_and_answers`) and flat generic payloads
//! are all read. The console's "Create rule", `sigstage rules suggest` and the admin API's
//! `POST …/rules/suggest` share it.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::rules::{Condition, RuleSpec, Test, LEAD_FIELDS};

/// How deep the sample is read.
const MAX_DEPTH: usize = 6;
/// `exists` conditions pre-filled from the sample's properties.
const MAX_CONDITIONS: usize = 3;

/// The rule to propose for signals of `source` and `event` like `sample`.
pub fn suggest(source: &str, event: Option<&str>, sample: &Value) -> RuleSpec {
    let mut leaves = Vec::new();
    walk(sample, &mut Vec::new(), &mut leaves);
    // A Segment page or screen call's `name` and properties describe the page, not a person.
    if matches!(sample.get("type").and_then(Value::as_str), Some("page" | "screen")) {
        leaves.retain(|leaf| leaf.path != "name" && !leaf.path.starts_with("properties."));
    }
    let mut map = BTreeMap::new();
    for field in LEAD_FIELDS {
        let best = leaves
            .iter()
            .filter_map(|leaf| Some((rank(field, leaf)?, leaf)))
            .min_by_key(|(rank, leaf)| (*rank, leaf.path.len()));
        if let Some((_, leaf)) = best {
            map.insert(field.to_owned(), leaf.path.clone());
        }
    }
    let mapped: Vec<&String> = map.values().collect();
    let conditions = leaves
        .iter()
        .filter(|leaf| leaf.path.starts_with("properties.") && !mapped.contains(&&leaf.path))
        .filter(|leaf| LEAD_FIELDS.iter().all(|field| rank(field, leaf).is_none()) && !names(&leaf.key, "email"))
        .take(MAX_CONDITIONS)
        .map(|leaf| Condition { path: leaf.path.clone(), test: Test::Exists })
        .collect();
    RuleSpec {
        name: format!("{} from {source}", event.unwrap_or("Any event")),
        source: Some(source.to_owned()),
        event: event.map(str::to_owned),
        conditions,
        map,
    }
}

/// A value in the sample: its path (dot notation), the key that names it, the key of the object
/// holding it, and its text.
struct Leaf {
    path: String,
    key: String,
    parent: String,
    text: String,
}

fn walk(value: &Value, path: &mut Vec<String>, leaves: &mut Vec<Leaf>) {
    if path.len() > MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(object) => {
            for (key, inner) in object {
                if key.is_empty() || key.contains('.') {
                    continue; // a path cannot name it
                }
                path.push(key.clone());
                walk(inner, path, leaves);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate().take(64) {
                path.push(index.to_string());
                // A form's named field: {name|key|label|question|field.ref: …, value|answer|text|email: …}.
                if let Some(label) = named_field(item) {
                    for value_key in ["value", "answer", "text", "email"] {
                        if let Some(Value::String(text)) = item.get(value_key) {
                            let parent = path.iter().rev().nth(1).cloned().unwrap_or_default();
                            let path = format!("{}.{value_key}", path.join("."));
                            leaves.push(Leaf { path, key: label.to_owned(), parent, text: text.clone() });
                        }
                    }
                } else {
                    walk(item, path, leaves);
                }
                path.pop();
            }
        }
        Value::String(text) => push_leaf(path, text.clone(), leaves),
        Value::Number(number) => push_leaf(path, number.to_string(), leaves),
        Value::Bool(_) | Value::Null => {}
    }
}

fn push_leaf(path: &[String], text: String, leaves: &mut Vec<Leaf>) {
    let Some(key) = path.last() else { return };
    let parent = path.iter().rev().nth(1).cloned().unwrap_or_default();
    leaves.push(Leaf { path: path.join("."), key: key.clone(), parent, text });
}

/// The label of a form field in an array, when the element is one.
fn named_field(item: &Value) -> Option<&str> {
    let label = ["name", "key", "label", "question"]
        .iter()
        .find_map(|key| item.get(key).and_then(Value::as_str))
        .or_else(|| item.get("field").and_then(|field| field.get("ref")).and_then(Value::as_str))
        .or_else(|| item.get("type").and_then(Value::as_str))?;
    let has_value = ["value", "answer", "text", "email"].iter().any(|key| item.get(key).is_some_and(Value::is_string));
    has_value.then_some(label)
}

/// `key` lowercased without separators: `work_email`, `workEmail`, `Work Email` → `workemail`.
fn squash(key: &str) -> String {
    key.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// Whether `key` names `what` (`email` in `work_email`, `Email`, `emailAddress`, `e-mail`).
fn names(key: &str, what: &str) -> bool {
    let key = squash(key);
    key.contains(what) || (what == "email" && key.contains("mail") && !key.contains("mailing"))
}

/// Objects whose `name` or `title` is not a person's: a page's, an app's, a product's…
const NOT_A_PERSON: [&str; 12] =
    ["page", "library", "app", "os", "device", "browser", "screen", "campaign", "product", "form", "event", "network"];

/// How good `leaf` is for `field` (lower is better), or `None` when it is not one.
fn rank(field: &str, leaf: &Leaf) -> Option<u8> {
    let key = squash(&leaf.key);
    let text = leaf.text.trim();
    if text.is_empty() || text.len() > 200 {
        return None;
    }
    let exact = match field {
        "email" => {
            if !looks_like_email(text) || !names(&leaf.key, "email") {
                return None;
            }
            key == "email"
        }
        "name" => {
            let full = ["name", "fullname", "contactname", "yourname", "displayname", "leadname", "personname"];
            if !(full.contains(&key.as_str()) || key == "firstname") || !looks_like_words(text) {
                return None;
            }
            if NOT_A_PERSON.contains(&squash(&leaf.parent).as_str()) {
                return None;
            }
            // A full name before a first name.
            key != "firstname"
        }
        "company" => {
            let names =
                ["company", "companyname", "organization", "organisation", "employer", "accountname", "business"];
            if !names.contains(&key.as_str()) || looks_like_email(text) || text.contains("://") {
                return None;
            }
            true
        }
        "title" => {
            let names = ["jobtitle", "title", "role", "jobrole", "position", "job"];
            if !names.contains(&key.as_str()) || !looks_like_words(text) {
                return None;
            }
            // A page's title sits beside its url or path; a Segment page call's properties.title is one.
            if NOT_A_PERSON.contains(&squash(&leaf.parent).as_str()) || leaf.path == "properties.title" {
                return None;
            }
            key == "jobtitle"
        }
        _ => return None,
    };
    // Where a person's fields usually are: Segment's traits first, then properties, then the rest.
    let place = match leaf.path.split('.').next().unwrap_or_default() {
        "traits" => 0,
        "properties" => 1,
        "context" => 3,
        _ => 2,
    };
    Some(place * 2 + u8::from(!exact))
}

fn looks_like_email(text: &str) -> bool {
    let mut parts = text.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.chars().any(char::is_whitespace)
        && text.len() <= 254
}

/// A few words of text, not an address, a URL or a number.
fn looks_like_words(text: &str) -> bool {
    text.split_whitespace().count() <= 8
        && text.chars().any(char::is_alphabetic)
        && !text.contains('@')
        && !text.contains("://")
        && !text.starts_with('/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapped(source: &str, event: Option<&str>, sample: Value) -> BTreeMap<String, String> {
        let rule = suggest(source, event, &sample);
        assert!(rule.problems().is_empty(), "{:?}", rule.problems());
        rule.map
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(field, path)| ((*field).to_owned(), (*path).to_owned())).collect()
    }

    #[test]
    fn real_world_samples_map_the_person_in_them() {
        let cases = [
            (
                "segment track with a work email (the README's own example)",
                "segment",
                Some("Demo Requested"),
                json!({"type": "track", "event": "Demo Requested", "anonymousId": "a1",
                       "properties": {"work_email": "jane@northwind.com", "company": "Northwind Traders",
                                      "full_name": "Jane Doe", "job_title": "VP Marketing", "seats": 25},
                       "context": {"page": {"title": "Book a demo", "url": "https://acme.io/demo"},
                                   "library": {"name": "analytics.js"}}}),
                map(&[
                    ("email", "properties.work_email"),
                    ("company", "properties.company"),
                    ("name", "properties.full_name"),
                    ("title", "properties.job_title"),
                ]),
            ),
            (
                "segment identify",
                "segment",
                Some("identify"),
                json!({"type": "identify", "userId": "u1",
                       "traits": {"email": "kim@acme.io", "name": "Kim Lee", "company": "Acme", "title": "CTO"},
                       "context": {"traits": {"email": "old@acme.io"}, "app": {"name": "Acme iOS"}}}),
                map(&[
                    ("email", "traits.email"),
                    ("name", "traits.name"),
                    ("company", "traits.company"),
                    ("title", "traits.title"),
                ]),
            ),
            (
                "segment page: its title and name are the page's",
                "segment",
                Some("page_view"),
                json!({"type": "page", "name": "Pricing", "anonymousId": "a2",
                       "properties": {"title": "Pricing · Acme", "path": "/pricing", "url": "https://acme.io/pricing"}}),
                map(&[]),
            ),
            (
                "HubSpot form submission: named fields in an array",
                "hubspot",
                Some("form_submission"),
                json!({"submittedAt": 1717000000000u64, "fields": [
                    {"objectTypeId": "0-1", "name": "firstname", "value": "Ana"},
                    {"objectTypeId": "0-1", "name": "email", "value": "ana@globex.com"},
                    {"objectTypeId": "0-2", "name": "company", "value": "Globex"},
                    {"objectTypeId": "0-1", "name": "jobtitle", "value": "Head of Growth"}],
                    "context": {"pageUri": "https://acme.io/contact", "pageName": "Contact"}}),
                map(&[
                    ("email", "fields.1.value"),
                    ("name", "fields.0.value"),
                    ("company", "fields.2.value"),
                    ("title", "fields.3.value"),
                ]),
            ),
            (
                "Typeform response: answers keyed by their field's ref",
                "typeform",
                None,
                json!({"event_type": "form_response", "form_response": {"form_id": "lT4Z3j", "answers": [
                    {"type": "text", "text": "Luis Ortega", "field": {"id": "a", "type": "short_text", "ref": "full_name"}},
                    {"type": "email", "email": "luis@initech.io", "field": {"id": "b", "type": "email", "ref": "work-email"}},
                    {"type": "text", "text": "Initech", "field": {"id": "c", "type": "short_text", "ref": "company"}}]}}),
                map(&[
                    ("email", "form_response.answers.1.email"),
                    ("name", "form_response.answers.0.text"),
                    ("company", "form_response.answers.2.text"),
                ]),
            ),
            (
                "Calendly invitee.created: questions and answers",
                "calendly",
                Some("invitee.created"),
                json!({"event": "invitee.created", "payload": {
                    "email": "sam@umbrella.co", "name": "Sam Park", "first_name": "Sam",
                    "event": "https://api.calendly.com/scheduled_events/X",
                    "questions_and_answers": [{"question": "Company", "answer": "Umbrella", "position": 0},
                                              {"question": "Role", "answer": "Director of Sales", "position": 1}]}}),
                map(&[
                    ("email", "payload.email"),
                    ("name", "payload.name"),
                    ("company", "payload.questions_and_answers.0.answer"),
                    ("title", "payload.questions_and_answers.1.answer"),
                ]),
            ),
            (
                "generic flat form post with capitalised keys",
                "webflow",
                None,
                json!({"Email Address": "li@hooli.com", "Full Name": "Li Wei", "Organization": "Hooli",
                       "Message": "Call me", "page": "/contact"}),
                map(&[("email", "Email Address"), ("name", "Full Name"), ("company", "Organization")]),
            ),
            (
                "an email-named key whose value is not one is left out",
                "generic",
                None,
                json!({"email_opt_in": "yes", "contact": {"email": "pat@acme.io"}, "mailing_list": "weekly@acme.io"}),
                map(&[("email", "contact.email")]),
            ),
        ];
        for (what, source, event, sample, expected) in cases {
            assert_eq!(mapped(source, event, sample), expected, "{what}");
        }
    }

    #[test]
    fn the_rule_is_named_for_its_group_and_narrowed_by_its_properties() {
        let sample = json!({"type": "track", "event": "Demo Requested",
                            "properties": {"work_email": "jane@northwind.com", "form_name": "demo", "plan": "pro",
                                           "seats": 25, "utm_source": "ads"}});
        let rule = suggest("segment", Some("Demo Requested"), &sample);
        assert_eq!(rule.name, "Demo Requested from segment");
        assert_eq!((rule.source.as_deref(), rule.event.as_deref()), (Some("segment"), Some("Demo Requested")));
        let paths: Vec<&str> = rule.conditions.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["properties.form_name", "properties.plan", "properties.seats"], "no mapped or email path");
        assert!(rule.conditions.iter().all(|c| c.test == Test::Exists));
        assert_eq!(suggest("generic", None, &json!({})).name, "Any event from generic");
    }
}
