//! From Kafka records to ClickHouse rows: `signals.processed` records become hot or cold
//! signal rows, `identities` records identity and lead rows. Rows borrow from the records.

use clickhouse::Row;
use schemas::identities::{IdentityLink, NewLead};
use schemas::processed::Processed;
use serde::Serialize;
use serde_json::value::RawValue;

/// A row of `signals_hot` or `signals_cold` (same columns; cold rows have no lead).
#[derive(Debug, Row, Serialize)]
pub struct SignalRow<'a> {
    pub org_id: &'a str,
    pub lead_email: &'a str,
    pub signal_id: u64,
    pub anonymous_id: &'a str,
    pub user_id: &'a str,
    pub source: &'a str,
    pub kind: &'a str,
    pub event: &'a str,
    pub attributed_by: &'a str,
    pub mapped: u8,
    pub rules: Vec<&'a str>,
    pub content_hash: &'a str,
    pub received_ms: u64,
    pub event_ms: u64,
    pub fields: &'a str,
    pub payload: &'a str,
    pub written_ms: u64,
}

impl<'a> SignalRow<'a> {
    /// The row of a processed signal; `lead` makes it a hot row attributed `attributed_by`.
    pub fn of(signal: &'a Processed<'a>, lead: Option<(&'a str, &'a str)>, written_ms: u64) -> Self {
        let (lead_email, attributed_by) = lead.unwrap_or(("", ""));
        SignalRow {
            org_id: &signal.org,
            lead_email,
            signal_id: signal.signal_id,
            anonymous_id: signal.anonymous_id.as_deref().unwrap_or_default(),
            user_id: signal.user_id.as_deref().unwrap_or_default(),
            source: &signal.source,
            kind: &signal.kind,
            event: &signal.event,
            attributed_by,
            mapped: u8::from(signal.mapped),
            rules: signal.rules.iter().map(|rule| rule.as_ref()).collect(),
            content_hash: &signal.content_hash,
            received_ms: signal.received_ms,
            event_ms: signal.event_ms,
            fields: signal.fields.map_or("{}", RawValue::get),
            payload: signal.payload.map_or("{}", RawValue::get),
            written_ms,
        }
    }
}

/// A row's identity in its table, so a write whose outcome is unknown (a replay after a crash,
/// a retry after a timeout) can leave out the rows already there: the org, the value of the
/// table's second key column, and the id of the record that made the row.
pub trait Keyed {
    /// The second key column and the id column of `table`.
    fn key_columns(table: &str) -> (&'static str, &'static str);
    fn key(&self, table: &str) -> (&str, &str, u64);
}

impl Keyed for SignalRow<'_> {
    fn key_columns(table: &str) -> (&'static str, &'static str) {
        if table == "signals_hot" {
            ("lead_email", "signal_id")
        } else {
            ("anonymous_id", "signal_id")
        }
    }

    fn key(&self, table: &str) -> (&str, &str, u64) {
        let second = if table == "signals_hot" { self.lead_email } else { self.anonymous_id };
        (self.org_id, second, self.signal_id)
    }
}

impl Keyed for IdentityRow {
    fn key_columns(_: &str) -> (&'static str, &'static str) {
        ("anonymous_id", "signal_id")
    }

    fn key(&self, _: &str) -> (&str, &str, u64) {
        (&self.org_id, &self.anonymous_id, self.signal_id)
    }
}

impl Keyed for LeadRow {
    fn key_columns(_: &str) -> (&'static str, &'static str) {
        ("email", "first_signal_id")
    }

    fn key(&self, _: &str) -> (&str, &str, u64) {
        (&self.org_id, &self.email, self.first_signal_id)
    }
}

/// How many distinct months of `event_date` one insert into `signals_hot` or `signals_cold` may
/// span. Both tables are `PARTITION BY toYYYYMM(event_date)`, and current ClickHouse refuses an
/// insert whose rows fall in more than `max_partitions_per_insert_block` partitions (100 by
/// default): code 252, "Too many partitions for single INSERT block", every time, whatever the
/// retries. A batch of back-dated signals (an import, a client's own `timestamp`s) can span
/// years. Half the limit because [`month_of`] counts months in UTC and the server in its own
/// time zone, where a row near a month's edge may fall in the month before (zones west of UTC)
/// or after (east): 50 months here are at most 100 partitions there.
pub const MAX_MONTHS_PER_INSERT: usize = 50;

