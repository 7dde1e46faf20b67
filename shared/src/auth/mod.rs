//! Authentication: credentials, the default-deny layer and the [`Principal`] extractor.
//!
//! The layer ([`require_auth`]) sits innermost in the shared chain and refuses every request
//! that is not on [`PUBLIC_ROUTES`] unless it carries a valid JWT or API key. A route added
//! tomorrow is therefore protected without anyone remembering to protect it; handlers read the
//! caller through the `Principal` extractor.

pub mod api_key;
pub mod email;
pub mod jwt;
pub mod known_users;
pub mod password;

use aide::{
    OperationInput,
    generate::GenContext,
    openapi::{Operation, Response as DocResponse, SecurityRequirement},
};
use axum::{
    extract::{FromRequestParts, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http::{HeaderMap, Method, header::AUTHORIZATION, request::Parts};
use uuid::Uuid;

use crate::{
    error::{ApiError, problem_response},
    repo,
    state::AppState,
};

/// Routes anyone may call: `(method, path)`; `GET` also admits `HEAD`.
pub const PUBLIC_ROUTES: &[(Method, &str)] = &[
    (Method::GET, "/health"),
    (Method::GET, "/ready"),
    (Method::GET, "/openapi.json"),
    (Method::GET, "/docs"),
    (Method::POST, "/v1/auth/register"),
    (Method::POST, "/v1/auth/token"),
];

pub fn is_public(method: &Method, path: &str) -> bool {
    PUBLIC_ROUTES
        .iter()
        .any(|(m, p)| *p == path && (m == method || (*m == Method::GET && method == Method::HEAD)))
}

/// Who is calling, as established by the auth layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub via: AuthMethod,
}

impl Principal {
    /// What the request log records: the user id, plus the key's public prefix for API keys.
    pub fn log_id(&self) -> String {
        match &self.via {
            AuthMethod::Jwt => self.user_id.to_string(),
            AuthMethod::ApiKey { prefix, .. } => format!("{} (key {prefix})", self.user_id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    Jwt,
    /// `prefix` is the key's public part: safe to log, used later as the rate-limit key.
    ApiKey {
        key_id: Uuid,
        prefix: String,
    },
}

pub const API_KEY_HEADER: &str = "x-api-key";

/// Default-deny authentication middleware (see the module docs).
pub async fn require_auth(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if is_public(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let verified = req.extensions().get::<VerifiedSubject>().copied();
    match authenticate(&state, req.headers(), verified).await {
        Ok(principal) => {
            // The request span (opened by the logging layer) names who was served.
            tracing::Span::current().record("principal", principal.log_id());
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// A credential as presented, not yet checked.
pub enum Credential<'a> {
    Jwt(&'a str),
    ApiKey(&'a str),
}

/// The subject of a JWT whose signature and expiry an outer layer (rate limiting) already
/// checked, so auth does not verify it twice. Whether the user still exists is auth's job.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedSubject(pub Uuid);

/// Reads the credential from `X-API-Key` or `Authorization: Bearer`.
pub fn credential(headers: &HeaderMap) -> Result<Credential<'_>, ApiError> {
    if let Some(value) = headers.get(API_KEY_HEADER) {
        let key = value
            .to_str()
            .map_err(|_| ApiError::unauthorized("malformed X-API-Key header"))?;
        return Ok(Credential::ApiKey(key.trim()));
    }
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "missing credentials: send `Authorization: Bearer <token>` or `X-API-Key`",
        ));
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    let token = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| ApiError::unauthorized("Authorization must use the Bearer scheme"))?;
    if token.starts_with(api_key::KEY_PREFIX) {
        Ok(Credential::ApiKey(token))
    } else {
        Ok(Credential::Jwt(token))
    }
}

async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    verified: Option<VerifiedSubject>,
) -> Result<Principal, ApiError> {
    match credential(headers)? {
        Credential::Jwt(token) => {
            let user_id = match verified {
                Some(VerifiedSubject(id)) => id,
                None => state
                    .jwt
                    .verify(token)
                    .map_err(|_| ApiError::unauthorized("invalid or expired token"))?,
            };
            // A token outlives its account otherwise: a deleted user must be locked out (see
            // `known_users` for how long another replica may take to notice).
            if !state.known_users.confirmed(user_id) {
                if !repo::users::exists(&state.db, user_id).await? {
                    return Err(ApiError::unauthorized("invalid or expired token"));
                }
                state.known_users.remember(user_id);
            }
            Ok(Principal {
                user_id,
                via: AuthMethod::Jwt,
            })
        }
        Credential::ApiKey(key) => {
            let invalid = || ApiError::unauthorized("invalid API key");
            let prefix = api_key::prefix_of(key).ok_or_else(invalid)?;
            let stored = repo::api_keys::find_by_prefix(&state.db, prefix)
                .await?
                .ok_or_else(invalid)?;
            if !api_key::matches(key, &stored.key_hash) {
                return Err(invalid());
            }
            // `matches` compared all 32 bytes, so the stored hash is this key's.
            if let Ok(hash) = <[u8; 32]>::try_from(stored.key_hash.as_slice()) {
                state.verified_keys.remember(prefix, hash);
            }
            let stale = stored
                .last_used_at
                .is_none_or(|t| chrono::Utc::now() - t >= chrono::TimeDelta::minutes(1));
            if stale {
                // Best effort: failing to record use must not fail the request.
                if let Err(e) = repo::api_keys::touch(&state.db, stored.id).await {
                    tracing::warn!(error = %e, "could not record API key use");
                }
            }
            Ok(Principal {
                user_id: stored.user_id,
                via: AuthMethod::ApiKey {
                    key_id: stored.id,
                    prefix: prefix.to_owned(),
                },
            })
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Present on every protected route; absent only if a public route asks for it, which
        // is a programming error that must still fail closed.
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("authentication required"))
    }
}

/// Names of the security schemes declared in the OpenAPI document.
pub const BEARER_SCHEME: &str = "bearer";
pub const API_KEY_SCHEME: &str = "api_key";

impl OperationInput for Principal {
    fn operation_input(_ctx: &mut GenContext, operation: &mut Operation) {
        let requirement = |name: &str| -> SecurityRequirement {
            [(name.to_owned(), Vec::new())].into_iter().collect()
        };
        operation.security = vec![requirement(BEARER_SCHEME), requirement(API_KEY_SCHEME)];
    }

    fn inferred_early_responses(
        ctx: &mut GenContext,
        _operation: &mut Operation,
    ) -> Vec<(Option<u16>, DocResponse)> {
        vec![(
            Some(401),
            problem_response(ctx, "Missing, invalid or expired credentials"),
        )]
    }
}
