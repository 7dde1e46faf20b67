//! The long-running host: every function crate's router, merged, behind the shared chain.
//!
//! Also the only place that sees all routes, so it generates the OpenAPI document
//! (`/openapi.json`) and serves the docs page (`/docs`). `main.rs` is a thin shell over
//! [`Application`]; the integration tests drive the same type on port 0.

pub mod migrate_function;

use std::{future::Future, net::SocketAddr, pin::pin, sync::Arc, time::Duration};

use aide::{
    axum::ApiRouter,
    openapi::{ApiKeyLocation, Info, OpenApi, ReferenceOr, SecurityScheme},
    scalar::Scalar,
};
use axum::{
    Extension, Router, body::Bytes, extract::ConnectInfo, response::Html, routing::get,
    serve::Listener,
};
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use schemars::json_schema;
use shared::{
    AppState,
    config::HttpSettings,
    http::middleware::auth::{API_KEY_HEADER, API_KEY_SCHEME, BEARER_SCHEME},
};
use tokio::{net::TcpListener, sync::Semaphore};
use tower::Layer;

/// Every route of every function crate, documented.
pub fn api() -> ApiRouter<AppState> {
    ApiRouter::new()
        .merge(fn_health::api())
        .merge(fn_auth::api())
        .merge(fn_users::api())
        .merge(fn_api_keys::api())
        .merge(fn_items::api())
        .merge(fn_webhooks::api())
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
    // The document is captured by its route alone: an `Extension` layer would insert it into
    // every request's extensions.
    let served = doc.clone();
    let router = router
        .route(
            "/openapi.json",
            get(move || {
                let doc = served.clone();
                async move { axum::Json(doc) }
            }),
        )
        .route(
            "/docs",
            get(move || {
                let html = docs_html.clone();
                async move { Html(html) }
            }),
        );
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
    /// `HEADER_READ_TIMEOUT_SECONDS`, for hyper: the chain's timeout starts after the head.
    header_read_timeout: Duration,
    /// `MAX_CONNECTIONS`: how many connections are served at once.
    max_connections: usize,
}

impl Application {
    /// Binds `state.config.http.bind_addr` (port 0 picks a free port).
    pub async fn build(state: AppState) -> std::io::Result<Self> {
        let listener = TcpListener::bind(state.config.http.bind_addr).await?;
        Ok(Self::new(listener, app(state.clone()), &state.config.http))
    }

    /// Serves `app`, whatever it is, on `listener` with the host's connection handling
    /// (`HEADER_READ_TIMEOUT_SECONDS`, `MAX_CONNECTIONS`): `examples/bare.rs` uses it to show
    /// what this loop costs by itself.
    pub fn new(listener: TcpListener, app: Router, settings: &HttpSettings) -> Self {
        Self {
            listener,
            header_read_timeout: settings.header_read_timeout,
            max_connections: settings.max_connections,
            app,
        }
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    ///
    /// Drives hyper's HTTP/1 connections itself rather than through `axum::serve`, which gives
    /// hyper no timer and so silently disables its header-read timeout: a client sending one
    /// header byte at a time would hold its connection (and a task) forever, since the chain's
    /// own timeout only starts once the head is parsed. Each connection holds a permit of a
    /// semaphore of `max_connections`; when none is left, the loop stops accepting until a
    /// connection closes (the kernel's backlog queues the rest). Accept errors are handled as
    /// `axum::serve` does (its `Listener` impl), and the peer address reaches the chain as
    /// `ConnectInfo<SocketAddr>`, as before.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self {
            mut listener,
            app,
            header_read_timeout,
            max_connections,
        } = self;
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .keep_alive(true);
        let permits = Arc::new(Semaphore::new(max_connections));
        let graceful = GracefulShutdown::new();
        let mut shutdown = pin!(shutdown);
        // Warn once per stretch at the cap, not once per connection that had to wait.
        let mut at_cap = false;
        loop {
            let next = async {
                let permit = match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        at_cap = false;
                        Ok(permit)
                    }
                    Err(_) => {
                        if !at_cap {
                            at_cap = true;
                            tracing::warn!(
                                max_connections,
                                "MAX_CONNECTIONS reached: further connections wait until one closes"
                            );
                        }
                        permits.clone().acquire_owned().await
                    }
                };
                (permit, Listener::accept(&mut listener).await)
            };
            let (permit, (stream, peer)) = tokio::select! {
                () = &mut shutdown => break,
                next = next => next,
            };
            // The semaphore is never closed, so this always holds a permit.
            let Ok(permit) = permit else { break };
            // What `into_make_service_with_connect_info` does per connection.
            let service = Extension(ConnectInfo(peer)).layer(app.clone());
            let connection = graceful.watch(
                http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)),
            );
            tokio::spawn(async move {
                // Timeouts, resets and malformed requests end here; hyper already answered
                // what deserved an answer (400, 431), so this is only worth a debug line.
                if let Err(error) = connection.await {
                    tracing::debug!(%peer, %error, "connection closed");
                }
                drop(permit);
            });
        }
        drop(listener);
        // Idle connections close now, busy ones after their current response.
        graceful.shutdown().await;
        Ok(())
    }
}
