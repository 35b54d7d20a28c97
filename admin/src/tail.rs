//! What the admin API reads from Kafka: the live tail of an org's processed signals (server-sent
//! events) and the count of its dead letters. Both use a reader of their own, which joins no
//! group and exists only while it is needed, so ingestion never waits for them.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use schemas::processed;
use serde::Deserialize;
use serde_json::json;

use super::{error, Admin};
use runtime::kafka::{self, topics, ReaderContext};

/// Signals a tail sends per second at most; the others are counted as skipped.
const TAIL_PER_SECOND: u32 = 20;
/// The gauge of tails open now.
pub const TAILS_OPEN: &str = "sigstage_admin_tails_open";

/// The tails a process serves: at most `limits.most` at once, each ended after `limits.idle`
/// without a signal to send (a tail is long-lived by design, so the listener's idle limit, which
/// its keep-alive comments satisfy, does not end it).
pub(crate) struct Tails {
    open: Arc<tokio::sync::Semaphore>,
    limits: crate::TailLimits,
}

impl Tails {
    pub(crate) fn new(limits: crate::TailLimits) -> Self {
        Tails { open: Arc::new(tokio::sync::Semaphore::new(limits.most)), limits }
    }
}

/// A reader and the partitions of `topic` (its full name), each at the offset `start` gives:
/// the partitions it should read, not yet assigned.
async fn reader_for(
    admin: &Admin,
    topic: &str,
    start: impl Fn(&StreamConsumer<ReaderContext>, TopicPartitionList) -> Result<TopicPartitionList, String>
        + Send
        + 'static,
) -> Result<(Arc<StreamConsumer<ReaderContext>>, TopicPartitionList), String> {
    let Some(config) = admin.kafka.clone() else {
        return Err("this process was started without Kafka settings".to_owned());
    };
    let topic = config.topic(topic);
    let consumer = Arc::new(kafka::partition_reader(&config).map_err(|e| e.to_string())?);
    let asking = Arc::clone(&consumer);
    // Asked before anything is assigned: a fetch in flight would hold each question up to
    // the broker's fetch wait.
    let partitions = tokio::task::spawn_blocking(move || {
        let metadata = asking.fetch_metadata(Some(&topic), Duration::from_secs(5)).map_err(|e| e.to_string())?;
        let count = metadata.topics().first().map_or(0, |t| t.partitions().len() as i32);
        if count == 0 {
            return Err(format!("topic {topic} has no partitions: has sigstage started on this cluster?"));
        }
        let mut list = TopicPartitionList::new();
        for partition in 0..count {
            list.add_partition_offset(&topic, partition, Offset::End).map_err(|e| e.to_string())?;
        }
        let list = start(&asking, list)?;
        asking.assign(&list).map_err(|e| e.to_string())?;
        Ok(list)
    })
    .await
    .map_err(|e| e.to_string())??;
    Ok((consumer, partitions))
}

#[derive(Deserialize)]
pub struct TailQuery {
    source: Option<String>,
    event: Option<String>,
}

