//! The Redis store: a sorted-set log per limiter, pruned, counted and extended by one Lua
//! script in a single atomic round trip (`EVALSHA`, loaded once), on Redis's clock so that
//! replicas of the API need not agree on time.

use std::{
    path::Path,
    sync::Mutex,
    time::{Duration, Instant},
};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Decision, lock};
use crate::config::Limit;

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

/// `REDIS_CA_CERT`'s PEM, refused at start-up when it holds no certificate (the redis crate
/// would accept it and then fail every handshake).
fn read_ca_cert(path: &Path) -> Result<Vec<u8>, redis::RedisError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let refuse = |why: String| {
        redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "REDIS_CA_CERT",
            format!("{}: {why}", path.display()),
        ))
    };
    let pem = std::fs::read(path).map_err(|e| refuse(e.to_string()))?;
    if CertificateDer::pem_slice_iter(&pem).next().is_none() {
        return Err(refuse("no PEM certificate in the file".into()));
    }
    Ok(pem)
}

pub(super) struct RedisStore {
    pub(super) conn: ConnectionManager,
    script: redis::Script,
    pub(super) timeout: Duration,
    /// `Some(since)` while Redis is considered down; guarded by a lock because the "first"
    /// failure must log exactly once.
    down: Mutex<Option<Instant>>,
}

impl RedisStore {
    /// A store that connects on first use and reconnects by itself after failures. A
    /// `rediss://` URL is TLS (rustls): the server's certificate must chain to `ca_cert` when
    /// given, else to the platform's roots, and name the host. (`#insecure`, which would skip
    /// both, needs a redis feature this build leaves out: such a URL never connects.)
    pub(super) fn new(
        url: &str,
        ca_cert: Option<&Path>,
        timeout: Duration,
    ) -> Result<Self, redis::RedisError> {
        let client = if url.starts_with("rediss://") {
            // The redis crate builds its rustls configuration from the process default.
            crate::tls::provider();
            match ca_cert {
                None => redis::Client::open(url)?,
                Some(path) => redis::Client::build_with_tls(
                    url,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(read_ca_cert(path)?),
                    },
                )?,
            }
        } else {
            redis::Client::open(url)?
        };
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(timeout.max(Duration::from_millis(1))))
            .set_number_of_retries(1);
        Ok(Self {
            conn: ConnectionManager::new_lazy_with_config(client, manager_config)?,
            script: redis::Script::new(SLIDING_WINDOW_LUA),
            timeout,
            down: Mutex::new(None),
        })
    }

    /// Whether Redis is considered down (deciding in memory).
    pub(super) fn is_down(&self) -> bool {
        lock(&self.down).is_some()
    }

    pub(super) fn should_try(&self) -> bool {
        match *lock(&self.down) {
            Some(since) => since.elapsed() >= REDIS_RETRY_AFTER,
            None => true,
        }
    }

    /// Records a failure; true when this failure starts an outage (log it once).
    pub(super) fn failed(&self) -> bool {
        let mut down = lock(&self.down);
        let first = down.is_none();
        // Restart the pause either way, so a dead Redis is probed once per pause.
        *down = Some(Instant::now());
        first
    }

    pub(super) fn recovered(&self) {
        let mut down = lock(&self.down);
        if let Some(since) = down.take() {
            tracing::info!(
                outage_ms = since.elapsed().as_millis() as u64,
                "Redis answers again: rate limiting in Redis"
            );
        }
    }

    pub(super) async fn check(&self, key: &str, limit: Limit) -> Result<Decision, String> {
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
