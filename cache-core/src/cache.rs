//! [`Cache`], the handle every caller uses: how it is built and configured, and the plain typed
//! operations (`get`, `set`, `delete`, `delete_pattern`, `get_many`, `set_many`).
//!
//! Its other jobs are its submodules': `read_through` (`get_or_insert_with` and its twins),
//! `tags`, `remote` (the read path and the failure policy around every backend call) and
//! `client` (which remote backend, called how).

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::builder::CacheBuilder;
use crate::codec::CodecKind;
use crate::envelope;
use crate::envelope::TagVersion;
use crate::error::{Error, Result};
use crate::failure::{Breaker, WarnLimiter};
use crate::flight::SingleFlight;
use crate::memory::{Entry, Lookup, MemoryStore};
use crate::metrics::{Metrics, Op};
use crate::pattern;
use crate::tier::{Event, LocalTier};
use crate::ttl::Ttl;

mod client;
mod read_through;
mod remote;
mod tags;

pub(crate) use self::client::Client;
use self::read_through::Token;

/// What a cached value must be: serializable for remote backends, cloneable and `'static` so
/// the memory backend can keep it decoded and hand out copies. Implemented for every such type.
pub trait Cacheable: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Cacheable for T {}

/// A typed cache over the in-memory or the Redis backend. Cheap to clone: clones share one cache.
///
/// ```
/// use std::time::Duration;
/// use cache_core::{Cache, key};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cache_core::Result<()> {
/// let cache = Cache::memory();
/// let k = key!("user_stats", 42_i64, 7_u32);
/// cache.set(&k, &vec![1800_u32, 2100], Duration::from_secs(60)).await?;
/// assert_eq!(cache.get::<Vec<u32>>(&k).await?, Some(vec![1800, 2100]));
///
/// // Read-through: the loader runs on a miss only, once however many callers ask at once.
/// let total = cache
///     .get_or_insert_with("total", Duration::from_secs(60), || async { 3900_u32 })
///     .await;
/// assert_eq!(total, 3900);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    namespace: String,
    /// `namespace` followed by `:`, the prefix of every remote key.
    prefix: String,
    codec: CodecKind,
    default_ttl: Option<Duration>,
    ttl_jitter: f64,
    store: Store,
    flights: SingleFlight<Outcome>,
    metrics: Metrics,
    warn: WarnLimiter,
}

enum Store {
    Memory(MemoryStore),
    Remote(Remote),
}

struct Remote {
    client: Client,
    /// `"redis"`, `"redis-cluster"` or a custom backend's name: the `backend` label.
    kind: &'static str,
    timeout: Duration,
    breaker: Breaker,
    /// The in-process tier in front of the backend, if the builder asked for one.
    local: Option<LocalTier>,
}

impl AsRef<Cache> for Cache {
    fn as_ref(&self) -> &Cache {
        self
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        let mut d = f.debug_struct("Cache");
        d.field("namespace", &inner.namespace)
            .field("codec", &inner.codec);
        match &inner.store {
            Store::Memory(memory) => d.field("backend", memory),
            Store::Remote(remote) => d.field("backend", &remote.client),
        };
        d.finish_non_exhaustive()
    }
}

static MEMORY_FROM_ENV_LOGGED: AtomicBool = AtomicBool::new(false);

/// A finished load, type-erased so one map serves every value type: `Ok(T)` or `Err(E)`.
type Outcome = Result<Arc<dyn Any + Send + Sync>, Arc<dyn Any + Send + Sync>>;

impl Cache {
    /// An in-process cache with the default settings (10,000 entries, namespace `cache`).
    ///
    /// ```
    /// let cache = cache_core::Cache::memory();
    /// assert_eq!(cache.backend_name(), "memory");
    /// ```
    #[must_use]
    pub fn memory() -> Self {
        Self::with_memory(&CacheBuilder::default())
    }

