//! One declaration of a route crate's routes, two routers derived from it.
//!
//! The host mounts `api()`: an aide `ApiRouter` that carries each operation's OpenAPI
//! description, from which `openapi.json` is generated. A Lambda function only routes, and aide
//! builds the descriptions (the JSON schemas of every input) while the router is constructed:
//! 0.54 ms against 0.10 ms for a plain axum router for `items`, measured in its cold start
//! (`scripts/bench-lambda`), where the whole init is ~6 ms. [`routes!`](crate::routes!)
//! writes both `api()` and a plain `router()` from the same list, so they cannot drift.

use aide::{
    OperationInput, OperationOutput, axum::routing::ApiMethodRouter, operation::OperationHandler,
    transform::TransformOperation,
};
use axum::{handler::Handler, routing::MethodRouter};

/// The HTTP methods routes are declared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

/// Adds `handler` for `method`, with its description, to an aide method router.
pub fn documented<S, H, I, O, T, F>(
    router: ApiMethodRouter<S>,
    method: Method,
    handler: H,
    describe: F,
) -> ApiMethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
    H: Handler<T, S> + OperationHandler<I, O>,
    I: OperationInput,
    O: OperationOutput,
    T: 'static,
    F: FnOnce(TransformOperation<'_>) -> TransformOperation<'_>,
{
    match method {
        Method::Get => router.get_with(handler, describe),
        Method::Post => router.post_with(handler, describe),
        Method::Put => router.put_with(handler, describe),
        Method::Patch => router.patch_with(handler, describe),
        Method::Delete => router.delete_with(handler, describe),
    }
}

/// Adds `handler` for `method` to a plain axum method router.
pub fn plain<S, H, T>(router: MethodRouter<S>, method: Method, handler: H) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
    H: Handler<T, S>,
    T: 'static,
{
    match method {
        Method::Get => router.get(handler),
        Method::Post => router.post(handler),
        Method::Put => router.put(handler),
        Method::Patch => router.patch(handler),
        Method::Delete => router.delete(handler),
    }
}

/// Declares a route crate's routes once and defines `pub fn api()` (documented, for the host
/// and `openapi.json`) and `pub fn router()` (plain axum, for the Lambda function) from them:
///
/// ```ignore
/// shared::routes! {
///     "/v1/items" => {
///         Get(list, |op| op.tag("items").summary("List your items")),
///         Post(create, |op| op.tag("items").summary("Create an item")),
///     },
/// }
/// ```
#[macro_export]
macro_rules! routes {
    ($($path:literal => { $($method:ident($handler:expr, $describe:expr)),+ $(,)? }),+ $(,)?) => {
        /// These routes with their OpenAPI descriptions: what the host mounts and
        /// `openapi.json` is generated from.
        pub fn api() -> $crate::aide::axum::ApiRouter<$crate::AppState> {
            $crate::aide::axum::ApiRouter::new()
                $(.api_route($path, {
                    let r = $crate::aide::axum::routing::ApiMethodRouter::new();
                    $(let r = $crate::routes::documented(
                        r, $crate::routes::Method::$method, $handler, $describe,
                    );)+
                    r
                }))+
        }

        /// The same routes without descriptions: what the Lambda function runs (no schema
        /// generation during a cold start).
        pub fn router() -> $crate::axum::Router<$crate::AppState> {
            $crate::axum::Router::new()
                $(.route($path, {
                    let r = $crate::axum::routing::MethodRouter::new();
                    $(let r = $crate::routes::plain(r, $crate::routes::Method::$method, $handler);)+
                    r
                }))+
        }
    };
}
