//! The one HTTP error type, rendered as RFC 9457 `application/problem+json`.
//!
//! Handlers and extractors return [`ApiError`]. Its response carries a [`Problem`] in the
//! response extensions and no body; `http::middleware::problem`, a layer of the shared chain,
//! adds the request id and serialises it. That layer also turns every bare error response
//! from elsewhere (axum's 405, tower-http's 408/413, a caught panic) into the same format, so
//! it is the only code in the workspace that writes problem+json.

use std::{borrow::Cow, time::Duration};

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
    /// Field-level validation failures, when the request body was well-formed but invalid.
    #[serde(skip_serializing_if = "Vec::is_empty")]
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
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
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

    use super::*;
    use crate::{config::LogFormat, db::Db, repo, telemetry, testing};

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
}
