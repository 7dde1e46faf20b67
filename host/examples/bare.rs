//! Benchmark baseline: the same database work as `GET /v1/items` and `POST /v1/items`, on the
//! same pool and repositories, with no middleware at all (no request id, CORS, logging, rate
//! limiting, auth, limits). `scripts/bench` runs it beside the real host so the cost of the
//! chain is a measured ratio, not a guess.
//!
//! Env: `DATABASE_URL`, `BENCH_USER_ID` (whose items are listed/created), `BIND_ADDR`.
//! `BARE_RATE_LIMIT=1` adds exactly one thing: the rate limiter's Redis check (the host's
//! `RateLimiter`, configured from the same `REDIS_URL`/`RATE_LIMIT_*`), once per request.
//! That is the floor of any chain that keeps DESIGN.md's one atomic Redis round trip per
//! request; `scripts/bench` measures it as the `bare+redis` variant. `BARE_SERVE=host` serves
//! the same router through the host's own connection loop (`host::Application`: hyper's
//! header-read timeout, the connection cap, graceful shutdown, `ConnectInfo`) instead of
//! `axum::serve`: the `bare+serve` variant, what that loop costs without the chain.
#![allow(clippy::print_stdout)]

use std::sync::Arc;

use anyhow::Context;
use axum::{
    Router,
    extract::{Query, State},
    routing::get,
};
use fn_items::ItemView;
use shared::{
    config::{Env, HttpSettings, RateLimitSettings, Runtime},
    db::Db,
    extract::{Created, Json},
    rate_limit::RateLimiter,
    repo::items,
    views::Page,
};

// The same allocator as the host binary, so the comparison is of the chain alone.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone)]
struct Bare {
    db: Db,
    user: uuid::Uuid,
    limiter: Option<Arc<RateLimiter>>,
}

impl Bare {
    async fn count(&self, endpoint: &str) {
        if let Some(l) = &self.limiter {
            let limiter = format!("user:{}|{endpoint}", self.user);
            let decision = l.check(&limiter, l.limit_for(endpoint)).await;
            assert!(decision.allowed, "the benchmark's budget is never reached");
        }
    }
}

#[derive(serde::Deserialize)]
struct ListParams {
    limit: Option<i64>,
}

#[derive(serde::Deserialize)]
struct NewItem {
    title: String,
    #[serde(default)]
    description: String,
}

async fn list(State(s): State<Bare>, Query(p): Query<ListParams>) -> Json<Page<ItemView>> {
    s.count("GET /v1/items").await;
    let limit = p.limit.unwrap_or(20);
    let mut rows = items::list(&s.db, s.user, None, limit + 1)
        .await
        .unwrap_or_default();
    let next_cursor = (rows.len() as i64 > limit).then(|| {
        rows.truncate(limit as usize);
        fn_items::encode_cursor(rows[rows.len() - 1].id)
    });
    Json(Page {
        items: rows.into_iter().map(ItemView::from).collect(),
        next_cursor,
    })
}

async fn create(State(s): State<Bare>, Json(body): Json<NewItem>) -> Created<ItemView> {
    s.count("POST /v1/items").await;
    let item = items::create(&s.db, s.user, &body.title, &body.description)
        .await
        .expect("insert");
    Created(item.into())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL")?;
    let user = std::env::var("BENCH_USER_ID")
        .context("BENCH_USER_ID")?
        .parse()?;
    let pool: usize = std::env::var("DB_POOL_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let addr = std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:8002".into());
    let db = Db::connect_lazy(&url, pool, std::time::Duration::from_millis(500))?;
    let limiter = match std::env::var("BARE_RATE_LIMIT").as_deref() {
        Ok("1") => {
            // Only the limiter's settings: no JWT_SECRET or HTTP settings needed here.
            let settings = RateLimitSettings::from_env(&Env::from_process(Runtime::Host)?)?;
            anyhow::ensure!(
                settings.redis_url.is_some(),
                "BARE_RATE_LIMIT=1 needs REDIS_URL"
            );
            Some(Arc::new(RateLimiter::new(&settings)?))
        }
        _ => None,
    };
    let app = Router::new()
        .route("/v1/items", get(list).post(create))
        .with_state(Bare { db, user, limiter });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("bare listening on {addr}");
    if std::env::var("BARE_SERVE").as_deref() == Ok("host") {
        let settings = HttpSettings::from_env(&Env::from_process(Runtime::Host)?)?;
        let never = std::future::pending();
        host::Application::new(listener, app, &settings)
            .run_until(never)
            .await?;
    } else {
        axum::serve(listener, app).await?;
    }
    Ok(())
}
