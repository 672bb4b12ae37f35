//! The in-process tier: decoded values in a moka cache, bounded by entries or by bytes.
//!
//! Values are kept decoded, as `Arc<dyn Any + Send + Sync>`, so a hit is a map lookup, a type
//! check and a clone of the value: no decode. A value of another type under the same key is a
//! miss (counted as stale), never a panic.
//!
//! Tags: each tag has a version here, and each tagged entry the versions its tags had when it
//! was written; an entry whose tag moved on (or was forgotten) is a miss. As the memory backend,
//! the store owns those versions; as the local tier in front of Redis, it mirrors the versions
//! read from Redis and forgets one when another replica announces that tag's invalidation.
//!
//! Load leases: a read-through claims its key before its loader runs ([`MemoryStore::begin_load`])
//! and stores only while the claim stands ([`MemoryStore::insert_if_leased`]). A delete of the
//! key, or a pattern delete matching it, revokes the claim first, so that a loader that read the
//! database before a write never stores its older value after the write's invalidation.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use moka::Expiry;

use crate::envelope::TagVersion;
use crate::pattern;

/// A new tag version: 64 random bits, as 16 hex digits (readable in `redis-cli`).
pub(crate) fn new_version() -> Vec<u8> {
    format!("{:016x}", fastrand::u64(..)).into_bytes()
}

/// How the in-process tier is bounded; set with
/// [`CacheBuilder::memory_capacity`](crate::CacheBuilder::memory_capacity).
///
/// ```
/// use cache_core::{Cache, MemoryCapacity};
///
/// # async fn run() -> cache_core::Result<()> {
/// let by_count = Cache::builder().memory_capacity(MemoryCapacity::Entries(50_000)).build().await?;
/// let by_size = Cache::builder().memory_capacity(MemoryCapacity::Bytes(64 << 20)).build().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemoryCapacity {
    /// At most this many entries (the default is 10,000).
    Entries(u64),
    /// At most about this many bytes, each entry weighed as its key plus its value's bincode
    /// encoding (measured once, when the value is stored).
    Bytes(u64),
}

impl Default for MemoryCapacity {
    fn default() -> Self {
        Self::Entries(10_000)
    }
}

#[derive(Clone)]
pub(crate) struct Entry {
    value: Arc<dyn Any + Send + Sync>,
    /// How long the entry is kept (its fresh time plus any stale window).
    ttl: Option<Duration>,
    /// When it was stored.
    written: Instant,
    /// How long it is fresh; `None`: while it is kept.
    fresh_for: Option<Duration>,
    /// Kept past its fresh time (a stale window): only then does a read need the clock, as
    /// otherwise the entry's own expiry ends it when it stops being fresh.
    outlives_freshness: bool,
    weight: u32,
    /// The entry's tags with the versions they had when it was written.
    tags: Option<Arc<[TagVersion]>>,
}

impl Entry {
    /// An entry kept `ttl`, fresh for its first `fresh_for`.
    pub(crate) fn new<T: Any + Send + Sync>(
        value: T,
        ttl: Option<Duration>,
        fresh_for: Option<Duration>,
        weight: u32,
    ) -> Self {
        Self {
            value: Arc::new(value),
            ttl,
            written: Instant::now(),
            fresh_for,
            outlives_freshness: fresh_for != ttl,
            weight,
            tags: None,
        }
    }

    /// A copy of a value written `age` ago, fresh for `fresh_for` from then (a local-tier
    /// copy of a remote value: its age and freshness are the original's), kept `keep` from now.
    pub(crate) fn copy<T: Any + Send + Sync>(
        value: T,
        keep: Duration,
        fresh_for: Option<Duration>,
        age: Duration,
    ) -> Self {
        let now = Instant::now();
        let mut entry = Self::new(value, Some(keep), fresh_for, 1);
        entry.written = now.checked_sub(age).unwrap_or(now);
        // It ends before it stops being fresh: no read needs the clock.
        entry.outlives_freshness = false;
        entry
    }

    /// The entry, usable only while each tag keeps the version given.
    pub(crate) fn tagged(mut self, tags: Vec<TagVersion>) -> Self {
        if !tags.is_empty() {
            self.tags = Some(tags.into());
        }
        self
    }
}

impl Entry {
    /// Past its fresh time, still kept for its stale window.
    fn is_expired(&self) -> bool {
        self.outlives_freshness
            && self
                .fresh_for
                .is_some_and(|fresh| self.written.elapsed() >= fresh)
    }
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, entry: &Entry, _now: Instant) -> Option<Duration> {
        entry.ttl
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Entry,
        _now: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        entry.ttl
    }
}

/// What a typed lookup found.
#[derive(Debug)]
pub(crate) enum Lookup<T> {
    Hit(T),
    /// Past its fresh time, inside its stale window: a miss, except to a read-through whose
    /// loader fails.
    Expired(T),
    Miss,
    /// A value is there, of another type.
    OtherType,
    /// Bytes are there that do not decode (remote backends only): the reason.
    Stale(&'static str),
}

pub(crate) struct MemoryStore {
    entries: moka::sync::Cache<String, Entry>,
    by_bytes: bool,
    /// The current version of each tag. Bounded: a tag evicted here makes its entries misses,
    /// which is safe, where keeping every tag ever seen would grow without end.
    tags: moka::sync::Cache<String, Arc<[u8]>>,
    /// The running loads' claims, by key: the token of the latest load to begin. Only keys being
    /// loaded are here, so the map stays as small as the number of loads in flight.
    leases: Mutex<HashMap<String, u64>>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    pub(crate) fn new(capacity: MemoryCapacity) -> Self {
        let builder = moka::sync::Cache::builder().expire_after(PerEntryTtl);
        let (entries, by_bytes) = match capacity {
            MemoryCapacity::Entries(n) => (builder.max_capacity(n).build(), false),
            MemoryCapacity::Bytes(n) => (
                builder
                    .max_capacity(n)
                    .weigher(|_, e: &Entry| e.weight)
                    .build(),
                true,
            ),
        };
        let tag_capacity = match capacity {
            MemoryCapacity::Entries(n) => n.max(1_000),
            MemoryCapacity::Bytes(_) => 100_000,
        };
        Self {
            entries,
            by_bytes,
            tags: moka::sync::Cache::new(tag_capacity),
            leases: Mutex::new(HashMap::new()),
        }
    }

