//! HS256 access tokens: issue and verify, with the algorithm pinned.
//!
//! Verification follows RFC 8725 (JWT best current practice): one algorithm, `iss` and `aud`
//! issued and required (a token minted for another service sharing the secret is refused),
//! `exp` required, `nbf` checked when present, and an `iat` in the future refused.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::verified_tokens::{Times, VerifiedTokens};
use crate::config::AuthSettings;

/// Clock skew tolerated on `exp`, `nbf` and `iat`: a few seconds, not jsonwebtoken's default
/// minute.
const LEEWAY_SECONDS: u64 = 5;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    /// Required (not `Option`) so a token without it fails to decode.
    iat: u64,
    exp: u64,
    /// Checked by jsonwebtoken when present; decoded so a remembered token's is checked again
    /// at each use ([`VerifiedTokens`]). Never issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
}

/// What a token whose signature, algorithm and expiry check out says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedToken {
    pub user_id: Uuid,
    /// `iat`, seconds since the epoch: tokens issued before the password last changed, or
    /// too long ago for a sensitive operation, are refused.
    pub issued_at: u64,
}

/// What [`JwtKeys::issue`] signs: the claims plus who issued the token and for whom. Checking
/// `iss` and `aud` is jsonwebtoken's job on the way in, so [`Claims`] does not decode them.
#[derive(Serialize)]
struct Issued<'a> {
    #[serde(flatten)]
    claims: Claims,
    iss: &'a str,
    aud: &'a str,
}

