//! The library every Basalt binary uses.
//!
//! # Layout
//!
//! Listed bottom-up: a module may use the ones above it, never one below it or a sibling on
//! its own line (the tidy test in `tidy.rs` enforces this).
//!
//! - [`ssrf`]: which addresses a request to a user-supplied URL (a webhook) may reach.
//!   [`sealed`]: secrets kept encrypted at rest (webhook signing secrets).
//!   [`probe`]: one GET of a local readiness endpoint (`host`/`worker healthcheck`).
//! - [`signal`]: SIGTERM/SIGINT, what the host and the worker stop on.
//! - [`config`]: typed settings from the environment, one type per component; refuses to
//!   start on bad values, naming the variable.
//! - [`telemetry`]: tracing subscriber (JSON or pretty, `RUST_LOG`).
//! - [`migrations`]: `migrations/*.sql` embedded and applied by refinery.
//! - [`tls`]: rustls for PostgreSQL (libpq's `sslmode` semantics) and `rediss://`.
//! - [`db`]: the pool and the single retrying, timed entry point for every query.
//! - [`error`]: `ApiError` and the RFC 9457 `Problem` body.
//! - [`repo`]: SQL per table, always scoped to the owning user. [`validate`]: the characters
//!   a text field may hold (no NUL anywhere; no control characters in one-line values).
//! - [`views`]: JSON shapes shared by several route crates (user, page).
//! - [`auth`], [`rate_limit`]: credentials and who they prove the caller to be; the
//!   GCRA limiter (Redis, in-memory fallback). Neither knows the other or HTTP
//!   middleware.
//! - [`state`]: `AppState`, what handlers receive.
//! - [`extract`], [`idempotency`]: `Json`/`Path`/`Query`/`Created` that fail with `ApiError`;
//!   `NoStore` for responses that carry a credential; `Idempotency-Key` for POSTs that create
//!   (the first response again, in the write's transaction).
//! - [`routes`]: `routes!`, one route list giving a documented `api()` and a plain `router()`.
//! - [`http`]: `app()`, the one function that assembles the middleware chain, and its layers.
//! - [`lambda`]: runs a router as a Lambda function through that chain.
//! - `testing` (feature `test-support`): fixtures, gateway events, host-vs-Lambda parity.

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod extract;
pub mod http;
pub mod idempotency;
pub mod lambda;
pub mod migrations;
pub mod probe;
pub mod rate_limit;
pub mod repo;
pub mod routes;
pub mod sealed;
pub mod signal;
pub mod ssrf;
pub mod state;
pub mod telemetry;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
#[cfg(test)]
mod tidy;
pub mod tls;
pub mod validate;
pub mod views;

pub use error::ApiError;
pub use state::AppState;

/// Re-exported so function crates document routes with the same aide version.
pub use aide;
/// Re-exported for [`routes!`]'s expansion.
pub use axum;