    /// The lease map. A panic while it was held cannot leave it half-updated (every update is
    /// one map call), so a poisoned lock is used as it is.
    fn leases(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.leases.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claims `key` for a load about to run; the token to store with. A later load of the same
    /// key takes the claim over (both read the database after any earlier invalidation).
    pub(crate) fn begin_load(&self, key: &str) -> u64 {
        let token = fastrand::u64(..);
        self.leases().insert(key.to_owned(), token);
        token
    }

    /// Stores `entry` if the load holding `token` still has its claim on `key` (no delete of it
    /// came since the load began), ending the claim; true when stored.
    pub(crate) fn insert_if_leased(&self, key: &str, token: u64, entry: Entry) -> bool {
        let mut leases = self.leases();
        if leases.get(key) != Some(&token) {
            return false;
        }
        leases.remove(key);
        // Under the lease lock: a delete revokes the claim before it removes the value, so it
        // either finds this value in place or finds the claim gone.
        self.entries.insert(key.to_owned(), entry);
        true
    }

    /// Ends a load's claim without storing (its loader failed or was dropped).
    pub(crate) fn end_load(&self, key: &str, token: u64) {
        let mut leases = self.leases();
        if leases.get(key) == Some(&token) {
            leases.remove(key);
        }
    }

    /// Whether entries need a weight (only when bounded by bytes: weighing costs an encode).
    pub(crate) fn weighs(&self) -> bool {
        self.by_bytes
    }

    pub(crate) fn get<T: Any + Clone>(&self, key: &str) -> Lookup<T> {
        match self.entries.get(key) {
            None => Lookup::Miss,
            Some(entry) if !self.tags_current(entry.tags.as_deref()) => Lookup::Miss,
            Some(entry) => match entry.value.downcast_ref::<T>() {
                Some(value) if entry.is_expired() => Lookup::Expired(value.clone()),
                Some(value) => Lookup::Hit(value.clone()),
                None => Lookup::OtherType,
            },
        }
    }

    /// How much of its fresh time the entry under `key` has used (0 without an entry or a TTL).
    pub(crate) fn life_used(&self, key: &str) -> f64 {
        self.entries
            .get(key)
            .map_or(0.0, |entry| match entry.fresh_for {
                Some(fresh) if !fresh.is_zero() => {
                    entry.written.elapsed().as_secs_f64() / fresh.as_secs_f64()
                }
                _ => 0.0,
            })
    }

    pub(crate) fn insert(&self, key: String, entry: Entry) {
        self.entries.insert(key, entry);
    }

    /// Removes `key`, revoking any running load's claim on it first.
    pub(crate) fn remove(&self, key: &str) -> bool {
        self.leases().remove(key);
        self.entries.remove(key).is_some()
    }

    /// True when every tag still has the version recorded with an entry.
    fn tags_current(&self, tags: Option<&[TagVersion]>) -> bool {
        tags.is_none_or(|tags| {
            tags.iter().all(|(tag, version)| {
                self.tags
                    .get(tag)
                    .is_some_and(|current| *current == **version)
            })
        })
    }

    /// The current version of each tag, made up for tags without one (as the memory backend).
    pub(crate) fn tag_versions(&self, tags: &[String]) -> Vec<TagVersion> {
        tags.iter()
            .map(|tag| {
                let version = self.tags.get_with_by_ref(tag, || new_version().into());
                (tag.clone(), version.to_vec())
            })
            .collect()
    }

    /// Gives `tag` a new version: every entry written under the old one becomes a miss.
    pub(crate) fn bump_tag(&self, tag: &str) {
        self.tags.insert(tag.to_owned(), new_version().into());
    }

    /// Records the versions a remote read found (as the local tier).
    pub(crate) fn learn_tags(&self, tags: &[TagVersion]) {
        for (tag, version) in tags {
            self.tags.insert(tag.clone(), version.as_slice().into());
        }
    }

    /// Forgets `tag`'s version: its entries are misses until a remote read learns it again.
    pub(crate) fn forget_tag(&self, tag: &str) {
        self.tags.invalidate(tag);
    }

    /// Drops every entry and tag version.
    pub(crate) fn clear(&self) {
        self.leases().clear();
        self.entries.invalidate_all();
        self.tags.invalidate_all();
    }

    /// Removes every key matching the (validated) glob; the number removed.
    /// Revokes the running loads' claims on matching keys first, as [`remove`](Self::remove).
    pub(crate) fn remove_matching(&self, glob: &str) -> u64 {
        self.leases()
            .retain(|key, _| !pattern::matches(glob.as_bytes(), key.as_bytes()));
        let matching: Vec<Arc<String>> = self
            .entries
            .iter()
            .filter(|(key, _)| pattern::matches(glob.as_bytes(), key.as_bytes()))
            .map(|(key, _)| key)
            .collect();
        let mut removed = 0;
        for key in matching {
            if self.entries.remove(key.as_str()).is_some() {
                removed += 1;
            }
        }
        removed
    }
}
