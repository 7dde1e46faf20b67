//! A per-process memory of access tokens whose signature and claims checked out, so a client
//! that sends the same token on every request pays for the HMAC, the two base64 decodes and
//! the two JSON parses of a verification once, not on every request (`examples/bench_jwt`:
//! 2.5–2.8 µs per token verified in full, 0.16–0.21 µs remembered).
//!
//! A token's signature, algorithm, issuer, audience and subject do not change while the keys
//! stay the same (they do for the life of the process), so only its times can turn a verified
//! token invalid: each hit checks `exp`, `nbf` and `iat` again against the clock with the same
//! leeway as a full verification, and an expired entry is dropped. Entries are keyed by the
//! whole token, compared byte for byte: a token that differs anywhere (another payload under a
//! valid signature) misses and is verified in full. Only tokens that verified are remembered,
//! so filling the memory takes valid tokens, which only sign-in issues; a full shard is swept
//! of expired entries, then cleared. Revocation is not this module's job: the auth layer still
//! checks every token's user and credentials ([`super::known_users`]).
//!
//! Hand-written for the same reason as `known_users`: a bounded map with a per-entry expiry is
//! a few lines, and a cache crate would cost more to build than its callers.

use std::{collections::HashMap, hash::BuildHasher, sync::Mutex};

use super::jwt::VerifiedToken;

const SHARDS: usize = 8;
/// Bound on remembered tokens per shard (a token is ~250 bytes: ~1 MB in all when full).
const MAX_PER_SHARD: usize = 512;

/// A remembered token's times besides its `iat` (which [`VerifiedToken`] carries), in seconds
/// since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    pub exp: u64,
    pub nbf: Option<u64>,
}

impl Times {
    /// Past `exp` by more than `leeway`: refused for good, so not worth keeping.
    fn expired_at(&self, now: u64, leeway: u64) -> bool {
        self.exp.saturating_add(leeway) < now
    }

    /// The time rules of a full verification: not expired, not before its `nbf`, not issued
    /// (`issued_at`) in the future, each with `leeway` seconds of clock skew.
    pub fn hold_at(&self, issued_at: u64, now: u64, leeway: u64) -> bool {
        !self.expired_at(now, leeway)
            && self.nbf.is_none_or(|nbf| nbf <= now.saturating_add(leeway))
            && issued_at <= now.saturating_add(leeway)
    }
}

/// Remembered tokens by their whole text.
type Shard = HashMap<Box<str>, (VerifiedToken, Times)>;

#[derive(Default)]
pub struct VerifiedTokens {
    shards: [Mutex<Shard>; SHARDS],
    hasher: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens").finish_non_exhaustive()
    }
}

impl VerifiedTokens {
    fn shard(&self, token: &str) -> std::sync::MutexGuard<'_, Shard> {
        let i = (self.hasher.hash_one(token) as usize) % SHARDS;
        // Plain values: a panic elsewhere cannot leave them inconsistent.
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What `token` was verified to say, if it was and its times still hold at `now`.
    pub fn get(&self, token: &str, now: u64, leeway: u64) -> Option<VerifiedToken> {
        let mut shard = self.shard(token);
        let (verified, times) = *shard.get(token)?;
        if times.hold_at(verified.issued_at, now, leeway) {
            Some(verified)
        } else {
            if times.expired_at(now, leeway) {
                shard.remove(token);
            }
            None
        }
    }

    /// Remembers a token that has just verified in full; a full shard first drops the tokens
    /// [`get`](Self::get) would drop (expired beyond `leeway`).
    pub fn remember(
        &self,
        token: &str,
        verified: VerifiedToken,
        times: Times,
        now: u64,
        leeway: u64,
    ) {
        let mut shard = self.shard(token);
        if shard.len() >= MAX_PER_SHARD && !shard.contains_key(token) {
            shard.retain(|_, (_, t)| !t.expired_at(now, leeway));
            if shard.len() >= MAX_PER_SHARD {
                shard.clear();
            }
        }
        shard.insert(token.into(), (verified, times));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    const NOW: u64 = 1_800_000_000;

    fn verified() -> VerifiedToken {
        VerifiedToken {
            user_id: Uuid::from_u128(7),
            issued_at: NOW - 10,
        }
    }

    fn times(exp: u64) -> Times {
        Times { exp, nbf: None }
    }

    #[test]
    fn a_remembered_token_is_found_only_by_its_exact_text_while_its_times_hold() {
        let tokens = VerifiedTokens::default();
        tokens.remember("a.b.c", verified(), times(NOW + 60), NOW, 5);
        assert_eq!(tokens.get("a.b.c", NOW, 5), Some(verified()));
        assert_eq!(tokens.get("a.b.C", NOW, 5), None);
        assert_eq!(tokens.get("a.b.c ", NOW, 5), None);
        // Expiry with the same leeway as a full verification, then forgotten.
        assert_eq!(tokens.get("a.b.c", NOW + 65, 5), Some(verified()));
        assert_eq!(tokens.get("a.b.c", NOW + 66, 5), None);
        assert_eq!(
            tokens.get("a.b.c", NOW, 5),
            None,
            "an expired entry is dropped"
        );
    }

    #[test]
    fn not_before_and_issued_at_are_checked_again_at_every_use() {
        let tokens = VerifiedTokens::default();
        let later = Times {
            exp: NOW + 600,
            nbf: Some(NOW + 100),
        };
        tokens.remember("n.b.f", verified(), later, NOW + 100, 5);
        assert_eq!(tokens.get("n.b.f", NOW + 95, 5), Some(verified()));
        assert_eq!(tokens.get("n.b.f", NOW + 94, 5), None);
        // Kept: it becomes valid again once the clock passes nbf.
        assert_eq!(tokens.get("n.b.f", NOW + 100, 5), Some(verified()));
        // A clock stepped back before iat (minus the leeway) refuses it.
        assert!(!times(NOW + 600).hold_at(NOW, NOW - 6, 5));
        assert!(times(NOW + 600).hold_at(NOW, NOW - 5, 5));
    }

    #[test]
    fn a_full_shard_is_swept_of_expired_tokens_then_cleared() {
        let tokens = VerifiedTokens::default();
        for i in 0..SHARDS * MAX_PER_SHARD * 3 {
            tokens.remember(&format!("t{i}"), verified(), times(NOW + 60), NOW, 5);
        }
        let held: usize = tokens.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(held <= SHARDS * MAX_PER_SHARD, "held {held}");
        // The newest is always there.
        let last = format!("t{}", SHARDS * MAX_PER_SHARD * 3 - 1);
        assert_eq!(tokens.get(&last, NOW, 5), Some(verified()));
    }
}
