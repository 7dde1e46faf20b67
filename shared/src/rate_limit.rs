//! Sliding-window rate limiting: Redis when it answers, the same algorithm in memory when not.
//!
//! The window is a log of admission times per (principal, endpoint): a request is admitted when
//! fewer than `limit` requests were admitted in the last `window`. In Redis the log is a sorted
//! set and one Lua script prunes, counts, admits and reports in a single atomic round trip
//! (`EVALSHA`, loaded once), using Redis's clock so replicas of the API need not agree on time.
//! One key per limiter, so the layout works on Redis Cluster.
//!
//! When Redis fails or exceeds `REDIS_TIMEOUT_MS`, the in-memory log decides (never fail open,
//! never a 5xx), a warning is logged once per outage, and Redis is tried again after a short
//! pause; the first success ends the outage. Budgets are per process during an outage.

use std::{
    collections::{HashMap, VecDeque},
    hash::BuildHasher,
    net::{IpAddr, SocketAddr},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, MatchedPath, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use ipnet::IpNet;
use lambda_http::request::RequestContext;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret;

use crate::{
    auth::{self, VerifiedSubject},
    config::{Config, Limit},
    error::ApiError,
    state::AppState,
};

pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// How long to stay on the in-memory limiter after a Redis failure before trying Redis again.
const REDIS_RETRY_AFTER: Duration = Duration::from_secs(1);

const SLIDING_WINDOW_LUA: &str = r"
-- KEYS[1]: the limiter; ARGV: limit, window (µs), a unique suffix for this request's entry.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3])
  count = count + 1
  allowed = 1
end
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
local reset = window
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
return {allowed, limit - count, reset}
";

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Until the oldest counted request leaves the window (when budget frees up).
    pub reset: Duration,
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
    /// Decisions taken in memory while Redis was configured: the outage metric.
    fallback_decisions: AtomicU64,
    outages: AtomicU64,
}

struct RedisStore {
    conn: ConnectionManager,
    script: redis::Script,
    timeout: Duration,
    /// `Some(since)` while Redis is considered down; guarded by a lock because the "first"
    /// failure must log exactly once.
    down: Mutex<Option<Instant>>,
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
    pub fn new(config: &Config) -> Result<Self, redis::RedisError> {
        let redis = match &config.redis_url {
            None => None,
            Some(url) => {
                let client = redis::Client::open(url.expose_secret())?;
                let manager_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(1)))
                    .set_response_timeout(Some(config.redis_timeout.max(Duration::from_millis(1))))
                    .set_number_of_retries(1);
                Some(RedisStore {
                    conn: ConnectionManager::new_lazy_with_config(client, manager_config)?,
                    script: redis::Script::new(SLIDING_WINDOW_LUA),
                    timeout: config.redis_timeout,
                    down: Mutex::new(None),
                })
            }
        };
        Ok(Self {
            redis,
            memory: MemoryStore::default(),
            key_prefix: config.redis_key_prefix.clone(),
            fallback_decisions: AtomicU64::new(0),
            outages: AtomicU64::new(0),
        })
    }

    pub fn backend(&self) -> Backend {
        match &self.redis {
            None => Backend::MemoryOnly,
            Some(r) if lock(&r.down).is_some() => Backend::MemoryFallback,
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the data inconsistent (plain values).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RedisStore {
    fn should_try(&self) -> bool {
        match *lock(&self.down) {
            Some(since) => since.elapsed() >= REDIS_RETRY_AFTER,
            None => true,
        }
    }

    /// Records a failure; true when this failure starts an outage (log it once).
    fn failed(&self) -> bool {
        let mut down = lock(&self.down);
        let first = down.is_none();
        // Restart the pause either way, so a dead Redis is probed once per pause.
        *down = Some(Instant::now());
        first
    }

    fn recovered(&self) {
        let mut down = lock(&self.down);
        if let Some(since) = down.take() {
            tracing::info!(
                outage_ms = since.elapsed().as_millis() as u64,
                "Redis answers again: rate limiting in Redis"
            );
        }
    }

    async fn check(&self, key: &str, limit: Limit) -> Result<Decision, String> {
        let mut conn = self.conn.clone();
        let member: u64 = rand::random();
        let window_us = limit.window.as_micros() as u64;
        let call = async {
            self.script
                .key(key)
                .arg(limit.requests)
                .arg(window_us)
                .arg(member)
                .invoke_async::<(i64, i64, i64)>(&mut conn)
                .await
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok((allowed, remaining, reset_us))) => Ok(Decision {
                allowed: allowed == 1,
                limit: limit.requests,
                remaining: remaining.max(0) as u32,
                reset: Duration::from_micros(reset_us.max(0) as u64),
            }),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }
}

const SHARDS: usize = 16;
/// Sweep a shard for idle limiters every this many checks, bounding memory.
const SWEEP_EVERY: u64 = 4096;

/// The in-memory twin of the Lua script: admission logs per limiter, sharded to keep lock
/// contention low.
#[derive(Default)]
struct MemoryStore {
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
    fn check(&self, limiter: &str, limit: Limit, now: Instant) -> Decision {
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

/// Whole seconds, rounded up, as the headers want them (a 0.2 s wait is "1", not "0").
fn ceil_secs(d: Duration) -> u64 {
    d.as_micros().div_ceil(1_000_000) as u64
}

fn set_headers(headers: &mut HeaderMap, d: &Decision) {
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(d.limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(d.remaining));
    headers.insert(RATELIMIT_RESET, HeaderValue::from(ceil_secs(d.reset)));
}

/// Who is asking, for rate limiting: never a secret, and decided without the database.
///
/// The subject of a JWT whose signature and expiry check out; else the public prefix of an API
/// key that has authenticated in this process before ([`auth::api_key::VerifiedKeys`]);
/// else the client's IP address. The verified subject is handed on to the auth layer so the
/// signature is checked once.
fn principal(req: &mut Request, state: &AppState) -> String {
    match auth::credential(req.headers()) {
        Ok(auth::Credential::Jwt(token)) => {
            if let Ok(user_id) = state.jwt.verify(token) {
                req.extensions_mut().insert(VerifiedSubject(user_id));
                return format!("user:{user_id}");
            }
        }
        Ok(auth::Credential::ApiKey(key)) => {
            if let Some(prefix) = state.verified_keys.verified_prefix(key) {
                return format!("key:{prefix}");
            }
        }
        Err(_) => {}
    }
    match client_ip(req, &state.config.trusted_proxies) {
        Some(ip) => format!("ip:{ip}"),
        None => "ip:unknown".to_owned(),
    }
}

/// The client's address: the socket peer in the host, the gateway's view in Lambda; through a
/// trusted proxy, the right-most `X-Forwarded-For` entry that is not itself trusted.
pub fn client_ip(req: &Request, trusted: &[IpNet]) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let forwarded = || {
        req.headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>()
    };
    let peer = match req.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(addr)) => Some(addr.ip()),
        None => match req.extensions().get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV2(ctx)) => {
                ctx.http.source_ip.as_deref().and_then(parse_ip)
            }
            Some(RequestContext::ApiGatewayV1(ctx)) => {
                ctx.identity.source_ip.as_deref().and_then(parse_ip)
            }
            // An ALB appends the address it saw to X-Forwarded-For: the right-most entry.
            Some(RequestContext::Alb(_)) => forwarded().last().copied(),
            _ => None,
        },
    }?;
    if !is_trusted(&peer) {
        return Some(peer);
    }
    Some(
        forwarded()
            .into_iter()
            .rev()
            .find(|ip| !is_trusted(ip))
            .unwrap_or(peer),
    )
}

