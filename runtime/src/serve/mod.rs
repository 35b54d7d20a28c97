//! The HTTP listeners, the edge's and the admin API's: one accept loop that bounds what a slow or
//! hostile client can hold.
//!
//! - how many connections a listener holds, and one client address of them (past either, the
//!   connection is answered 503 with `Retry-After` and closed at once);
//! - how long a client may take to send a request's head, or anything at all once connected
//!   ([`ServeLimits::head_timeout`]), and how slowly a body may arrive ([`min_rate`]);
//! - how long a kept-alive connection may wait for its next request;
//! - how long shutdown waits for requests in flight.
//!
//! Behind a proxy every connection comes from the proxy's address. A proxy listed in
//! `SIGSTAGE_HTTP_TRUSTED_PROXIES` is not capped as one client; the address its
//! `X-Forwarded-For` names is, by requests in flight. Handlers see the client's address as
//! axum's `ConnectInfo<SocketAddr>`.

mod activity;
mod clients;
pub mod min_rate;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use crate::config::ServeLimits;
use activity::Activity;
use clients::{Clients, Slot};

/// Connections each listener holds now.
pub const CONNECTIONS_OPEN: &str = "sigstage_http_connections_open";
/// Connections (or proxied requests) refused, by listener and reason (`listener_full`, `client_full`).
pub const CONNECTIONS_REFUSED: &str = "sigstage_http_connections_refused_total";
/// Connections the listener closed for a client's slowness, by listener and reason (`head_timeout`, `idle`).
pub const CONNECTIONS_TIMED_OUT: &str = "sigstage_http_connections_timed_out_total";
/// File descriptors kept for everything but the listeners (Kafka, ClickHouse, files).
const RESERVED_FDS: u64 = 256;

pub fn describe_metrics() {
    metrics::describe_gauge!(CONNECTIONS_OPEN, "HTTP connections each listener holds now");
    metrics::describe_counter!(
        CONNECTIONS_REFUSED,
        "HTTP connections (or requests through a trusted proxy) answered 503 at a connection cap, by listener and reason"
    );
    metrics::describe_counter!(
        CONNECTIONS_TIMED_OUT,
        "HTTP connections closed because the client was too slow, by listener and reason (head_timeout, idle)"
    );
    min_rate::describe_metrics();
}

/// Raises the soft open-file limit to the hard one, and answers the connections each of
/// `listeners` may hold: the configured cap, lowered so that together they use at most half of
/// what the limit leaves after [`RESERVED_FDS`]. Logs both.
pub fn connection_cap(limits: &ServeLimits, listeners: u64) -> usize {
    let before = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    let soft = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(before);
    let allowed = soft.saturating_sub(RESERVED_FDS) / 2 / listeners.max(1);
    let cap = (limits.max_connections as u64).min(allowed).max(1) as usize;
    if cap < limits.max_connections {
        tracing::warn!(
            open_files = soft,
            configured = limits.max_connections,
            cap,
            "the open-file limit holds each listener to fewer connections than SIGSTAGE_HTTP_MAX_CONNECTIONS: raise `ulimit -n` (the hard limit) for more"
        );
    } else {
        tracing::info!(
            open_files = soft,
            raised_from = before,
            cap,
            per_client = limits.max_per_client,
            "connection limits"
        );
    }
    cap
}

/// Serves `router` on `listener` within `limits` (at most `cap` connections) until `stop` turns
/// true; then waits up to the shutdown timeout for requests in flight, and closes the rest.
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    router: axum::Router,
    limits: ServeLimits,
    cap: usize,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The head and idle timeouts are kept by `activity`: hyper's would also run between requests.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    let shared = Arc::new(Shared { name, router, clients: Clients::new(limits.max_per_client), limits });
    let open = Arc::new(Semaphore::new(cap));
    let graceful = GracefulShutdown::new();
    metrics::gauge!(CONNECTIONS_OPEN, "listener" => name).set(0.0);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, most likely: wait for some to close, as axum does.
                tracing::error!(listener = name, %error, "accept failed; retrying in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            refuse(stream, name, "listener_full", &format!("the server holds its most connections ({cap})"));
            continue;
        };
        let slot = if shared.trusted(peer.ip()) {
            None
        } else {
            match shared.clients.enter(peer.ip()) {
                Some(slot) => Some(slot),
                None => {
                    let most = shared.limits.max_per_client;
                    refuse(stream, name, "client_full", &format!("this address holds its most connections ({most})"));
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let service = Connection { shared: Arc::clone(&shared), peer, activity: Arc::clone(&activity) };
        let io = TokioIo::new(activity::Watched::new(stream, Arc::clone(&activity)));
        let connection = graceful.watch(builder.serve_connection(io, service).into_owned());
        let limits = (shared.limits.head_timeout, shared.limits.idle_timeout);
        tokio::spawn(async move {
            let _held = Held::new(name, permit, slot);
            tokio::select! {
                _ = connection => {}
                slow = activity.slow(limits.0, limits.1) => {
                    metrics::counter!(CONNECTIONS_TIMED_OUT, "listener" => name, "reason" => slow.reason()).increment(1);
                }
            }
        });
    }
    drop(listener);
    let waiting = graceful.count();
    if tokio::time::timeout(shared.limits.shutdown_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            listener = name,
            connections = waiting,
            "requests still in flight after SIGSTAGE_HTTP_SHUTDOWN_TIMEOUT_MS; closing them"
        );
    }
}

/// What every connection of a listener shares.
struct Shared {
    name: &'static str,
    router: axum::Router,
    clients: Clients,
    limits: ServeLimits,
}

