//! Extractors and responses whose failures use the shared error format.
//!
//! axum's own `Json`, `Path` and `Query` reject with plain-text bodies; these wrappers turn the
//! rejection into an [`ApiError`] and document themselves in the OpenAPI output exactly as the
//! axum types do. [`NoStore`] marks a response that must not be cached.

use aide::{
    OperationInput, OperationOutput,
    generate::GenContext,
    openapi::{Operation, Response as DocResponse},
};
use axum::{
    body::Body,
    extract::{FromRequest, FromRequestParts, Request, rejection::JsonRejection},
    response::{IntoResponse, Response},
};
use http::{HeaderValue, StatusCode, header, request::Parts};
use schemars::JsonSchema;
use serde::{Serialize, de::DeserializeOwned};

use crate::error::{ApiError, problem_response};

/// A JSON request or response body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// An optional JSON request body: `None` when the request has no body at all, else parsed
/// and rejected exactly like [`Json`]. For operations whose body is optional (e.g. a DELETE
/// that may carry `current_password`).
#[derive(Debug, Clone, Default)]
pub struct MaybeJson<T>(pub Option<T>);

impl<T, S> FromRequest<S> for MaybeJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes =
            axum::body::Bytes::from_request(Request::from_parts(parts.clone(), body), state)
                .await
                .map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
        if bytes.is_empty() {
            return Ok(Self(None));
        }
        let req = Request::from_parts(parts, Body::from(bytes));
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(value)| Self(Some(value)))
    }
}

impl<T: JsonSchema> OperationInput for MaybeJson<T> {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        Json::<T>::operation_input(ctx, operation);
        if let Some(aide::openapi::ReferenceOr::Item(body)) = operation.request_body.as_mut() {
            body.required = false;
        }
    }

    fn inferred_early_responses(
        ctx: &mut GenContext,
        operation: &mut Operation,
    ) -> Vec<(Option<u16>, DocResponse)> {
        Json::<T>::inferred_early_responses(ctx, operation)
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = match &rejection {
        // Well-formed JSON of the wrong shape (missing field, wrong type) is a validation
        // failure; everything else keeps axum's status (400 syntax, 413 too large, 415 type).
        JsonRejection::JsonDataError(_) => StatusCode::UNPROCESSABLE_ENTITY,
        other => other.status(),
    };
    ApiError::new(status, rejection.body_text())
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        json_response(StatusCode::OK, &self.0)
    }
}

/// Serialises straight into a `Vec` that becomes the body without a copy (axum's `Json` writes
/// every fragment through `BufMut` into a `BytesMut` that starts at 128 bytes; a 100-item page
/// is ~28 KB). Same bytes, same `Content-Type`; a value that cannot be serialised is a 500
/// problem.
fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response {
    let mut buf = Vec::with_capacity(1024);
    match serde_json::to_writer(&mut buf, value) {
        Ok(()) => {
            let mut response = Response::new(Body::from(buf));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => ApiError::internal(e).into_response(),
    }
}

impl<T: JsonSchema> OperationInput for Json<T> {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        axum::Json::<T>::operation_input(ctx, operation);
    }

    fn inferred_early_responses(
        ctx: &mut GenContext,
        _operation: &mut Operation,
    ) -> Vec<(Option<u16>, DocResponse)> {
        vec![
            (Some(400), problem_response(ctx, "Malformed JSON body")),
            (
                Some(413),
                problem_response(ctx, "Body larger than the configured limit"),
            ),
            (
                Some(415),
                problem_response(ctx, "Content-Type is not application/json"),
            ),
            (
                Some(422),
                problem_response(ctx, "Body has invalid or missing fields"),
            ),
        ]
    }
}

impl<T: JsonSchema> OperationOutput for Json<T> {
    type Inner = T;

    fn operation_response(ctx: &mut GenContext, operation: &mut Operation) -> Option<DocResponse> {
        axum::Json::<T>::operation_response(ctx, operation)
    }

