//! Default-deny authentication: the layer, the public-route list, where credentials are read
//! from, and the `Principal` extractor (with its OpenAPI security requirement).
//!
//! The layer ([`require_auth`]) sits innermost in the shared chain and refuses every request
//! that is not on [`PUBLIC_ROUTES`] unless it carries a valid JWT or API key. A route added
//! tomorrow is therefore protected without anyone remembering to protect it; handlers read the
//! caller through the `Principal` extractor.

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

use crate::{
    auth::{Authenticator, Credential, Principal, VerifiedSubject, api_key},
    error::{ApiError, problem_response},
    state::AppState,
};

pub const API_KEY_HEADER: &str = "x-api-key";

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

/// Default-deny authentication middleware (see the module docs).
pub async fn require_auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    authenticate_request(&state.auth, req, next).await
}

/// [`require_auth`] with only what it needs.
pub async fn authenticate_request(auth: &Authenticator, mut req: Request, next: Next) -> Response {
    if is_public(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let verified = req.extensions().get::<VerifiedSubject>().copied();
    let principal = match credential(req.headers()) {
        Ok(credential) => auth.authenticate(credential, verified).await,
        Err(e) => Err(e),
    };
    match principal {
        Ok(principal) => {
            // The request span (opened by the logging layer) names who was served.
            tracing::Span::current().record("principal", principal.log_id());
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

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
