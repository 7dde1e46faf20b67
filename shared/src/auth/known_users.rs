//! A per-process memory of users recently confirmed to exist.
//!
//! A valid JWT must still be refused once its user is deleted, which takes a database lookup;
//! doing it on every request doubled the database work of a simple read (measured with
//! `scripts/bench`). Remembering a confirmation for [`TTL`] makes it one lookup per user per
//! TTL. Deletion through this process forgets the user at once; another replica keeps
//! accepting the deleted user's token for at most `TTL` — far inside the token's own lifetime
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
    shards: [Mutex<HashMap<Uuid, Instant>>; SHARDS],
    hasher: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for KnownUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownUsers").finish_non_exhaustive()
    }
}

impl KnownUsers {
    fn shard(&self, id: &Uuid) -> std::sync::MutexGuard<'_, HashMap<Uuid, Instant>> {
        let i = (self.hasher.hash_one(id) as usize) % SHARDS;
        // Plain values: a panic elsewhere cannot leave them inconsistent.
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `id` was confirmed within the TTL.
    pub fn confirmed(&self, id: Uuid) -> bool {
        self.confirmed_at(id, Instant::now())
    }

    fn confirmed_at(&self, id: Uuid, now: Instant) -> bool {
        self.shard(&id)
            .get(&id)
            .is_some_and(|at| now.duration_since(*at) < TTL)
    }

    pub fn remember(&self, id: Uuid) {
        let mut shard = self.shard(&id);
        if shard.len() >= MAX_PER_SHARD {
            shard.clear();
        }
        shard.insert(id, Instant::now());
    }

    /// Call when a user is deleted, so this process refuses their tokens immediately.
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
        assert!(!known.confirmed(id));
        known.remember(id);
        assert!(known.confirmed(id));
        assert!(!known.confirmed_at(id, Instant::now() + TTL));
        known.forget(id);
        assert!(!known.confirmed(id));
    }
}
