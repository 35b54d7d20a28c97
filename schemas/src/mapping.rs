//! Mapping rules, compiled for the hot path: paths split once, regexes built once, and a
//! signal matched and mapped by walking its parsed value without allocating. Every org's rules
//! are tried in creation order; all that match apply, and for each lead field the first rule
//! that finds a value wins. The default rules (the seed's: `email`, `traits.email`,
//! `properties.email`, `context.traits.email` to email; `traits.name|company|title` to
//! enrichment) apply after the org's own, to every signal.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::rules::{Rule, Test};
use regex::Regex;
use simd_json::prelude::*;
use simd_json::BorrowedValue;

/// Every org's compiled rules.
#[derive(Default)]
pub struct RuleSet {
    by_org: HashMap<String, Vec<Compiled>>,
}

impl RuleSet {
    /// Compiles stored rules (already ordered by creation within each org). A rule that does
    /// not compile (it was validated when written, so only a hand-edited row) is skipped.
    pub fn compile(rules: Vec<Rule>) -> Self {
        let mut by_org: HashMap<String, Vec<Compiled>> = HashMap::new();
        for rule in rules {
            match Compiled::new(&rule) {
                Ok(compiled) => by_org.entry(rule.org_id).or_default().push(compiled),
                Err(error) => tracing::warn!(rule = %rule.id, %error, "mapping rule skipped: it does not compile"),
            }
        }
        Self { by_org }
    }

    pub fn of(&self, org: &str) -> &[Compiled] {
        self.by_org.get(org).map_or(&[], Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.by_org.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_org.is_empty()
    }
}

pub struct Compiled {
    pub id: String,
    source: Option<String>,
    event: Option<String>,
    conditions: Vec<(Path, Check)>,
    /// (lead field, path), in the order written.
    map: Vec<(String, Path)>,
}

/// A dot-notation path, split once. A segment that is a number also indexes arrays.
struct Path(Vec<String>);

enum Check {
    Exists,
    Equals(Scalar),
    Contains(String),
    Prefix(String),
    Regex(Regex),
    In(Vec<Scalar>),
}

enum Scalar {
    Text(String),
    Number(f64),
    Bool(bool),
}

impl Compiled {
    /// One rule, compiled; the error says why it cannot be.
    pub fn new(rule: &Rule) -> Result<Self, String> {
        let problems = rule.spec.problems();
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        let conditions = rule
            .spec
            .conditions
            .iter()
            .map(|condition| {
                let check = match &condition.test {
                    Test::Exists => Check::Exists,
                    Test::Equals { value } => Check::Equals(Scalar::of(value)),
                    Test::Contains { value } => Check::Contains(value.clone()),
                    Test::Prefix { value } => Check::Prefix(value.clone()),
                    Test::Regex { value } => Check::Regex(Regex::new(value).map_err(|e| e.to_string())?),
                    Test::In { values } => Check::In(values.iter().map(Scalar::of).collect()),
                };
                Ok((Path::new(&condition.path), check))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self {
            id: rule.id.clone(),
            source: rule.spec.source.clone(),
            event: rule.spec.event.clone(),
            conditions,
            map: rule.spec.map.iter().map(|(field, path)| (field.clone(), Path::new(path))).collect(),
        })
    }

    pub fn matches(&self, source: &str, event: &str, signal: &BorrowedValue<'_>) -> bool {
        self.source.as_deref().is_none_or(|s| s == source)
            && self.event.as_deref().is_none_or(|e| e == event)
            && self.conditions.iter().all(|(path, check)| path.find(signal).is_some_and(|value| check.holds(value)))
    }
}

impl Path {
    fn new(path: &str) -> Self {
        Self(path.split('.').map(str::to_owned).collect())
    }

