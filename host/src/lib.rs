//! The long-running host: every function crate's router, merged, behind the shared chain.
//!
//! Also the only place that sees all routes, so it generates the OpenAPI document
//! (`/openapi.json`) and serves the docs page (`/docs`). `main.rs` is a thin shell over
//! [`Application`]; the integration tests drive the same type on port 0.

use std::{future::Future, net::SocketAddr, sync::Arc};

use aide::{
    axum::ApiRouter,
    openapi::{ApiKeyLocation, Info, OpenApi, ReferenceOr, SecurityScheme},
    scalar::Scalar,
};
use axum::{Extension, Router, body::Bytes, response::Html, routing::get};
use schemars::json_schema;
use shared::{
    AppState,
    http::middleware::auth::{API_KEY_HEADER, API_KEY_SCHEME, BEARER_SCHEME},
};
use tokio::net::TcpListener;

/// Every route of every function crate, documented.
pub fn api() -> ApiRouter<AppState> {
    ApiRouter::new()
        .merge(fn_health::api())
        .merge(fn_auth::api())
        .merge(fn_users::api())
        .merge(fn_api_keys::api())
        .merge(fn_items::api())
}

/// The router of every route plus `/openapi.json` and `/docs`, and the generated document.
pub fn routes() -> (Router<AppState>, Arc<OpenApi>) {
    aide::generate::infer_responses(true);
    aide::generate::extract_schemas(true);
    let mut doc = OpenApi {
        info: Info {
            title: "Basalt API".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: Some(
                "Errors are RFC 9457 application/problem+json bodies carrying the request id."
                    .into(),
            ),
            ..Info::default()
        },
        ..OpenApi::default()
    };
    let router = api().finish_api_with(&mut doc, |t| {
        t.security_scheme(
            BEARER_SCHEME,
            SecurityScheme::Http {
                scheme: "bearer".into(),
                bearer_format: Some("JWT".into()),
                description: Some(
                    "An access token from POST /v1/auth/token, or an API key (bsk_…)".into(),
                ),
                extensions: Default::default(),
            },
        )
        .security_scheme(
            API_KEY_SCHEME,
            SecurityScheme::ApiKey {
                location: ApiKeyLocation::Header,
                name: "X-API-Key".into(),
                description: Some(format!("An API key (bsk_…) in the {API_KEY_HEADER} header")),
                extensions: Default::default(),
            },
        )
    });
    document_edge_errors(&mut doc);
    let doc = Arc::new(doc);
    // Built once: the page embeds Scalar's ~2.7 MB script, and `Bytes` hands each request the
    // same buffer instead of a copy.
    let docs_html = Bytes::from(Scalar::new("/openapi.json").with_title("Basalt API").html());
    let router = router
        .route(
            "/openapi.json",
            get(|Extension(doc): Extension<Arc<OpenApi>>| async move { axum::Json(doc) }),
        )
        .route(
            "/docs",
            get(move || {
                let html = docs_html.clone();
                async move { Html(html) }
            }),
        )
        .layer(Extension(doc.clone()));
    (router, doc)
}

/// Every operation can also fail at the edge of the chain (405, 408, 413, 500, 503) with the
/// same problem+json body; say so once per operation as its `default` response.
fn document_edge_errors(doc: &mut OpenApi) {
    let problem = ReferenceOr::Item(shared::error::problem_doc(
        json_schema!({ "$ref": "#/components/schemas/Problem" }),
        "Error (RFC 9457 problem details)",
    ));
    let Some(paths) = doc.paths.as_mut() else {
        return;
    };
    for (_, item) in paths.paths.iter_mut() {
        let ReferenceOr::Item(item) = item else {
            continue;
        };
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for op in ops.into_iter().flatten() {
            let responses = op.responses.get_or_insert_with(Default::default);
            responses.default.get_or_insert_with(|| problem.clone());
        }
    }
}

/// The whole application, ready to serve.
pub fn app(state: AppState) -> Router {
    let (routes, _) = routes();
    shared::http::app(routes, state)
}

/// A bound listener and the app behind it; `main` and the tests share this.
pub struct Application {
    listener: TcpListener,
    app: Router,
}

impl Application {
    /// Binds `state.config.http.bind_addr` (port 0 picks a free port).
    pub async fn build(state: AppState) -> std::io::Result<Self> {
        let listener = TcpListener::bind(state.config.http.bind_addr).await?;
        Ok(Self {
            listener,
            app: app(state),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(
            self.listener,
            self.app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }
}

/// Resolves on SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received, draining in-flight requests");
}