/// The month a signal's row is partitioned in, as months since 1970-01: what
/// `toYYYYMM(event_date)` is with `event_date` = `toDate(toDateTime(intDiv(event_ms, 1000)))`
/// on a UTC server. Seconds past DateTime's end (2106-02-07) count as its last month, as
/// current ClickHouse saturates them.
pub fn month_of(event_ms: u64) -> u32 {
    let days = (event_ms / 1000).min(u64::from(u32::MAX)) / 86_400;
    // Civil-from-days (H. Hinnant), for days since 1970-01-01 >= 0, with March-based years.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153; // 0 = March .. 11 = February
    let year = year_of_era + era * 400 + u64::from(march_month >= 10);
    let month = (march_month + 2) % 12; // 0 = January
                                        // At most (2106 - 1970) * 12 + 1: fits.
    ((year - 1970) * 12 + month) as u32
}

/// Cuts `rows`, sorted (or at least grouped) by `month`, into consecutive slices of at most
/// `max_months` distinct months each (at least one), in order; borrows, allocates nothing.
pub fn month_chunks<'r, T>(
    rows: &'r [T],
    month: impl Fn(&T) -> u32 + 'r,
    max_months: usize,
) -> impl Iterator<Item = &'r [T]> + 'r {
    let max_months = max_months.max(1);
    let mut rest = rows;
    std::iter::from_fn(move || {
        let first = rest.first()?;
        let (mut months, mut current, mut end) = (1, month(first), 1);
        while let Some(row) = rest.get(end) {
            let next = month(row);
            if next != current {
                if months == max_months {
                    break;
                }
                (months, current) = (months + 1, next);
            }
            end += 1;
        }
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(chunk)
    })
}

/// A row of `signal_origins`: where a signal came in.
#[derive(Debug, Clone, Row, Serialize)]
pub struct OriginRow<'a> {
    pub org_id: &'a str,
    pub signal_id: u64,
    pub key_id: &'a str,
    pub endpoint: &'a str,
    pub lane: &'a str,
    pub written_ms: u64,
}

impl<'a> OriginRow<'a> {
    pub fn of(signal: &'a Processed<'a>, written_ms: u64) -> Self {
        OriginRow {
            org_id: &signal.org,
            signal_id: signal.signal_id,
            key_id: signal.key_id.as_deref().unwrap_or_default(),
            endpoint: signal.endpoint.as_deref().unwrap_or_default(),
            lane: signal.lane.as_deref().unwrap_or_default(),
            written_ms,
        }
    }
}

impl Keyed for OriginRow<'_> {
    fn key_columns(_: &str) -> (&'static str, &'static str) {
        ("key_id", "signal_id")
    }

    fn key(&self, _: &str) -> (&str, &str, u64) {
        (self.org_id, self.key_id, self.signal_id)
    }
}

/// A row of the `identities` table: an `identities` record of kind link.
#[derive(Debug, Clone, Row, Serialize)]
pub struct IdentityRow {
    pub org_id: String,
    pub anonymous_id: String,
    pub email: String,
    pub name: String,
    pub company: String,
    pub title: String,
    pub signal_id: u64,
    pub linked_ms: u64,
}

impl From<IdentityLink> for IdentityRow {
    fn from(link: IdentityLink) -> Self {
        IdentityRow {
            org_id: link.org,
            anonymous_id: link.anonymous_id,
            email: link.email,
            name: link.name.unwrap_or_default(),
            company: link.company.unwrap_or_default(),
            title: link.title.unwrap_or_default(),
            signal_id: link.signal_id,
            linked_ms: link.linked_ms,
        }
    }
}

/// A row of the `leads` table: an `identities` record of kind lead.
#[derive(Debug, Clone, Row, Serialize)]
pub struct LeadRow {
    pub org_id: String,
    pub email: String,
    pub name: String,
    pub company: String,
    pub title: String,
    pub first_signal_id: u64,
    pub created_ms: u64,
}

