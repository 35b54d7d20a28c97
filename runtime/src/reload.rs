//! Keeping a control-plane table in memory: loaded before the first use, retrying until
//! ClickHouse answers (working without it would be wrong, not just stale), then reloaded on a
//! timer; a failed reload keeps the last value, and receivers see a new one only on change.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Loads `what` with `load`, then reloads it every `every` until `stop` turns true. None when
/// stopped before the first load succeeded.
pub async fn keep_loaded<T, E, F, Fut>(
    what: &'static str,
    every: Duration,
    mut stop: watch::Receiver<bool>,
    mut load: F,
) -> Option<watch::Receiver<Arc<T>>>
where
    T: PartialEq + Send + Sync + 'static,
    E: Display,
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send,
{
    let mut backoff = Duration::from_millis(200);
    let first = loop {
        match load().await {
            Ok(value) => break value,
            Err(error) => tracing::warn!(%error, what, "cannot load yet; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {},
            _ = stop.changed() => return None,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    };
    let (sender, receiver) = watch::channel(Arc::new(first));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => {},
                _ = stop.changed() => return,
            }
            match load().await {
                Ok(fresh) if **sender.borrow() != fresh => {
                    tracing::info!(what, "changed; reloaded");
                    if sender.send(Arc::new(fresh)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, what, "reload failed; keeping the previous version"),
            }
        }
    });
    Some(receiver)
}
