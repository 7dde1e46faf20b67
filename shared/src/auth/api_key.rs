//! API keys: `bsk_<prefix>_<secret>`.
//!
//! The prefix is public (shown in lists, used as the rate-limit principal once its key has
//! authenticated, see [`VerifiedPrefixes`]) and indexes the row; only the SHA-256 of the whole
//! key is stored. SHA-256 rather than bcrypt because the secret carries ~238 bits of entropy:
//! there is nothing to brute-force, and every request pays this.

use std::{collections::HashSet, sync::Mutex};

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

/// Bound on remembered prefixes; past it the set starts again (a forgotten prefix is only
/// limited by client IP until its key authenticates once more).
const MAX_VERIFIED_PREFIXES: usize = 65_536;

/// The prefixes of API keys that have authenticated in this process.
///
/// The rate limiter runs before auth and must not touch the database, so it cannot check a key.
/// Trusting any well-formed prefix would give every made-up key a fresh budget: a flood of
/// random `bsk_…` keys would never be limited. So a prefix becomes the principal only after its
/// key has authenticated here once; until then its requests count against the client's IP,
/// like any other unproven credential.
#[derive(Debug, Default)]
pub struct VerifiedPrefixes(Mutex<HashSet<String>>);

impl VerifiedPrefixes {
    fn set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // A plain set: a panic elsewhere cannot leave it inconsistent.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn contains(&self, prefix: &str) -> bool {
        self.set().contains(prefix)
    }

    pub fn insert(&self, prefix: &str) {
        let mut set = self.set();
        if set.contains(prefix) {
            return;
        }
        if set.len() >= MAX_VERIFIED_PREFIXES {
            set.clear();
        }
        set.insert(prefix.to_owned());
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
    fn verified_prefixes_are_remembered_and_bounded() {
        let verified = VerifiedPrefixes::default();
        assert!(!verified.contains("abcdefghijkl"));
        verified.insert("abcdefghijkl");
        assert!(verified.contains("abcdefghijkl"));
        for i in 0..MAX_VERIFIED_PREFIXES {
            verified.insert(&format!("{i:012}"));
        }
        // Full: the set started again rather than growing without bound.
        assert!(verified.set().len() <= MAX_VERIFIED_PREFIXES);
        assert!(!verified.contains("abcdefghijkl"));
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
