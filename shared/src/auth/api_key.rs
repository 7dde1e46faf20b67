//! API keys: `bsk_<prefix>_<secret>`.
//!
//! The prefix is public (shown in lists) and indexes the row; a key that has authenticated
//! counts against its owner's rate-limit budget (see [`VerifiedKeys`]); only the SHA-256 of the whole
//! key is stored. SHA-256 rather than bcrypt because the secret carries ~238 bits of entropy:
//! there is nothing to brute-force, and every request pays this.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use rand::{Rng, distr::Alphanumeric};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

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

/// How long a verification is trusted without the key authenticating again. Every successful
/// request renews it, so this bounds how long another replica keeps a revoked key's identity
/// (here, revocation forgets it at once).
pub const VERIFIED_KEY_TTL: Duration = Duration::from_secs(60);

/// A key that authenticated: the SHA-256 of the whole key, its owner, and when.
#[derive(Debug, Clone, Copy)]
struct Verified {
    hash: [u8; 32],
    user_id: Uuid,
    at: Instant,
}

/// The keys that have authenticated in this process recently: prefix → hash and owner.
///
/// The rate limiter runs before auth and must not touch the database. Trusting any well-formed
/// prefix would give every made-up key a fresh budget (a flood of random `bsk_…` keys would
/// never be limited), and trusting a known prefix alone would let anyone who saw it in a list
/// spend its owner's budget. So a key counts against its owner's budget only when the whole
/// key hashes to what authenticated here within [`VERIFIED_KEY_TTL`]; any other key counts
/// against the client's IP, like any other unproven credential.
#[derive(Debug, Default)]
pub struct VerifiedKeys(Mutex<HashMap<String, Verified>>);

impl VerifiedKeys {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Verified>> {
        // Plain values: a panic elsewhere cannot leave them inconsistent.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The owner of `key` when exactly this key authenticated here within the TTL.
    pub fn owner(&self, key: &str) -> Option<Uuid> {
        self.owner_at(key, Instant::now())
    }

    fn owner_at(&self, key: &str, now: Instant) -> Option<Uuid> {
        let prefix = prefix_of(key)?;
        let stored = *self.map().get(prefix)?;
        let fresh = now.saturating_duration_since(stored.at) < VERIFIED_KEY_TTL;
        (fresh && matches(key, &stored.hash)).then_some(stored.user_id)
    }

    /// Call once a key with this `prefix` and SHA-256 `hash`, owned by `user_id`, has
    /// authenticated.
    pub fn remember(&self, prefix: &str, hash: [u8; 32], user_id: Uuid) {
        let verified = Verified {
            hash,
            user_id,
            at: Instant::now(),
        };
        let mut map = self.map();
        // The common case, a known key renewing its entry, allocates nothing.
        if let Some(entry) = map.get_mut(prefix) {
            *entry = verified;
            return;
        }
        if map.len() >= MAX_VERIFIED_KEYS {
            map.clear();
        }
        map.insert(prefix.to_owned(), verified);
    }

    /// Call when a key is revoked: its requests count against the client IP at once.
    pub fn forget(&self, prefix: &str) {
        self.map().remove(prefix);
    }

    /// Call when all of a user's keys are revoked.
    pub fn forget_user(&self, user_id: Uuid) {
        self.map().retain(|_, v| v.user_id != user_id);
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
        let owner = Uuid::now_v7();
        let key = generate();
        assert_eq!(verified.owner(&key.key), None);
        verified.remember(&key.prefix, key.hash, owner);
        assert_eq!(verified.owner(&key.key), Some(owner));
        // Same prefix, another secret: not verified.
        let forged = format!("{KEY_PREFIX}{}_{}", key.prefix, "A".repeat(SECRET_LEN));
        assert_eq!(prefix_of(&forged), Some(key.prefix.as_str()));
        assert_eq!(verified.owner(&forged), None);
        // Trusted for the TTL only.
        assert_eq!(
            verified.owner_at(&key.key, Instant::now() + VERIFIED_KEY_TTL),
            None
        );
        for i in 0..MAX_VERIFIED_KEYS {
            verified.remember(&format!("{i:012}"), [0; 32], owner);
        }
        // Full: the map started again rather than growing without bound.
        assert!(verified.map().len() <= MAX_VERIFIED_KEYS);
        assert_eq!(verified.owner(&key.key), None);
    }

    #[test]
    fn revocation_forgets_a_key_or_all_of_a_users_keys() {
        let verified = VerifiedKeys::default();
        let (ann, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let (k1, k2, k3) = (generate(), generate(), generate());
        verified.remember(&k1.prefix, k1.hash, ann);
        verified.remember(&k2.prefix, k2.hash, ann);
        verified.remember(&k3.prefix, k3.hash, bob);
        verified.forget(&k1.prefix);
        assert_eq!(verified.owner(&k1.key), None);
        assert_eq!(verified.owner(&k2.key), Some(ann));
        verified.forget_user(ann);
        assert_eq!(verified.owner(&k2.key), None);
        assert_eq!(verified.owner(&k3.key), Some(bob));
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
