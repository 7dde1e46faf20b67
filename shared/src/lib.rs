//! The library every Basalt binary uses.
//!
//! # Layout
//!
//! - [`config`]: typed settings from the environment; refuses to start on bad values.
//! - [`telemetry`]: tracing subscriber (JSON or pretty, `RUST_LOG`).
//! - [`db`]: the pool and the single retrying, timed entry point for every query.
//! - [`migrations`]: `migrations/*.sql` embedded and applied by refinery.
//! - [`repo`]: SQL per table, always scoped to the owning user.
//! - [`auth`]: passwords, JWTs, API keys, the default-deny layer and `Principal`.
//! - [`error`]: `ApiError` and the RFC 9457 `Problem` body.
//! - [`extract`]: `Json`/`Path`/`Query`/`Created` that fail with `ApiError`.
//! - [`http`]: `app()`, the one function that assembles the middleware chain.
//! - [`rate_limit`]: sliding-window limiter (Redis, in-memory fallback) and its layer.
//! - [`routes`]: `routes!`, one route list giving a documented `api()` and a plain `router()`.
//! - [`lambda`]: runs a router as a Lambda function through that chain.
//! - [`state`]: `AppState`, what handlers receive.
//! - [`views`]: JSON shapes shared by several route crates (user, page).
//! - `testing` (feature `test-support`): a fresh migrated database per test.

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod extract;
pub mod http;
pub mod lambda;
pub mod migrations;
pub mod rate_limit;
pub mod repo;
pub mod routes;
pub mod state;
pub mod telemetry;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod views;

pub use error::ApiError;
pub use state::AppState;

/// Re-exported so function crates document routes with the same aide version.
pub use aide;
/// Re-exported for [`routes!`]'s expansion.
pub use axum;
