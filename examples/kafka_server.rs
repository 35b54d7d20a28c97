//! The honest load ceiling: an HTTP server that does the one thing the edge cannot skip. It
//! produces each body (a bulk body: each of its lines) to `signals.raw` with the edge's producer
//! settings (`runtime::kafka::producer`: acks=all, idempotent, lz4, the same linger) and the
//! shape of the edge's records (a key per record, its six headers), awaits the broker's
//! acknowledgement, then answers the edge's 202 body. No parsing, no checks.
//!
//! `cargo run --release --example kafka_server -- 127.0.0.1:18082` with the edge's `SIGSTAGE_*`
//! environment (see `scripts/bench/load.sh`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{StatusCode, Uri};
use axum::Router;
use rdkafka::producer::{FutureProducer, FutureRecord};

#[path = "../benches/record_shape.rs"]
mod record_shape;

const ACCEPTED: &str =
    r#"{"id":1,"message":"Signal received and queued for processing","source":"generic","cold_storage":false}"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18082".to_owned());
    let config = runtime::config::Config::from_env()?;
    let producer = Arc::new(runtime::kafka::producer(&config.kafka)?);
    let topic: Arc<str> = config.kafka.topic(runtime::kafka::topics::SIGNALS_RAW).into();
    eprintln!("kafka server on {addr}, producing to {topic}");
    let app = Router::new().fallback(move |uri: Uri, body: Bytes| {
        let (producer, topic) = (Arc::clone(&producer), Arc::clone(&topic));
        async move { produce(&producer, &topic, uri.path().contains("/bulk/"), body).await }
    });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn produce(producer: &FutureProducer, topic: &str, bulk: bool, body: Bytes) -> (StatusCode, &'static str) {
    let records: Vec<&[u8]> = if bulk {
        body.split(|&byte| byte == b'\n').filter(|line| !line.is_empty()).collect()
    } else {
        vec![&body[..]]
    };
    static REQUESTS: AtomicUsize = AtomicUsize::new(0);
    let request = REQUESTS.fetch_add(1, Ordering::Relaxed);
    let sends = records.into_iter().enumerate().map(|(n, payload)| async move {
        let key = record_shape::key(request, n);
        let record = FutureRecord::to(topic).key(&key).payload(payload).headers(record_shape::headers());
        producer.send(record, std::time::Duration::from_secs(10)).await
    });
    match futures::future::join_all(sends).await.iter().all(Result::is_ok) {
        true => (StatusCode::ACCEPTED, ACCEPTED),
        false => (StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"broker_unavailable"}"#),
    }
}
