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
}

impl MemoryStore {
    pub(super) fn check(&self, limiter: &str, limit: Limit, now: Instant) -> Decision {
        let mut shard = lock(&self.shards[(self.hasher.hash_one(limiter) as usize) % SHARDS]);
        shard.checks += 1;
        if shard.checks.is_multiple_of(SWEEP_EVERY) {
            // Limiters whose newest admission has left their window hold no budget: drop them.
            shard.logs.retain(|_, (window, log)| {
                log.back()
                    .is_some_and(|last| now.duration_since(*last) < *window)
            });
        }
        let (window, log) = shard
            .logs
            .entry(limiter.to_owned())
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
}
