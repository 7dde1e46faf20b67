//! One delivery attempt of a webhook message, per Standard Webhooks 1.0: the body
//! `{"type", "timestamp", "data"}`, the `webhook-id` / `webhook-timestamp` /
//! `webhook-signature` headers (signed by the official `standardwebhooks` crate, one `v1,…`
//! per secret, space-separated, so a rotated secret signs beside its successor), sent through
//! a client that only connects to addresses the SSRF guard has checked, with a timeout and no
//! redirects; the answer classified as the retry schedule needs it.
//!
//! The webhook delivery worker ([`crate::webhooks`]: schedule, endpoint disabling) is built on
//! this.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use chrono::Utc;
use reqwest::{StatusCode, header::HeaderMap};
use shared::ssrf::{self, Policy, Refused, Resolve};

/// Response bodies are kept this long at most.
pub const MAX_RESPONSE_BYTES: usize = 1024;
/// The spec's recommendation, and what receivers expect.
pub const TIMEOUT: Duration = Duration::from_secs(15);

pub use shared::repo::webhook_deliveries::Message;

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx.
    Delivered { status: u16, body: String },
    /// `410 Gone`: the receiver asks never to be called again.
    Gone { body: String },
    /// Anything else: retried on the schedule, or after `retry_after` when the receiver said
    /// when (429, 502, 503, 504 with `Retry-After`).
    Failed {
        status: Option<u16>,
        error: String,
        body: Option<String>,
        retry_after: Option<Duration>,
    },
    /// The URL may not be called (now resolving to an internal address, say): not sent.
    Refused(Refused),
}

/// The signature header for `body`: `v1,<base64 HMAC-SHA256>` per secret, space-separated.
pub fn signature(
    secrets: &[String],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, standardwebhooks::WebhookError> {
    let signatures = secrets
        .iter()
        .map(|secret| standardwebhooks::Webhook::new(secret)?.sign(id, timestamp, body))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(signatures.join(" "))
}

/// Resolves through the SSRF guard: every address a name resolves to is checked, one refused
/// address refuses the name, and the client connects only to what this returned, so an
/// answer that changes after the check (DNS rebinding) is checked again.
struct GuardedResolver {
    inner: Arc<dyn Resolve>,
    policy: Policy,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (inner, policy) = (self.inner.clone(), self.policy);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs = inner.resolve(&host, 0).await?;
            for addr in &addrs {
                if let Err(range) = ssrf::allowed(addr.ip(), policy) {
                    return Err(Box::new(Refused::Forbidden {
                        host: host.clone(),
                        addr: addr.ip(),
                        range,
                    })
                        as Box<dyn std::error::Error + Send + Sync>);
                }
            }
            let addrs: Box<dyn Iterator<Item = SocketAddr> + Send> = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Sends messages: one client (connection pool, TLS configuration) for every endpoint.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    policy: Policy,
    resolver: Arc<dyn Resolve>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// A sender under `policy`, resolving with `resolver` (the system's in deployments),
    /// giving up on an attempt after `timeout`.
    pub fn new(
        policy: Policy,
        resolver: Arc<dyn Resolve>,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver {
                inner: resolver.clone(),
                policy,
            }))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .user_agent(concat!("Basalt-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            policy,
            resolver,
        })
    }

    /// One attempt of `message` to `url`, signed with each of `secrets`.
    pub async fn send(&self, url: &str, message: &Message, secrets: &[String]) -> Outcome {
        // Literal addresses never reach the resolver: the guard checks them here (and names
        // here too, for a clear error; the resolver checks what the client connects to).
        if let Err(refused) = ssrf::check(url, self.policy, &self.resolver).await {
            return Outcome::Refused(refused);
        }
        let body = message.body.as_bytes();
        // The attempt's time, not the event's: receivers refuse old timestamps (replays), and
        // a retry may come a day after the event.
        let timestamp = Utc::now().timestamp();
        let signature = match signature(secrets, &message.message_id, timestamp, body) {
            Ok(s) => s,
            Err(e) => {
                return Outcome::Failed {
                    status: None,
                    error: format!("cannot sign: {e}"),
                    body: None,
                    retry_after: None,
                };
            }
        };
        let sent = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &message.message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(message.body.clone())
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Failed {
                    status: None,
                    error: describe(&e),
                    body: None,
                    retry_after: None,
                };
            }
        };
        let status = response.status();
        let retry_after = retry_after(status, response.headers());
        let body = truncated_body(response).await;
        match status.as_u16() {
            200..=299 => Outcome::Delivered {
                status: status.as_u16(),
                body,
            },
            410 => Outcome::Gone { body },
            code => Outcome::Failed {
                status: Some(code),
                error: if status.is_redirection() {
                    format!("{status}: redirects are not followed")
                } else {
                    status.to_string()
                },
                body: Some(body),
                retry_after,
            },
        }
    }
}

/// A transport failure in words, without the URL's query (it may carry a token).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {cause}")
    }
}

/// `Retry-After` (seconds or an HTTP date) on the statuses that may carry it.
fn retry_after(status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
    if !matches!(status.as_u16(), 429 | 502 | 503 | 504) {
        return None;
    }
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// At most [`MAX_RESPONSE_BYTES`] of the body, read no further, as lossy UTF-8.
async fn truncated_body(mut response: reqwest::Response) -> String {
    let mut kept = Vec::new();
    while kept.len() < MAX_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            _ => break,
        }
    }
    kept.truncate(MAX_RESPONSE_BYTES);
    String::from_utf8_lossy(&kept).into_owned()
}
