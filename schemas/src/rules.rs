//! Mapping rules, as users write them (`sigstage rules add`, the admin API) and as they are
//! stored: a rule matches signals of an org by source, event name and conditions over
//! dot-notation paths, and maps paths of the signal to lead fields.
//!
//! ```json
//! {"name": "Demo form", "source": "segment", "event": "Form Submitted",
//!  "conditions": [{"path": "properties.form_name", "op": "equals", "value": "demo"},
//!                 {"path": "context.page.url", "op": "prefix", "value": "https://acme.io/"}],
//!  "map": {"email": "properties.work_email", "company": "properties.company",
//!          "custom.plan": "properties.plan"}}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The lead fields a rule can map to, besides `custom.<name>`.
pub const LEAD_FIELDS: [&str; 4] = ["email", "name", "company", "title"];
pub const MAX_CONDITIONS: usize = 32;
pub const MAX_MAPPINGS: usize = 64;
const MAX_PATH_LEN: usize = 256;
const MAX_REGEX_LEN: usize = 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    /// Only signals of this source (`segment`, `tracardi`, `activity`, `generic`, or a source
    /// named by the path or `X-Source`); any source when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Only signals with this event name (a Segment track's `event`, `page_view`, `identify`,
    /// …); any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// All must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Lead field (`email`, `name`, `company`, `title`, `custom.<name>`) → path in the signal.
    #[serde(default)]
    pub map: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// Dot notation: `properties.form_name`, `context.page.url`, `items.0.sku`.
    pub path: String,
    #[serde(flatten)]
    pub test: Test,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Test {
    /// The path is present and not null.
    Exists,
    /// A string, number or boolean equal to `value`.
    Equals { value: Value },
    /// A string containing `value`.
    Contains { value: String },
    /// A string starting with `value`.
    Prefix { value: String },
    /// A string matching the regular expression `value` (Rust `regex` syntax, unanchored).
    Regex { value: String },
    /// A value equal to one of `values`.
    In { values: Vec<Value> },
}

impl RuleSpec {
    /// Every problem with the rule, in words a user can act on; empty when it is valid.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() || self.name.len() > 200 {
            problems.push("name: give the rule a name of 1 to 200 characters".to_owned());
        }
        for (field, value) in [("source", &self.source), ("event", &self.event)] {
            if value.as_deref().is_some_and(|v| v.is_empty() || v.len() > 200) {
                problems.push(format!("{field}: must be 1 to 200 characters, or left out to match any"));
            }
        }
        if self.conditions.len() > MAX_CONDITIONS {
            problems.push(format!("conditions: at most {MAX_CONDITIONS}"));
        }
        if self.map.len() > MAX_MAPPINGS {
            problems.push(format!("map: at most {MAX_MAPPINGS} fields"));
        }
        for (i, condition) in self.conditions.iter().enumerate() {
            if let Err(problem) = check_path(&condition.path) {
                problems.push(format!("conditions[{i}].path: {problem}"));
            }
            match &condition.test {
                Test::Equals { value } if !is_scalar(value) => {
                    problems.push(format!("conditions[{i}].value: equals compares a string, number or boolean"))
                }
                Test::In { values } if values.is_empty() || !values.iter().all(is_scalar) => problems
                    .push(format!("conditions[{i}].values: give a non-empty list of strings, numbers or booleans")),
                Test::Regex { value } if value.len() > MAX_REGEX_LEN => {
                    problems.push(format!("conditions[{i}].value: a regex of at most {MAX_REGEX_LEN} characters"))
                }
                Test::Regex { value } => {
                    if let Err(error) = regex::Regex::new(value) {
                        problems.push(format!("conditions[{i}].value: not a valid regex: {error}"));
                    }
                }
                _ => {}
            }
        }
        for (field, path) in &self.map {
            if !valid_field(field) {
                problems.push(format!(
                    "map: {field:?} is not a lead field; use email, name, company, title or custom.<name> \
                     (letters, digits, '_', '-')"
                ));
            }
            if let Err(problem) = check_path(path) {
                problems.push(format!("map.{field}: {problem}"));
            }
        }
        problems
    }
}

fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

fn valid_field(field: &str) -> bool {
    LEAD_FIELDS.contains(&field)
        || field.strip_prefix("custom.").is_some_and(|name| {
            !name.is_empty()
                && name.len() <= 64
                && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        })
}

fn check_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() || path.len() > MAX_PATH_LEN {
        return Err("a dot-notation path of 1 to 256 characters, like properties.form_name");
    }
    if path.split('.').any(str::is_empty) {
        return Err("empty segment: write a.b.c, without leading, trailing or doubled dots");
    }
    Ok(())
}

/// A stored rule: its spec and where it belongs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub org_id: String,
    pub created_ms: u64,
    #[serde(flatten)]
    pub spec: RuleSpec,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> RuleSpec {
        serde_json::from_str(json).expect("parses")
    }

    #[test]
    fn every_operator_parses_and_a_valid_rule_has_no_problems() {
        let rule = spec(
            r#"{"name":"demo","source":"segment","event":"Form Submitted","conditions":[
                {"path":"properties.email","op":"exists"},
                {"path":"properties.form_name","op":"equals","value":"demo"},
                {"path":"context.page.url","op":"contains","value":"/pricing"},
                {"path":"context.page.url","op":"prefix","value":"https://"},
                {"path":"context.page.url","op":"regex","value":"^https://[a-z]+\\.io/"},
                {"path":"properties.plan","op":"in","values":["pro","team",3]}],
              "map":{"email":"properties.email","custom.plan":"properties.plan"}}"#,
        );
        assert_eq!(rule.conditions[5].test, Test::In { values: vec!["pro".into(), "team".into(), 3.into()] });
        assert_eq!(rule.problems(), Vec::<String>::new());
    }

    #[test]
    fn problems_name_the_field_and_what_to_do() {
        let rule = spec(
            r#"{"name":"","conditions":[{"path":"a..b","op":"exists"},{"path":"x","op":"regex","value":"("},
                {"path":"x","op":"in","values":[]},{"path":"x","op":"equals","value":{"a":1}}],
              "map":{"phone":"traits.phone","custom.":"x"}}"#,
        );
        let problems = rule.problems().join("\n");
        for expected in [
            "name:",
            "conditions[0].path",
            "conditions[1].value: not a valid regex",
            "conditions[2].values",
            "conditions[3].value",
            "\"phone\" is not a lead field",
            "\"custom.\"",
        ] {
            assert!(problems.contains(expected), "{expected:?} missing from:\n{problems}");
        }
    }

    #[test]
    fn unknown_operators_and_fields_are_refused() {
        assert!(serde_json::from_str::<RuleSpec>(r#"{"name":"x","conditions":[{"path":"a","op":"like"}]}"#).is_err());
        assert!(serde_json::from_str::<RuleSpec>(r#"{"name":"x","priority":1}"#).is_err());
    }
}
