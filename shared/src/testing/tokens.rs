//! JWTs signed by hand, as another service or an attacker holding the secret would: not
//! through jsonwebtoken, whose provider in this process signs HS256 only (`auth::hs256`), and
//! tests need tokens it refuses.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use hmac::{Hmac, Mac, digest::KeyInit};
use jsonwebtoken::Algorithm;

/// A JWT over `claims` signed with HMAC (HS256, HS384 or HS512) under `secret`.
pub fn forge_jwt(alg: Algorithm, claims: &serde_json::Value, secret: &str) -> String {
    let header = B64.encode(serde_json::json!({"alg": alg, "typ": "JWT"}).to_string());
    let input = format!("{header}.{}", B64.encode(claims.to_string()));
    let signature = match alg {
        Algorithm::HS256 => tag::<Hmac<sha2::Sha256>>(secret, &input),
        Algorithm::HS384 => tag::<Hmac<sha2::Sha384>>(secret, &input),
        Algorithm::HS512 => tag::<Hmac<sha2::Sha512>>(secret, &input),
        other => panic!("forge_jwt signs with HMAC only, not {other:?}"),
    };
    format!("{input}.{}", B64.encode(signature))
}

fn tag<M: Mac + KeyInit>(secret: &str, input: &str) -> Vec<u8> {
    let mut mac = <M as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}
