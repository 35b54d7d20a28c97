//! The edge's view of the control plane: API keys, org limits and usage, held in memory,
//! reloaded from ClickHouse every `SIGSTAGE_CONTROL_REFRESH_MS` (usage is flushed first).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use control::keys::{self, AuthError, Endpoint, KeySet};
use control::limits::OrgLimits;
use control::signing::Signing;

use crate::gcra::Gcra;
use crate::usage::{self, Usage};

/// The org and key a request authenticated as.
#[derive(Debug, Clone)]
pub struct Caller {
    pub org: Arc<str>,
    pub key_id: Arc<str>,
    /// The provider signature the key's requests must carry, if any.
    pub signing: Option<Arc<Signing>>,
    /// The key is marked historical: all it sends goes to the historical lane.
    pub historical: bool,
}

/// How many of a request's signals the plan admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Signals that may be produced (including overage).
    pub admitted: usize,
    /// Of those, how many are over the plan limit (only with overages allowed).
    pub overage: usize,
}

pub struct Gate {
    client: clickhouse::Client,
    keys: RwLock<Arc<KeySet>>,
    limits: RwLock<Arc<OrgLimits>>,
    /// Signals admitted per org since the usage in `limits` was read.
    counted: Mutex<Counted>,
    gcra: Gcra,
    usage: Usage,
    /// Keys created since the last load, found by looking them up; dropped on each refresh.
    found: Mutex<HashMap<String, Arc<KeySet>>>,
    /// Well-formed keys a lookup did not find, until the next refresh (at most
    /// [`MAX_UNKNOWN_KEYS`]: beyond, the oldest are forgotten all at once).
    unknown: Mutex<std::collections::HashSet<String>>,
    /// Lookups that may run at once; a key that finds none free is refused at once.
    lookups: tokio::sync::Semaphore,
}

/// What this instance admitted that `limits.month_used` does not hold yet, per org: still in
/// its usage counters, or already written to ClickHouse but not read back (a load that failed
/// after the write must not make them count twice, nor not at all).
#[derive(Default)]
struct Counted {
    unflushed: HashMap<Arc<str>, u64>,
    flushed: HashMap<Arc<str>, u64>,
}

impl Counted {
    fn of(&self, org: &Arc<str>) -> u64 {
        self.unflushed.get(org).copied().unwrap_or(0) + self.flushed.get(org).copied().unwrap_or(0)
    }
}

