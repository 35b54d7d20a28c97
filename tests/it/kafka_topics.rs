//! The topics every role prepares: retention and compaction as configured (and brought up to
//! date on topics that exist), and a refusal to start when co-partitioned topics differ.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use runtime::kafka::topics;

use crate::support::{config_of, sigstage, stderr, test_vars};

/// The settings of `topic` that sigstage owns, as the broker reports them.
async fn settings(brokers: &str, topic: &str) -> HashMap<String, String> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().expect("admin client");
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let described = admin.describe_configs(&[ResourceSpecifier::Topic(topic)], &options).await.expect("described");
    let resource = described.into_iter().next().expect("one").expect("topic exists");
    ["cleanup.policy", "retention.ms", "min.insync.replicas", "max.message.bytes"]
        .into_iter()
        .filter_map(|key| Some((key.to_owned(), resource.get(key)?.value.clone()?)))
        .collect()
}

#[tokio::test]
async fn topics_get_their_retention_compaction_and_updates() {
    let mut vars = test_vars();
    vars.insert("SIGSTAGE_KAFKA_RETENTION_HOURS".into(), "signals.dlq=-1".into());
    let config = config_of(&vars);
    runtime::kafka::prepare_topics(&config.kafka).await.expect("topics prepared");
    let brokers = &config.kafka.brokers;

    let raw = settings(brokers, &config.kafka.topic(topics::SIGNALS_RAW)).await;
    assert_eq!(raw["cleanup.policy"], "delete");
    assert_eq!(raw["retention.ms"], (168 * 3_600_000u64).to_string(), "7 days by default");
    assert_eq!(raw["min.insync.replicas"], "1", "one broker: auto gives 1");
    assert_eq!(raw["max.message.bytes"], runtime::kafka::MAX_RECORD_BYTES.to_string());
    assert_eq!(settings(brokers, &config.kafka.topic(topics::SIGNALS_DLQ)).await["retention.ms"], "-1");
    let identities = settings(brokers, &config.kafka.topic(topics::IDENTITIES)).await;
    assert_eq!(identities["cleanup.policy"], "compact", "state is compacted, never expired");

    // A restart with another retention updates the existing topic. The broker applies a config
    // change through its metadata log, so a describe right after may still show the old value.
    vars.insert("SIGSTAGE_KAFKA_RETENTION_HOURS".into(), "signals.raw=24".into());
    runtime::kafka::prepare_topics(&config_of(&vars).kafka).await.expect("topics updated");
    let expected = (24 * 3_600_000u64).to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let raw = settings(brokers, &config.kafka.topic(topics::SIGNALS_RAW)).await;
        if raw["retention.ms"] == expected {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "retention.ms still {} after 30 s", raw["retention.ms"]);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_role_refuses_to_start_when_co_partitioned_topics_differ() {
    let mut vars = test_vars();
    let config = config_of(&vars);
    // `identities` made by someone else with twice the partitions of the others.
    let mut wider = config.kafka.clone();
    wider.partitions = config.kafka.partitions * 2;
    let identities = config.kafka.topic(topics::IDENTITIES);
    runtime::kafka::ensure_topics(&wider, &[&identities]).await.expect("identities created");

    vars.insert("SIGSTAGE_HTTP_ADDR".into(), "127.0.0.1:0".into());
    let output = sigstage(&["stream"], &vars);
    assert!(!output.status.success(), "started anyway");
    let message = stderr(&output);
    assert!(message.contains("must have the same partition count"), "{message}");
    assert!(message.contains(&format!("{identities} ({})", wider.partitions)), "{message}");
    let raw = config.kafka.topic(topics::SIGNALS_RAW);
    assert!(message.contains(&format!("{raw} ({})", config.kafka.partitions)), "{message}");
}
