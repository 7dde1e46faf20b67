//! What the middleware chain costs in CPU by itself, without sockets, a database or other
//! processes sharing the cores: `cargo run --release -p host --example bench_chain`.
//!
//! One thread drives requests one after another through `tower`'s `oneshot` into the same
//! small handler (`GET /v1/items`, a fixed JSON body) three ways: the bare router; the router
//! inside `shared::http::app` logging at `warn` (no request line, as `scripts/bench`'s `quiet`
//! variant); and the same at `info`, the production JSON lines written to a byte counter.
//! The chain runs as in `scripts/bench`'s `no-redis` variant: the in-memory limiter and a
//! signed-in user (a JWT; the user confirmed in `known_users`, as after its first request).
//! Prints ns per request and what the chain adds in µs, in three rounds.
#![allow(clippy::print_stdout)]

use std::{
    hint::black_box,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Body,
    http::{Request, header},
    routing::get,
};
use serde_json::{Value, json};
use shared::{
    auth::known_users::Known,
    config::{Limit, LogFormat},
    state::AppState,
    telemetry, testing,
};
use tower::ServiceExt;
use tracing::Dispatch;

// The host binary's allocator: allocations are a good part of what the layers cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REQUESTS: u32 = 100_000;

/// Where the log lines go: counted, so the run can show that they were written.
static LOGGED_BYTES: AtomicU64 = AtomicU64::new(0);

struct CountingWriter;

impl std::io::Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGGED_BYTES.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn items() -> Json<Value> {
    Json(json!({"items": [{"id": 1, "title": "a"}], "next_cursor": null}))
}

fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/v1/items", get(items))
}

/// Mean ns per request of `REQUESTS` sequential requests through `app`, logging to `logs`.
async fn time(app: &Router, logs: &Dispatch, token: &str, state: &AppState) -> f64 {
    let _logs = tracing::dispatcher::set_default(logs);
    let bearer = format!("Bearer {token}");
    let user = state.auth.jwt.verify(token).expect("our own token").user_id;
    let mut total = Duration::ZERO;
    for _ in 0..REQUESTS / 1000 {
        // `known_users` trusts a confirmation for two seconds: renewed outside the clock.
        let known = Known {
            credentials_changed_at: None,
        };
        state.auth.known_users.remember(user, known);
        let started = Instant::now();
        for _ in 0..1000 {
            let req = Request::get("/v1/items?limit=100")
                .header(header::AUTHORIZATION, &bearer)
                .body(Body::empty())
                .expect("a valid request");
            let res = app.clone().oneshot(req).await.expect("infallible");
            assert_eq!(res.status(), 200);
            let body = axum::body::to_bytes(res.into_body(), usize::MAX).await;
            black_box(body.expect("a body"));
        }
        total += started.elapsed();
    }
    total.as_nanos() as f64 / f64::from(REQUESTS)
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // A pool that never connects: the signed-in user is confirmed in memory.
        let mut config = testing::config("postgres://nobody@127.0.0.1:1/none");
        config.rate_limit.limits.default = Limit {
            requests: 1_000_000,
            window: Duration::from_secs(1),
        };
        let state = AppState::new(config)?;
        let token = state.auth.jwt.issue(uuid::Uuid::now_v7())?;
        let bare = routes::<()>();
        let chain = shared::http::app(routes(), state.clone());
        let subscriber = |rust_log| {
            let filter = telemetry::filter(Some(rust_log));
            Dispatch::new(telemetry::subscriber_with_filter(
                LogFormat::Json,
                || CountingWriter,
                filter,
            ))
        };
        let (quiet, logged) = (subscriber("warn"), subscriber("info"));
        for round in 1..=3 {
            let bare_ns = time(&bare, &logged, &token, &state).await;
            let before = LOGGED_BYTES.load(Ordering::Relaxed);
            let quiet_ns = time(&chain, &quiet, &token, &state).await;
            let after_quiet = LOGGED_BYTES.load(Ordering::Relaxed);
            let logged_ns = time(&chain, &logged, &token, &state).await;
            let line = (LOGGED_BYTES.load(Ordering::Relaxed) - after_quiet) / u64::from(REQUESTS);
            anyhow::ensure!(after_quiet == before, "RUST_LOG=warn wrote request lines");
            anyhow::ensure!(line > 0, "RUST_LOG=info wrote no request lines");
            println!(
                "round {round}: bare {bare_ns:.0} ns per request; chain, no request line {quiet_ns:.0} \
                 ns (+{:.1} µs); with the {line}-byte line {logged_ns:.0} ns (+{:.1} µs)",
                (quiet_ns - bare_ns) / 1000.0,
                (logged_ns - bare_ns) / 1000.0,
            );
        }
        Ok(())
    })
}
