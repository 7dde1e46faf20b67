//! Rate limiting with constant-size state: Redis when it answers, the same algorithm in memory
//! when not.
//!
//! The algorithm is GCRA (the generic cell rate algorithm, a token bucket kept as one time):
//! a budget of `N` per `W` lets a request use `T = W / N` of budget ("emission interval"), and
//! a limiter is admitted while the budget it has in use stays within `W`. Each limiter —
//! (principal, endpoint) — is one number, its theoretical arrival time `tat`: the budget in
//! use is `tat - now`. An idle limiter has a burst of `N`; after that, budget comes back at one
//! request per `T`. So a client can never send more than `N` at once, nor more than `N` per `W`
//! over time; the worst case for any window of length `W` is `2N - 1` (a full burst just
//! before the window, then the steady rate through it), where a log of every request would
//! allow exactly `N`. Refused requests take no budget.
//!
//! [`redis_store`] keeps `tat` as an integer key changed by one atomic Lua script;
//! [`memory_store`] is its in-process twin. One key per limiter, so the layout works on Redis
//! Cluster; it expires when its budget is whole again.
//!
//! When Redis fails or exceeds `REDIS_TIMEOUT_MS`, the in-memory store decides (never fail open,
//! never a 5xx), a warning is logged once per outage, and Redis is tried again after a short
//! pause; the first success ends the outage. Budgets are per process during an outage.
//!
//! This module decides; who is asking and which endpoint is called are the HTTP layer's
//! business (`http::middleware::rate_limit`).

mod memory_store;
mod redis_store;

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use self::{memory_store::MemoryStore, redis_store::RedisStore};
use crate::config::{Limit, RateLimitSettings, RateLimits};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Until the whole budget is back (`RateLimit-Reset`).
    pub reset: Duration,
    /// Until one more request would be admitted: zero when this one was (`Retry-After`).
    pub retry_after: Duration,
}

impl Decision {
    /// GCRA's decision for a limiter with `in_use` of its budget taken (`tat - now`, zero
    /// when idle): admitted while this request's interval still fits in the burst
    /// (`limit × interval`). Both stores decide with it; they only keep `tat`.
    pub(crate) fn gcra(limit: Limit, in_use: Duration) -> Self {
        let interval = Duration::from_micros(limit.emission_interval_us());
        let burst = interval * limit.requests;
        let debt = in_use + interval;
        if debt > burst {
            return Self {
                allowed: false,
                limit: limit.requests,
                remaining: 0,
                reset: in_use,
                retry_after: debt - burst,
            };
        }
        Self {
            allowed: true,
            limit: limit.requests,
            remaining: ((burst - debt).as_micros() / interval.as_micros()) as u32,
            reset: debt,
            retry_after: Duration::ZERO,
        }
    }

    /// [`Decision::reset`] in whole seconds, rounded up, as `RateLimit-Reset` wants it (a
    /// 0.2 s wait is "1", not "0").
    pub fn reset_secs(&self) -> u64 {
        whole_seconds(self.reset)
    }

    /// [`Decision::retry_after`] in whole seconds, rounded up, for `Retry-After`.
    pub fn retry_after_secs(&self) -> u64 {
        whole_seconds(self.retry_after)
    }
}

/// Which store made the last decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Redis,
    /// Redis configured but failing: deciding in memory until it answers again.
    MemoryFallback,
    /// No `REDIS_URL`.
    MemoryOnly,
}

/// Shared by every request of a process.
pub struct RateLimiter {
    redis: Option<RedisStore>,
    memory: MemoryStore,
    key_prefix: String,
    /// Budgets per endpoint (`RATE_LIMIT_*`).
    limits: RateLimits,
    /// Decisions taken in memory while Redis was configured: the outage metric.
    fallback_decisions: AtomicU64,
    outages: AtomicU64,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// Builds the limiter without connecting: the connection manager connects on first use
    /// and reconnects by itself after failures.
    pub fn new(settings: &RateLimitSettings) -> Result<Self, redis::RedisError> {
        let redis = match &settings.redis_url {
            None => None,
            Some(url) => Some(RedisStore::new(
                url.expose_secret(),
                settings.redis_ca_cert.as_deref(),
                settings.redis_timeout,
            )?),
        };
        Ok(Self {
            redis,
            memory: MemoryStore::default(),
            key_prefix: settings.redis_key_prefix.clone(),
            limits: settings.limits.clone(),
            fallback_decisions: AtomicU64::new(0),
            outages: AtomicU64::new(0),
        })
    }

