//! Test support (feature `test-support`), used by every crate's tests.
//!
//! - [`fixtures`]: a fresh migrated database per test, Redis, config and state, a log sink.
//! - [`events`]: real API Gateway, ALB and function-URL events for one request.
//! - [`parity`]: the same request through the host path and through Lambda, compared.
//! - [`receiver`]: the official Python Standard Webhooks verifier on a loopback port.
//! - [`forge_jwt`]: a token signed by hand, as an attacker or another service would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

pub mod events;
pub mod fixtures;
pub mod parity;
pub mod receiver;

pub use events::{Call, alb_event, function_url_event, http_api_event, rest_api_event};
pub use fixtures::*;
pub use parity::{Outcome, assert_lambda_matches_host, via_host, via_lambda, without_volatile};
pub use receiver::PythonReceiver;

/// A JWT signed by hand with HMAC (HS256, HS384 or HS512) over `claims` — what another service
/// or an attacker holding the secret could send. Not through jsonwebtoken: the process's
/// provider signs HS256 only (`auth::hs256`), and tests need tokens it refuses.
pub fn forge_jwt(alg: jsonwebtoken::Algorithm, claims: &serde_json::Value, secret: &str) -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
    use hmac::{Hmac, Mac};
    fn tag<M: Mac + hmac::digest::KeyInit>(secret: &str, input: &str) -> Vec<u8> {
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(input.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
    let header = B64.encode(serde_json::json!({"alg": alg, "typ": "JWT"}).to_string());
    let input = format!("{header}.{}", B64.encode(claims.to_string()));
    let signature = match alg {
        jsonwebtoken::Algorithm::HS256 => tag::<Hmac<sha2::Sha256>>(secret, &input),
        jsonwebtoken::Algorithm::HS384 => tag::<Hmac<sha2::Sha384>>(secret, &input),
        jsonwebtoken::Algorithm::HS512 => tag::<Hmac<sha2::Sha512>>(secret, &input),
        other => panic!("forge_jwt signs with HMAC only, not {other:?}"),
    };
    format!("{input}.{}", B64.encode(signature))
}