    fn find<'v, 's>(&self, signal: &'v BorrowedValue<'s>) -> Option<&'v BorrowedValue<'s>> {
        let mut current = signal;
        for segment in &self.0 {
            current = match current.as_array() {
                Some(items) => items.get(segment.parse::<usize>().ok()?)?,
                None => current.get(segment.as_str())?,
            };
        }
        (!current.is_null()).then_some(current)
    }
}

impl Check {
    fn holds(&self, value: &BorrowedValue<'_>) -> bool {
        match self {
            Check::Exists => true,
            Check::Equals(expected) => expected.equals(value),
            Check::Contains(needle) => value.as_str().is_some_and(|s| s.contains(needle.as_str())),
            Check::Prefix(prefix) => value.as_str().is_some_and(|s| s.starts_with(prefix.as_str())),
            Check::Regex(regex) => value.as_str().is_some_and(|s| regex.is_match(s)),
            Check::In(options) => options.iter().any(|option| option.equals(value)),
        }
    }
}

impl Scalar {
    fn of(value: &serde_json::Value) -> Self {
        match value {
            serde_json::Value::Bool(b) => Scalar::Bool(*b),
            serde_json::Value::Number(n) => Scalar::Number(n.as_f64().unwrap_or(f64::NAN)),
            other => Scalar::Text(other.as_str().unwrap_or_default().to_owned()),
        }
    }

    fn equals(&self, value: &BorrowedValue<'_>) -> bool {
        match self {
            Scalar::Text(text) => value.as_str() == Some(text.as_str()),
            Scalar::Number(number) => value.cast_f64() == Some(*number),
            Scalar::Bool(b) => value.as_bool() == Some(*b),
        }
    }
}

/// The seed's default mappings, tried after every org's own rules.
static DEFAULTS: LazyLock<Compiled> = LazyLock::new(|| Compiled {
    id: "default".to_owned(),
    source: None,
    event: None,
    conditions: Vec::new(),
    map: [
        ("email", "email"),
        ("email", "traits.email"),
        ("email", "properties.email"),
        ("email", "context.traits.email"),
        ("name", "traits.name"),
        ("company", "traits.company"),
        ("title", "traits.title"),
    ]
    .into_iter()
    .map(|(field, path)| (field.to_owned(), Path::new(path)))
    .collect(),
});

/// The rules that matched one signal: indexes into its org's rules, then the defaults.
pub struct Mapping<'r> {
    pub rules: &'r [Compiled],
    pub matched: &'r [usize],
}

impl<'r> Mapping<'r> {
    /// Every (field, path) that applies, in precedence order.
    fn mappings(&self) -> impl Iterator<Item = &'r (String, Path)> + '_ {
        self.matched.iter().flat_map(|&i| self.rules[i].map.iter()).chain(DEFAULTS.map.iter())
    }

    /// The first value found for `field`; for `email`, the first that looks like one.
    pub fn first<'v, 's>(&self, field: &str, signal: &'v BorrowedValue<'s>) -> Option<&'v BorrowedValue<'s>> {
        self.mappings()
            .filter(|(f, _)| f == field)
            .filter_map(|(_, path)| path.find(signal))
            .find(|value| field != "email" || value.as_str().is_some_and(|s| s.contains('@') && !s.trim().is_empty()))
    }

    /// Writes `{"field":value,…}` of every mapped field but email (which the record carries
    /// normalised as `email`), first value wins.
    pub fn write_fields(&self, signal: &BorrowedValue<'_>, out: &mut Vec<u8>) {
        out.push(b'{');
        let mut first = true;
        for (index, (field, path)) in self.mappings().enumerate() {
            if field == "email" {
                continue;
            }
            let Some(value) = path.find(signal) else { continue };
            if self.mappings().take(index).any(|(f, p)| f == field && p.find(signal).is_some()) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            // Field names are validated to [A-Za-z0-9_.-]: no escaping needed.
            out.push(b'"');
            out.extend_from_slice(field.as_bytes());
            out.extend_from_slice(b"\":");
            let _ = value.write(out); // writing to a Vec cannot fail
        }
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, spec: &str) -> Rule {
        Rule { id: id.into(), org_id: "acme".into(), created_ms: 0, spec: serde_json::from_str(spec).expect("spec") }
    }

