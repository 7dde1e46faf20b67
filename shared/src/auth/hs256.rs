//! The one signature algorithm tokens use, HS256, as jsonwebtoken's crypto provider.
//!
//! jsonwebtoken 12 leaves the cryptography to a [`CryptoProvider`]; its `rust_crypto` feature
//! brings one for every algorithm, and with it RSA, P-256, P-384 and Ed25519 (27 crates to
//! build, 0.9 MiB of every function binary, measured by `scripts/bench-lambda`) that a service
//! which signs and accepts HS256 only never runs. This provider does HS256 with RustCrypto's
//! `hmac` (constant-time comparison in `verify_slice`) and refuses every other algorithm, so a
//! token whose header names another one could not be checked even if [`super::jwt`]'s
//! `Validation` ever let it through. Hand-written because it is glue: the MAC is the library's.

use hmac::{Hmac, Mac};
use jsonwebtoken::{
    Algorithm, AlgorithmFamily, DecodingKey, EncodingKey,
    crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils},
    errors::{ErrorKind, Result, new_error},
    signature,
};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory,
    verifier_factory,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(no_asymmetric_keys()),
        rsa_pub_components_from_public_key: |_| Err(no_asymmetric_keys()),
        ec_pub_components_from_private_key: |_, _| Err(no_asymmetric_keys()),
        ed_pub_components_from_private_key: |_, _| Err(no_asymmetric_keys()),
        compute_digest: |_, _| Err(no_asymmetric_keys()),
    },
};

/// Makes HS256 the process's provider; called before any token is made or checked
/// ([`super::jwt::JwtKeys::new`]). Idempotent.
pub(crate) fn install() {
    // `Err` means a provider is installed already: this one, by an earlier call.
    let _ = PROVIDER.install_default();
}

fn no_asymmetric_keys() -> jsonwebtoken::errors::Error {
    new_error(ErrorKind::Provider(
        "only HS256 is built in: no asymmetric keys or JWK thumbprints".into(),
    ))
}

fn mac(key: &[u8]) -> Result<HmacSha256> {
    HmacSha256::new_from_slice(key).map_err(|_| new_error(ErrorKind::InvalidKeyFormat))
}

fn signer_factory(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    if *algorithm != Algorithm::HS256 || key.family() != AlgorithmFamily::Hmac {
        return Err(new_error(ErrorKind::InvalidAlgorithm));
    }
    Ok(Box::new(Hs256(mac(key.as_bytes())?)))
}

fn verifier_factory(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if *algorithm != Algorithm::HS256 || key.family() != AlgorithmFamily::Hmac {
        return Err(new_error(ErrorKind::InvalidAlgorithm));
    }
    Ok(Box::new(Hs256(mac(key.try_get_as_bytes()?)?)))
}

/// HMAC-SHA256 keyed with the secret; both the signer and the verifier.
struct Hs256(HmacSha256);

impl signature::Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl signature::Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, msg: &[u8], tag: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        mac.verify_slice(tag).map_err(|_| signature::Error::new())
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_hs256_and_refuses_every_other_algorithm() {
        install();
        let key = EncodingKey::from_secret(b"key").unwrap();
        let decoding = DecodingKey::from_secret(b"key").unwrap();
        let message = b"The quick brown fox jumps over the lazy dog";
        let signer = signer_factory(&Algorithm::HS256, &key).unwrap();
        let tag = signature::Signer::try_sign(&*signer, message).unwrap();
        // The well-known HMAC-SHA256 of that message under "key".
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        let verifier = verifier_factory(&Algorithm::HS256, &decoding).unwrap();
        assert!(signature::Verifier::verify(&*verifier, message, &tag).is_ok());
        assert!(signature::Verifier::verify(&*verifier, b"the quick", &tag).is_err());
        let mut bent = tag.clone();
        bent[31] ^= 1;
        assert!(signature::Verifier::verify(&*verifier, message, &bent).is_err());
        for other in [
            Algorithm::HS384,
            Algorithm::HS512,
            Algorithm::RS256,
            Algorithm::ES256,
        ] {
            assert!(signer_factory(&other, &key).is_err(), "{other:?}");
            assert!(verifier_factory(&other, &decoding).is_err(), "{other:?}");
        }
    }
}
