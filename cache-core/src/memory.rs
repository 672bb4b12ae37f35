//! The in-process tier: decoded values in a moka cache, bounded by entries or by bytes.
//!
//! Values are kept decoded, as `Arc<dyn Any + Send + Sync>`, so a hit is a map lookup, a type
//! check and a clone of the value: no decode. A value of another type under the same key is a
//! miss (counted as stale), never a panic.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;

use crate::pattern;

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
        }
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
        Self { entries, by_bytes }
    }

    /// Whether entries need a weight (only when bounded by bytes: weighing costs an encode).
    pub(crate) fn weighs(&self) -> bool {
        self.by_bytes
    }

    pub(crate) fn get<T: Any + Clone>(&self, key: &str) -> Lookup<T> {
        match self.entries.get(key) {
            None => Lookup::Miss,
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

    pub(crate) fn remove(&self, key: &str) -> bool {
        self.entries.remove(key).is_some()
    }

    /// Removes every key matching the (validated) glob; the number removed.
    pub(crate) fn remove_matching(&self, glob: &str) -> u64 {
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
