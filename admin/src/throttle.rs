//! Failed admin authentications per client address. After [`MAX_FAILURES`] wrong tokens within
//! [`WINDOW_MS`], the address is refused with 429 until its window ends, whatever it sends: admin
//! tokens cannot be guessed at speed, and a right guess among refused tries tells nothing.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use axum::extract::ConnectInfo;
use axum::http::{header, Extensions, HeaderValue, StatusCode};
use axum::response::Response;

use super::error;

/// Wrong tokens an address may send within one window.
pub const MAX_FAILURES: u32 = 10;
/// How long an address's window lasts, from its first wrong token.
pub const WINDOW_MS: u64 = 60_000;
/// Addresses remembered at once; beyond that the oldest window is forgotten first.
const MAX_ADDRESSES: usize = 4096;

/// Windows of failures, per client address (`None`: a caller without one, as in tests).
#[derive(Default)]
pub(crate) struct Failures {
    windows: Mutex<HashMap<Option<IpAddr>, Window>>,
}

#[derive(Clone, Copy)]
struct Window {
    started_ms: u64,
    failures: u32,
}

impl Failures {
    /// Seconds until `client` may try again, when it has used up its window.
    pub(crate) fn barred(&self, client: Option<IpAddr>, now_ms: u64) -> Option<u64> {
        let windows = self.windows.lock().expect("failures lock");
        let window = windows.get(&client)?;
        let ends_ms = window.started_ms + WINDOW_MS;
        (window.failures >= MAX_FAILURES && now_ms < ends_ms).then(|| (ends_ms - now_ms).div_ceil(1000))
    }

    /// Counts a wrong token from `client`; answers true when that one used up its window.
    pub(crate) fn record(&self, client: Option<IpAddr>, now_ms: u64) -> bool {
        let mut windows = self.windows.lock().expect("failures lock");
        if windows.len() >= MAX_ADDRESSES && !windows.contains_key(&client) {
            windows.retain(|_, window| now_ms < window.started_ms + WINDOW_MS);
            if windows.len() >= MAX_ADDRESSES {
                if let Some(oldest) =
                    windows.iter().min_by_key(|(_, window)| window.started_ms).map(|(client, _)| *client)
                {
                    windows.remove(&oldest);
                }
            }
        }
        let window = windows.entry(client).or_insert(Window { started_ms: now_ms, failures: 0 });
        if now_ms >= window.started_ms + WINDOW_MS {
            *window = Window { started_ms: now_ms, failures: 0 };
        }
        window.failures += 1;
        window.failures == MAX_FAILURES
    }
}

/// The address a request came from, when the listener records it.
pub(crate) fn client(extensions: &Extensions) -> Option<IpAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip())
}

/// 429 for an address that sent too many wrong tokens, with when to try again.
pub(crate) fn refused(retry_after_s: u64) -> Response {
    let message = format!(
        "too many wrong admin tokens from this address: try again in {retry_after_s} s (at most {MAX_FAILURES} a minute)"
    );
    let mut response = error(StatusCode::TOO_MANY_REQUESTS, "too_many_failed_attempts", message);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[test]
    fn an_address_is_barred_for_the_rest_of_its_window_after_its_last_allowed_failure() {
        let failures = Failures::default();
        for n in 0..MAX_FAILURES - 1 {
            assert!(!failures.record(HOME, 1_000 + u64::from(n)), "failure {n} is allowed");
            assert_eq!(failures.barred(HOME, 1_000 + u64::from(n)), None);
        }
        assert!(failures.record(HOME, 2_000), "the last allowed failure uses the window up");
        assert_eq!(failures.barred(HOME, 2_000), Some(59), "barred until 60 s after the first failure");
        assert_eq!(failures.barred(HOME, 1_000 + WINDOW_MS - 1), Some(1));
        assert_eq!(failures.barred(None, 2_000), None, "another address is not barred");
        assert_eq!(failures.barred(HOME, 1_000 + WINDOW_MS), None, "a new window begins");
        assert!(!failures.record(HOME, 1_000 + WINDOW_MS), "counted in the new window, from one");
    }

    #[test]
    fn memory_is_bounded_by_forgetting_the_oldest_window() {
        let failures = Failures::default();
        for n in 0..MAX_ADDRESSES as u32 + 10 {
            failures.record(Some(IpAddr::V4(n.into())), u64::from(n));
        }
        let windows = failures.windows.lock().expect("lock");
        assert_eq!(windows.len(), MAX_ADDRESSES);
        assert!(!windows.contains_key(&Some(IpAddr::V4(0.into()))), "the oldest is gone");
        assert!(windows.contains_key(&Some(IpAddr::V4((MAX_ADDRESSES as u32 + 9).into()))));
    }
}
