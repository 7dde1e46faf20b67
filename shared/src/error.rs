//! The one HTTP error type, rendered as RFC 9457 `application/problem+json`.
//!
//! Handlers and extractors return [`ApiError`]. Its response carries a [`Problem`] in the
//! response extensions and no body; `http::middleware::problem`, a layer of the shared chain,
//! adds the request id and serialises it. That layer also turns every bare error response
//! from elsewhere (axum's 405, tower-http's 408/413, a caught panic) into the same format, so
//! it is the only code in the workspace that writes problem+json.

use std::borrow::Cow;

use aide::{
    generate::GenContext,
    openapi::{MediaType, Operation, Response as DocResponse, SchemaObject},
};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use schemars::JsonSchema;
use serde::Serialize;

use crate::db::DbError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem type of this API: the URI clients match on, and its title. Everything else is
/// `about:blank` (the status code says it all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProblemType {
    pub uri: &'static str,
    pub title: &'static str,
}

/// A write whose outcome is unknown: it may or may not have been applied. Not a "try again":
/// the client should check, or repeat the request with the same `Idempotency-Key`.
pub const OUTCOME_UNKNOWN: ProblemType = ProblemType {
    uri: "https://basalt.dev/problems/outcome-unknown",
    title: "Outcome unknown",
};

/// 409: a request with this `Idempotency-Key` is still being processed.
pub const IDEMPOTENCY_KEY_IN_USE: ProblemType = ProblemType {
    uri: "https://basalt.dev/problems/idempotency-key-in-use",
    title: "Idempotency key in use",
};

/// 422: this `Idempotency-Key` was used for a different request.
pub const IDEMPOTENCY_KEY_REUSED: ProblemType = ProblemType {
    uri: "https://basalt.dev/problems/idempotency-key-reused",
    title: "Idempotency key reused",
};

/// 403: the operation needs a sign-in within `REAUTH_WINDOW_SECONDS`, or `current_password`
/// now (creating an API key, deleting the account). A client asks for the password and retries.
pub const REAUTHENTICATION_REQUIRED: ProblemType = ProblemType {
    uri: "https://basalt.dev/problems/reauthentication-required",
    title: "Re-authentication required",
};

/// The detail of an [`OUTCOME_UNKNOWN`] database failure.
const COMMIT_LOST: &str = "the connection to the database was lost while the change was being \
    committed, so it may or may not have been applied: check before repeating the request, or \
    repeat it with the same Idempotency-Key, which returns the first response if it was applied";

/// The detail of a write that timed out (the chain's 408): it may have reached `COMMIT`.
pub const WRITE_TIMED_OUT: &str = "the request took too long and was abandoned, so a change it \
    made may or may not have been applied: check before repeating the request, or repeat it \
    with the same Idempotency-Key, which returns the first response if it was applied";

/// RFC 9457 problem details, plus the request id that ties a failure to its log lines.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Problem {
    /// A URI naming the problem type; `about:blank` means "see the status code".
    #[serde(rename = "type")]
    pub kind: Cow<'static, str>,
    pub title: Cow<'static, str>,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Echoes the `X-Request-Id` response header.
    pub request_id: Option<String>,
    /// Field-level validation failures (absent from every other problem).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// A problem with only a status: what a bare error response from a layer becomes.
    pub fn from_status(status: StatusCode) -> Self {
        Self {
            kind: Cow::Borrowed("about:blank"),
            title: Cow::Borrowed(status.canonical_reason().unwrap_or("Error")),
            status: status.as_u16(),
            detail: default_detail(status).map(str::to_owned),
            request_id: None,
            errors: Vec::new(),
        }
    }

    /// A problem of one of this API's types.
    pub fn of_type(status: StatusCode, kind: ProblemType, detail: impl Into<String>) -> Self {
        Self {
            kind: Cow::Borrowed(kind.uri),
            title: Cow::Borrowed(kind.title),
            status: status.as_u16(),
            detail: Some(detail.into()),
            request_id: None,
            errors: Vec::new(),
        }
    }
}

fn default_detail(status: StatusCode) -> Option<&'static str> {
    Some(match status {
        StatusCode::NOT_FOUND => "no resource at this path",
        StatusCode::METHOD_NOT_ALLOWED => "this method is not allowed here; see the Allow header",
        StatusCode::REQUEST_TIMEOUT => "the request took too long and was abandoned",
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is larger than the configured limit",
        StatusCode::UNAUTHORIZED => "valid credentials are required",
        StatusCode::INTERNAL_SERVER_ERROR => "an internal error occurred; quote the request id",
        StatusCode::SERVICE_UNAVAILABLE => "a dependency is unavailable; try again shortly",
        _ => return None,
    })
}

