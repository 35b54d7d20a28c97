//! Records produced through the project's Kafka wiring come back through a consumer group, and
//! the group's committed offsets cover exactly what was stored; a stage's batch is bounded in
//! bytes as well as in records.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};
use runtime::kafka::reader::{BatchReader, Batching, BATCH_MAX_BYTES};
use runtime::kafka::Assignments;

use crate::support::{config_of, test_vars, unique};

#[tokio::test]
async fn produce_then_consume_through_a_group_with_commits() {
    let config = config_of(&test_vars()).kafka;
    let topic = config.topic("roundtrip");
    runtime::kafka::ensure_topics(&config, &[&topic]).await.expect("topic created (is the stack up?)");
    // Creating it again is not an error.
    runtime::kafka::ensure_topics(&config, &[&topic]).await.expect("ensure_topics is idempotent");

    let producer = runtime::kafka::producer(&config).expect("producer");
    let sent: BTreeSet<String> = (0..200).map(|i| format!("{{\"n\":{i}}}")).collect();
    let deliveries = sent.iter().enumerate().map(|(i, payload)| {
        let key = format!("org:visitor-{}", i % 7);
        let producer = &producer;
        let topic = &topic;
        async move {
            producer
                .send(FutureRecord::to(topic).key(&key).payload(payload), Duration::from_secs(5))
                .await
                .map_err(|(error, _)| error)
        }
    });
    for (i, delivery) in join_all(deliveries).await.into_iter().enumerate() {
        let partition = delivery.expect("delivered").partition;
        // Where the stream writes an alias's link for another visitor: it must be where the
        // producers put that visitor's records.
        let key = format!("org:visitor-{}", i % 7);
        assert_eq!(partition, runtime::kafka::partition_of(key.as_bytes(), config.partitions), "{key}");
    }

    let consumer = runtime::kafka::consumer(&config, &unique("group")).expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut received = BTreeSet::new();
    while received.len() < sent.len() {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("records arrive within 30 s")
            .expect("no consumer error");
        received.insert(String::from_utf8(message.payload().expect("payload").to_vec()).expect("utf-8"));
        consumer.store_offset_from_message(&message).expect("offset stored");
    }
    assert_eq!(received, sent);

    consumer.commit_consumer_state(CommitMode::Sync).expect("commit");
    let committed = consumer.committed(Duration::from_secs(10)).expect("committed offsets");
    assert_eq!(committed_total(&committed), sent.len() as i64, "{committed:?}");
}

#[tokio::test]
async fn a_batch_closes_at_its_byte_budget_before_its_record_count() {
    let config = config_of(&test_vars()).kafka;
    let topic = config.topic(&unique("large"));
    runtime::kafka::ensure_topics(&config, &[&topic]).await.expect("topic created (is the stack up?)");
    // 24 records of 3 MiB on one partition: 72 MiB, above the 64 MiB budget.
    let record = vec![b'x'; 3 << 20];
    let producer = runtime::kafka::producer(&config).expect("producer");
    for _ in 0..24 {
        producer
            .send(FutureRecord::to(&topic).key("org:one").payload(&record), Duration::from_secs(30))
            .await
            .map_err(|(error, _)| error)
            .expect("a 3 MiB record is accepted");
    }
    let consumer =
        runtime::kafka::stage_consumer(&config, &unique("group"), Assignments::new("test")).expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let batching = Batching { max: 1000, wait: Duration::from_secs(20), idle: Duration::from_secs(10) };
    let mut reader = BatchReader::new(Arc::new(consumer), batching);
    let (_keep, mut stop) = tokio::sync::watch::channel(false);
    let sizes = loop {
        let read = tokio::time::timeout(Duration::from_secs(60), reader.next(&mut stop))
            .await
            .expect("a batch within 60 s")
            .expect("no Kafka error")
            .expect("not stopped");
        if !read.batch.is_empty() {
            break read.batch.iter().map(|message| message.payload_len()).collect::<Vec<_>>();
        }
    };
    // It closed on the record that took it to the budget: 22 x 3 MiB >= 64 MiB > 21 x 3 MiB.
    let bytes: usize = sizes.iter().sum();
    assert!(bytes >= BATCH_MAX_BYTES && bytes - sizes[sizes.len() - 1] < BATCH_MAX_BYTES, "{bytes} bytes");
    assert_eq!(sizes.len(), 22, "records in the first batch, of 24 waiting and 1000 allowed");
}

fn committed_total(list: &TopicPartitionList) -> i64 {
    list.elements()
        .iter()
        .map(|element| match element.offset() {
            Offset::Offset(offset) => offset,
            _ => 0,
        })
        .sum()
}