    /// The budget of an endpoint named `METHOD /route/template`.
    pub fn limit_for(&self, endpoint: &str) -> Limit {
        self.limits.for_endpoint(endpoint)
    }

    /// Counts one sign-in attempt against the account of `normalized_email`, whoever makes it
    /// (`RATE_LIMIT_ACCOUNT`). The key holds a digest, not the address: Redis need not store
    /// users' emails.
    pub async fn check_sign_in(&self, normalized_email: &str) -> (Decision, Limit) {
        let digest = Sha256::digest(normalized_email.as_bytes());
        let mut account = String::with_capacity(40);
        for byte in &digest[..16] {
            account.push_str(&format!("{byte:02x}"));
        }
        let limit = self.limits.account;
        let decision = self
            .check(&format!("account:{account}|sign-in"), limit)
            .await;
        (decision, limit)
    }

    pub fn backend(&self) -> Backend {
        match &self.redis {
            None => Backend::MemoryOnly,
            Some(r) if r.is_down() => Backend::MemoryFallback,
            Some(_) => Backend::Redis,
        }
    }

    /// Decisions made in memory because Redis was unavailable, since start.
    pub fn fallback_decisions(&self) -> u64 {
        self.fallback_decisions.load(Ordering::Relaxed)
    }

    /// Redis outages seen since start.
    pub fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    /// Whether Redis answers a PING within the timeout; `None` when no Redis is configured.
    pub async fn ping(&self) -> Option<Result<(), String>> {
        let redis = self.redis.as_ref()?;
        let mut conn = redis.conn.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        Some(
            match tokio::time::timeout(redis.timeout.max(Duration::from_millis(250)), ping).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out".into()),
            },
        )
    }

    /// The Redis key of a limiter; the braces make it one hash slot on Redis Cluster.
    pub fn redis_key(&self, limiter: &str) -> String {
        format!("{}:rl:{{{limiter}}}", self.key_prefix)
    }

    /// Counts one request against `limiter` (e.g. `user:<id>|GET /v1/items`).
    pub async fn check(&self, limiter: &str, limit: Limit) -> Decision {
        if let Some(redis) = &self.redis {
            if redis.should_try() {
                match redis.check(&self.redis_key(limiter), limit).await {
                    Ok(decision) => {
                        redis.recovered();
                        return decision;
                    }
                    Err(reason) => {
                        if redis.failed() {
                            self.outages.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(
                                error = %reason,
                                "Redis unavailable: rate limiting in memory until it answers again"
                            );
                        }
                    }
                }
            }
            self.fallback_decisions.fetch_add(1, Ordering::Relaxed);
        }
        self.memory.check(limiter, limit, Instant::now())
    }
}

fn whole_seconds(wait: Duration) -> u64 {
    wait.as_micros().div_ceil(1_000_000) as u64
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the data inconsistent (plain values).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_admits_while_the_interval_fits_and_says_when_to_come_back() {
        let budget = Limit {
            requests: 3,
            window: Duration::from_secs(30),
        };
        let secs = Duration::from_secs;
        // Idle: admitted, two left, the budget whole again after one interval.
        let idle = Decision::gcra(budget, Duration::ZERO);
        assert!(idle.allowed);
        assert_eq!(
            (idle.remaining, idle.reset, idle.retry_after),
            (2, secs(10), secs(0))
        );
        // The last request's worth: admitted, none left, whole again after the window.
        let last = Decision::gcra(budget, secs(20));
        assert!(last.allowed);
        assert_eq!((last.remaining, last.reset), (0, secs(30)));
        // Over: refused, one more fits after 4 s, the whole budget after 24 s.
        let over = Decision::gcra(budget, secs(24));
        assert!(!over.allowed);
        assert_eq!(
            (over.remaining, over.reset, over.retry_after),
            (0, secs(24), secs(4))
        );
        // Debt that never fits again (the store is ahead): still a refusal, never a panic.
        assert!(!Decision::gcra(budget, secs(3600)).allowed);
    }

    #[test]
    fn reset_is_rounded_up_to_whole_seconds() {
        let after = |reset| Decision {
            allowed: false,
            limit: 1,
            remaining: 0,
            reset,
            retry_after: reset,
        };
        assert_eq!(after(Duration::from_millis(200)).reset_secs(), 1);
        assert_eq!(after(Duration::from_millis(200)).retry_after_secs(), 1);
        assert_eq!(after(Duration::from_secs(2)).reset_secs(), 2);
        assert_eq!(after(Duration::from_millis(2001)).reset_secs(), 3);
        assert_eq!(after(Duration::ZERO).reset_secs(), 0);
    }
}