/// One invalid field of a request body or query.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An error a handler returns. 5xx causes are logged once, never sent to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    /// `None`: `about:blank`.
    kind: Option<ProblemType>,
    detail: Option<String>,
    errors: Vec<FieldError>,
    source: Option<anyhow::Error>,
    /// Seconds for a `Retry-After` header (429, 503).
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            kind: None,
            detail: Some(detail.into()),
            errors: Vec::new(),
            source: None,
            retry_after: None,
        }
    }

    /// 429 with `Retry-After: retry_after_secs` (at least 1).
    pub fn too_many_requests(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, detail).with_retry_after(retry_after_secs)
    }

    /// Replaces the detail the client sees. For the rare 5xx whose cause the caller needs
    /// (`/ready`): never a server message, an address or a credential.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds a `Retry-After` header of `secs` (at least 1) to the response.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    /// An error of one of this API's problem types.
    pub fn typed(status: StatusCode, kind: ProblemType, detail: impl Into<String>) -> Self {
        Self {
            kind: Some(kind),
            ..Self::new(status, detail)
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// 422: the body parsed but its values break the rules listed in `errors`.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            kind: None,
            detail: Some("the request has invalid fields".into()),
            errors,
            source: None,
            retry_after: None,
        }
    }

    /// 500 with a generic body; `source` is logged with its whole cause chain.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: None,
            detail: None,
            errors: Vec::new(),
            source: Some(source.into()),
            retry_after: None,
        }
    }

    /// 503 with a generic body; `source` is logged.
    pub fn unavailable(source: impl Into<anyhow::Error>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: None,
            detail: None,
            errors: Vec::new(),
            source: Some(source.into()),
            retry_after: None,
        }
    }

    /// 503 because this process is at capacity for some work (bcrypt), not because anything
    /// is broken: `Retry-After` says when to try again, and nothing is logged as an error
    /// (the request log line records the status).
    pub fn overloaded(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, detail).with_retry_after(retry_after_secs)
    }

    /// 500 [`OUTCOME_UNKNOWN`]: a write that may or may not have committed. Unlike a 503 it
    /// carries no invitation to retry (and no `Retry-After`): repeating a write that did commit
    /// would apply it twice. `source` is logged.
    pub fn outcome_unknown(source: impl Into<anyhow::Error>) -> Self {
        Self {
            source: Some(source.into()),
            ..Self::typed(
                StatusCode::INTERNAL_SERVER_ERROR,
                OUTCOME_UNKNOWN,
                COMMIT_LOST,
            )
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        // First: a connection lost during COMMIT also looks like an unreachable database.
        if e.outcome_unknown() {
            Self::outcome_unknown(e)
        } else if e.is_unavailable() {
            Self::unavailable(e)
        } else {
            Self::internal(e)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(source) = &self.source {
            // `{:#}` prints the whole cause chain on one line; this is the only place it is
            // logged, and it never reaches the client.
            tracing::error!(
                status = self.status.as_u16(),
                error = format!("{source:#}"),
                "request failed"
            );
        }
        let mut problem = Problem::from_status(self.status);
        if let Some(kind) = self.kind {
            problem.kind = Cow::Borrowed(kind.uri);
            problem.title = Cow::Borrowed(kind.title);
        }
        if let Some(detail) = self.detail {
            problem.detail = Some(detail);
        }
        problem.errors = self.errors;
        let mut response = self.status.into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(problem);
        response
    }
}

/// Documents an error response as problem+json.
pub(crate) fn problem_response(ctx: &mut GenContext, description: &str) -> DocResponse {
    problem_doc(ctx.schema.subschema_for::<Problem>(), description)
}

/// A problem+json response description whose body follows `schema` (the `Problem` schema or
/// a reference to it).
pub fn problem_doc(schema: schemars::Schema, description: &str) -> DocResponse {
    DocResponse {
        description: description.to_owned(),
        content: [(
            PROBLEM_JSON.to_owned(),
            MediaType {
                schema: Some(SchemaObject {
                    json_schema: schema,
                    example: None,
                    external_docs: None,
                }),
                ..Default::default()
            },
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    }
}

impl aide::OperationOutput for ApiError {
    type Inner = Problem;

    fn operation_response(ctx: &mut GenContext, _op: &mut Operation) -> Option<DocResponse> {
        Some(problem_response(ctx, "Error (RFC 9457 problem details)"))
    }

    fn inferred_responses(
        ctx: &mut GenContext,
        op: &mut Operation,
    ) -> Vec<(Option<u16>, DocResponse)> {
        Self::operation_response(ctx, op)
            .map(|r| vec![(None, r)])
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_postgres::{NoTls, error::SqlState};

    use super::*;
    use crate::{
        config::LogFormat,
        db::{Db, DbFailure, PgError},
        repo, telemetry, testing,
    };

    #[tokio::test]
    async fn a_logged_database_error_keeps_its_sqlstate_but_not_the_servers_detail() {
        let captured = testing::CapturedLogs::default();
        let writer = captured.clone();
        let subscriber = telemetry::subscriber_with_filter(
            LogFormat::Json,
            move || writer.clone(),
            telemetry::filter(Some("info")),
        );
        let _guard = tracing::subscriber::set_default(subscriber);
        let url = testing::create_database().await;
        let db = Db::connect_lazy(&url, 1, Duration::from_secs(5)).unwrap();
        db.migrate().await.unwrap();
        let email = crate::auth::email::parse("email", "owner@example.com").unwrap();
        let user = repo::users::create(&db, email.as_new(), "x").await.unwrap();

        // A unique violation no handler maps to 409: a key prefix taken twice. PostgreSQL's
        // DETAIL quotes the value: `Key (prefix)=(…) already exists.`
        let prefix = "dup-prefix-5e1d";
        repo::api_keys::create(&db, user.id, "one", prefix, &[0; 32])
            .await
            .unwrap();
        let err = repo::api_keys::create(&db, user.id, "two", prefix, &[1; 32])
            .await
            .unwrap_err();
        assert!(err.is_unique_violation());
        let response = ApiError::from(err).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);

        let logs = captured.text();
        let line = logs
            .lines()
            .find(|l| l.contains("request failed"))
            .unwrap_or_else(|| panic!("no error line in:\n{logs}"));
        assert!(line.contains("api_keys.create"), "{line}");
        assert!(line.contains("ERROR 23505"), "{line}");
        assert!(line.contains("api_keys_prefix_key"), "{line}");
        assert!(
            !line.contains(prefix),
            "the server's detail was logged: {line}"
        );
        assert!(!logs.contains("DETAIL"), "{logs}");
    }

    fn rendered(e: ApiError) -> (StatusCode, http::HeaderMap, Problem) {
        let response = e.into_response();
        let problem = response
            .extensions()
            .get::<Problem>()
            .cloned()
            .expect("an ApiError response carries its Problem");
        (response.status(), response.headers().clone(), problem)
    }

    fn failed(source: PgError, during_commit: bool) -> DbError {
        DbError {
            op: "test.write",
            failure: DbFailure::Query {
                source,
                during_commit,
            },
            attempts: 1,
        }
    }

    /// Real errors of a session the server ended, as a `COMMIT` in flight sees them: first the
    /// server's own 57P01 (`pg_terminate_backend`), then a closed connection for the next call.
    async fn terminated_session_errors() -> (PgError, PgError) {
        let url = crate::testing::create_database().await;
        let (client, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        let driver = tokio::spawn(conn);
        let fatal = client
            .batch_execute("SELECT pg_terminate_backend(pg_backend_pid())")
            .await
            .unwrap_err();
        let _ = driver.await;
        let closed = client.batch_execute("COMMIT").await.unwrap_err();
        assert_eq!(fatal.code(), Some(&SqlState::ADMIN_SHUTDOWN), "{fatal}");
        assert!(closed.is_closed(), "{closed}");
        (fatal, closed)
    }

    #[tokio::test]
    async fn a_connection_lost_during_commit_is_outcome_unknown_not_try_again() {
        let (fatal, closed) = terminated_session_errors().await;
        for source in [closed, fatal] {
            let e = failed(source, true);
            assert!(e.outcome_unknown(), "{e}");
            let (status, headers, problem) = rendered(e.into());
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(problem.kind, OUTCOME_UNKNOWN.uri);
            assert_eq!(problem.title, OUTCOME_UNKNOWN.title);
            let detail = problem.detail.unwrap_or_default();
            assert!(
                detail.contains("may or may not have been applied"),
                "{detail}"
            );
            assert!(detail.contains("Idempotency-Key"), "{detail}");
            assert!(!headers.contains_key(header::RETRY_AFTER));
        }
    }

    #[tokio::test]
    async fn the_same_loss_before_commit_is_still_a_503_and_a_reported_rollback_is_known() {
        let (_, closed) = terminated_session_errors().await;
        // Before COMMIT nothing committed: unavailable, retrying is safe.
        let e = failed(closed, false);
        assert!(!e.outcome_unknown());
        let (status, _, problem) = rendered(e.into());
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(problem.kind, "about:blank");

        // An error the server reports for COMMIT (here a deferred check failing) means it
        // rolled back: a plain 500, not "unknown".
        let url = crate::testing::create_database().await;
        let (client, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(conn);
        client
            .batch_execute("CREATE TABLE t (id int UNIQUE DEFERRABLE INITIALLY DEFERRED)")
            .await
            .unwrap();
        client
            .batch_execute("BEGIN; INSERT INTO t VALUES (1), (1)")
            .await
            .unwrap();
        let reported = client.batch_execute("COMMIT").await.unwrap_err();
        assert_eq!(reported.code(), Some(&SqlState::UNIQUE_VIOLATION));
        let e = failed(reported, true);
        assert!(!e.outcome_unknown());
        let (status, _, problem) = rendered(e.into());
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(problem.kind, "about:blank");
    }
}
