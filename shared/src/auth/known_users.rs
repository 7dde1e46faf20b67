//! A per-process memory of users recently confirmed to exist, with when their credentials last
//! changed.
//!
//! A valid JWT must still be refused once its user is deleted or its password changed, which
//! takes a database lookup;
//! doing it on every request doubled the database work of a simple read (measured with
//! `scripts/bench`). Remembering a confirmation for [`TTL`] makes it one lookup per user per
//! TTL. Deletion or a password change through this process forgets the user at once; another
//! replica keeps accepting the deleted user's (or the old password's) token for at most `TTL` — far inside the token's own lifetime
//! (`JWT_TTL_SECONDS`, 900 s by default). Hand-written rather than a cache crate: a TTL set is
//! a few lines, and the crates that do this well (moka) cost more to compile than all of this
//! module's callers.

use std::{
    collections::HashMap,
    hash::BuildHasher,
    sync::Mutex,
    time::{Duration, Instant},
};

use uuid::Uuid;

/// How long a confirmation is trusted.
pub const TTL: Duration = Duration::from_secs(2);
const SHARDS: usize = 8;
/// Bound on remembered users per shard; past it the shard is cleared (all entries are at most
/// `TTL` old anyway, so this only costs a few extra lookups).
const MAX_PER_SHARD: usize = 16_384;

#[derive(Default)]
pub struct KnownUsers {
    shards: [Mutex<HashMap<Uuid, (Instant, Known)>>; SHARDS],
    hasher: std::collections::hash_map::RandomState,
}

/// What was confirmed about a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    /// When the password last changed, in seconds since the epoch (`None`: never).
    pub credentials_changed_at: Option<i64>,
}

impl std::fmt::Debug for KnownUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownUsers").finish_non_exhaustive()
    }
}

impl KnownUsers {
    fn shard(&self, id: &Uuid) -> std::sync::MutexGuard<'_, HashMap<Uuid, (Instant, Known)>> {
        let i = (self.hasher.hash_one(id) as usize) % SHARDS;
        // Plain values: a panic elsewhere cannot leave them inconsistent.
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What was confirmed about `id` within the TTL, if anything.
    pub fn confirmed(&self, id: Uuid) -> Option<Known> {
        self.confirmed_at(id, Instant::now())
    }

    fn confirmed_at(&self, id: Uuid, now: Instant) -> Option<Known> {
        self.shard(&id)
            .get(&id)
            .filter(|(at, _)| now.duration_since(*at) < TTL)
            .map(|(_, known)| *known)
    }

    pub fn remember(&self, id: Uuid, known: Known) {
        let mut shard = self.shard(&id);
        if shard.len() >= MAX_PER_SHARD {
            shard.clear();
        }
        shard.insert(id, (Instant::now(), known));
    }

    /// Call when a user is deleted or their password changes, so this process re-reads them
    /// (and refuses stale tokens) from the next request on.
    pub fn forget(&self, id: Uuid) {
        self.shard(&id).remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_for_the_ttl_and_forgets_on_request() {
        let known = KnownUsers::default();
        let id = Uuid::now_v7();
        let facts = Known {
            credentials_changed_at: Some(1_700_000_000),
        };
        assert_eq!(known.confirmed(id), None);
        known.remember(id, facts);
        assert_eq!(known.confirmed(id), Some(facts));
        assert_eq!(known.confirmed_at(id, Instant::now() + TTL), None);
        known.forget(id);
        assert_eq!(known.confirmed(id), None);
    }
}
