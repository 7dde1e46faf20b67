//! HS256 access tokens: issue and verify, with the algorithm pinned.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Clock skew tolerated on `exp`: a few seconds, not jsonwebtoken's default minute.
const LEEWAY_SECONDS: u64 = 5;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    /// Required (not `Option`) so a token without it fails to decode.
    iat: u64,
    exp: u64,
}

/// What a token whose signature, algorithm and expiry check out says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedToken {
    pub user_id: Uuid,
    /// `iat`, seconds since the epoch: tokens issued before the password last changed, or
    /// too long ago for a sensitive operation, are refused.
    pub issued_at: u64,
}

/// Why a token was refused; all of them are a 401 to the client.
#[derive(Debug, thiserror::Error)]
#[error("invalid token: {0}")]
pub struct InvalidToken(#[from] jsonwebtoken::errors::Error);

/// Signing and verification keys derived once from `JWT_SECRET`.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    pub fn new(secret: &SecretString, ttl: Duration) -> Result<Self, jsonwebtoken::errors::Error> {
        let bytes = secret.expose_secret().as_bytes();
        // Only HS256 is accepted: a token whose header names another algorithm (`none`,
        // HS512, RS256 with our secret as a "public key") is rejected before any check.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_exp = true;
        Ok(Self {
            encoding: EncodingKey::from_secret(bytes)?,
            decoding: DecodingKey::from_secret(bytes)?,
            validation,
            ttl,
        })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A signed token for `user_id`, valid for the configured TTL.
    pub fn issue(&self, user_id: Uuid) -> Result<String, jsonwebtoken::errors::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            sub: user_id,
            iat: now,
            exp: now + self.ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// The subject and issue time of a valid token.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, InvalidToken> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?;
        Ok(VerifiedToken {
            user_id: data.claims.sub,
            issued_at: data.claims.iat,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn keys() -> JwtKeys {
        JwtKeys::new(&SecretString::from(SECRET), Duration::from_secs(900)).unwrap()
    }

    fn sign(
        header: serde_json::Value,
        claims: serde_json::Value,
        alg: Algorithm,
        secret: &str,
    ) -> String {
        let mut h = Header::new(alg);
        if let Some(typ) = header.get("typ").and_then(|t| t.as_str()) {
            h.typ = Some(typ.into());
        }
        jsonwebtoken::encode(
            &h,
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn issued_token_round_trips() {
        let id = Uuid::now_v7();
        let k = keys();
        let verified = k.verify(&k.issue(id).unwrap()).unwrap();
        assert_eq!(verified.user_id, id);
        assert!(verified.issued_at.abs_diff(now()) <= 1);
    }

    #[test]
    fn alg_none_is_rejected() {
        let header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let claims =
            B64.encode(json!({"sub": Uuid::now_v7(), "iat": now(), "exp": now() + 60}).to_string());
        assert!(keys().verify(&format!("{header}.{claims}.")).is_err());
    }

    #[test]
    fn other_hmac_alg_is_rejected() {
        let t = sign(
            json!({}),
            json!({"sub": Uuid::now_v7(), "iat": now(), "exp": now() + 60}),
            Algorithm::HS512,
            SECRET,
        );
        assert!(keys().verify(&t).is_err());
    }

    #[test]
    fn expired_missing_exp_missing_iat_and_wrong_key_are_rejected() {
        let id = Uuid::now_v7();
        let expired = sign(
            json!({}),
            json!({"sub": id, "iat": now() - 100, "exp": now() - 30}),
            Algorithm::HS256,
            SECRET,
        );
        assert!(keys().verify(&expired).is_err());
        let no_exp = sign(
            json!({}),
            json!({"sub": id, "iat": now()}),
            Algorithm::HS256,
            SECRET,
        );
        assert!(keys().verify(&no_exp).is_err());
        let no_iat = sign(
            json!({}),
            json!({"sub": id, "exp": now() + 60}),
            Algorithm::HS256,
            SECRET,
        );
        assert!(keys().verify(&no_iat).is_err());
        let wrong_key = sign(
            json!({}),
            json!({"sub": id, "iat": now(), "exp": now() + 60}),
            Algorithm::HS256,
            "another-secret-another-secret-xx",
        );
        assert!(keys().verify(&wrong_key).is_err());
    }

    #[test]
    fn leeway_is_a_few_seconds_not_a_minute() {
        let id = Uuid::now_v7();
        let just_expired = sign(
            json!({}),
            json!({"sub": id, "iat": now() - 100, "exp": now() - 2}),
            Algorithm::HS256,
            SECRET,
        );
        assert!(keys().verify(&just_expired).is_ok());
        let long_expired = sign(
            json!({}),
            json!({"sub": id, "iat": now() - 100, "exp": now() - 20}),
            Algorithm::HS256,
            SECRET,
        );
        assert!(keys().verify(&long_expired).is_err());
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let k = keys();
        let token = k.issue(Uuid::now_v7()).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] =
            B64.encode(json!({"sub": Uuid::now_v7(), "iat": now(), "exp": now() + 60}).to_string());
        assert!(k.verify(&parts.join(".")).is_err());
    }
}
