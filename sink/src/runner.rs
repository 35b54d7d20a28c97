//! The ClickHouse sink's loop: a consumer group over `signals.processed` and `identities`,
//! batch by batch (size and time bounds). Each batch becomes one insert per table (for the
//! signal tables, one per [`MAX_MONTHS_PER_INSERT`] months its signals span: ClickHouse refuses
//! an insert into too many partitions); a batch's offsets are stored only after ClickHouse
//! acknowledged every insert and rehydration of it, so a crash replays the batch, which the
//! tables' ReplacingMergeTree keys absorb.
//!
//! Rehydration is exact whatever order the two topics arrive in: a link rehydrates the cold
//! signals already written (INSERT … SELECT from the cold table), and a cold signal of a visitor
//! already linked (in this batch or before) is written hot as well.

use std::collections::HashMap;
use std::time::Duration;

use common::config::KafkaConfig;
use common::kafka::{self, header_pairs, topics, Assignments};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::producer::FutureRecord;
use schemas::record::headers;
use tokio::sync::watch;

use crate::rows::{self, IdentityRow, LeadRow, Processed, SignalRow, MAX_MONTHS_PER_INSERT};
use crate::store;

pub const ROWS_TOTAL: &str = "sigstage_sink_rows_total";

#[derive(Debug, Clone)]
pub struct Settings {
    pub batch_max: usize,
    pub batch_wait: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self { batch_max: 5000, batch_wait: Duration::from_millis(200) }
    }
}

/// Writes processed signals, identities and leads to ClickHouse until `stop` turns true.
pub async fn run(
    config: &KafkaConfig,
    clickhouse: clickhouse::Client,
    settings: Settings,
    mut stop: watch::Receiver<bool>,
) -> Result<(), KafkaError> {
    let (processed, identities, dlq) =
        (config.topic(topics::SIGNALS_PROCESSED), config.topic(topics::IDENTITIES), config.topic(topics::SIGNALS_DLQ));
    let consumer: StreamConsumer<Assignments> =
        kafka::consumer_with_context(config, &config.topic("sink"), Assignments::default())?;
    consumer.subscribe(&[&processed, &identities])?;
    let producer = kafka::producer(config)?;
    let mut links: HashMap<String, String> = HashMap::new();
    tracing::info!(%processed, %identities, "ClickHouse sink consuming");

    while !*stop.borrow() {
        let first = tokio::select! {
            message = consumer.recv() => message,
            _ = stop.changed() => break,
        };
        let mut batch: Vec<BorrowedMessage<'_>> = match first {
            Ok(message) => vec![message],
            Err(error) => {
                tracing::warn!(%error, "consume failed");
                continue;
            }
        };
        kafka::fill_batch(&consumer, &mut batch, settings.batch_max, settings.batch_wait).await;
        if !consumer.context().take().is_empty() {
            // Links other sinks wrote before this one was given the partitions.
            match store::with_retries("loading links", &mut stop, || store::links(&clickhouse)).await {
                Ok(loaded) => links = loaded,
                Err(error) => {
                    tracing::error!(%error, "cannot load identity links");
                    break;
                }
            }
        }
        let written = write_batch(&clickhouse, &batch, &identities, &mut links, &mut stop).await;
        let Some(dead) = written else { break };
        for (message, reason, detail) in dead {
            let own = message.headers().map(header_pairs).unwrap_or_default();
            let (value, headers) =
                kafka::dead_letter(message.payload().unwrap_or_default(), &own, [reason, "sink", &detail]);
            let record = FutureRecord::to(&dlq).key(message.key().unwrap_or_default()).payload(&value).headers(headers);
            if let Err((error, _)) = producer.send(record, Duration::from_secs(30)).await {
                tracing::error!(%error, "dead letter not written; the batch will be read again");
                return Err(error);
            }
        }
        for message in &batch {
            consumer.store_offset_from_message(message)?;
        }
    }
    kafka::commit_stored(&consumer)?;
    tracing::info!("ClickHouse sink stopped");
    Ok(())
}

