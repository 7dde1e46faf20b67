//! The rate-limiting layer: who is asking and which endpoint they call, counted by
//! [`RateLimiter`], answered with `RateLimit-*` headers and, over budget, a 429.

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use ipnet::IpNet;

use super::auth::{credential, is_public};
use crate::{
    auth::{Credential, VerifiedSubject, api_key::VerifiedKeys, jwt::JwtKeys},
    config::Limit,
    error::ApiError,
    http::client_ip::{client_ip, rate_limit_bucket},
    rate_limit::{Decision, RateLimiter},
    state::AppState,
};

pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// What tells callers apart without the database: the JWT keys, the API keys that
/// authenticated in this process, and the proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Copy)]
pub struct Callers<'a> {
    pub jwt: &'a JwtKeys,
    pub verified_keys: &'a VerifiedKeys,
    pub trusted_proxies: &'a [IpNet],
}

/// The rate-limiting middleware. CORS preflights are answered further out and never reach it.
pub async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let callers = Callers {
        jwt: &state.auth.jwt,
        verified_keys: &state.auth.verified_keys,
        trusted_proxies: &state.config.http.trusted_proxies,
    };
    limit_request(&state.limiter, callers, req, next).await
}

/// [`limit`] with only what it needs.
pub async fn limit_request(
    limiter: &RateLimiter,
    callers: Callers<'_>,
    mut req: Request,
    next: Next,
) -> Response {
    // The limiter's name, `<principal>|<endpoint>`, built in one buffer.
    let mut name = String::with_capacity(96);
    principal(&mut req, callers, &mut name);
    name.push('|');
    let endpoint_at = name.len();
    endpoint(&req, &mut name);
    let budget = limiter.limit_for(&name[endpoint_at..]);
    let decision = limiter.check(&name, budget).await;
    let mut response = if decision.allowed {
        next.run(req).await
    } else {
        over_budget(&decision, budget).into_response()
    };
    set_headers(response.headers_mut(), &decision);
    response
}

/// Who is asking, for rate limiting: never a secret, and decided without the database.
///
/// On public routes, always the client's address: credentials presented there prove nothing
/// the route needs, and letting them choose the bucket would let one account's token (or each
/// account it registers) buy a fresh sign-in budget. Elsewhere the user behind a JWT whose
/// signature and expiry check out, or behind an API key that authenticated here recently
/// ([`VerifiedKeys`]) — every key of a user shares the user's budget; else the client's
/// address (IPv6 per /64). The verified subject is handed on to the auth layer so the
/// signature is checked once.
fn principal(req: &mut Request, callers: Callers<'_>, name: &mut String) {
    if !is_public(req.method(), req.uri().path()) {
        match credential(req.headers()) {
            Ok(Credential::Jwt(token)) => {
                if let Ok(verified) = callers.jwt.verify(token) {
                    req.extensions_mut().insert(VerifiedSubject(verified));
                    return write_name(name, "user:", verified.user_id);
                }
            }
            Ok(Credential::ApiKey(key)) => {
                if let Some(user_id) = callers.verified_keys.owner(key) {
                    return write_name(name, "user:", user_id);
                }
            }
            Err(_) => {}
        }
    }
    match client_ip(req, callers.trusted_proxies) {
        Some(ip) => write_name(name, "ip:", rate_limit_bucket(ip)),
        None => name.push_str("ip:unknown"),
    }
}

fn write_name(name: &mut String, kind: &str, id: impl std::fmt::Display) {
    use std::fmt::Write;
    name.push_str(kind);
    // Writing into a `String` cannot fail.
    let _ = write!(name, "{id}");
}

/// The endpoint a request counts against: method and route template, so `/v1/items/{id}` is
/// one endpoint whatever the id. `HEAD` counts as `GET` (axum answers it with the GET
/// handler), and methods no route uses share one name, so made-up method tokens cannot mint
/// keys without bound.
fn endpoint(req: &Request, name: &mut String) {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("(unmatched)", MatchedPath::as_str);
    let method = match *req.method() {
        Method::GET | Method::HEAD => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    };
    name.push_str(method);
    name.push(' ');
    name.push_str(route);
}

