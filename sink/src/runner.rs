//! The ClickHouse sink's loop: a consumer group over `signals.processed` and `identities`
//! (`read_committed`: only what the stream committed), batch by batch (a size bound and a
//! deadline). Each batch becomes one insert per table (for the signal tables, one per
//! [`MAX_MONTHS_PER_INSERT`] months its signals span: ClickHouse refuses an insert into too
//! many partitions) and one rehydration statement.
//!
//! Exactly once into ClickHouse, which has no transactions to join: before a batch is written,
//! its end offsets are committed to the group as an intent (the metadata of its first offsets);
//! after, its end offsets. A sink given partitions reads the intents: records below one may be
//! in ClickHouse already, so until it is past them it writes only the rows its tables do not
//! hold (see [`store::existing`]); so does a retry after a write whose answer was lost.
//! Rehydration leaves out what is hot already. A replay changes no count, physically.
//!
//! Rehydration is exact whatever order the two topics arrive in: a visitor's first link
//! rehydrates the cold signals already written, and a cold signal of a visitor already linked
//! (in this batch or before) is written hot as well, under the lead it was first linked to (a
//! re-identification moves only later signals, which the stream attributes itself). Both topics' partition p go to the same sink (range
//! assignment of co-partitioned topics), so the two never race.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use control::people::Suppressions;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use runtime::config::KafkaConfig;
use runtime::kafka::reader::{BatchReader, Batching};
use runtime::kafka::{self, header_pairs, topics, Assignments};
use runtime::stage::batches::{run_batches, BatchStage, Flow};
use runtime::stage::{self, Stage, StageError};
use schemas::identities::Identity;
use schemas::processed;
use schemas::record::headers;
use tokio::sync::watch;

use crate::rows::{self, IdentityRow, Keyed, LeadRow, OriginRow, SignalRow, MAX_MONTHS_PER_INSERT};
use crate::store::{self, Retries, Visitors};

pub const ROWS_TOTAL: &str = "sigstage_sink_rows_total";
/// Rows left out of a write because the table held them already (replays).
pub const ROWS_SKIPPED_TOTAL: &str = "sigstage_sink_rows_skipped_total";

/// The metadata of an intent: records up to (excluding) this offset may be written.
const INTENT: &str = "writing-to:";
/// The metadata of a finished batch's offsets: every record below them is written.
const WRITTEN: &str = "written";

#[derive(Debug, Clone)]
pub struct Settings {
    /// Records a batch takes at most: each batch is one insert, and so one part, per table, and
    /// ClickHouse takes 20 000 rows in one insert faster than `clickhouse-client` takes them from
    /// a file, while 5 000 come to about 0.9 of it (`make bench-sink`).
    pub batch_max: usize,
    /// How long a batch may stay open after its first record ...
    pub batch_wait: Duration,
    /// ... or after its last, when no more came: each insert is a part to merge, so the sink
    /// waits longer than the stream, but a trickle is not held for the whole window.
    pub batch_idle: Duration,
    /// How often suppressions are reloaded (`SIGSTAGE_CONTROL_REFRESH_MS`).
    pub refresh: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            batch_max: 20_000,
            batch_wait: Duration::from_millis(200),
            batch_idle: Duration::from_millis(30),
            refresh: Duration::from_secs(5),
        }
    }
}

/// Rows left out because their person was deleted and is suppressed (`control::people`).
pub const ROWS_SUPPRESSED_TOTAL: &str = "sigstage_sink_rows_suppressed_total";

/// Where records below an offset may already be in ClickHouse: (topic, partition) → offset.
type Unsure = HashMap<(String, i32), i64>;