impl Shared {
    fn trusted(&self, ip: std::net::IpAddr) -> bool {
        self.limits.trusted_proxies.iter().any(|range| range.contains(ip))
    }

    /// The client a request is from: the peer, or through a trusted proxy the rightmost
    /// `X-Forwarded-For` address that is not itself a trusted proxy.
    fn client_of<B>(&self, peer: SocketAddr, request: &Request<B>) -> SocketAddr {
        if !self.trusted(peer.ip()) {
            return peer;
        }
        let forwarded = request.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
        let hops: Vec<&str> = forwarded.flat_map(|value| value.split(',')).collect();
        hops.iter()
            .rev()
            .filter_map(|hop| hop.trim().parse::<std::net::IpAddr>().ok())
            .find(|ip| !self.trusted(*ip))
            .map_or(peer, |ip| SocketAddr::new(ip, 0))
    }
}

/// One connection's service: each request counted busy while it is handled, its body held to
/// the least rate, its client's address attached.
struct Connection {
    shared: Arc<Shared>,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for Connection {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let busy = self.activity.busy();
        let shared = &self.shared;
        let client = shared.client_of(self.peer, &request);
        // Through a trusted proxy a client is capped by its requests in flight.
        let slot = if client == self.peer {
            Ok(None)
        } else {
            shared.clients.enter(client.ip()).map(Some).ok_or(shared.limits.max_per_client)
        };
        let (rate, window) = (shared.limits.body_min_rate, shared.limits.head_timeout);
        let mut request = request.map(|body| Body::new(min_rate::MinRate::new(body, rate, window)));
        request.extensions_mut().insert(ConnectInfo(client));
        let (router, name) = (shared.router.clone(), shared.name);
        Box::pin(async move {
            let _busy = busy;
            let _slot = match slot {
                Ok(slot) => slot,
                Err(most) => {
                    metrics::counter!(CONNECTIONS_REFUSED, "listener" => name, "reason" => "client_full").increment(1);
                    return Ok(busy_response(&format!("this address has its most requests in flight ({most})")));
                }
            };
            Ok(router.oneshot(request).await.unwrap_or_else(|never| match never {}))
        })
    }
}

/// What a connection holds while it is open: its place under the listener's cap and its
/// client's, and its count in [`CONNECTIONS_OPEN`].
struct Held {
    name: &'static str,
    _permit: OwnedSemaphorePermit,
    _slot: Option<Slot>,
}

impl Held {
    fn new(name: &'static str, permit: OwnedSemaphorePermit, slot: Option<Slot>) -> Self {
        metrics::gauge!(CONNECTIONS_OPEN, "listener" => name).increment(1.0);
        Held { name, _permit: permit, _slot: slot }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        metrics::gauge!(CONNECTIONS_OPEN, "listener" => self.name).decrement(1.0);
    }
}

const RETRY_AFTER_S: u64 = 1;

fn busy_body(why: &str) -> String {
    let message = format!("{why}; retry in {RETRY_AFTER_S} s");
    serde_json::json!({"error": "too_many_connections", "message": message}).to_string()
}

fn busy_response(why: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .header("retry-after", RETRY_AFTER_S)
        .header("content-type", "application/json")
        .body(Body::from(busy_body(why)))
        .unwrap_or_default()
}

/// Answers 503 without reading the request, and closes the connection: one write into an
/// empty socket buffer, never waited on.
fn refuse(stream: TcpStream, name: &'static str, reason: &'static str, why: &str) {
    metrics::counter!(CONNECTIONS_REFUSED, "listener" => name, "reason" => reason).increment(1);
    let body = busy_body(why);
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: {RETRY_AFTER_S}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IpRange;

    fn shared(trusted: &[&str]) -> Shared {
        let limits = crate::config::Config::from_vars(&Default::default()).expect("defaults").http.serve;
        let trusted_proxies = trusted.iter().map(|range| range.parse::<IpRange>().expect("range")).collect();
        Shared {
            name: "test",
            router: axum::Router::new(),
            clients: Clients::new(2),
            limits: ServeLimits { trusted_proxies, ..limits },
        }
    }

    fn request(forwarded: &[&str]) -> Request<()> {
        let mut request = Request::new(());
        for value in forwarded {
            request.headers_mut().append("x-forwarded-for", value.parse().expect("header"));
        }
        request
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_names_another() {
        let peer: SocketAddr = "10.0.0.5:4000".parse().expect("addr");
        let untrusted = shared(&[]);
        assert_eq!(untrusted.client_of(peer, &request(&["203.0.113.9"])), peer, "anyone can write the header");
        let behind = shared(&["10.0.0.0/24", "192.0.2.1"]);
        let client = |forwarded: &[&str]| behind.client_of(peer, &request(forwarded)).ip().to_string();
        assert_eq!(client(&["203.0.113.9"]), "203.0.113.9");
        // The rightmost hop not a trusted proxy: what the client wrote itself on the left is ignored.
        assert_eq!(client(&["198.51.100.1, 203.0.113.9, 192.0.2.1"]), "203.0.113.9");
        assert_eq!(client(&["198.51.100.1", "203.0.113.9"]), "203.0.113.9", "repeated headers read as one list");
        assert_eq!(client(&[]), "10.0.0.5", "no header: the proxy itself");
        assert_eq!(client(&["not an address"]), "10.0.0.5");
    }

    #[test]
    fn a_refusal_says_why_and_when_to_retry() {
        let answer = busy_response("this address holds its most connections (2)");
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.headers()["retry-after"], "1");
        assert!(busy_body("x").contains(r#""error":"too_many_connections""#));
    }
}
