//! Test support (feature `test-support`), used by every crate's tests.
//!
//! - [`fixtures`]: a fresh migrated database per test, Redis, config and state, a log sink.
//! - [`events`]: real API Gateway, ALB and function-URL events for one request.
//! - [`parity`]: the same request through the host path and through Lambda, compared.
//! - [`receiver`]: the official Python Standard Webhooks verifier on a loopback port.
//! - [`tokens`]: JWTs signed by hand, as an attacker or another service would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

pub mod events;
pub mod fixtures;
pub mod parity;
pub mod receiver;
pub mod tokens;

pub use events::{Call, alb_event, function_url_event, http_api_event, rest_api_event};
pub use fixtures::*;
pub use parity::{Outcome, assert_lambda_matches_host, via_host, via_lambda, without_volatile};
pub use receiver::PythonReceiver;
pub use tokens::forge_jwt;