/// Writes processed signals, identities and leads to ClickHouse until `stop` turns true;
/// answers the error that ended it otherwise.
pub async fn run(
    config: &KafkaConfig,
    clickhouse: clickhouse::Client,
    settings: Settings,
    stage: Stage,
    mut stop: watch::Receiver<bool>,
) -> Result<(), StageError> {
    let (processed, identities, dlq) =
        (config.topic(topics::SIGNALS_PROCESSED), config.topic(topics::IDENTITIES), config.topic(topics::SIGNALS_DLQ));
    let consumer: Arc<StreamConsumer<Assignments>> =
        Arc::new(kafka::stage_consumer(config, &config.topic("sink"), Assignments::new("sink"))?);
    consumer.subscribe(&[&processed, &identities])?;
    // No idle bound: a batch waits its whole window, for fewer, larger inserts.
    let batching = Batching { max: settings.batch_max, wait: settings.batch_wait, idle: settings.batch_idle };
    let mut reader = BatchReader::new(consumer, batching);
    let producer = kafka::producer(config)?;
    // What the stream let through before it held a new suppression is held back here.
    let Some(suppressions) = Suppressions::keep_loaded(&clickhouse, settings.refresh, stop.clone()).await else {
        return Ok(());
    };
    tracing::info!(%processed, %identities, "ClickHouse sink consuming");
    let status = stage.clone();
    let topics = [processed, identities];
    let mut sink = Sink { clickhouse, producer, topics, dlq, unsure: Unsure::new(), status, suppressions };
    run_batches(&mut reader, &mut sink, &stage, &mut stop).await?;
    tracing::info!("ClickHouse sink stopped");
    Ok(())
}

/// The ClickHouse sink as a [`BatchStage`].
struct Sink {
    clickhouse: clickhouse::Client,
    producer: FutureProducer,
    /// `signals.processed` and `identities`.
    topics: [String; 2],
    dlq: String,
    unsure: Unsure,
    /// Shows in `/readyz` that a write waits on ClickHouse.
    status: Stage,
    suppressions: watch::Receiver<Arc<Suppressions>>,
}

impl BatchStage for Sink {
    const NAME: &'static str = "sink";

    async fn assigned(
        &mut self,
        consumer: &Arc<StreamConsumer<Assignments>>,
        partitions: &[i32],
        _stop: &mut watch::Receiver<bool>,
    ) -> Result<Flow, StageError> {
        let topics = [self.topics[0].as_str(), self.topics[1].as_str()];
        intents_of(consumer, &topics, partitions, &mut self.unsure).await?;
        Ok(Flow::Go)
    }