    fn inferred_responses(
        ctx: &mut GenContext,
        operation: &mut Operation,
    ) -> Vec<(Option<u16>, DocResponse)> {
        Self::operation_response(ctx, operation)
            .map(|r| vec![(Some(200), r)])
            .unwrap_or_default()
    }
}

/// A JSON body under a fixed success status, documented as that status in OpenAPI.
macro_rules! json_with_status {
    ($(#[$doc:meta])* $name:ident, $status:ident, $code:literal) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name<T>(pub T);

        impl<T: Serialize> IntoResponse for $name<T> {
            fn into_response(self) -> Response {
                json_response(StatusCode::$status, &self.0)
            }
        }

        impl<T: JsonSchema> OperationOutput for $name<T> {
            type Inner = T;

            fn operation_response(
                ctx: &mut GenContext,
                operation: &mut Operation,
            ) -> Option<DocResponse> {
                axum::Json::<T>::operation_response(ctx, operation)
            }

            fn inferred_responses(
                ctx: &mut GenContext,
                operation: &mut Operation,
            ) -> Vec<(Option<u16>, DocResponse)> {
                Self::operation_response(ctx, operation)
                    .map(|r| vec![(Some($code), r)])
                    .unwrap_or_default()
            }
        }
    };
}

json_with_status!(
    /// `201 Created` with a JSON body.
    Created,
    CREATED,
    201
);
json_with_status!(
    /// `202 Accepted` with a JSON body: queued work (a webhook delivery), not done yet.
    Accepted,
    ACCEPTED,
    202
);

/// A response that carries a credential (an access token, an API key, a signing secret):
/// `Cache-Control: no-store`, so no browser, proxy or CDN keeps a copy (RFC 9111 §5.2.2.5;
/// OAuth 2.0 asks it of token responses, RFC 6749 §5.1). Wraps the success type only: an error
/// carries no credential. Documented in OpenAPI exactly as `T`.
#[derive(Debug)]
pub struct NoStore<T>(pub T);

impl<T: IntoResponse> IntoResponse for NoStore<T> {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

impl<T: OperationOutput> OperationOutput for NoStore<T> {
    type Inner = T::Inner;

    fn operation_response(ctx: &mut GenContext, operation: &mut Operation) -> Option<DocResponse> {
        T::operation_response(ctx, operation)
    }

    fn inferred_responses(
        ctx: &mut GenContext,
        operation: &mut Operation,
    ) -> Vec<(Option<u16>, DocResponse)> {
        T::inferred_responses(ctx, operation)
    }
}

/// Declares a wrapper around an axum parts extractor whose rejection becomes a 400
/// `ApiError` and whose OpenAPI description is axum's plus that 400.
macro_rules! bad_request_on_rejection {
    ($(#[$doc:meta])* $name:ident wraps $inner:ident, $description:literal) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name<T>(pub T);

        impl<T, S> FromRequestParts<S> for $name<T>
        where
            T: DeserializeOwned + Send,
            S: Send + Sync,
        {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
                axum::extract::$inner::<T>::from_request_parts(parts, state)
                    .await
                    .map(|axum::extract::$inner(v)| Self(v))
                    .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
            }
        }

        impl<T: JsonSchema> OperationInput for $name<T> {
            fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
                axum::extract::$inner::<T>::operation_input(ctx, operation);
            }

            fn inferred_early_responses(
                ctx: &mut GenContext,
                _operation: &mut Operation,
            ) -> Vec<(Option<u16>, DocResponse)> {
                vec![(Some(400), problem_response(ctx, $description))]
            }
        }
    };
}

bad_request_on_rejection!(
    /// Path parameters; a value that does not parse (e.g. a malformed UUID) is a 400.
    Path wraps Path, "Malformed path parameter"
);

bad_request_on_rejection!(
    /// Query parameters; unparseable ones are a 400.
    Query wraps Query, "Malformed query parameter"
);