/// `GET …/tail`: the org's processed signals from now on, as `signal` events (source, event,
/// kind, whether a rule mapped it, its rules, email and mapped fields), at most
/// [`TAIL_PER_SECOND`] a second; `skipped` says how many were left out before each. A `ready`
/// event comes first, once the reader is in place.
pub async fn tail(State(admin): State<Admin>, Path(org): Path<String>, Query(filter): Query<TailQuery>) -> Response {
    let Ok(permit) = Arc::clone(&admin.tails.open).try_acquire_owned() else {
        let most = admin.tails.limits.most;
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_tails",
            format!("at most {most} live tails at once (SIGSTAGE_ADMIN_MAX_TAILS); close another one"),
        );
    };
    let idle = admin.tails.limits.idle;
    // From each partition's current end, resolved before `ready` is sent, so nothing that
    // arrives after `ready` is missed.
    let at_end = |consumer: &StreamConsumer<ReaderContext>, list: TopicPartitionList| {
        let mut ends = TopicPartitionList::new();
        for element in list.elements() {
            let (_, high) = consumer
                .fetch_watermarks(element.topic(), element.partition(), Duration::from_secs(5))
                .map_err(|e| e.to_string())?;
            ends.add_partition_offset(element.topic(), element.partition(), Offset::Offset(high))
                .map_err(|e| e.to_string())?;
        }
        Ok(ends)
    };
    let (consumer, _) = match reader_for(&admin, topics::SIGNALS_PROCESSED, at_end).await {
        Ok(reader) => reader,
        Err(why) => return error(StatusCode::SERVICE_UNAVAILABLE, "tail_unavailable", why),
    };
    let (sender, receiver) = tokio::sync::mpsc::channel::<Event>(64);
    let open = Open::new();
    tokio::spawn(async move {
        let (_permit, _open) = (permit, open);
        if sender.send(Event::default().event("ready").data("{}")).await.is_ok()
            && tail_loop(&consumer, &sender, &format!("{org}:"), &filter, idle).await
        {
            let why = format!("no signal for {} s (SIGSTAGE_ADMIN_TAIL_IDLE_MS)", idle.as_secs());
            let _ = sender.send(Event::default().event("end").data(json!({"reason": why}).to_string())).await;
        }
        close(consumer);
    });
    let events = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (Ok::<_, Infallible>(event), receiver))
    });
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}

/// Closing a reader waits for the broker: done on a blocking thread, off the runtime.
fn close(consumer: Arc<StreamConsumer<ReaderContext>>) {
    tokio::task::spawn_blocking(move || drop(consumer));
}

/// Sends the org's signals until the client goes away (false) or none was sent for `idle` (true).
async fn tail_loop(
    consumer: &StreamConsumer<ReaderContext>,
    sender: &tokio::sync::mpsc::Sender<Event>,
    prefix: &str,
    filter: &TailQuery,
    idle: Duration,
) -> bool {
    let (mut window, mut sent, mut skipped) = (tokio::time::Instant::now(), 0u32, 0u64);
    let mut last_sent = tokio::time::Instant::now();
    loop {
        let message = tokio::select! {
            () = sender.closed() => return false,
            () = tokio::time::sleep_until(last_sent + idle) => return true,
            message = consumer.recv() => message,
        };
        let Ok(message) = message else { continue }; // a partition's end, or a passing error
        if !message.key().is_some_and(|key| key.starts_with(prefix.as_bytes())) {
            continue;
        }
        let Some(shown) = message.payload().and_then(|payload| shown(payload, filter)) else { continue };
        if window.elapsed() >= Duration::from_secs(1) {
            (window, sent) = (tokio::time::Instant::now(), 0);
        }
        if sent >= TAIL_PER_SECOND {
            skipped += 1;
            continue;
        }
        sent += 1;
        let data = json!({"skipped": skipped, "signal": shown});
        skipped = 0;
        if sender.send(Event::default().event("signal").data(data.to_string())).await.is_err() {
            return false;
        }
        last_sent = tokio::time::Instant::now();
    }
}

/// One open tail, counted in [`TAILS_OPEN`] while it lives, however its task ends.
pub(super) struct Open;

impl Open {
    /// Lists the gauge, at zero, from the first scrape.
    pub(super) fn describe() {
        metrics::describe_gauge!(TAILS_OPEN, "live tails the admin API is serving now");
        metrics::gauge!(TAILS_OPEN).increment(0.0);
    }

    fn new() -> Self {
        metrics::gauge!(TAILS_OPEN).increment(1.0);
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!(TAILS_OPEN).decrement(1.0);
    }
}

/// What the tail shows of a processed record, if it passes the filter.
fn shown(payload: &[u8], filter: &TailQuery) -> Option<serde_json::Value> {
    let record = processed::decode(payload).ok()?;
    let wanted = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w.is_empty() || w == have);
    if !wanted(&filter.source, &record.source) || !wanted(&filter.event, &record.event) {
        return None;
    }
    Some(json!({
        "signal_id": record.signal_id.to_string(),
        "source": record.source,
        "event": record.event,
        "kind": record.kind,
        "mapped": record.mapped,
        "rules": (!record.rules.is_empty()).then_some(&record.rules),
        "hot": record.hot,
        "email": record.email,
        "anonymous_id": record.anonymous_id,
        "fields": record.fields,
        "received_ms": record.received_ms,
    }))
}