    async fn process(
        &mut self,
        consumer: &Arc<StreamConsumer<Assignments>>,
        batch: &[BorrowedMessage<'_>],
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Flow, StageError> {
        let unsure = &self.unsure;
        let replay = batch.iter().any(|message| {
            unsure.get(&(message.topic().to_owned(), message.partition())).is_some_and(|&end| message.offset() < end)
        });
        kafka::commit_offsets(consumer, intent(batch)).await?;
        let mut retries = Retries { stop, status: &self.status };
        let suppressions = self.suppressions.borrow().clone();
        let to = Destination { identities_topic: &self.topics[1], suppressions: &suppressions };
        let dead = match write_batch(&self.clickhouse, batch, &to, replay, &mut retries).await {
            Ok(Some(dead)) => dead,
            Ok(None) => return Ok(Flow::Stop),
            Err(error) => return Err(format!("ClickHouse refused the batch ({error}); it will be read again").into()),
        };
        for (message, reason, detail) in dead {
            let own = message.headers().map(header_pairs).unwrap_or_default();
            let (value, headers) =
                kafka::dead_letter(message.payload().unwrap_or_default(), &own, [reason, "sink", &detail]);
            let record =
                FutureRecord::to(&self.dlq).key(message.key().unwrap_or_default()).payload(&value).headers(headers);
            if let Err((error, _)) = self.producer.send(record, Duration::from_secs(30)).await {
                return Err(format!("a dead letter was not written ({error}); the batch will be read again").into());
            }
        }
        stage::fault_point("sink.before_commit");
        kafka::commit_offsets(consumer, written(batch)).await?;
        for message in batch {
            let key = (message.topic().to_owned(), message.partition());
            if self.unsure.get(&key).is_some_and(|&end| message.offset() + 1 >= end) {
                self.unsure.remove(&key);
            }
        }
        Ok(Flow::Go)
    }
}

/// The intent of `batch`: each partition's first offset in it (where the group stands), with
/// the offset past its last record as metadata.
fn intent(batch: &[BorrowedMessage<'_>]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    let ends = kafka::next_offsets(batch);
    for end in ends.elements() {
        let first = batch
            .iter()
            .filter(|message| message.topic() == end.topic() && message.partition() == end.partition())
            .map(|message| message.offset())
            .min()
            .unwrap_or(0);
        if let Offset::Offset(end_offset) = end.offset() {
            let mut element = list.add_partition(end.topic(), end.partition());
            // Only a negative offset is refused, and this is a record's.
            let _ = element.set_offset(Offset::Offset(first));
            element.set_metadata(format!("{INTENT}{end_offset}"));
        }
    }
    list
}

/// The end offsets of a finished `batch`, marked as a sink's.
fn written(batch: &[BorrowedMessage<'_>]) -> TopicPartitionList {
    let ends = kafka::next_offsets(batch);
    for mut element in ends.elements() {
        element.set_metadata(WRITTEN);
    }
    ends
}

/// Reads the group's committed offsets of newly `assigned` partitions of `topics`: an intent
/// left there by a sink that did not finish its batch marks records that may be written. An
/// offset without a sink's metadata was moved by someone else (an operator rewinding the group
/// with `kafka-consumer-groups --reset-offsets`, or a sink older than this marking): every
/// record up to the partition's end may be written, so until the sink is past it, it writes
/// only the rows its tables do not hold, and the rollups' views see each row once.
async fn intents_of(
    consumer: &Arc<StreamConsumer<Assignments>>,
    topics: &[&str],
    assigned: &[i32],
    unsure: &mut Unsure,
) -> Result<(), KafkaError> {
    let mut wanted = TopicPartitionList::new();
    for topic in topics {
        for &partition in assigned {
            wanted.add_partition(topic, partition);
        }
    }
    let asking = Arc::clone(consumer);
    let moved = tokio::task::spawn_blocking(move || -> Result<Vec<(String, i32, i64)>, KafkaError> {
        let mut moved = Vec::new();
        for element in asking.committed_offsets(wanted, Duration::from_secs(30))?.elements() {
            let (topic, partition) = (element.topic().to_owned(), element.partition());
            if let Some(end) = element.metadata().strip_prefix(INTENT).and_then(|end| end.parse::<i64>().ok()) {
                tracing::info!(%topic, partition, end, "replaying an unfinished batch");
                moved.push((topic, partition, end));
            } else if element.metadata() != WRITTEN && matches!(element.offset(), Offset::Offset(_)) {
                let (_, end) = asking.fetch_watermarks(&topic, partition, Duration::from_secs(30))?;
                tracing::info!(%topic, partition, end, "the group's offset was moved: writing only rows not stored yet");
                moved.push((topic, partition, end));
            }
        }
        Ok(moved)
    })
    .await
    .unwrap_or(Err(KafkaError::Canceled))?;
    for (topic, partition, end) in moved {
        unsure.insert((topic, partition), end);
    }
    Ok(())
}

type DeadLetter<'m, 'b> = (&'b BorrowedMessage<'m>, &'static str, String);

/// Writes one batch (`replay`: some of it may be in ClickHouse already); answers the records
/// that could not be written (bad data), None when asked to stop before ClickHouse took
/// everything, or the error of a statement ClickHouse refuses for good.
/// Where a batch's records go, and who is kept out.
struct Destination<'a> {
    identities_topic: &'a str,
    suppressions: &'a Suppressions,
}

async fn write_batch<'m, 'b>(
    clickhouse: &clickhouse::Client,
    batch: &'b [BorrowedMessage<'m>],
    to: &Destination<'_>,
    replay: bool,
    retries: &mut Retries<'_>,
) -> Result<Option<Vec<DeadLetter<'m, 'b>>>, clickhouse::error::Error> {
    let mut dead = Vec::new();
    let (mut new_links, mut leads, mut signals) = (Vec::new(), Vec::new(), Vec::new());
    // Links that rehydrate: a re-identified visitor's rows stay with the lead they went to.
    let mut rehydrating = Vec::new();
    let mut suppressed = 0u64;
    for message in batch {
        // A tombstone: a deleted person's link or lead, already deleted from ClickHouse.
        let Some(payload) = message.payload() else { continue };
        if message.topic() != to.identities_topic {
            match processed::decode(payload) {
                Ok(processed)
                    if to.suppressions.holds_any(
                        &processed.org,
                        [processed.email.as_deref(), processed.anonymous_id.as_deref(), processed.user_id.as_deref()],
                    ) =>
                {
                    suppressed += 1;
                }
                Ok(processed) => signals.push((message, processed)),
                Err(error) => dead.push((message, "invalid_processed_record", error.to_string())),
            }
            continue;
        }
        let kind =
            message.headers().and_then(|h| h.iter().find(|h| h.key == headers::IDENTITY_KIND)).and_then(|h| h.value);
        match Identity::decode(kind, payload) {
            Ok(Identity::Lead(lead)) if to.suppressions.holds(&lead.org, &lead.email) => suppressed += 1,
            Ok(Identity::Link(link))
                if to
                    .suppressions
                    .holds_any(&link.org, [Some(link.email.as_str()), Some(link.anonymous_id.as_str())]) =>
            {
                suppressed += 1;
            }
            Ok(Identity::Lead(lead)) => leads.push((message, LeadRow::from(lead))),
            Ok(Identity::Link(link)) => {
                rehydrating.push(link.previous_email.is_none());
                new_links.push((message, IdentityRow::from(link)));
            }
            Err(error) => dead.push((message, "invalid_identity_record", error.to_string())),
        }
    }
    metrics::counter!(ROWS_SUPPRESSED_TOTAL).increment(suppressed);
    // A stored signal processed again (history): its tables may hold its rows already.
    let replay = replay || signals.iter().any(|(_, processed)| processed.history);
    // The lead of each visitor with cold signals here: linked in this batch, or before.
    let cold_visitors = signals
        .iter()
        .filter(|(_, processed)| !processed.hot)
        .filter_map(|(_, processed)| Some((processed.org.as_ref(), processed.anonymous_id.as_deref()?)));
    let cold_visitors = Visitors::new(cold_visitors);
    let Some(mut links) = retries.run("links", || store::links_of(clickhouse, &cold_visitors)).await? else {
        return Ok(None);
    };
    for ((_, link), first) in new_links.iter().zip(&rehydrating) {
        if *first {
            links.entry(store::visitor_key(&link.org_id, &link.anonymous_id)).or_insert_with(|| link.email.clone());
        }
    }

    let now = runtime::time::now_ms();
    let (mut hot, mut cold) = (Vec::new(), Vec::new());
    for (message, processed) in &signals {
        match (&processed.email, processed.hot) {
            (Some(email), true) => {
                let attributed_by = processed.attributed_by.as_deref().unwrap_or("signal");
                hot.push((*message, SignalRow::of(processed, Some((email, attributed_by)), now)));
            }
            _ => {
                cold.push((*message, SignalRow::of(processed, None, now)));
                let anonymous_id = processed.anonymous_id.as_deref().unwrap_or_default();
                if let Some(email) = links.get(&store::visitor_key(&processed.org, anonymous_id)) {
                    hot.push((*message, SignalRow::of(processed, Some((email, "rehydrated")), now)));
                }
            }
        }
    }
    // Where each came in, first: a trace that finds a row finds where it came in (a stored
    // signal sent again came in before).
    let origins: Vec<_> = signals
        .iter()
        .filter(|(_, processed)| !processed.history)
        .map(|(message, processed)| (*message, OriginRow::of(processed, now)))
        .collect();
    if !write_rows::<OriginRow<'static>>(clickhouse, "signal_origins", &origins, replay, retries, &mut dead).await {
        return Ok(None);
    }
    // Cold rows go in before the links' rehydration reads them back.
    if !write_signal_rows(clickhouse, "signals_cold", &mut cold, replay, retries, &mut dead).await {
        return Ok(None);
    }
    stage::fault_point("sink.some_rows_written");
    if !write_signal_rows(clickhouse, "signals_hot", &mut hot, replay, retries, &mut dead).await {
        return Ok(None);
    }
    if !write_rows::<IdentityRow>(clickhouse, "identities", &new_links, replay, retries, &mut dead).await
        || !write_rows::<LeadRow>(clickhouse, "leads", &leads, replay, retries, &mut dead).await
    {
        return Ok(None);
    }
    // One statement for the batch's first links (a visitor's first identification: its cold
    // signals are its first lead's): a statement per link, all at once, made ClickHouse refuse
    // every query beyond its concurrent limit, analysts' included.
    let mut firsts: HashMap<(&str, &str), &str> = HashMap::new();
    for ((_, link), first) in new_links.iter().zip(&rehydrating) {
        if *first {
            firsts.entry((&link.org_id, &link.anonymous_id)).or_insert(&link.email);
        }
    }
    let to_rehydrate: Vec<(&str, &str, &str)> =
        firsts.into_iter().map(|((org, visitor), email)| (org, visitor, email)).collect();
    if !to_rehydrate.is_empty() {
        stage::fault_point("sink.rehydrating");
        let rehydrated = retries.run("rehydration", || store::rehydrate(clickhouse, &to_rehydrate, now));
        if rehydrated.await?.is_none() {
            return Ok(None);
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
    Ok(Some(dead))
}

/// Inserts signal rows at most [`MAX_MONTHS_PER_INSERT`] months at a time, in one insert when the
/// batch spans no more (the usual case: nothing sorted, nothing more allocated), else sorted by
/// month, a stable sort that keeps the order of rows of one month (and so of one key). Answers as
/// [`write_rows`].
async fn write_signal_rows<'m, 'b>(
    clickhouse: &clickhouse::Client,
    table: &'static str,
    rows: &mut [(&'b BorrowedMessage<'m>, SignalRow<'_>)],
    replay: bool,
    retries: &mut Retries<'_>,
    dead: &mut Vec<DeadLetter<'m, 'b>>,
) -> bool {
    let month = |(_, row): &(&BorrowedMessage<'_>, SignalRow<'_>)| rows::month_of(row.event_ms);
    let (first, last) = rows.iter().map(month).fold((u32::MAX, 0), |(lo, hi), m| (lo.min(m), hi.max(m)));
    if last.saturating_sub(first) < MAX_MONTHS_PER_INSERT as u32 {
        return write_rows::<SignalRow<'static>>(clickhouse, table, rows, replay, retries, dead).await;
    }
    rows.sort_by_key(month);
    for chunk in rows::month_chunks(rows, month, MAX_MONTHS_PER_INSERT) {
        if !write_rows::<SignalRow<'static>>(clickhouse, table, chunk, replay, retries, dead).await {
            return false;
        }
    }
    true
}

/// Inserts the rows of a batch in one insert, each row once (see [`insert_once`]). When
/// ClickHouse refuses them as bad data, inserts them one at a time, so only the rows at fault
/// (their records) become dead letters. Answers false when asked to stop first.
async fn write_rows<'m, 'b, T>(
    clickhouse: &clickhouse::Client,
    table: &'static str,
    rows: &[(&'b BorrowedMessage<'m>, T::Value<'_>)],
    replay: bool,
    retries: &mut Retries<'_>,
    dead: &mut Vec<DeadLetter<'m, 'b>>,
) -> bool
where
    T: clickhouse::Row + clickhouse::RowWrite,
    for<'v> T::Value<'v>: Keyed,
{
    let all: Vec<&T::Value<'_>> = rows.iter().map(|(_, row)| row).collect();
    match insert_once::<T>(clickhouse, table, &all, replay, retries).await {
        Ok(Some(())) => return true,
        Ok(None) => return false,
        Err(_) if retries.stopped() => return false,
        Err(error) => tracing::error!(%error, table, "rows refused as bad data; writing them one by one"),
    }
    for (message, row) in rows {
        match insert_once::<T>(clickhouse, table, &[row], replay, retries).await {
            Ok(Some(())) => {}
            Ok(None) => return false,
            Err(_) if retries.stopped() => return false,
            Err(error) => dead.push((message, "refused_by_clickhouse", error.to_string())),
        }
    }
    true
}

/// Inserts `rows`, retrying while ClickHouse is in trouble, so that each is in `table` once:
/// when some may be there already (`replay`, or a retry after an insert whose answer was
/// lost), those are left out first. None when asked to stop first.
async fn insert_once<'v, T>(
    clickhouse: &clickhouse::Client,
    table: &'static str,
    rows: &[&T::Value<'v>],
    replay: bool,
    retries: &mut Retries<'_>,
) -> Result<Option<()>, clickhouse::error::Error>
where
    T: clickhouse::Row + clickhouse::RowWrite,
    T::Value<'v>: Keyed,
{
    let mut unsure = replay;
    retries
        .run(table, || {
            let was_unsure = unsure;
            unsure = true; // from the second attempt on, the first may have landed
            async move {
                let mut rows = rows.to_vec();
                if was_unsure && !rows.is_empty() {
                    // Whatever stops the check, the rows are not at fault: retried like a lost answer.
                    let there = store::existing(clickhouse, table, &rows).await.map_err(|error| {
                        clickhouse::error::Error::Network(format!("checking which rows {table} holds: {error}").into())
                    })?;
                    rows.retain(|row| !there.contains(&row.key(table).2));
                    // A signal sent again may come twice in one batch (history resent after a crash).
                    let mut seen = std::collections::HashSet::new();
                    rows.retain(|row| seen.insert(row.key(table)));
                    metrics::counter!(ROWS_SKIPPED_TOTAL, "table" => table).increment(there.len() as u64);
                }
                runtime::clickhouse::insert::<T, _>(clickhouse, table, &rows).await
            }
        })
        .await
}