/// Why a token was refused; all of them are a 401 to the client.
#[derive(Debug, thiserror::Error)]
#[error("invalid token: {0}")]
pub struct InvalidToken(#[from] jsonwebtoken::errors::Error);

/// Signing and verification keys derived once from `JWT_SECRET`, with the `iss` and `aud`
/// this deployment issues and accepts (`JWT_ISSUER`, `JWT_AUDIENCE`).
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    issuer: String,
    audience: String,
    verified: VerifiedTokens,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("ttl", &self.ttl)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    pub fn new(settings: &AuthSettings) -> Result<Self, jsonwebtoken::errors::Error> {
        super::hs256::install();
        let bytes = settings.jwt_secret.expose_secret().as_bytes();
        // Only HS256 is accepted: a token whose header names another algorithm (`none`,
        // HS512, RS256 with our secret as a "public key") is rejected before any check.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        // Required, not just checked when present: jsonwebtoken skips `iss`/`aud` checks for a
        // token that lacks them.
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.validate_exp = true;
        // Off by default in jsonwebtoken: a token "not valid before" next week (or whose `nbf`
        // is not a number) would be accepted today.
        validation.validate_nbf = true;
        validation.set_issuer(&[&settings.jwt_issuer]);
        validation.set_audience(&[&settings.jwt_audience]);
        Ok(Self {
            encoding: EncodingKey::from_secret(bytes)?,
            decoding: DecodingKey::from_secret(bytes)?,
            validation,
            ttl: settings.jwt_ttl,
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            verified: VerifiedTokens::default(),
        })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A signed token for `user_id`, valid for the configured TTL.
    pub fn issue(&self, user_id: Uuid) -> Result<String, jsonwebtoken::errors::Error> {
        let now = unix_now();
        let issued = Issued {
            claims: Claims {
                sub: user_id,
                iat: now,
                exp: now + self.ttl.as_secs(),
                nbf: None,
            },
            iss: &self.issuer,
            aud: &self.audience,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &issued, &self.encoding)
    }

    /// The subject and issue time of a valid token. A token that verified before is found in
    /// memory, its times checked again ([`VerifiedTokens`]).
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, InvalidToken> {
        let now = unix_now();
        if let Some(verified) = self.verified.get(token, now, LEEWAY_SECONDS) {
            return Ok(verified);
        }
        let claims =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?.claims;
        // jsonwebtoken does not look at `iat`. A token claiming to be issued in the future was
        // not issued by this clock, and would pass any "issued after" rule (a revocation that
        // refuses tokens issued before the password changed) it was meant to fail.
        if claims.iat > now.saturating_add(LEEWAY_SECONDS) {
            return Err(InvalidToken(ErrorKind::ImmatureSignature.into()));
        }
        let verified = VerifiedToken {
            user_id: claims.sub,
            issued_at: claims.iat,
        };
        let times = Times {
            exp: claims.exp,
            nbf: claims.nbf,
        };
        self.verified
            .remember(token, verified, times, now, LEEWAY_SECONDS);
        Ok(verified)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn settings() -> AuthSettings {
        let env = crate::config::Env::from_lookup(crate::config::Runtime::Host, |name| {
            (name == "JWT_SECRET").then(|| SECRET.to_owned())
        })
        .unwrap();
        AuthSettings::from_env(&env).unwrap()
    }

    fn keys() -> JwtKeys {
        JwtKeys::new(&settings()).unwrap()
    }

    /// `claims` with the default issuer and audience added unless `claims` sets them (`null`
    /// removes one).
    fn with_iss_aud(mut claims: serde_json::Value) -> serde_json::Value {
        let map = claims.as_object_mut().unwrap();
        map.entry("iss").or_insert(json!("basalt"));
        map.entry("aud").or_insert(json!("basalt-api"));
        map.retain(|_, v| !v.is_null());
        claims
    }

    fn sign(claims: serde_json::Value, alg: Algorithm, secret: &str) -> String {
        crate::testing::forge_jwt(alg, &with_iss_aud(claims), secret)
    }

    fn hs256(claims: serde_json::Value) -> String {
        sign(claims, Algorithm::HS256, SECRET)
    }

    fn now() -> u64 {
        unix_now()
    }

    #[test]
    fn issued_token_round_trips_with_issuer_and_audience() {
        let id = Uuid::now_v7();
        let k = keys();
        let token = k.issue(id).unwrap();
        let verified = k.verify(&token).unwrap();
        assert_eq!(verified.user_id, id);
        assert!(verified.issued_at.abs_diff(now()) <= 1);
        let payload: serde_json::Value =
            serde_json::from_slice(&B64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_eq!(payload["iss"], "basalt");
        assert_eq!(payload["aud"], "basalt-api");
        assert_eq!(payload["sub"], id.to_string());
    }

    #[test]
    fn alg_none_is_rejected() {
        let header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let claims = B64.encode(
            with_iss_aud(json!({"sub": Uuid::now_v7(), "iat": now(), "exp": now() + 60}))
                .to_string(),
        );
        assert!(keys().verify(&format!("{header}.{claims}.")).is_err());
    }

    #[test]
    fn other_hmac_alg_is_rejected() {
        let t = sign(
            json!({"sub": Uuid::now_v7(), "iat": now(), "exp": now() + 60}),
            Algorithm::HS512,
            SECRET,
        );
        assert!(keys().verify(&t).is_err());
    }

    #[test]
    fn expired_missing_exp_missing_iat_and_wrong_key_are_rejected() {
        let id = Uuid::now_v7();
        let expired = hs256(json!({"sub": id, "iat": now() - 100, "exp": now() - 30}));
        assert!(keys().verify(&expired).is_err());
        let no_exp = hs256(json!({"sub": id, "iat": now()}));
        assert!(keys().verify(&no_exp).is_err());
        let no_iat = hs256(json!({"sub": id, "exp": now() + 60}));
        assert!(keys().verify(&no_iat).is_err());
        let wrong_key = sign(
            json!({"sub": id, "iat": now(), "exp": now() + 60}),
            Algorithm::HS256,
            "another-secret-another-secret-xx",
        );
        assert!(keys().verify(&wrong_key).is_err());
    }

    #[test]
    fn leeway_is_a_few_seconds_not_a_minute() {
        let id = Uuid::now_v7();
        let just_expired = hs256(json!({"sub": id, "iat": now() - 100, "exp": now() - 2}));
        assert!(keys().verify(&just_expired).is_ok());
        let long_expired = hs256(json!({"sub": id, "iat": now() - 100, "exp": now() - 20}));
        assert!(keys().verify(&long_expired).is_err());
    }

    #[test]
    fn nbf_is_checked_when_present_and_must_be_a_number() {
        let id = Uuid::now_v7();
        let t = now();
        let valid = |nbf: serde_json::Value| {
            keys()
                .verify(&hs256(
                    json!({"sub": id, "iat": t, "exp": t + 600, "nbf": nbf}),
                ))
                .is_ok()
        };
        assert!(valid(json!(t)));
        assert!(valid(json!(t + 2)), "within the leeway");
        assert!(!valid(json!(t + 60)), "not valid for another minute");
        assert!(!valid(json!("tomorrow")));
        assert!(!valid(json!({"at": t})));
    }

    #[test]
    fn iat_in_the_future_is_rejected_beyond_the_leeway() {
        let id = Uuid::now_v7();
        let t = now();
        let valid = |iat: u64| {
            keys()
                .verify(&hs256(json!({"sub": id, "iat": iat, "exp": t + 600})))
                .is_ok()
        };
        assert!(valid(t + 2));
        assert!(!valid(t + 60));
        assert!(!valid(t + 365 * 24 * 3600));
    }

    #[test]
    fn issuer_and_audience_are_required_and_must_match() {
        let id = Uuid::now_v7();
        let t = now();
        let valid = |extra: serde_json::Value| {
            let mut claims = json!({"sub": id, "iat": t, "exp": t + 600});
            claims
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            keys().verify(&hs256(claims)).is_ok()
        };
        assert!(valid(json!({})));
        // An audience list that names this API is still meant for it (RFC 7519 4.1.3).
        assert!(valid(json!({"aud": ["other-api", "basalt-api"]})));
        assert!(!valid(json!({"iss": null})), "missing iss");
        assert!(!valid(json!({"aud": null})), "missing aud");
        assert!(!valid(json!({"iss": "someone-else"})), "wrong iss");
        assert!(!valid(json!({"aud": "other-api"})), "wrong aud");
        assert!(!valid(json!({"aud": ["other-api"]})), "wrong aud list");
        assert!(!valid(json!({"iss": 7})), "non-string iss");
    }

    #[test]
    fn a_verified_token_is_remembered_and_one_differing_anywhere_is_verified_afresh() {
        let k = keys();
        let id = Uuid::now_v7();
        let token = k.issue(id).unwrap();
        assert!(k.verified.get(&token, now(), LEEWAY_SECONDS).is_none());
        assert_eq!(k.verify(&token).unwrap().user_id, id);
        assert_eq!(
            k.verified
                .get(&token, now(), LEEWAY_SECONDS)
                .map(|v| v.user_id),
            Some(id)
        );
        // The remembered token's signature under another payload, and the token with a byte
        // more: both verified in full, both refused.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = B64.encode(
            with_iss_aud(json!({"sub": Uuid::now_v7(), "iat": now(), "exp": now() + 60}))
                .to_string(),
        );
        assert!(k.verify(&parts.join(".")).is_err());
        assert!(k.verify(&format!("{token}A")).is_err());
        assert_eq!(k.verify(&token).unwrap().user_id, id);
        // Times are checked again from memory: past exp and the leeway it is refused.
        let expires = hs256(json!({"sub": id, "iat": now() - 100, "exp": now() - 2}));
        assert!(k.verify(&expires).is_ok());
        assert!(
            k.verified
                .get(&expires, now() + 4, LEEWAY_SECONDS)
                .is_none()
        );
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let k = keys();
        let token = k.issue(Uuid::now_v7()).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = B64.encode(
            with_iss_aud(json!({"sub": Uuid::now_v7(), "iat": now(), "exp": now() + 60}))
                .to_string(),
        );
        assert!(k.verify(&parts.join(".")).is_err());
    }
}
