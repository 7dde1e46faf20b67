//! The in-memory store: the same sliding-window log as the Lua script, per process. It
//! decides alone without `REDIS_URL`, and in Redis's place during an outage.

use std::{
    collections::{HashMap, VecDeque},
    hash::BuildHasher,
    sync::Mutex,
    time::{Duration, Instant},
};

use super::{Decision, lock};
use crate::config::Limit;

const SHARDS: usize = 16;
/// Sweep a shard for idle limiters every this many checks, bounding memory.
const SWEEP_EVERY: u64 = 4096;
/// Limiters one shard holds at most (16 384 in all). A log holds up to a budget's worth of
/// instants (300 × 16 bytes at the default budget), so this bounds the store to tens of MB
/// even when every limiter is at its budget.
const MAX_LIMITERS_PER_SHARD: usize = 1024;
/// Where new limiters count when their shard is full of active ones: together, in one shared
/// log. Known limiters keep their exact budgets and memory stays bounded, at the price of
/// newcomers sharing a budget until space frees up — never a fresh budget each (fail closed).
const OVERFLOW: &str = "(overflow)";

/// The in-memory twin of the Lua script: admission logs per limiter, sharded to keep lock
/// contention low.
#[derive(Default)]
pub(super) struct MemoryStore {
    shards: [Mutex<Shard>; SHARDS],
    hasher: std::collections::hash_map::RandomState,
}

#[derive(Default)]
struct Shard {
    /// Each limiter's window and admission times, oldest first.
    logs: HashMap<String, (Duration, VecDeque<Instant>)>,
    checks: u64,
    /// New limiters are being sent to [`OVERFLOW`] (logged once per episode).
    overflowing: bool,
    last_sweep: Option<Instant>,
}

impl Shard {
    /// Drops limiters whose newest admission has left their window: they hold no budget.
    fn sweep(&mut self, now: Instant) {
        self.logs.retain(|_, (window, log)| {
            log.back()
                .is_some_and(|last| now.duration_since(*last) < *window)
        });
        if self.logs.len() < MAX_LIMITERS_PER_SHARD {
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
            shard.logs.len() >= MAX_LIMITERS_PER_SHARD && !shard.logs.contains_key(limiter)
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
        let (window, log) = shard
            .logs
            .entry(key.to_owned())
            .or_insert_with(|| (limit.window, VecDeque::new()));
        *window = limit.window;
        while log
            .front()
            .is_some_and(|t| now.duration_since(*t) >= limit.window)
        {
            log.pop_front();
        }
        let allowed = log.len() < limit.requests as usize;
        if allowed {
            log.push_back(now);
        }
        let reset = log.front().map_or(limit.window, |oldest| {
            limit.window.saturating_sub(now.duration_since(*oldest))
        });
        Decision {
            allowed,
            limit: limit.requests,
            remaining: limit.requests.saturating_sub(log.len() as u32),
            reset,
        }
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
    fn memory_window_admits_exactly_n_then_slides() {
        let store = MemoryStore::default();
        let t0 = Instant::now();
        for i in 0..3 {
            let d = store.check("k", limit(3, 10), t0 + Duration::from_secs(i));
            assert!(d.allowed);
            assert_eq!(d.remaining, 2 - i as u32);
        }
        let d = store.check("k", limit(3, 10), t0 + Duration::from_secs(5));
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(
            d.reset,
            Duration::from_secs(5),
            "until the first entry leaves"
        );
        // Denied requests do not count: at t0+10 the first entry has left, one slot is free.
        let d = store.check("k", limit(3, 10), t0 + Duration::from_secs(10));
        assert!(d.allowed);
        assert!(
            !store
                .check("k", limit(3, 10), t0 + Duration::from_secs(10))
                .allowed
        );
        // Other limiters are independent.
        assert!(store.check("other", limit(3, 10), t0).allowed);
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
        let held: usize = store.shards.iter().map(|s| lock(s).logs.len()).sum();
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