/// Unknown keys remembered between refreshes.
const MAX_UNKNOWN_KEYS: usize = 100_000;
/// Key lookups in ClickHouse that may run at once: a flood of unknown keys waits for none.
const CONCURRENT_LOOKUPS: usize = 4;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T>(lock: &RwLock<Arc<T>>) -> Arc<T> {
    Arc::clone(&lock.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
}

impl Gate {
    /// Loads keys and limits; fails when ClickHouse cannot be read.
    pub async fn load(client: clickhouse::Client) -> Result<Self, clickhouse::error::Error> {
        let keys = KeySet::load(&client).await?;
        let limits = OrgLimits::load(&client).await?;
        Ok(Self {
            client,
            keys: RwLock::new(Arc::new(keys)),
            limits: RwLock::new(Arc::new(limits)),
            counted: Mutex::default(),
            gcra: Gcra::default(),
            usage: Usage::default(),
            found: Mutex::default(),
            unknown: Mutex::default(),
            lookups: tokio::sync::Semaphore::new(CONCURRENT_LOOKUPS),
        })
    }

    /// Authenticates `key` from the keys in memory; a key missing there (created since the last
    /// refresh) is looked up in ClickHouse before it is refused, so a key works as soon as
    /// `keys create` returns. Keys a lookup did not find are remembered until the next refresh,
    /// and at most [`CONCURRENT_LOOKUPS`] run at once, so a flood of unknown keys costs little.
    /// Revocation still takes effect at the next refresh: what lookups found is dropped then.
    pub async fn authenticate(
        &self,
        key: &str,
        secret: Option<&[u8]>,
        endpoint: Endpoint,
        now_ms: u64,
    ) -> Result<Caller, AuthError> {
        let caller = |keys: &KeySet| {
            let entry = keys.authenticate(key, secret, endpoint, now_ms)?;
            Ok(Caller {
                org: Arc::clone(&entry.org_id),
                key_id: Arc::clone(&entry.key_id),
                signing: entry.signing.clone(),
                historical: entry.historical,
            })
        };
        match caller(&read(&self.keys)) {
            Err(AuthError::Unknown) if keys::is_well_formed(key) => {}
            answer => return answer,
        }
        let digest = keys::hash_hex(key);
        let found = lock(&self.found).get(&digest).cloned();
        if let Some(keys) = found {
            return caller(&keys);
        }
        if lock(&self.unknown).contains(&digest) {
            return Err(AuthError::Unknown);
        }
        let Ok(_permit) = self.lookups.try_acquire() else { return Err(AuthError::Unknown) };
        let keys = match KeySet::load_one(&self.client, key).await {
            Ok(keys) => Arc::new(keys),
            Err(error) => {
                tracing::warn!(%error, "looking up an API key missing from memory failed; refused");
                return Err(AuthError::Unknown);
            }
        };
        if keys.is_empty() {
            let mut unknown = lock(&self.unknown);
            if unknown.len() >= MAX_UNKNOWN_KEYS {
                unknown.clear();
            }
            unknown.insert(digest);
            return Err(AuthError::Unknown);
        }
        lock(&self.found).insert(digest, Arc::clone(&keys));
        caller(&keys)
    }

    /// Admits one request under the org's rate limit, or answers the seconds to wait.
    pub fn check_rate(&self, org: &Arc<str>, now_ms: u64) -> Result<(), u64> {
        let limits = read(&self.limits);
        match limits.rate.get(&**org) {
            Some(limit) => self.gcra.check(org, *limit, now_ms * 1_000).map_err(|wait_us| wait_us.div_ceil(1_000_000)),
            None => Ok(()),
        }
    }

    /// Reserves plan budget for up to `wanted` signals. Call `settle` once they were produced.
    pub fn reserve(&self, org: &Arc<str>, wanted: usize) -> Admission {
        let limits = read(&self.limits);
        let Some(plan) = limits.plan.get(&**org).filter(|plan| plan.monthly_raw_signals > 0) else {
            return Admission { admitted: wanted, overage: 0 };
        };
        let mut counted = lock(&self.counted);
        let used = limits.month_used.get(&**org).copied().unwrap_or(0) + counted.of(org);
        let remaining = plan.monthly_raw_signals.saturating_sub(used) as usize;
        let within = wanted.min(remaining);
        let admission = if plan.allow_overages {
            Admission { admitted: wanted, overage: wanted - within }
        } else {
            Admission { admitted: within, overage: 0 }
        };
        *counted.unflushed.entry(Arc::clone(org)).or_default() += admission.admitted as u64;
        admission
    }

    /// Records what happened to reserved signals: `produced` reached the broker (the overage
    /// ones last), the rest of the reservation is returned to the budget.
    pub fn settle(&self, org: &Arc<str>, admission: Admission, produced: usize) {
        let failed = admission.admitted.saturating_sub(produced);
        if failed > 0 {
            let mut counted = lock(&self.counted);
            if let Some(count) = counted.unflushed.get_mut(org) {
                *count = count.saturating_sub(failed as u64);
            }
        }
        let overage = admission.overage.saturating_sub(failed).min(produced);
        self.usage.add(org, usage::ACCEPTED, (produced - overage) as u64);
        self.usage.add(org, usage::OVERAGE, overage as u64);
    }

    /// Counts refused signals by reason.
    pub fn count_rejected(&self, org: &Arc<str>, code: &'static str, signals: usize) {
        self.usage.add(org, code, signals as u64);
    }

    /// Flushes usage, then reloads keys and limits. On error the previous state stays. Each
    /// admitted signal counts against its plan once, whichever step fails: once written, it
    /// moves from `unflushed` to `flushed`, and leaves `flushed` when a load reads it back.
    pub async fn refresh(&self) -> Result<(), clickhouse::error::Error> {
        let taken = self.usage.take();
        if let Err(error) = usage::write(&self.client, &taken, runtime::time::now_ms()).await {
            self.usage.restore(taken);
            return Err(error);
        }
        {
            let mut counted = lock(&self.counted);
            for ((org, outcome), signals) in &taken {
                if *outcome == usage::ACCEPTED || *outcome == usage::OVERAGE {
                    if let Some(count) = counted.unflushed.get_mut(org) {
                        *count = count.saturating_sub(*signals);
                    }
                    *counted.flushed.entry(Arc::clone(org)).or_default() += *signals;
                }
            }
        }
        let keys = KeySet::load(&self.client).await?;
        let limits = OrgLimits::load(&self.client).await?;
        *self.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(keys);
        lock(&self.found).clear();
        lock(&self.unknown).clear();
        let mut counted = lock(&self.counted);
        *self.limits.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(limits);
        // What was flushed is now in `limits.month_used`.
        counted.flushed.clear();
        Ok(())
    }

    /// Refreshes every `every` until the process ends.
    pub fn spawn_refresh(self: Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                if let Err(error) = self.refresh().await {
                    tracing::warn!(%error, "control-plane refresh failed; keeping the previous keys and limits");
                }
            }
        })
    }

    /// Writes pending usage (graceful shutdown).
    pub async fn flush_usage(&self) -> Result<(), clickhouse::error::Error> {
        let taken = self.usage.take();
        usage::write(&self.client, &taken, runtime::time::now_ms()).await
    }
}
