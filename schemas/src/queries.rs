//! The analysts' query library, `schemas/queries/`: each file one question, its header comment
//! saying what it answers and which tables it reads, its parameters written `{name:Type}`.
//!
//! Current ClickHouse binds such parameters itself (`clickhouse-client --param_org=acme`);
//! 18.16 has no query parameters, so [`Query::bind`] writes each as a checked literal, which
//! both accept. `sigstage query` runs a query through it.

use std::collections::BTreeMap;

/// One question of the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! library {
    ($($name:literal),* $(,)?) => {
        &[$(Query { name: $name, sql: include_str!(concat!("../queries/", $name, ".sql")) }),*]
    };
}

/// Every query of the library, in the order the README lists them.
pub const QUERIES: &[Query] = library![
    "signals_by_source_and_day",
    "top_events",
    "daily_active",
    "lead_timeline",
    "first_and_last_touch",
    "leads_by_first_touch",
    "time_to_identification",
    "identification_by_day",
    "funnel",
    "unlinked_cold_signals",
];

/// A parameter's value that does not fit it, or one not given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    #[error("query {query} needs {name} ({kind})")]
    Missing { query: &'static str, name: String, kind: String },
    #[error("{name} {value:?} is not a {kind}: {what}")]
    Malformed { name: String, value: String, kind: String, what: &'static str },
    #[error("query {query} has no parameter {name} (it takes: {takes})")]
    Unknown { query: &'static str, name: String, takes: String },
    #[error("query {query} has a parameter of type {kind}, which sigstage cannot bind")]
    Unsupported { query: &'static str, kind: String },
}

impl Query {
    /// The query named `name`.
    pub fn named(name: &str) -> Option<Query> {
        QUERIES.iter().copied().find(|query| query.name == name)
    }

    /// What the query answers and reads: its header comment, without the `-- `.
    pub fn about(&self) -> String {
        let lines = self.sql.lines().map_while(|line| line.strip_prefix("--"));
        lines.map(str::trim).collect::<Vec<_>>().join(" ")
    }

    /// Its parameters as (name, type), each once, in the order they first appear.
    pub fn params(&self) -> Vec<(&'static str, &'static str)> {
        let mut params: Vec<(&str, &str)> = Vec::new();
        for (_, name, kind) in placeholders(self.sql) {
            if !params.iter().any(|(known, _)| *known == name) {
                params.push((name, kind));
            }
        }
        params
    }

    /// The SQL with every `{name:Type}` written as the literal of `values[name]`: a `String`
    /// quoted and escaped, a `Date` (`YYYY-MM-DD`) as `toDate('…')`, a `UInt32` as digits.
    pub fn bind(&self, values: &BTreeMap<String, String>) -> Result<String, BindError> {
        let params = self.params();
        if let Some(name) = values.keys().find(|name| !params.iter().any(|(known, _)| known == name)) {
            let takes = params.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ");
            return Err(BindError::Unknown { query: self.name, name: name.clone(), takes });
        }
        let mut sql = String::with_capacity(self.sql.len());
        let mut rest = 0;
        for (range, name, kind) in placeholders(self.sql) {
            let value = values.get(name).ok_or_else(|| BindError::Missing {
                query: self.name,
                name: name.to_owned(),
                kind: kind.to_owned(),
            })?;
            sql.push_str(&self.sql[rest..range.start]);
            sql.push_str(&literal(self.name, name, kind, value)?);
            rest = range.end;
        }
        sql.push_str(&self.sql[rest..]);
        Ok(sql)
    }
}

/// How many days before `until` a range starts when `since` is not given.
pub const DEFAULT_DAYS: i64 = 30;

/// Fills in the range a caller left out: `until` today (UTC), `since` [`DEFAULT_DAYS`] before
/// `until`.
pub fn default_range(values: &mut BTreeMap<String, String>) -> Result<(), BindError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let today = time::OffsetDateTime::now_utc().date();
    let until = values.entry("until".to_owned()).or_insert_with(|| today.to_string()).clone();
    if !values.contains_key("since") {
        let last = time::Date::parse(&until, &format).map_err(|_| BindError::Malformed {
            name: "until".to_owned(),
            value: until.clone(),
            kind: "Date".to_owned(),
            what: "write it YYYY-MM-DD",
        })?;
        values.insert("since".to_owned(), (last - time::Duration::days(DEFAULT_DAYS)).to_string());
    }
    Ok(())
}

/// Every `{name:Type}` outside comment lines: its byte range, name and type.
fn placeholders(sql: &str) -> Vec<(std::ops::Range<usize>, &str, &str)> {
    let mut found = Vec::new();
    let mut offset = 0;
    for line in sql.split_inclusive('\n') {
        if !line.trim_start().starts_with("--") {
            let mut from = 0;
            while let Some(open) = line[from..].find('{').map(|i| from + i) {
                let Some(close) = line[open..].find('}').map(|i| open + i) else { break };
                if let Some((name, kind)) = line[open + 1..close].split_once(':') {
                    let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if word(name) && word(kind) {
                        found.push((offset + open..offset + close + 1, name, kind));
                    }
                }
                from = close + 1;
            }
        }
        offset += line.len();
    }
    found
}

/// `value` as a ClickHouse string literal, every character that needs it escaped.
pub fn string_literal(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '\'' => quoted.push_str("\\'"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            '\0' => quoted.push_str("\\0"),
            c => quoted.push(c),
        }
    }
    quoted.push('\'');
    quoted
}

fn literal(query: &'static str, name: &str, kind: &str, value: &str) -> Result<String, BindError> {
    let malformed =
        |what| BindError::Malformed { name: name.to_owned(), value: value.to_owned(), kind: kind.to_owned(), what };
    match kind {
        "String" => Ok(string_literal(value)),
        "Date" => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            let date = time::Date::parse(value, &format).map_err(|_| malformed("write it YYYY-MM-DD"))?;
            let date = date.format(&format).map_err(|_| malformed("write it YYYY-MM-DD"))?;
            Ok(format!("toDate('{date}')"))
        }
        "UInt32" => {
            value.parse::<u32>().map(|n| n.to_string()).map_err(|_| malformed("a whole number from 0 to 4294967295"))
        }
        _ => Err(BindError::Unsupported { query, kind: kind.to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn every_query_says_what_it_answers_and_reads_and_takes_an_org() {
        for query in QUERIES {
            let about = query.about();
            assert!(about.contains("Reads: "), "{}: no 'Reads:' in its header: {about}", query.name);
            let params = query.params();
            assert!(params.contains(&("org", "String")), "{}: {params:?}", query.name);
            assert!(params.contains(&("since", "Date")) && params.contains(&("until", "Date")), "{}", query.name);
            let code: String = query.sql.lines().filter(|line| !line.trim_start().starts_with("--")).collect();
            assert!(!code.contains("FINAL"), "{} reads with FINAL", query.name);
            assert!(!code.contains("'acme'"), "{} names an org", query.name);
        }
        assert_eq!(Query::named("funnel").map(|q| q.name), Some("funnel"));
        assert_eq!(Query::named("nope"), None);
    }

    #[test]
    fn a_range_left_out_is_the_last_thirty_days() {
        let mut given = values(&[("until", "2026-03-31")]);
        default_range(&mut given).expect("a range");
        assert_eq!(given, values(&[("since", "2026-03-01"), ("until", "2026-03-31")]));
        let mut bad = values(&[("until", "31/03/2026")]);
        assert!(default_range(&mut bad).expect_err("a bad date").to_string().contains("is not a Date"));
        let mut none = BTreeMap::new();
        default_range(&mut none).expect("a range");
        assert_eq!(none["until"], time::OffsetDateTime::now_utc().date().to_string());
    }

    #[test]
    fn parameters_become_checked_literals() {
        let query = Query {
            name: "t",
            sql: "-- {not:Param} in a comment\nSELECT {org:String}, {since:Date}, {n:UInt32}, {org:String}",
        };
        assert_eq!(query.params(), [("org", "String"), ("since", "Date"), ("n", "UInt32")]);
        let sql =
            query.bind(&values(&[("org", "it's a \\ test"), ("since", "2026-02-28"), ("n", "7")])).expect("bound");
        assert_eq!(
            sql,
            "-- {not:Param} in a comment\nSELECT 'it\\'s a \\\\ test', toDate('2026-02-28'), 7, 'it\\'s a \\\\ test'"
        );
        let missing = query.bind(&values(&[("org", "a"), ("since", "2026-02-28")])).expect_err("a missing parameter");
        assert_eq!(missing.to_string(), "query t needs n (UInt32)");
        let bad_date =
            query.bind(&values(&[("org", "a"), ("since", "2026-02-30"), ("n", "1")])).expect_err("a bad date");
        assert!(bad_date.to_string().contains("is not a Date"), "{bad_date}");
        let bad_number =
            query.bind(&values(&[("org", "a"), ("since", "2026-02-01"), ("n", "-1")])).expect_err("a bad number");
        assert!(bad_number.to_string().contains("is not a UInt32"), "{bad_number}");
        let unknown = query
            .bind(&values(&[("org", "a"), ("since", "2026-02-01"), ("n", "1"), ("x", "1")]))
            .expect_err("an unknown parameter");
        assert_eq!(unknown.to_string(), "query t has no parameter x (it takes: org, since, n)");
    }
}
