//! The in-memory store: the same GCRA as the Lua script, per process. It decides alone
//! without `REDIS_URL`, and in Redis's place during an outage.

use std::{
    collections::HashMap,
    hash::BuildHasher,
    sync::Mutex,
    time::{Duration, Instant},
};

use super::{Decision, lock};
use crate::config::Limit;

const SHARDS: usize = 16;
/// Sweep a shard for idle limiters every this many checks, bounding memory.
const SWEEP_EVERY: u64 = 4096;
/// Limiters one shard holds at most (131 072 in all). A limiter is its name and one instant
/// (about 100 bytes with the map's overhead), so this bounds the store to about 13 MB.
const MAX_LIMITERS_PER_SHARD: usize = 8192;
/// Where new limiters count when their shard is full of active ones: together, in one shared
/// budget. Known limiters keep their exact budgets and memory stays bounded, at the price of
/// newcomers sharing a budget until space frees up — never a fresh budget each (fail closed).
const OVERFLOW: &str = "(overflow)";

/// The in-memory twin of the Lua script: each limiter's theoretical arrival time, sharded to
/// keep lock contention low.
#[derive(Default)]
pub(super) struct MemoryStore {
    shards: [Mutex<Shard>; SHARDS],
    hasher: std::collections::hash_map::RandomState,
}

#[derive(Default)]
struct Shard {
    /// Each limiter's theoretical arrival time: `tat - now` is the budget in use.
    arrivals: HashMap<String, Instant>,
    checks: u64,
    /// New limiters are being sent to [`OVERFLOW`] (logged once per episode).
    overflowing: bool,
    last_sweep: Option<Instant>,
}

impl Shard {
    /// Drops limiters whose budget is whole again: they hold nothing worth keeping.
    fn sweep(&mut self, now: Instant) {
        self.arrivals.retain(|_, tat| *tat > now);
        if self.arrivals.len() < MAX_LIMITERS_PER_SHARD {
            self.overflowing = false;
        }
        self.last_sweep = Some(now);
    }
}

impl MemoryStore {
    pub(super) fn check(&self, limiter: &str, limit: Limit, now: Instant) -> Decision {
        let mut shard = lock(&self.shards[(self.hasher.hash_one(limiter) as usize) % SHARDS]);
        shard.checks += 1;
        let full = |shard: &Shard| {
            shard.arrivals.len() >= MAX_LIMITERS_PER_SHARD && !shard.arrivals.contains_key(limiter)
        };
        // When full, sweep at most once a second: a flood of new principals must not make
        // every check walk the whole shard.
        let sweep_due = shard
            .last_sweep
            .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
        if shard.checks.is_multiple_of(SWEEP_EVERY) || (full(&shard) && sweep_due) {
            shard.sweep(now);
        }
        let key = if full(&shard) {
            if !shard.overflowing {
                shard.overflowing = true;
                tracing::warn!(
                    limiters = MAX_LIMITERS_PER_SHARD * SHARDS,
                    "in-memory rate limiter full: new principals share one budget until space frees up"
                );
            }
            OVERFLOW
        } else {
            limiter
        };
        let in_use = shard
            .arrivals
            .get(key)
            .map_or(Duration::ZERO, |tat| tat.saturating_duration_since(now));
        let decision = Decision::gcra(limit, in_use);
        if decision.allowed {
            // `reset` is the budget in use after this request: the new arrival time.
            let tat = now + decision.reset;
            match shard.arrivals.get_mut(key) {
                Some(at) => *at = tat,
                None => {
                    shard.arrivals.insert(key.to_owned(), tat);
                }
            }
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(requests: u32, secs: u64) -> Limit {
        Limit {
            requests,
            window: Duration::from_secs(secs),
        }
    }

    #[test]
    fn a_burst_of_exactly_n_then_one_request_per_interval() {
        let store = MemoryStore::default();
        let t0 = Instant::now();
        let budget = limit(3, 30); // one request's worth of budget comes back every 10 s
        for i in 0..3 {
            let d = store.check("k", budget, t0);
            assert!(d.allowed);
            assert_eq!(d.remaining, 2 - i);
            assert_eq!(d.reset, Duration::from_secs(10 * u64::from(i + 1)));
            assert_eq!(d.retry_after, Duration::ZERO);
        }
        let d = store.check("k", budget, t0 + Duration::from_secs(4));
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(
            d.reset,
            Duration::from_secs(26),
            "until the budget is whole"
        );
        assert_eq!(
            d.retry_after,
            Duration::from_secs(6),
            "until one request's worth is back"
        );
        // Refusals take nothing: at t0+10 exactly one request's worth is back.
        let t10 = t0 + Duration::from_secs(10);
        let d = store.check("k", budget, t10);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        assert!(!store.check("k", budget, t10).allowed);
        // After a whole window of silence, the whole budget again, and never more.
        let later = t10 + Duration::from_secs(30);
        let admitted = (0..10)
            .filter(|_| store.check("k", budget, later).allowed)
            .count();
        assert_eq!(admitted, 3);
        // Other limiters are independent.
        assert!(store.check("other", budget, t0).allowed);
    }

    #[test]
    fn no_window_admits_more_than_twice_the_budget_and_the_rate_holds() {
        // The documented worst case: a full burst at the end of one window, then the steady
        // rate, admits at most 2N - 1 in any window; over a long run, N per window.
        let store = MemoryStore::default();
        let budget = limit(10, 10);
        let t0 = Instant::now();
        let mut admitted = Vec::new();
        for ms in (0..60_000).step_by(50) {
            let at = t0 + Duration::from_millis(ms);
            while store.check("k", budget, at).allowed {
                admitted.push(ms);
            }
        }
        let most_in_a_window = admitted
            .iter()
            .map(|start| {
                admitted
                    .iter()
                    .filter(|t| (*start..*start + 10_000).contains(*t))
                    .count()
            })
            .max()
            .unwrap();
        assert_eq!(most_in_a_window, 19, "2N - 1");
        // 10 at once, then one per second for the remaining 59.95 s.
        assert_eq!(admitted.len(), 10 + 59);
    }

    #[test]
    fn a_full_store_sends_newcomers_to_one_shared_budget_and_keeps_known_ones() {
        let store = MemoryStore::default();
        let t0 = Instant::now();
        let budget = limit(2, 10);
        // Far more distinct limiters than fit: memory stays bounded.
        for i in 0..(MAX_LIMITERS_PER_SHARD * SHARDS * 2) {
            store.check(&format!("ip:{i}"), budget, t0);
        }
        let held: usize = store.shards.iter().map(|s| lock(s).arrivals.len()).sum();
        assert!(held <= (MAX_LIMITERS_PER_SHARD + 1) * SHARDS, "{held}");
        // A limiter that got in keeps its own budget: one admission left of two.
        assert!(store.check("ip:0", budget, t0).allowed);
        assert!(!store.check("ip:0", budget, t0).allowed);
        // Newcomers do not get fresh budgets while the store is full of active limiters.
        let fresh = (0..50)
            .filter(|i| store.check(&format!("newcomer:{i}"), budget, t0).allowed)
            .count();
        assert_eq!(fresh, 0);
        // Once the window has passed, the idle limiters are swept and newcomers get their own.
        let later = t0 + Duration::from_secs(11);
        assert!(store.check("newcomer:x", budget, later).allowed);
        assert!(store.check("newcomer:x", budget, later).allowed);
        assert!(!store.check("newcomer:x", budget, later).allowed);
    }
}