    fn matching(rules: &RuleSet, source: &str, event: &str, json: &str) -> Vec<String> {
        let mut bytes = json.as_bytes().to_vec();
        let signal = simd_json::to_borrowed_value(&mut bytes).expect("json");
        rules.of("acme").iter().filter(|r| r.matches(source, event, &signal)).map(|r| r.id.clone()).collect()
    }

    fn condition(id: &str, condition: &str) -> Rule {
        rule(id, &format!(r#"{{"name":"{id}","conditions":[{condition}]}}"#))
    }

    #[test]
    fn each_operator_matches_what_it_says() {
        let rules = RuleSet::compile(vec![
            condition("exists", r#"{"path":"properties.form_name","op":"exists"}"#),
            condition("equals", r#"{"path":"properties.form_name","op":"equals","value":"demo"}"#),
            condition("equals_number", r#"{"path":"properties.seats","op":"equals","value":10}"#),
            condition("contains", r#"{"path":"context.page.url","op":"contains","value":"/pricing"}"#),
            condition("prefix", r#"{"path":"context.page.url","op":"prefix","value":"https://acme.io/"}"#),
            condition("regex", r#"{"path":"context.page.url","op":"regex","value":"/docs/v[0-9]+/"}"#),
            condition("in", r#"{"path":"properties.plan","op":"in","values":["pro","team"]}"#),
            condition("array", r#"{"path":"properties.items.1.sku","op":"equals","value":"B"}"#),
        ]);
        let all = r#"{"properties":{"form_name":"demo","seats":10,"plan":"team","items":[{"sku":"A"},{"sku":"B"}]},
                      "context":{"page":{"url":"https://acme.io/pricing/docs/v2/"}}}"#;
        assert_eq!(
            matching(&rules, "segment", "x", all),
            ["exists", "equals", "equals_number", "contains", "prefix", "regex", "in", "array"]
        );
        let none = r#"{"properties":{"form_name":null,"seats":"10","plan":"free","items":[{"sku":"B"}]},
                       "context":{"page":{"url":"http://other.io/docs/vX/"}}}"#;
        assert_eq!(matching(&rules, "segment", "x", none), Vec::<String>::new(), "null is absent; \"10\" is not 10");
    }

    #[test]
    fn source_and_event_narrow_a_rule() {
        let rules = RuleSet::compile(vec![
            rule("segment_demo", r#"{"name":"a","source":"segment","event":"Demo Requested"}"#),
            rule("any_demo", r#"{"name":"b","event":"Demo Requested"}"#),
        ]);
        assert_eq!(matching(&rules, "segment", "Demo Requested", "{}"), ["segment_demo", "any_demo"]);
        assert_eq!(matching(&rules, "generic", "Demo Requested", "{}"), ["any_demo"]);
        assert_eq!(matching(&rules, "segment", "Other", "{}"), Vec::<String>::new());
        assert!(RuleSet::compile(vec![]).of("acme").is_empty());
    }

    #[test]
    fn org_rules_win_over_defaults_and_earlier_rules_over_later() {
        let rules = RuleSet::compile(vec![
            rule("first", r#"{"name":"a","map":{"email":"properties.work_email","company":"properties.org"}}"#),
            rule("second", r#"{"name":"b","map":{"company":"properties.company","custom.plan":"properties.plan"}}"#),
        ]);
        let mut bytes = (r#"{"traits":{"email":"x@y.io","company":"Default Co","title":"CTO"},
                "properties":{"work_email":"not an email","company":"Second Co","plan":{"tier":"pro"}}}"#)
            .as_bytes()
            .to_vec();
        let signal = simd_json::to_borrowed_value(&mut bytes).expect("json");
        let mapping = Mapping { rules: rules.of("acme"), matched: &[0, 1] };
        assert_eq!(mapping.first("email", &signal).and_then(|v| v.as_str()), Some("x@y.io"), "not an email: skipped");
        let mut out = Vec::new();
        mapping.write_fields(&signal, &mut out);
        let fields: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(
            fields,
            serde_json::json!({"company": "Second Co", "custom.plan": {"tier": "pro"}, "title": "CTO"}),
            "first rule's company path is absent, so the second rule's wins over the default"
        );
    }
}
