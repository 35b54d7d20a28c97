//! The load baseline: an HTTP server that answers every request with the edge's 202 body and
//! does nothing else. `cargo run --release --example noop_server -- 127.0.0.1:18081`

use axum::http::StatusCode;
use axum::Router;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18081".to_owned());
    let app = Router::new().fallback(|| async {
        (
            StatusCode::ACCEPTED,
            [("content-type", "application/json")],
            r#"{"id":1,"message":"Signal received and queued for processing","source":"generic","cold_storage":false}"#,
        )
    });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("noop server on {addr}");
    axum::serve(listener, app).await
}
