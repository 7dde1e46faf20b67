//! API integration tests, one binary: the real host on port 0 against a real PostgreSQL, one
//! fresh database per test (see `shared::testing`). Every endpoint, its auth failure, its
//! validation failure, and cross-user isolation; one module per area, shared helpers in `helpers`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod api_keys;
mod auth;
mod chain;
mod cors;
mod database;
mod health;
mod idempotency;
mod invoke_events;
mod items;
mod logging;
mod migrate_function;
mod openapi;
mod rate_limit;
mod response_headers;
mod revocation;
mod slowloris;
mod text_fields;
mod tls;
mod users;
mod webhooks;
