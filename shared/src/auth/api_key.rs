//! API keys: `bsk_<prefix>_<secret>`.
//!
//! The prefix is public (shown in lists, used as the rate-limit principal once its key has
//! authenticated, see [`VerifiedKeys`]) and indexes the row; only the SHA-256 of the whole
//! key is stored. SHA-256 rather than bcrypt because the secret carries ~238 bits of entropy:
//! there is nothing to brute-force, and every request pays this.

use std::{collections::HashMap, sync::Mutex};

use rand::{Rng, distr::Alphanumeric};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const KEY_PREFIX: &str = "bsk_";
const PREFIX_LEN: usize = 12;
const SECRET_LEN: usize = 40;

/// A freshly generated key: `key` is shown to the user once and never stored.
#[derive(Debug)]
pub struct NewKey {
    pub prefix: String,
    pub key: String,
    pub hash: [u8; 32],
}

pub fn generate() -> NewKey {
    let mut rng = rand::rng();
    // Lower-case alphanumerics only, so the prefix never contains the `_` separator.
    let prefix: String = (0..PREFIX_LEN)
        .map(|_| {
            let c = rng.sample(Alphanumeric);
            char::from(c).to_ascii_lowercase()
        })
        .collect();
    let secret: String = (0..SECRET_LEN)
        .map(|_| char::from(rng.sample(Alphanumeric)))
        .collect();
    let key = format!("{KEY_PREFIX}{prefix}_{secret}");
    NewKey {
        hash: hash(&key),
        prefix,
        key,
    }
}

/// The public prefix of a well-formed key, or `None` for anything else.
pub fn prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (prefix, secret) = rest.split_once('_')?;
    let well_formed = prefix.len() == PREFIX_LEN
        && secret.len() == SECRET_LEN
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && secret.bytes().all(|b| b.is_ascii_alphanumeric());
    well_formed.then_some(prefix)
}

/// Bound on remembered keys; past it the map starts again (a forgotten key is only limited by
/// client IP until it authenticates once more).
const MAX_VERIFIED_KEYS: usize = 65_536;

/// The keys that have authenticated in this process: prefix → SHA-256 of the whole key.
///
/// The rate limiter runs before auth and must not touch the database. Trusting any well-formed
/// prefix would give every made-up key a fresh budget (a flood of random `bsk_…` keys would
/// never be limited), and trusting a known prefix alone would let anyone who saw it in a list
/// spend its owner's budget. So a prefix is the principal only when the whole key hashes to
/// what authenticated here before; any other key counts against the client's IP, like any
/// other unproven credential.
#[derive(Debug, Default)]
pub struct VerifiedKeys(Mutex<HashMap<String, [u8; 32]>>);

impl VerifiedKeys {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, [u8; 32]>> {
        // Plain values: a panic elsewhere cannot leave them inconsistent.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The prefix of `key` when exactly this key authenticated here before.
    pub fn verified_prefix<'k>(&self, key: &'k str) -> Option<&'k str> {
        let prefix = prefix_of(key)?;
        let stored = *self.map().get(prefix)?;
        matches(key, &stored).then_some(prefix)
    }

    /// Call once a key with this `prefix` and SHA-256 `hash` has authenticated.
    pub fn remember(&self, prefix: &str, hash: [u8; 32]) {
        let mut map = self.map();
        if map.get(prefix) == Some(&hash) {
            return;
        }
        if map.len() >= MAX_VERIFIED_KEYS {
            map.clear();
        }
        map.insert(prefix.to_owned(), hash);
    }
}

pub fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Compares in constant time, so response timing leaks nothing about the stored hash.
pub fn matches(key: &str, stored_hash: &[u8]) -> bool {
    hash(key).ct_eq(stored_hash).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_key_that_authenticated_is_verified_and_memory_is_bounded() {
        let verified = VerifiedKeys::default();
        let key = generate();
        assert_eq!(verified.verified_prefix(&key.key), None);
        verified.remember(&key.prefix, key.hash);
        assert_eq!(
            verified.verified_prefix(&key.key),
            Some(key.prefix.as_str())
        );
        // Same prefix, another secret: not verified.
        let forged = format!("{KEY_PREFIX}{}_{}", key.prefix, "A".repeat(SECRET_LEN));
        assert_eq!(prefix_of(&forged), Some(key.prefix.as_str()));
        assert_eq!(verified.verified_prefix(&forged), None);
        for i in 0..MAX_VERIFIED_KEYS {
            verified.remember(&format!("{i:012}"), [0; 32]);
        }
        // Full: the map started again rather than growing without bound.
        assert!(verified.map().len() <= MAX_VERIFIED_KEYS);
        assert_eq!(verified.verified_prefix(&key.key), None);
    }

    #[test]
    fn generated_keys_parse_and_match_their_hash_only() {
        let k = generate();
        assert!(k.key.starts_with("bsk_"));
        assert_eq!(prefix_of(&k.key), Some(k.prefix.as_str()));
        assert!(matches(&k.key, &k.hash));
        let other = generate();
        assert_ne!(k.prefix, other.prefix);
        assert!(!matches(&other.key, &k.hash));
    }

    #[test]
    fn malformed_keys_have_no_prefix() {
        let k = generate();
        for bad in [
            "",
            "bsk_",
            "bsk_abc_def",
            "xyz_abcdefghijkl_0123456789012345678901234567890123456789",
            &k.key[..k.key.len() - 1],
            &format!("{}x", k.key),
            &k.key.replace("bsk_", "bsk_A"),
        ] {
            assert_eq!(prefix_of(bad), None, "{bad}");
        }
    }
}
