//! No org slows the others: an org sending more than its share of the recent live signals goes
//! to the overflow lane, the historical topic, which the stream reads only when the live one has
//! nothing waiting (PostHog routes such traffic to an overflow topic the same way).
//!
//! Each edge counts the live signals it admits per org over the last one to two windows of
//! [`WINDOW_MS`]. An org past `share_percent` of them, while at least one other org sent signals
//! and the edge took at least `min_per_second` over the windows, has its live signals written to
//! the historical lane until its share falls back. Alone, an org is never moved: there is nobody
//! to protect. A signal keeps everything but its lane, so it is processed, deduplicated and
//! attributed as any other, only later under load.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The length of one counting window.
pub const WINDOW_MS: u64 = 5_000;

pub const OVERFLOW_TOTAL: &str = "sigstage_ingest_overflow_signals_total";

/// When an org overflows (`runtime::config::OverflowLimits`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Percent of the recent live signals past which an org overflows (100: never).
    pub share_percent: u64,
    /// Live signals per second the edge must take before anything overflows.
    pub min_per_second: u64,
}

#[derive(Default)]
struct Window {
    started_ms: u64,
    per_org: HashMap<Arc<str>, u64>,
    total: u64,
}

#[derive(Default)]
struct Windows {
    current: Window,
    previous: Window,
    /// Orgs overflowing at their last signals, to log when one starts.
    overflowing: std::collections::HashSet<Arc<str>>,
}

pub struct Overflow {
    limits: Limits,
    windows: Mutex<Windows>,
}

impl Overflow {
    pub fn new(limits: Limits) -> Self {
        Self { limits, windows: Mutex::default() }
    }

    /// Counts `signals` live signals of `org` at `now_ms`; true when they go to the overflow lane.
    pub fn routes(&self, org: &Arc<str>, signals: usize, now_ms: u64) -> bool {
        if self.limits.share_percent >= 100 || signals == 0 {
            return false;
        }
        let mut windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A new window when the current one has ended, or when the clock stepped back before it.
        if now_ms >= windows.current.started_ms + WINDOW_MS || now_ms < windows.current.started_ms {
            let fresh = Window { started_ms: now_ms - now_ms % WINDOW_MS, ..Window::default() };
            let ended = std::mem::replace(&mut windows.current, fresh);
            let contiguous = ended.started_ms + WINDOW_MS == windows.current.started_ms;
            windows.previous = if contiguous { ended } else { Window::default() };
        }
        let signals = signals as u64;
        *windows.current.per_org.entry(Arc::clone(org)).or_default() += signals;
        windows.current.total += signals;
        let of_org = |window: &Window| window.per_org.get(org).copied().unwrap_or(0);
        let org_recent = of_org(&windows.current) + of_org(&windows.previous);
        let total = windows.current.total + windows.previous.total;
        // The time the counts cover (a clock stepped back counts as one second), compared in
        // milliseconds so a part-second is not rounded away.
        let covered_from = windows.previous.started_ms.max(windows.current.started_ms.saturating_sub(WINDOW_MS));
        let span_ms = now_ms.saturating_sub(covered_from).max(1000);
        let busy = total.saturating_mul(1000) >= self.limits.min_per_second.saturating_mul(span_ms);
        let overflows = busy && org_recent < total && org_recent * 100 > total * self.limits.share_percent;
        if overflows {
            metrics::counter!(OVERFLOW_TOTAL).increment(signals);
            if windows.overflowing.insert(Arc::clone(org)) {
                tracing::info!(
                    %org,
                    share_percent = org_recent * 100 / total,
                    "an org is past its share of the recent live signals: its signals go to the overflow (historical) lane"
                );
            }
        } else if windows.overflowing.remove(org) {
            tracing::info!(%org, "an org is back within its share: its signals go to the live lane again");
        }
        overflows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    #[test]
    fn an_org_past_its_share_overflows_and_comes_back() {
        let overflow = Overflow::new(Limits { share_percent: 50, min_per_second: 10 });
        let (noisy, calm) = (org("noisy"), org("calm"));
        let at = 1_000_000;
        // Alone, never, however fast.
        assert!(!overflow.routes(&noisy, 1_000, at));
        assert!(!overflow.routes(&calm, 10, at + 1), "a calm org never overflows");
        assert!(overflow.routes(&noisy, 100, at + 2), "past half, with another org sending");
        assert!(!overflow.routes(&calm, 10, at + 3));
        // Two windows later only the calm org is counted: the noisy one is back within its share.
        let later = at + 2 * WINDOW_MS;
        assert!(!overflow.routes(&calm, 100, later));
        assert!(!overflow.routes(&noisy, 50, later + 1));
    }

    #[test]
    fn a_clock_stepped_back_starts_afresh_without_panicking() {
        let overflow = Overflow::new(Limits { share_percent: 50, min_per_second: 1 });
        let (noisy, calm) = (org("noisy"), org("calm"));
        assert!(!overflow.routes(&calm, 10, 100_000));
        assert!(overflow.routes(&noisy, 100, 100_001));
        assert!(!overflow.routes(&noisy, 100, 10_000), "alone in a fresh window after the clock went back");
    }

    #[test]
    fn nothing_overflows_below_the_floor_or_when_turned_off() {
        let quiet = Overflow::new(Limits { share_percent: 50, min_per_second: 1_000 });
        let (noisy, calm) = (org("noisy"), org("calm"));
        assert!(!quiet.routes(&calm, 1, 0));
        assert!(!quiet.routes(&noisy, 100, 1), "100 signals are below 1 000 a second");
        let off = Overflow::new(Limits { share_percent: 100, min_per_second: 0 });
        assert!(!off.routes(&calm, 1, 0));
        assert!(!off.routes(&noisy, 1_000_000, 1));
    }
}