/// An address as a gateway reports it: plain, or (in some sample events) as a `/32` network.
fn parse_ip(raw: &str) -> Option<IpAddr> {
    raw.parse()
        .ok()
        .or_else(|| raw.parse::<IpNet>().ok().map(|net| net.addr()))
}

/// The endpoint a request counts against: method and route template, so `/v1/items/{id}` is
/// one endpoint whatever the id.
fn endpoint(req: &Request) -> String {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("(unmatched)", MatchedPath::as_str);
    format!("{} {route}", req.method())
}

/// The rate-limiting middleware (see the module docs). CORS preflights are answered further
/// out and never reach it.
pub async fn limit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let endpoint = endpoint(&req);
    let principal = principal(&mut req, &state);
    let budget = state.config.rate_limits.for_endpoint(&endpoint);
    let decision = state
        .limiter
        .check(&format!("{principal}|{endpoint}"), budget)
        .await;
    let mut response = if decision.allowed {
        next.run(req).await
    } else {
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "rate limit of {} requests per {} s exceeded for this endpoint; retry after the Retry-After seconds",
                budget.requests,
                budget.window.as_secs()
            ),
        )
        .into_response();
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(ceil_secs(decision.reset).max(1)),
        );
        r
    };
    set_headers(response.headers_mut(), &decision);
    response
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
    fn reset_is_rounded_up_to_whole_seconds() {
        assert_eq!(ceil_secs(Duration::from_millis(200)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(2)), 2);
        assert_eq!(ceil_secs(Duration::from_millis(2001)), 3);
        assert_eq!(ceil_secs(Duration::ZERO), 0);
    }

    fn request_from(peer: &str, xff: Option<&str>) -> Request {
        let mut req = http::Request::get("/")
            .body(axum::body::Body::empty())
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(
            format!("{peer}:40000").parse::<SocketAddr>().unwrap(),
        ));
        if let Some(xff) = xff {
            req.headers_mut()
                .insert("x-forwarded-for", xff.parse().unwrap());
        }
        req
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Untrusted peer: its X-Forwarded-For is ignored (it could say anything).
        let req = request_from("198.51.100.7", Some("203.0.113.9"));
        assert_eq!(client_ip(&req, &trusted), Some(ip("198.51.100.7")));
        // Trusted peer: the right-most untrusted hop is the client; spoofed left entries lose.
        let req = request_from("10.0.0.2", Some("1.2.3.4, 203.0.113.9, 10.0.0.5"));
        assert_eq!(client_ip(&req, &trusted), Some(ip("203.0.113.9")));
        // No trust configured: the peer, whatever the header says.
        assert_eq!(client_ip(&req, &[]), Some(ip("10.0.0.2")));
        // Gateways' source IPs, plain or (in SAM sample events) as a /32.
        assert_eq!(parse_ip("192.0.2.1/32"), Some(ip("192.0.2.1")));
        assert_eq!(parse_ip("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_ip("not an ip"), None);
    }
}
