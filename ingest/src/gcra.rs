//! The generic cell rate algorithm: a sustained rate with a burst, one timestamp of state per
//! org (the theoretical arrival time), no background refill.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use control::limits::RateLimit;

#[derive(Default)]
pub struct Gcra {
    /// Per org: theoretical arrival time of the next request, in microseconds.
    tat_us: Mutex<HashMap<Arc<str>, u64>>,
}

impl Gcra {
    /// Admits one request of `org` at `now_us`, or answers how many microseconds until it would
    /// be admitted.
    pub fn check(&self, org: &Arc<str>, limit: RateLimit, now_us: u64) -> Result<(), u64> {
        let interval_us = 1_000_000 / u64::from(limit.requests_per_second.max(1));
        let tolerance_us = interval_us * u64::from(limit.burst.max(1));
        let mut states = self.tat_us.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let tat = states.get(org).copied().unwrap_or(now_us).max(now_us);
        let next = tat + interval_us;
        if next - now_us > tolerance_us {
            return Err(next - now_us - tolerance_us);
        }
        match states.get_mut(org) {
            Some(state) => *state = next,
            None => {
                states.insert(Arc::clone(org), next);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_sustained_rate() {
        let gcra = Gcra::default();
        let org: Arc<str> = Arc::from("acme");
        let limit = RateLimit { requests_per_second: 10, burst: 5 };
        let start = 1_000_000_000;
        for i in 0..5 {
            assert_eq!(gcra.check(&org, limit, start), Ok(()), "burst request {i}");
        }
        let wait = gcra.check(&org, limit, start).expect_err("burst exhausted");
        assert_eq!(wait, 100_000, "one interval at 10/s");
        assert_eq!(gcra.check(&org, limit, start + wait), Ok(()));
        assert!(gcra.check(&org, limit, start + wait).is_err());
        // After a quiet second the full burst is back.
        for _ in 0..5 {
            assert_eq!(gcra.check(&org, limit, start + 2_000_000), Ok(()));
        }
    }

    #[test]
    fn orgs_do_not_share_budgets() {
        let gcra = Gcra::default();
        let limit = RateLimit { requests_per_second: 1, burst: 1 };
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        assert!(gcra.check(&a, limit, 0).is_ok());
        assert!(gcra.check(&a, limit, 0).is_err());
        assert!(gcra.check(&b, limit, 0).is_ok());
    }
}
