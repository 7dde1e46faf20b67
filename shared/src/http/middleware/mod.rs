//! The chain's own layers, one module each; `http::app` stacks them with tower-http's.
//!
//! Each takes only the parts of the state it needs (`&Authenticator`, `&RateLimiter`, …),
//! behind a thin adapter that reads them from `AppState`, so a layer can be tested without
//! the rest.

pub mod auth;
pub mod problem;
pub mod rate_limit;
pub mod request_id;
pub mod request_log;