type DeadLetter<'m, 'b> = (&'b BorrowedMessage<'m>, &'static str, String);

/// Writes one batch; answers the records that could not be written (bad data), or None when
/// asked to stop before ClickHouse took everything.
async fn write_batch<'m, 'b>(
    clickhouse: &clickhouse::Client,
    batch: &'b [BorrowedMessage<'m>],
    identities_topic: &str,
    links: &mut HashMap<String, String>,
    stop: &mut watch::Receiver<bool>,
) -> Option<Vec<DeadLetter<'m, 'b>>> {
    let mut dead = Vec::new();
    let (mut new_links, mut leads, mut signals) = (Vec::new(), Vec::new(), Vec::new());
    for message in batch {
        let payload = message.payload().unwrap_or_default();
        if message.topic() != identities_topic {
            match serde_json::from_slice::<Processed<'_>>(payload) {
                Ok(processed) => signals.push((message, processed)),
                Err(error) => dead.push((message, "invalid_processed_record", error.to_string())),
            }
            continue;
        }
        let kind = message
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == headers::IDENTITY_KIND))
            .and_then(|h| h.value)
            .unwrap_or(b"link");
        let parsed = if kind == b"lead" {
            serde_json::from_slice::<LeadRow>(payload).map(|lead| leads.push((message, lead)))
        } else {
            serde_json::from_slice::<IdentityRow>(payload).map(|link| new_links.push((message, link)))
        };
        if let Err(error) = parsed {
            dead.push((message, "invalid_identity_record", error.to_string()));
        }
    }
    for (_, link) in &new_links {
        links.insert(store::link_key(&link.org_id, &link.anonymous_id), link.email.clone());
    }

    let now = common::time::now_ms();
    let (mut hot, mut cold) = (Vec::new(), Vec::new());
    for (message, processed) in &signals {
        match (&processed.email, processed.hot) {
            (Some(email), true) => {
                let attributed_by = processed.attributed_by.as_deref().unwrap_or("signal");
                hot.push((*message, processed.row(Some((email, attributed_by)), now)));
            }
            _ => {
                cold.push((*message, processed.row(None, now)));
                let anonymous_id = processed.anonymous_id.as_deref().unwrap_or_default();
                if let Some(email) = links.get(&store::link_key(&processed.org, anonymous_id)) {
                    hot.push((*message, processed.row(Some((email, "rehydrated")), now)));
                }
            }
        }
    }
    // Cold rows go in before the links' rehydration reads them back.
    for (table, rows) in [("signals_cold", &mut cold), ("signals_hot", &mut hot)] {
        if !write_signal_rows(clickhouse, table, rows, stop, &mut dead).await {
            return None;
        }
    }
    if !write_rows::<IdentityRow>(clickhouse, "identities", &new_links, stop, &mut dead).await
        || !write_rows::<LeadRow>(clickhouse, "leads", &leads, stop, &mut dead).await
    {
        return None;
    }
    // One statement per org and up to REHYDRATE_VISITORS visitors (the batch's latest link of
    // each): a batch can carry thousands of links, and a statement per link, all at once, made
    // ClickHouse refuse every query beyond its concurrent limit, analysts' included.
    let mut latest: HashMap<(&str, &str), &str> = HashMap::new();
    for (_, link) in &new_links {
        latest.insert((&link.org_id, &link.anonymous_id), &link.email);
    }
    let mut by_org: HashMap<&str, Vec<(&str, &str)>> = HashMap::new();
    for ((org, visitor), email) in latest {
        by_org.entry(org).or_default().push((visitor, email));
    }
    for (org, links) in &by_org {
        for chunk in links.chunks(store::REHYDRATE_VISITORS) {
            let rehydrated =
                store::with_retries("rehydration", stop, || store::rehydrate(clickhouse, org, chunk, now)).await;
            if rehydrated.is_err() {
                return None;
            }
        }
    }
    let counts = [
        ("signals_hot", hot.len()),
        ("signals_cold", cold.len()),
        ("identities", new_links.len()),
        ("leads", leads.len()),
    ];
    for (table, count) in counts {
        metrics::counter!(ROWS_TOTAL, "table" => table).increment(count as u64);
    }
    Some(dead)
}

/// Inserts signal rows at most [`MAX_MONTHS_PER_INSERT`] months at a time, in one insert when the
/// batch spans no more (the usual case: nothing sorted, nothing more allocated), else sorted by
/// month, a stable sort that keeps the order of rows of one month (and so of one key). Answers as
/// [`write_rows`]; rows refused as bad data are told apart within their insert.
async fn write_signal_rows<'m, 'b>(
    clickhouse: &clickhouse::Client,
    table: &'static str,
    rows: &mut [(&'b BorrowedMessage<'m>, SignalRow<'_>)],
    stop: &mut watch::Receiver<bool>,
    dead: &mut Vec<DeadLetter<'m, 'b>>,
) -> bool {
    let month = |(_, row): &(&BorrowedMessage<'_>, SignalRow<'_>)| rows::month_of(row.event_ms);
    let (first, last) = rows.iter().map(month).fold((u32::MAX, 0), |(lo, hi), m| (lo.min(m), hi.max(m)));
    if last.saturating_sub(first) < MAX_MONTHS_PER_INSERT as u32 {
        return write_rows::<SignalRow<'static>>(clickhouse, table, rows, stop, dead).await;
    }
    rows.sort_by_key(month);
    for chunk in rows::month_chunks(rows, month, MAX_MONTHS_PER_INSERT) {
        if !write_rows::<SignalRow<'static>>(clickhouse, table, chunk, stop, dead).await {
            return false;
        }
    }
    true
}

/// Inserts the rows of a batch in one insert, retrying while ClickHouse is in trouble. When
/// ClickHouse refuses them as bad data, inserts them one at a time, so only the rows at fault
/// (their records) become dead letters. Answers false when asked to stop first.
async fn write_rows<'m, 'b, T>(
    clickhouse: &clickhouse::Client,
    table: &'static str,
    rows: &[(&'b BorrowedMessage<'m>, T::Value<'_>)],
    stop: &mut watch::Receiver<bool>,
    dead: &mut Vec<DeadLetter<'m, 'b>>,
) -> bool
where
    T: clickhouse::Row + clickhouse::RowWrite,
{
    let all: Vec<&T::Value<'_>> = rows.iter().map(|(_, row)| row).collect();
    match store::with_retries(table, stop, || common::clickhouse::insert::<T, _>(clickhouse, table, &all)).await {
        Ok(()) => return true,
        Err(_) if *stop.borrow() => return false,
        Err(error) => tracing::error!(%error, table, "rows refused as bad data; writing them one by one"),
    }
    for (message, row) in rows {
        let one = [row];
        match store::with_retries(table, stop, || common::clickhouse::insert::<T, _>(clickhouse, table, &one)).await {
            Ok(()) => {}
            Err(_) if *stop.borrow() => return false,
            Err(error) => dead.push((message, "refused_by_clickhouse", error.to_string())),
        }
    }
    true
}