impl From<NewLead> for LeadRow {
    fn from(lead: NewLead) -> Self {
        LeadRow {
            org_id: lead.org,
            email: lead.email,
            name: lead.name.unwrap_or_default(),
            company: lead.company.unwrap_or_default(),
            title: lead.title.unwrap_or_default(),
            first_signal_id: lead.signal_id,
            created_ms: lead.created_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::identities::Identity;

    #[test]
    fn processed_records_become_rows_without_copying_the_payload() {
        let record = br#"{"signal_id":7,"org":"acme","source":"segment","kind":"track","event":"Form \"A\"",
            "anonymous_id":"v1","hot":false,"mapped":true,"rules":["rule_1"],"content_hash":"ab","received_ms":2,
            "event_ms":1,"fields":{"company":"Acme"},"payload":{"type":"track","n":[1,2]}}"#;
        let processed = schemas::processed::decode(record).expect("parses");
        let cold = SignalRow::of(&processed, None, 9);
        assert_eq!(
            (cold.lead_email, cold.event, cold.anonymous_id, cold.fields),
            ("", "Form \"A\"", "v1", r#"{"company":"Acme"}"#)
        );
        assert_eq!(cold.payload, r#"{"type":"track","n":[1,2]}"#);
        let hot = SignalRow::of(&processed, Some(("jo@acme.io", "rehydrated")), 9);
        assert_eq!((hot.lead_email, hot.attributed_by, hot.rules), ("jo@acme.io", "rehydrated", vec!["rule_1"]));
    }

    /// Epoch milliseconds of a UTC date and time, for the month tests.
    fn ms(year: i64, month: i64, day: i64, seconds_of_day: i64) -> u64 {
        // Days-from-civil (H. Hinnant), the inverse of `month_of`'s calendar.
        let (y, m) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
        let era = y.div_euclid(400);
        let year_of_era = y - era * 400;
        let day_of_year = (153 * m + 2) / 5 + day - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        let days = era * 146_097 + day_of_era - 719_468;
        u64::try_from((days * 86_400 + seconds_of_day) * 1000).expect("after 1970")
    }

    #[test]
    fn months_are_the_ones_clickhouse_partitions_by() {
        let month = |year: u32, month: u32| (year - 1970) * 12 + month - 1;
        assert_eq!(month_of(0), 0);
        assert_eq!(month_of(ms(1970, 1, 31, 86_399) + 999), 0);
        assert_eq!(month_of(ms(1970, 2, 1, 0)), 1);
        assert_eq!(month_of(ms(2000, 2, 29, 43_200)), month(2000, 2));
        assert_eq!(month_of(ms(2024, 2, 29, 86_399) + 999), month(2024, 2));
        assert_eq!(month_of(ms(2024, 3, 1, 0)), month(2024, 3));
        assert_eq!(month_of(ms(2023, 12, 31, 86_399)), month(2023, 12));
        assert_eq!(month_of(ms(2024, 1, 1, 0)), month(2024, 1));
        assert_eq!(month_of(1_715_000_000_000), month(2024, 5)); // 2024-05-06T12:53:20Z
                                                                 // DateTime ends in 2106-02; ClickHouse saturates later times to it.
        assert_eq!(month_of(u64::from(u32::MAX) * 1000 + 999), month(2106, 2));
        assert_eq!(month_of(u64::MAX), month(2106, 2));
        // Every month from 1970 to 2105 starts a new one, exactly one after the last.
        for (n, (year, m)) in (1970..2106).flat_map(|year| (1..=12).map(move |m| (year, m))).enumerate() {
            let start = ms(year, m, 1, 0);
            assert_eq!(month_of(start), n as u32, "{year}-{m}-01");
            if n > 0 {
                assert_eq!(month_of(start - 1), n as u32 - 1, "just before {year}-{m}-01");
            }
        }
    }

    #[test]
    fn batches_are_cut_at_most_max_months_at_a_time() {
        let cut = |months: &[u32], max: usize| -> Vec<Vec<u32>> {
            month_chunks(months, |m| *m, max).map(<[u32]>::to_vec).collect()
        };
        assert!(cut(&[], 2).is_empty());
        assert_eq!(cut(&[7, 7, 7], 2), [vec![7, 7, 7]]);
        assert_eq!(cut(&[1, 1, 2, 3, 3, 3, 4, 9], 2), [vec![1, 1, 2], vec![3, 3, 3, 4], vec![9]]);
        assert_eq!(cut(&[1, 2, 3], 1), [vec![1], vec![2], vec![3]]);
        assert_eq!(cut(&[1, 2, 3], 0), [vec![1], vec![2], vec![3]], "0 means 1");
        // 150 months, two signals each, by the sink's limit: 3 inserts of 50 months, nothing lost.
        let months: Vec<u32> = (0..150).flat_map(|m| [m, m]).collect();
        let chunks = cut(&months, MAX_MONTHS_PER_INSERT);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [100, 100, 100]);
        for chunk in &chunks {
            let mut distinct = chunk.clone();
            distinct.dedup();
            assert_eq!(distinct.len(), MAX_MONTHS_PER_INSERT);
        }
        assert_eq!(chunks.concat(), months);
    }

    #[test]
    fn identity_records_become_rows() {
        let link =
            br#"{"org":"acme","anonymous_id":"v1","email":"jo@acme.io","company":"Acme","signal_id":3,"linked_ms":4}"#;
        let Ok(Identity::Link(link)) = Identity::decode(None, link) else { panic!("a link") };
        let link = IdentityRow::from(link);
        assert_eq!((link.org_id.as_str(), link.company.as_str(), link.name.as_str()), ("acme", "Acme", ""));
        let lead = br#"{"org":"acme","email":"jo@acme.io","signal_id":3,"created_ms":4}"#;
        let Ok(Identity::Lead(lead)) = Identity::decode(Some(b"lead"), lead) else { panic!("a lead") };
        let lead = LeadRow::from(lead);
        assert_eq!((lead.first_signal_id, lead.created_ms), (3, 4));
    }
}
