//! The control plane as a stream processor sees it: mapping rules loaded from ClickHouse before
//! the first record and reloaded every refresh (no restart needed), and the signal queue's
//! counts written back.

use std::sync::Arc;
use std::time::Duration;

use common::control::{queue, rules};
use schemas::rules::Rule;
use tokio::sync::watch;

use crate::processor::Processor;
use crate::rules::RuleSet;

/// Loads the rules, retrying until ClickHouse answers (processing without them would mislabel
/// every signal), then reloads them every `every`; a failed reload keeps the last rules. The
/// receiver sees a new set only when the rules changed.
pub async fn watch_rules(
    client: clickhouse::Client,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> Option<watch::Receiver<Arc<RuleSet>>> {
    let mut backoff = Duration::from_millis(200);
    let first = loop {
        match rules::list(&client, None).await {
            Ok(rules) => break rules,
            Err(error) => tracing::warn!(%error, "cannot load mapping rules yet; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {},
            _ = stop.changed() => return None,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    };
    tracing::info!(rules = first.len(), "mapping rules loaded");
    let (sender, receiver) = watch::channel(Arc::new(RuleSet::compile(first.clone())));
    tokio::spawn(async move {
        let mut current: Vec<Rule> = first;
        let mut ticker = tokio::time::interval(every);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => {},
                _ = stop.changed() => return,
            }
            match rules::list(&client, None).await {
                Ok(rules) if rules != current => {
                    tracing::info!(rules = rules.len(), "mapping rules changed; reloaded");
                    current = rules;
                    if sender.send(Arc::new(RuleSet::compile(current.clone()))).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "mapping rules reload failed; keeping the previous rules"),
            }
        }
    });
    Some(receiver)
}

/// Writes the signal queue's counts since the last flush; on failure they are kept for the next.
pub async fn flush_queue(client: &clickhouse::Client, processor: &mut Processor) {
    let groups = processor.queue().take();
    if groups.is_empty() {
        return;
    }
    if let Err(error) = queue::append(client, &groups).await {
        tracing::warn!(%error, groups = groups.len(), "signal queue counts not written; keeping them for the next flush");
        processor.queue().restore(groups);
    }
}
