//! The Redis store: one integer per limiter (its GCRA theoretical arrival time, in Redis's
//! microseconds), read and advanced by one Lua script in a single atomic round trip
//! (`EVALSHA`, loaded once), on Redis's clock so that replicas of the API need not agree on
//! time. The key expires when its budget is whole again, so only limiters in use hold memory.

use std::{
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::Decision;
use crate::config::Limit;

/// How long to stay on the in-memory limiter after a Redis failure before trying Redis again.
const REDIS_RETRY_AFTER: Duration = Duration::from_secs(1);

/// GCRA (see the module docs of `rate_limit`). The state is the theoretical arrival time
/// `tat`; the script answers one integer, the budget in use before this request
/// (`max(tat - now, 0)`, in µs), and [`Decision::gcra`] derives the rest — the same function
/// the in-memory store uses, so the two cannot disagree. It writes only when the request is
/// admitted (the same test as `Decision::gcra`'s, on the same integers: refusals take no
/// budget), as a decimal integer so Redis stores it as one (the smallest encoding); Lua's
/// doubles hold microsecond times exactly (< 2^53).
const GCRA_LUA: &str = r"
-- KEYS[1]: the limiter; ARGV: limit, emission interval (µs). Returns the budget in use (µs).
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[2])
local in_use = (tonumber(redis.call('GET', KEYS[1])) or now) - now
if in_use < 0 then in_use = 0 end
local debt = in_use + interval
if debt <= tonumber(ARGV[1]) * interval then
  redis.call('SET', KEYS[1], string.format('%.0f', now + debt), 'PX', math.ceil(debt / 1000))
end
return in_use
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
    /// Microseconds after `epoch` (plus one) of the last failure while Redis is considered
    /// down, 0 while it answers: an atomic, so the common case (up) costs one load, and the
    /// swap that starts an outage happens once, so it is logged once.
    down_since: AtomicU64,
    epoch: Instant,
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
            script: redis::Script::new(GCRA_LUA),
            timeout,
            down_since: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// Whether Redis is considered down (deciding in memory).
    pub(super) fn is_down(&self) -> bool {
        self.down_since.load(Ordering::Relaxed) != 0
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64 + 1
    }

    pub(super) fn should_try(&self) -> bool {
        match self.down_since.load(Ordering::Relaxed) {
            0 => true,
            since => self.now().saturating_sub(since) >= REDIS_RETRY_AFTER.as_micros() as u64,
        }
    }

    /// Records a failure; true when this failure starts an outage (log it once).
    pub(super) fn failed(&self) -> bool {
        // Restart the pause either way, so a dead Redis is probed once per pause.
        self.down_since.swap(self.now(), Ordering::Relaxed) == 0
    }

    pub(super) fn recovered(&self) {
        if self.down_since.load(Ordering::Relaxed) == 0 {
            return;
        }
        let since = self.down_since.swap(0, Ordering::Relaxed);
        if since != 0 {
            tracing::info!(
                outage_ms = self.now().saturating_sub(since) / 1000,
                "Redis answers again: rate limiting in Redis"
            );
        }
    }

    pub(super) async fn check(&self, key: &str, limit: Limit) -> Result<Decision, String> {
        let mut conn = self.conn.clone();
        let call = async {
            self.script
                .key(key)
                .arg(limit.requests)
                .arg(limit.emission_interval_us())
                .invoke_async::<i64>(&mut conn)
                .await
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(in_use_us)) => Ok(Decision::gcra(
                limit,
                Duration::from_micros(in_use_us.max(0) as u64),
            )),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }
}