/// Dead-letter scans at once per process; more wait their turn.
static SCANS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
/// How long an org's count is reused: the overview is a landing page, reloaded at will.
const COUNT_REUSED: Duration = Duration::from_secs(15);
type Counted = std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, serde_json::Value)>>;
static COUNTED: std::sync::LazyLock<Counted> = std::sync::LazyLock::new(Default::default);

/// The org's dead letters over the last 24 h, by reason: `{"total", "by_reason", "complete"}`,
/// or why they could not be counted. A scan reads at most 100 000 records and 5 seconds; its
/// answer is reused for [`COUNT_REUSED`].
pub async fn dead_letters(admin: &Admin, org: &str, since_ms: u64) -> serde_json::Value {
    // Per deployment (topic prefix) and org.
    let key =
        format!("{}/{org}", admin.kafka.as_ref().map(|kafka| kafka.topic(topics::SIGNALS_DLQ)).unwrap_or_default());
    let reused = |counted: &Counted| {
        let counted = counted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        counted.get(&key).filter(|(at, _)| at.elapsed() < COUNT_REUSED).map(|(_, value)| value.clone())
    };
    if let Some(value) = reused(&COUNTED) {
        return value;
    }
    let _turn = SCANS.acquire().await.expect("never closed");
    if let Some(value) = reused(&COUNTED) {
        return value; // counted while this request waited
    }
    let value = match count_dead(admin, org, since_ms).await {
        Ok((total, by_reason, complete)) => json!({"total": total, "by_reason": by_reason, "complete": complete}),
        Err(why) => return json!({"total": null, "unavailable": why}),
    };
    let mut counted = COUNTED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    counted.retain(|_, (at, _)| at.elapsed() < COUNT_REUSED);
    counted.insert(key, (std::time::Instant::now(), value.clone()));
    value
}

async fn count_dead(admin: &Admin, org: &str, since_ms: u64) -> Result<(u64, BTreeMap<String, u64>, bool), String> {
    // Each partition from its first record since `since_ms`; one with none since is left out.
    let since = move |consumer: &StreamConsumer<ReaderContext>, mut list: TopicPartitionList| {
        list.set_all_offsets(Offset::Offset(since_ms as i64)).map_err(|e| e.to_string())?;
        let starts = consumer.offsets_for_times(list, Duration::from_secs(5)).map_err(|e| e.to_string())?;
        let mut reading = TopicPartitionList::new();
        for element in starts.elements() {
            if let Offset::Offset(start) = element.offset() {
                reading
                    .add_partition_offset(element.topic(), element.partition(), Offset::Offset(start))
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(reading)
    };
    let (consumer, reading) = reader_for(admin, topics::SIGNALS_DLQ, since).await?;
    // Read until every partition reports its end (transaction markers may end one without a
    // record), at most 100 000 records and 5 seconds.
    let mut open: std::collections::BTreeSet<i32> = reading.elements().iter().map(|e| e.partition()).collect();
    let (mut total, mut by_reason, mut read) = (0u64, BTreeMap::new(), 0u32);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let prefix = format!("{org}:");
    while !open.is_empty() && read < 100_000 {
        let Ok(message) = tokio::time::timeout_at(deadline, consumer.recv()).await else { break };
        let message = match message {
            Ok(message) => message,
            Err(rdkafka::error::KafkaError::PartitionEOF(partition)) => {
                open.remove(&partition);
                continue;
            }
            Err(_) => continue,
        };
        read += 1;
        if message.key().is_some_and(|key| key.starts_with(prefix.as_bytes())) {
            total += 1;
            let reason = message
                .headers()
                .and_then(|headers| headers.iter().find(|h| h.key == schemas::record::headers::DLQ_REASON))
                .and_then(|header| header.value)
                .map_or("unknown".into(), |value| String::from_utf8_lossy(value).into_owned());
            *by_reason.entry(reason).or_insert(0u64) += 1;
        }
    }
    let complete = open.is_empty();
    close(consumer);
    Ok((total, by_reason, complete))
}