/// The 429 of a refused request: what the budget is, and when to come back.
pub fn over_budget(decision: &Decision, budget: Limit) -> ApiError {
    ApiError::too_many_requests(
        format!(
            "rate limit of {} requests per {} s exceeded for this endpoint; retry after the Retry-After seconds",
            budget.requests,
            budget.window.as_secs()
        ),
        decision.retry_after_secs(),
    )
}

fn set_headers(headers: &mut HeaderMap, d: &Decision) {
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(d.limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(d.remaining));
    headers.insert(RATELIMIT_RESET, HeaderValue::from(d.reset_secs()));
}

#[cfg(test)]
mod tests {
    use std::{net::SocketAddr, sync::Arc, time::Duration};

    use axum::{
        Router,
        body::Body,
        extract::ConnectInfo,
        middleware::{self, Next},
        routing::get,
    };
    use tower::ServiceExt;

    use http::header;

    use super::*;
    use crate::config::{AuthSettings, Env, RateLimitSettings, RateLimits, Runtime};

    /// The layer alone, on the in-memory limiter: no database, no `AppState`.
    #[tokio::test]
    async fn the_layer_counts_per_principal_and_endpoint_without_a_database() {
        let budget = Limit {
            requests: 2,
            window: Duration::from_secs(60),
        };
        let settings = RateLimitSettings {
            redis_url: None,
            redis_ca_cert: None,
            redis_timeout: Duration::from_millis(20),
            redis_key_prefix: "unit".into(),
            limits: RateLimits {
                default: budget,
                auth: budget,
                account: budget,
                overrides: Vec::new(),
            },
        };
        let env = Env::from_lookup(Runtime::Host, |name| {
            (name == "JWT_SECRET").then(|| "0123456789abcdef0123456789abcdef".to_owned())
        })
        .unwrap();
        let parts = Arc::new((
            RateLimiter::new(&settings).unwrap(),
            JwtKeys::new(&AuthSettings::from_env(&env).unwrap()).unwrap(),
            VerifiedKeys::default(),
        ));
        let token = parts.1.issue(uuid::Uuid::now_v7()).unwrap();
        let layer = middleware::from_fn(move |req: Request, next: Next| {
            let parts = parts.clone();
            async move {
                let callers = Callers {
                    jwt: &parts.1,
                    verified_keys: &parts.2,
                    trusted_proxies: &[],
                };
                limit_request(&parts.0, callers, req, next).await
            }
        });
        let app = Router::new()
            .route("/a", get(|| async { "a" }))
            .route("/b", get(|| async { "b" }))
            .layer(layer);
        let send = |path: &str, peer: &str, bearer: Option<&str>| {
            let mut req = http::Request::get(path);
            if let Some(token) = bearer {
                req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            let mut req = req.body(Body::empty()).unwrap();
            req.extensions_mut()
                .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
            let app = app.clone();
            async move { app.oneshot(req).await.unwrap() }
        };
        let anonymous = "198.51.100.7:4000";
        for remaining in ["1", "0"] {
            let res = send("/a", anonymous, None).await;
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers()[RATELIMIT_REMAINING], remaining);
        }
        let res = send("/a", anonymous, None).await;
        assert_eq!(res.status(), 429);
        // 2 per 60 s: one request's worth of budget comes back every 30 s.
        assert_eq!(res.headers()[header::RETRY_AFTER], "30");
        assert_eq!(res.headers()[RATELIMIT_RESET], "60");
        // Another endpoint, another client address, a signed-in user: budgets of their own.
        assert_eq!(send("/b", anonymous, None).await.status(), 200);
        assert_eq!(send("/a", "198.51.100.8:4000", None).await.status(), 200);
        assert_eq!(send("/a", anonymous, Some(&token)).await.status(), 200);
        // A forged token is not a principal: it counts against the (spent) address.
        let res = send("/a", anonymous, Some("not.a.token")).await;
        assert_eq!(res.status(), 429);
    }
}