    /// A cache on the backend `url` names, with the default settings.
    ///
    /// The URL forms:
    ///
    /// | URL | backend |
    /// |---|---|
    /// | `memory://` | in-process memory |
    /// | `redis://[user:pass@]host:port/db` | one Redis server |
    /// | `rediss://...` | one Redis server over TLS (feature `tls`) |
    /// | `redis+cluster://[user:pass@]host:port[,host:port...]` | a Redis Cluster, by one or more of its nodes (database 0 only) |
    /// | `rediss+cluster://...` | a Redis Cluster over TLS (feature `tls`) |
    ///
    /// ```no_run
    /// # async fn run() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::connect("redis://127.0.0.1:6379/0").await?;
    /// let cluster = cache_core::Cache::connect("redis+cluster://10.0.0.1:7000,10.0.0.2:7000").await?;
    /// assert_eq!(cluster.backend_name(), "redis-cluster");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for a malformed URL,
    /// [`ErrorKind::Connect`](crate::ErrorKind::Connect) naming the address when nothing answers.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::builder().url(url).build().await
    }

    /// A cache on the backend named by the `CACHE_URL` environment variable; unset or empty, the
    /// memory backend (said once in the log, at info).
    ///
    /// # Errors
    /// As [`Cache::connect`].
    pub async fn from_env() -> Result<Self> {
        match std::env::var("CACHE_URL") {
            Ok(url) if !url.trim().is_empty() => Self::connect(&url).await,
            _ => {
                if !MEMORY_FROM_ENV_LOGGED.swap(true, Ordering::Relaxed) {
                    tracing::info!("CACHE_URL is not set: using the in-process memory cache");
                }
                Ok(Self::memory())
            }
        }
    }

    /// A builder for every setting.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }

    pub(crate) fn with_memory(config: &CacheBuilder) -> Self {
        Self::new(
            config,
            Store::Memory(MemoryStore::new(config.memory_capacity)),
            "memory",
        )
    }

    /// A cache on a remote backend, with the local tier in front of it if the builder set one.
    pub(crate) async fn with_remote(config: &CacheBuilder, client: Client) -> Result<Self> {
        let kind = client.backend().name();
        let metrics = Metrics::new(&config.namespace, kind);
        let breaker = Breaker::new(
            config.breaker_threshold,
            config.breaker_cool_down,
            metrics.breaker_gauge(),
        );
        let local = match config.local_tier {
            None => None,
            Some((capacity, ttl)) => Some(
                LocalTier::start(
                    MemoryStore::new(crate::MemoryCapacity::Entries(capacity)),
                    ttl,
                    client.shared(),
                    format!("{}#invalidate", config.namespace),
                    config.connect_timeout,
                    metrics.clone(),
                )
                .await?,
            ),
        };
        let remote = Remote {
            client,
            kind,
            timeout: config.operation_timeout,
            breaker,
            local,
        };
        Ok(Self::build(config, Store::Remote(remote), metrics))
    }

    fn new(config: &CacheBuilder, store: Store, kind: &'static str) -> Self {
        Self::build(config, store, Metrics::new(&config.namespace, kind))
    }

    fn build(config: &CacheBuilder, store: Store, metrics: Metrics) -> Self {
        let inner = Inner {
            namespace: config.namespace.clone(),
            prefix: format!("{}:", config.namespace),
            codec: config.codec,
            default_ttl: config.default_ttl,
            ttl_jitter: config.ttl_jitter,
            store,
            flights: SingleFlight::new(),
            metrics,
            warn: WarnLimiter::new(config.warn_interval),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The namespace every key of this cache lives under.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// The TTL of values stored with [`Ttl::Default`], if the builder set one.
    #[must_use]
    pub fn default_ttl(&self) -> Option<Duration> {
        self.inner.default_ttl
    }

    /// `"memory"`, `"redis"`, `"redis-cluster"`, or a custom backend's
    /// [`name`](crate::Backend::name).
    #[must_use]
    pub fn backend_name(&self) -> &'static str {
        match &self.inner.store {
            Store::Memory(_) => "memory",
            Store::Remote(remote) => remote.kind,
        }
    }

    /// True while this cache has a local tier in front of Redis that it reads and fills: it is
    /// subscribed to the invalidation channel. False without a local tier, and while the
    /// subscription is being re-established (reads then go to Redis).
    ///
    /// ```
    /// assert!(!cache_core::Cache::memory().is_local_tier_active());
    /// ```
    #[must_use]
    pub fn is_local_tier_active(&self) -> bool {
        match &self.inner.store {
            Store::Remote(Remote {
                local: Some(local), ..
            }) => local.is_active(),
            _ => false,
        }
    }

    /// True while the circuit breaker skips the backend (never for the memory backend).
    #[must_use]
    pub fn is_circuit_open(&self) -> bool {
        match &self.inner.store {
            Store::Memory(_) => false,
            Store::Remote(remote) => remote.breaker.is_open(),
        }
    }

    /// Checks that the backend answers: for readiness probes.
    ///
    /// # Errors
    /// The backend's error, a timeout, or an open circuit breaker.
    pub async fn ping(&self) -> Result<()> {
        match &self.inner.store {
            Store::Memory(_) => Ok(()),
            Store::Remote(remote) => {
                self.call(remote, Op::Ping, remote.client.backend().ping())
                    .await
            }
        }
    }

    /// The value under `key`, if there is one of type `T`.
    ///
    /// Bytes that do not decode as `T` (written by another version of the program, by another
    /// codec, or garbage) and, in memory, a value of another type are a miss: `Ok(None)`,
    /// counted in `cache_stale_total`.
    ///
    /// # Errors
    /// Backend trouble: [`ErrorKind::Backend`](crate::ErrorKind::Backend),
    /// [`Timeout`](crate::ErrorKind::Timeout) or [`CircuitOpen`](crate::ErrorKind::CircuitOpen).
    #[tracing::instrument(name = "cache.get", level = "debug", skip_all, fields(key = %key.as_ref()))]
    pub async fn get<T: Cacheable>(&self, key: impl AsRef<str>) -> Result<Option<T>> {
        let key = key.as_ref();
        let found = self.lookup::<T>(key).await?;
        Ok(self.count(key, found))
    }

    /// Stores `value` under `key` for `ttl` (a [`Duration`], or a [`Ttl`]).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a zero TTL,
    /// [`ErrorKind::Codec`](crate::ErrorKind::Codec) when the value cannot be encoded, or backend
    /// trouble as for [`get`](Cache::get).
    #[tracing::instrument(name = "cache.set", level = "debug", skip_all, fields(key = %key.as_ref()))]
    pub async fn set<T: Cacheable>(
        &self,
        key: impl AsRef<str>,
        value: &T,
        ttl: impl Into<Ttl>,
    ) -> Result<()> {
        let ttl = ttl.into().resolve(self.inner.default_ttl)?;
        self.store(key.as_ref(), value, ttl, Duration::ZERO, Vec::new(), None)
            .await
            .map(drop)
    }

    /// Stores `value` fresh for `ttl` (jittered) and kept `stale` longer, under the tag
    /// versions given; with a load's `claim`, only while that claim stands. True when stored.
    async fn store<T: Cacheable>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
        stale: Duration,
        tags: Vec<TagVersion>,
        claim: Option<&Token>,
    ) -> Result<bool> {
        let inner = &*self.inner;
        let fresh = ttl.map(|ttl| inner.jittered(ttl));
        let keep = fresh.map(|fresh| fresh.saturating_add(stale));
        match &inner.store {
            Store::Memory(memory) => {
                let entry = inner
                    .memory_entry(memory, key, value, keep, fresh)
                    .tagged(tags);
                Ok(match claim {
                    Some(Token::Memory(token)) => memory.insert_if_leased(key, *token, entry),
                    _ => {
                        memory.insert(key.to_owned(), entry);
                        true
                    }
                })
            }
            Store::Remote(remote) => {
                let bytes = envelope::encode_tagged(inner.codec, value, fresh, &tags)?;
                let epoch = remote.local.as_ref().map(LocalTier::epoch);
                match claim {
                    Some(Token::Remote(token)) => {
                        let (full, lease_key) = (inner.full_key(key), inner.lease_key(key));
                        let set = remote
                            .client
                            .backend()
                            .set_if_leased(&full, &bytes, keep, &lease_key, token);
                        if !self.call(remote, Op::Set, set).await? {
                            // A backend that stores, then withdraws, may have let another
                            // replica copy the value meanwhile: tell the local tiers.
                            if let Some(local) = &remote.local {
                                local.forget(key);
                                self.announce(remote, local, &[Event::Key(key)]).await?;
                            }
                            return Ok(false);
                        }
                    }
                    _ => {
                        let set = remote.client.set(&inner.prefix, key, &bytes, keep);
                        self.call(remote, Op::Set, set).await?;
                    }
                }
                if let (Some(local), Some(epoch)) = (&remote.local, epoch) {
                    if tags.is_empty() {
                        let local_ttl = fresh.map_or(local.ttl, |fresh| fresh.min(local.ttl));
                        let entry = Entry::copy(value.clone(), local_ttl, fresh, Duration::ZERO);
                        local.fill(key, entry, Vec::new(), epoch);
                    } else {
                        // Its tag versions were read before the value was computed, and may
                        // be older than what this replica knows: the next read fills from
                        // Redis, with the versions checked there.
                        local.forget(key);
                    }
                    self.announce(remote, local, &[Event::Key(key)]).await?;
                }
                Ok(true)
            }
        }
    }

    /// Removes `key`; true when it was there.
    ///
    /// # Errors
    /// Backend trouble, as for [`get`](Cache::get).
    #[tracing::instrument(name = "cache.delete", level = "debug", skip_all, fields(key = %key.as_ref()))]
    pub async fn delete(&self, key: impl AsRef<str>) -> Result<bool> {
        let key = key.as_ref();
        let inner = &*self.inner;
        match &inner.store {
            Store::Memory(memory) => Ok(memory.remove(key)),
            Store::Remote(remote) => {
                let (full, lease_key) = (inner.full_key(key), inner.lease_key(key));
                let delete = remote.client.backend().delete_leased(&full, &lease_key);
                let removed = self.call(remote, Op::Delete, delete).await?;
                if let Some(local) = &remote.local {
                    local.forget(key);
                    self.announce(remote, local, &[Event::Key(key)]).await?;
                }
                Ok(removed)
            }
        }
    }

    /// Removes every key of this cache matching the Redis glob `pattern` (`*`, `?`, `[..]`,
    /// `\` escapes); the number removed. The pattern applies below the namespace, so nothing
    /// outside it is ever touched.
    ///
    /// On Redis this runs `SCAN MATCH .. COUNT 1000` and `UNLINK` in batches, never `KEYS`, so it
    /// makes steady progress over millions of keys without blocking the server. Build patterns
    /// from untrusted input with [`Key::prefix_pattern`](crate::Key::prefix_pattern):
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_core::{Cache, key};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_core::Result<()> {
    /// let cache = Cache::memory();
    /// for user in ["7*", "71"] {
    ///     cache.set(key!("daily_meals", user, "2024-05-01"), &1_u8, Duration::from_secs(60)).await?;
    /// }
    /// let removed = cache.delete_pattern(key!("daily_meals", "7*").prefix_pattern()).await?;
    /// assert_eq!(removed, 1); // user 71's entry is untouched
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a malformed pattern (an
    /// unclosed `[`, a trailing `\`), or backend trouble.
    #[tracing::instrument(name = "cache.delete_pattern", level = "debug", skip_all, fields(pattern = %pattern.as_ref()))]
    pub async fn delete_pattern(&self, pattern: impl AsRef<str>) -> Result<u64> {
        let glob = pattern.as_ref();
        pattern::validate(glob)?;
        let inner = &*self.inner;
        match &inner.store {
            Store::Memory(memory) => Ok(memory.remove_matching(glob)),
            Store::Remote(remote) => {
                let full = inner.full_key(glob);
                // The running loads' leases first, as in `delete`: a load whose lease this
                // misses began after it, when the keys it matches were already being deleted.
                // No overall timeout: the backend bounds each batch, and a large key space takes
                // as many batches as it needs.
                self.guarded(
                    remote,
                    Op::DeletePattern,
                    None,
                    remote
                        .client
                        .backend()
                        .delete_pattern(&inner.lease_key(glob)),
                )
                .await?;
                let removed = self
                    .guarded(
                        remote,
                        Op::DeletePattern,
                        None,
                        remote.client.backend().delete_pattern(&full),
                    )
                    .await?;
                if let Some(local) = &remote.local {
                    local.forget_matching(glob);
                    self.announce(remote, local, &[Event::Pattern(glob)])
                        .await?;
                }
                Ok(removed)
            }
        }
    }

    /// The values under `keys`, in order, in one round trip (`MGET` on Redis).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::memory();
    /// cache.set_many(&[("a", 1_u32), ("b", 2)], std::time::Duration::from_secs(9)).await?;
    /// assert_eq!(cache.get_many::<u32>(&["a", "x", "b"]).await?, vec![Some(1), None, Some(2)]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Backend trouble, as for [`get`](Cache::get).
    #[tracing::instrument(name = "cache.get_many", level = "debug", skip_all, fields(keys = keys.len()))]
    pub async fn get_many<T: Cacheable>(&self, keys: &[impl AsRef<str>]) -> Result<Vec<Option<T>>> {
        let inner = &*self.inner;
        match &inner.store {
            Store::Memory(memory) => Ok(keys
                .iter()
                .map(|k| self.count(k.as_ref(), memory.get::<T>(k.as_ref())))
                .collect()),
            Store::Remote(remote) => {
                let mut values: Vec<Option<T>> = keys.iter().map(|_| None).collect();
                // Local hits first; the rest in one remote round trip (two with tags).
                let mut pending: Vec<usize> = Vec::with_capacity(keys.len());
                let local = remote.local.as_ref().filter(|local| local.is_active());
                for (i, key) in keys.iter().enumerate() {
                    match local.map(|local| local.store.get::<T>(key.as_ref())) {
                        Some(Lookup::Hit(value)) => {
                            inner.metrics.hits.increment(1);
                            values[i] = Some(value);
                        }
                        _ => pending.push(i),
                    }
                }
                if pending.is_empty() {
                    return Ok(values);
                }
                let epoch = local.map(LocalTier::epoch);
                let full: Vec<String> = pending
                    .iter()
                    .map(|&i| inner.full_key(keys[i].as_ref()))
                    .collect();
                let mut found = self
                    .call(remote, Op::GetMany, remote.client.backend().get_many(&full))
                    .await?;
                let current = self.current_tags(remote, &found, Vec::new()).await?;
                for (bytes, current) in found.iter_mut().zip(current) {
                    if !current {
                        *bytes = None;
                    }
                }
                for (&i, bytes) in pending.iter().zip(found) {
                    let key = keys[i].as_ref();
                    let found = self.decode(bytes.as_deref());
                    if let (Some(local), Some(epoch), Lookup::Hit(value), Some(bytes)) =
                        (local, epoch, &found, &bytes)
                    {
                        self.fill_local(local, key, value, bytes, epoch);
                    }
                    values[i] = self.count(key, found);
                }
                Ok(values)
            }
        }
    }

    /// Stores every `(key, value)` pair for `ttl`, in one round trip (a pipeline on Redis).
    ///
    /// # Errors
    /// As for [`set`](Cache::set).
    #[tracing::instrument(name = "cache.set_many", level = "debug", skip_all, fields(keys = entries.len()))]
    pub async fn set_many<K: AsRef<str>, T: Cacheable>(
        &self,
        entries: &[(K, T)],
        ttl: impl Into<Ttl>,
    ) -> Result<()> {
        let inner = &*self.inner;
        // One draw per batch: a batch is one write, and values written together by other calls
        // still spread.
        let ttl = ttl
            .into()
            .resolve(inner.default_ttl)?
            .map(|ttl| inner.jittered(ttl));
        match &inner.store {
            Store::Memory(memory) => {
                for (key, value) in entries {
                    let key = key.as_ref();
                    let ttl = ttl.map(|ttl| inner.jittered(ttl));
                    memory.insert(
                        key.to_owned(),
                        inner.memory_entry(memory, key, value, ttl, ttl),
                    );
                }
                Ok(())
            }
            Store::Remote(remote) => {
                let encoded = entries
                    .iter()
                    .map(|(k, v)| {
                        Ok((
                            inner.full_key(k.as_ref()),
                            envelope::encode(inner.codec, v, ttl)?,
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?;
                self.call(
                    remote,
                    Op::SetMany,
                    remote.client.backend().set_many(&encoded, ttl),
                )
                .await?;
                if let Some(local) = &remote.local {
                    let keys: Vec<Event<'_>> = entries
                        .iter()
                        .map(|(key, _)| {
                            local.forget(key.as_ref());
                            Event::Key(key.as_ref())
                        })
                        .collect();
                    self.announce(remote, local, &keys).await?;
                }
                Ok(())
            }
        }
    }

    /// Logs a failure the read-through path swallowed (it is already counted), at warn at most
    /// once per interval.
    fn absorb(&self, what: &'static str, err: &Error) {
        if self.inner.warn.allow() {
            tracing::warn!(error = %err, "{what}");
        } else {
            tracing::debug!(error = %err, "{what}");
        }
    }

    /// Counts what a read found and turns it into what the caller sees.
    fn count<T>(&self, key: &str, lookup: Lookup<T>) -> Option<T> {
        let metrics = &self.inner.metrics;
        let reason = match lookup {
            Lookup::Hit(value) => {
                metrics.hits.increment(1);
                return Some(value);
            }
            Lookup::Miss | Lookup::Expired(_) => {
                metrics.misses.increment(1);
                return None;
            }
            Lookup::OtherType => "other_type",
            Lookup::Stale(reason) => reason,
        };
        tracing::debug!(key, reason, "stored value is unusable: a miss");
        metrics.stale(reason);
        metrics.misses.increment(1);
        None
    }
}

impl Inner {
    /// `ttl` spread by up to the configured jitter either way.
    fn jittered(&self, ttl: Duration) -> Duration {
        if self.ttl_jitter == 0.0 {
            return ttl;
        }
        let factor = 1.0 + self.ttl_jitter * (2.0 * fastrand::f64() - 1.0);
        ttl.mul_f64(factor).max(Duration::from_millis(1))
    }

    /// The key holding `tag`'s version: `#` keeps it out of every key and pattern of the
    /// namespace (namespaces cannot contain `#`, keys live under `{namespace}:`).
    fn tag_key(&self, tag: &str) -> String {
        format!("{}#tag:{tag}", self.namespace)
    }

    /// The key of the lease a running read-through holds on `key` (see [`Claim`]). Under
    /// `#load:`, so that a pattern below the namespace matches the leases of the keys it matches.
    fn lease_key(&self, key: &str) -> String {
        format!("{}#load:{key}", self.namespace)
    }

    /// The key of the cross-replica lease on loading `key`.
    fn lock_key(&self, key: &str) -> String {
        format!("{}#lock:{key}", self.namespace)
    }

    fn full_key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.prefix.len() + key.len());
        full.push_str(&self.prefix);
        full.push_str(key);
        full
    }

    fn memory_entry<T: Cacheable>(
        &self,
        memory: &MemoryStore,
        key: &str,
        value: &T,
        keep: Option<Duration>,
        fresh: Option<Duration>,
    ) -> Entry {
        let weight = if memory.weighs() {
            let mut bytes = Vec::new();
            // A value that cannot be encoded still has a key and a header's worth of weight.
            let _ = <crate::codec::Bincode as crate::codec::Codec>::encode(value, &mut bytes);
            u32::try_from(key.len() + bytes.len() + 32).unwrap_or(u32::MAX)
        } else {
            1
        };
        Entry::new(value.clone(), keep, fresh, weight)
    }
}
