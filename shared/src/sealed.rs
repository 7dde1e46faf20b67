//! Secrets the server must read back but a database dump must not reveal (webhook signing
//! secrets): sealed with XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`) under a key that
//! lives outside the database (`WEBHOOK_ENCRYPTION_KEY`).
//!
//! A sealed value is `1` (the format), a random 24-byte nonce (random nonces of that size
//! never repeat in practice, so no counter has to be kept), then the ciphertext and its tag.
//! `context` is authenticated with it: sealed under one row's id, a value does not open under
//! another's, so secrets cannot be swapped between rows of a dump either.

use base64::{Engine, engine::general_purpose::STANDARD};
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};

const FORMAT: u8 = 1;
const NONCE_LEN: usize = 24;

/// The 32-byte key, given as standard base64 (`openssl rand -base64 32`).
#[derive(Clone)]
pub struct SealingKey(XChaCha20Poly1305);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(…)")
    }
}

/// Why a key or a sealed value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("expected 32 bytes in standard base64 (openssl rand -base64 32)")]
    BadKey,
    /// Another key, another context, a damaged value or an unknown format: indistinguishable
    /// by design.
    #[error("the sealed value does not open with this key and context")]
    DoesNotOpen,
}

impl SealingKey {
    pub fn from_base64(encoded: &str) -> Result<Self, SealError> {
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|_| SealError::BadKey)?;
        if bytes.len() != 32 {
            return Err(SealError::BadKey);
        }
        XChaCha20Poly1305::new_from_slice(&bytes)
            .map(Self)
            .map_err(|_| SealError::BadKey)
    }

    /// `plaintext` sealed under `context` (e.g. the owning row's id).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let ciphertext = self
            .0
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            // Only fails for inputs beyond 256 GiB.
            .unwrap_or_default();
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(FORMAT);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// The plaintext of a value [`SealingKey::seal`] made under the same key and `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        let rest = match sealed.split_first() {
            Some((&FORMAT, rest)) if rest.len() > NONCE_LEN => rest,
            _ => return Err(SealError::DoesNotOpen),
        };
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        self.0
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| SealError::DoesNotOpen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_context() {
        let key = SealingKey::from_base64(KEY).unwrap();
        let secret = b"whsec_c2VjcmV0LXNpZ25pbmcta2V5LWJ5dGVz";
        let sealed = key.seal(secret, b"row-1");
        assert_eq!(key.open(&sealed, b"row-1").unwrap(), secret);
        assert!(
            !sealed.windows(secret.len()).any(|w| w == secret),
            "the plaintext is not in the sealed value"
        );
        assert_ne!(
            sealed,
            key.seal(secret, b"row-1"),
            "a fresh nonce each time"
        );
        assert_eq!(key.open(&sealed, b"row-2"), Err(SealError::DoesNotOpen));
        let other = SealingKey::from_base64(&STANDARD.encode([7u8; 32])).unwrap();
        assert_eq!(other.open(&sealed, b"row-1"), Err(SealError::DoesNotOpen));
        let mut damaged = sealed.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert_eq!(key.open(&damaged, b"row-1"), Err(SealError::DoesNotOpen));
        assert_eq!(
            key.open(&sealed[..10], b"row-1"),
            Err(SealError::DoesNotOpen)
        );
        assert_eq!(key.open(&[], b"row-1"), Err(SealError::DoesNotOpen));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(SealingKey::from_base64(KEY).is_ok());
        for bad in [
            "",
            "not base64!",
            &STANDARD.encode([1u8; 16]),
            &STANDARD.encode([1u8; 33]),
        ] {
            assert_eq!(
                SealingKey::from_base64(bad).unwrap_err(),
                SealError::BadKey,
                "{bad}"
            );
        }
        assert_eq!(
            format!("{:?}", SealingKey::from_base64(KEY).unwrap()),
            "SealingKey(…)"
        );
    }
}
