//! [`Cache`], the handle every caller uses: typed operations over the memory or Redis backend.

use std::any::Any;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::Backend;
use crate::builder::CacheBuilder;
use crate::codec::CodecKind;
use crate::envelope;
use crate::error::{Error, Result};
use crate::expiry::Expiry;
use crate::failure::{Breaker, WarnLimiter};
use crate::flight::{Flight, SingleFlight};
use crate::memory::{Entry, Lookup, MemoryStore};
use crate::metrics::{Metrics, Op};
use crate::pattern;
use crate::ttl::Ttl;

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
    backend: Arc<dyn Backend>,
    kind: &'static str,
    timeout: Duration,
    breaker: Breaker,
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
            Store::Remote(remote) => d.field("backend", &remote.backend),
        };
        d.finish_non_exhaustive()
    }
}

static MEMORY_FROM_ENV_LOGGED: AtomicBool = AtomicBool::new(false);

/// A finished load, type-erased so one map serves every value type: `Ok(T)` or `Err(E)`.
type Outcome = Result<Arc<dyn Any + Send + Sync>, Arc<dyn Any + Send + Sync>>;

tokio::task_local! {
    /// The keys the current task is loading, as (cache id, key).
    static LEADING: Vec<(usize, String)>;
}

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

    pub(crate) fn with_backend(
        config: &CacheBuilder,
        backend: Arc<dyn Backend>,
        kind: &'static str,
    ) -> Self {
        let metrics = Metrics::new(&config.namespace, kind);
        let breaker = Breaker::new(
            config.breaker_threshold,
            config.breaker_cool_down,
            metrics.breaker_gauge(),
        );
        let remote = Remote {
            backend,
            kind,
            timeout: config.operation_timeout,
            breaker,
        };
        Self::build(config, Store::Remote(remote), metrics)
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
            Store::Remote(remote) => self.call(remote, Op::Ping, remote.backend.ping()).await,
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
        self.store(key.as_ref(), value, ttl, Duration::ZERO).await
    }

    /// Stores `value` fresh for `ttl` (jittered) and kept `stale` longer.
    async fn store<T: Cacheable>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
        stale: Duration,
    ) -> Result<()> {
        let inner = &*self.inner;
        let fresh = ttl.map(|ttl| inner.jittered(ttl));
        let keep = fresh.map(|fresh| fresh.saturating_add(stale));
        match &inner.store {
            Store::Memory(memory) => {
                memory.insert(
                    key.to_owned(),
                    inner.memory_entry(memory, key, value, keep, fresh),
                );
                Ok(())
            }
            Store::Remote(remote) => {
                let bytes = envelope::encode(inner.codec, value, fresh)?;
                let full = inner.full_key(key);
                self.call(remote, Op::Set, remote.backend.set(&full, &bytes, keep))
                    .await
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
                let full = inner.full_key(key);
                self.call(remote, Op::Delete, remote.backend.delete(&full))
                    .await
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
                // No overall timeout: the backend bounds each batch, and a large key space takes
                // as many batches as it needs.
                self.guarded(
                    remote,
                    Op::DeletePattern,
                    None,
                    remote.backend.delete_pattern(&full),
                )
                .await
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
                let full: Vec<String> = keys.iter().map(|k| inner.full_key(k.as_ref())).collect();
                let found = self
                    .call(remote, Op::GetMany, remote.backend.get_many(&full))
                    .await?;
                Ok(keys
                    .iter()
                    .zip(found)
                    .map(|(k, bytes)| self.count(k.as_ref(), self.decode(bytes.as_deref())))
                    .collect())
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
                self.call(remote, Op::SetMany, remote.backend.set_many(&encoded, ttl))
                    .await
            }
        }
    }

    /// The value under `key`, or the loader's value, stored for `ttl` and returned.
    ///
    /// Concurrent calls for one key run the loader once; the others wait and share its value.
    /// The backend never fails this call: on a backend error, timeout or open breaker the loader
    /// runs and its value is returned, and the failure is counted and logged.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// let meals = cache
    ///     .get_or_insert_with("meals:7", std::time::Duration::from_secs(3600), || async {
    ///         vec!["oats".to_owned()] // load from the database here
    ///     })
    ///     .await;
    /// assert_eq!(meals, ["oats"]);
    /// # }
    /// ```
    pub async fn get_or_insert_with<T, F, Fut>(
        &self,
        key: impl AsRef<str>,
        ttl: impl Into<Expiry>,
        loader: F,
    ) -> T
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let result = self
            .get_or_try_insert_with(key, ttl, || async { Ok::<T, Infallible>(loader().await) })
            .await;
        match result {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// Like [`get_or_insert_with`](Cache::get_or_insert_with) for a fallible loader: `Ok` values
    /// are stored, errors never are, and callers that waited on a failed load get a clone of the
    /// loader's error (hence `E: Clone`: wrap a non-`Clone` source in an `Arc`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// let found: Result<u32, String> = cache
    ///     .get_or_try_insert_with("kcal:9", std::time::Duration::from_secs(60), || async {
    ///         Err("meal 9 does not exist".to_owned())
    ///     })
    ///     .await;
    /// assert!(found.is_err());
    /// assert_eq!(cache.get::<u32>("kcal:9").await.unwrap(), None); // errors are not cached
    /// # }
    /// ```
    ///
    /// # Errors
    /// The loader's error, never the cache's.
    #[tracing::instrument(name = "cache.get_or_try_insert_with", level = "debug", skip_all, fields(key = %key.as_ref()))]
    pub async fn get_or_try_insert_with<T, E, F, Fut>(
        &self,
        key: impl AsRef<str>,
        expiry: impl Into<Expiry>,
        loader: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let key = key.as_ref();
        let expiry = expiry.into();
        let ttl = match expiry.ttl.resolve(self.inner.default_ttl) {
            Ok(ttl) => Some(ttl),
            Err(err) => {
                self.absorb(
                    "read-through with an invalid TTL: loading without storing",
                    &err,
                );
                None
            }
        };
        // A loader that asks for its own key (directly, or through another cached function with
        // the same key) would otherwise wait for itself.
        if self.is_leading(key) {
            return self.unshared(loader).await;
        }
        // A value past its TTL but inside its stale window: the answer if the loader fails.
        // Only for a caller that asked for a stale window: a value past its TTL can outlive it
        // in the backend (another caller's window, or the moment between the envelope's TTL,
        // whose clock starts at encoding, and the backend's expiry).
        let serves_stale = !expiry.stale.is_zero();
        let mut stale: Option<T> = None;
        // After one failed backend call, skip the others (re-check, store): a slow backend must
        // cost a request one timeout, not three.
        let mut backend_up = match self.lookup::<T>(key).await {
            Ok(found) => {
                if let Lookup::Expired(value) = &found
                    && serves_stale
                {
                    stale = Some(value.clone());
                }
                match self.count(key, found) {
                    Some(value) => return Ok(value),
                    None => true,
                }
            }
            Err(err) => {
                self.absorb("cache read failed, serving from the loader", &err);
                !err.is_unavailable()
            }
        };
        loop {
            match self.inner.flights.join(key) {
                Flight::Leader(leader) => {
                    if backend_up {
                        // A flight for this key may have finished between our miss and our
                        // joining: look again (uncounted: this request already counted a miss).
                        match self.lookup::<T>(key).await {
                            Ok(Lookup::Hit(value)) => {
                                leader.publish(Ok(Arc::new(value.clone())));
                                return Ok(value);
                            }
                            Ok(Lookup::Expired(value)) if serves_stale => stale = Some(value),
                            Ok(_) => {}
                            Err(err) => {
                                self.absorb("cache read failed, serving from the loader", &err);
                                backend_up = !err.is_unavailable();
                            }
                        }
                    }
                    self.inner.metrics.loader_runs.increment(1);
                    // With a stale answer at hand, a loader past the soft timeout is abandoned.
                    let (loaded, stale) = match (stale, expiry.soft_timeout) {
                        (Some(old), Some(limit)) => {
                            match tokio::time::timeout(limit, self.lead(key, loader)).await {
                                Ok(loaded) => (loaded, Some(old)),
                                Err(_) => {
                                    return Ok(self.serve_stale(
                                        key,
                                        &leader,
                                        old,
                                        "loader_timeout",
                                    ));
                                }
                            }
                        }
                        (stale, _) => (self.lead(key, loader).await, stale),
                    };
                    return match (loaded, stale) {
                        (Ok(value), _) => {
                            // Waiters get the value now, not after the store below.
                            leader.publish(Ok(Arc::new(value.clone())));
                            if let (true, Some(ttl)) = (backend_up, ttl) {
                                self.read_through_set(key, &value, ttl, expiry.stale).await;
                            }
                            Ok(value)
                        }
                        (Err(_), Some(old)) => {
                            Ok(self.serve_stale(key, &leader, old, "loader_error"))
                        }
                        (Err(err), None) => {
                            leader.publish(Err(Arc::new(err.clone())));
                            Err(err)
                        }
                    };
                }
                Flight::Follower(follower) => match follower.wait().await {
                    // The leader was cancelled: elect a new one.
                    None => {}
                    Some(Ok(value)) => match value.downcast_ref::<T>() {
                        Some(value) => return Ok(value.clone()),
                        // Another type is being loaded under this key: load our own, unshared.
                        None => return self.unshared(loader).await,
                    },
                    Some(Err(err)) => match err.downcast_ref::<E>() {
                        Some(err) => return Err(err.clone()),
                        None => return self.unshared(loader).await,
                    },
                },
            }
        }
    }

    /// Answers a read-through with its stale value (and every caller waiting on it), counted.
    fn serve_stale<T: Cacheable>(
        &self,
        key: &str,
        leader: &crate::flight::Leader<'_, Outcome>,
        old: T,
        reason: &'static str,
    ) -> T {
        self.inner.metrics.stale_served(reason);
        tracing::debug!(key, reason, "serving a stale value");
        leader.publish(Ok(Arc::new(old.clone())));
        old
    }

    /// [`get_or_try_insert_with`](Cache::get_or_try_insert_with) for a loader that can also run
    /// in the background (`Fn`, `Send` and `'static`: usually a closure over cloned handles), so
    /// that [`Expiry::refresh_ahead`] can keep a hot key from ever expiring: a hit past that
    /// fraction of its TTL answers at once with the current value and starts one reload in a
    /// spawned task. The reload leads the key's single flight, so however many hits see the key
    /// aging, it runs once at a time per cache (and its clones). Misses, stale values and
    /// failures behave exactly as in `get_or_try_insert_with`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_core::{Cache, Expiry};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = Cache::memory();
    /// let expiry = Expiry::new(Duration::from_secs(60)).refresh_ahead(0.8);
    /// let db = std::sync::Arc::new(2100_u32); // a pool handle, in real code
    /// let total: Result<u32, String> = cache
    ///     .get_or_refresh("kcal:7", expiry, move || {
    ///         let db = db.clone();
    ///         async move { Ok(*db) }
    ///     })
    ///     .await;
    /// assert_eq!(total, Ok(2100));
    /// # }
    /// ```
    ///
    /// # Errors
    /// The loader's error, never the cache's.
    pub async fn get_or_refresh<T, E, F, Fut>(
        &self,
        key: impl AsRef<str>,
        expiry: impl Into<Expiry>,
        loader: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        E: Clone + Send + Sync + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let key = key.as_ref();
        let expiry = expiry.into();
        if let (Some(fraction), false) = (expiry.refresh_ahead, self.is_leading(key)) {
            match self.lookup_aged::<T>(key).await {
                Ok((Lookup::Hit(value), used)) => {
                    self.inner.metrics.hits.increment(1);
                    if used >= fraction {
                        self.spawn_refresh(key, expiry, fraction, loader);
                    }
                    return Ok(value);
                }
                // Anything else is the read-through's to handle (it looks again, and counts).
                Ok(_) => {}
                Err(err) => self.absorb("cache read failed, serving from the loader", &err),
            }
        }
        self.get_or_try_insert_with(key, expiry, loader).await
    }

    /// Reloads `key` in a spawned task, unless a load of it is already running or the value
    /// was replaced since the hit that asked (`fraction`: the refresh point).
    fn spawn_refresh<T, E, F, Fut>(&self, key: &str, expiry: Expiry, fraction: f64, loader: F)
    where
        T: Cacheable,
        E: Clone + Send + Sync + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        // Already refreshing (or loading): the hit needs nothing more.
        if self.inner.flights.is_running(key) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (cache, key) = (self.clone(), key.to_owned());
        runtime.spawn(async move {
            let Flight::Leader(leader) = cache.inner.flights.join(&key) else {
                return;
            };
            // A hit that read the old value just before a reload stored the new one would start
            // a second reload: look again now that this task leads.
            let again = cache.lookup_aged::<T>(&key).await;
            if matches!(again, Ok((Lookup::Hit(_), used)) if used < fraction) {
                return;
            }
            cache.inner.metrics.loader_runs.increment(1);
            match cache.lead(&key, loader).await {
                Ok(value) => {
                    leader.publish(Ok(Arc::new(value.clone())));
                    if let Ok(ttl) = expiry.ttl.resolve(cache.inner.default_ttl) {
                        cache
                            .read_through_set(&key, &value, ttl, expiry.stale)
                            .await;
                    }
                }
                // The current value stays until its TTL; the next aging hit tries again.
                Err(err) => leader.publish(Err(Arc::new(err))),
            }
        });
    }

    /// Reads `key` without counting it, with how much of its fresh time it has used.
    async fn lookup_aged<T: Cacheable>(&self, key: &str) -> Result<(Lookup<T>, f64)> {
        let inner = &*self.inner;
        match &inner.store {
            Store::Memory(memory) => Ok((memory.get::<T>(key), memory.life_used(key))),
            Store::Remote(remote) => {
                let bytes = self.fetch(remote, key).await?;
                let used = bytes
                    .as_deref()
                    .map_or(0.0, |b| envelope::life_used(b, envelope::now_millis()));
                Ok((self.decode(bytes.as_deref()), used))
            }
        }
    }

    /// Identifies this cache (and its clones) among the keys a task is loading.
    fn id(&self) -> usize {
        Arc::as_ptr(&self.inner).cast::<()>() as usize
    }

    fn is_leading(&self, key: &str) -> bool {
        let id = self.id();
        LEADING
            .try_with(|leading| leading.iter().any(|(cache, k)| *cache == id && k == key))
            .unwrap_or(false)
    }

    /// Runs the loader with its key recorded as being loaded by the current task.
    async fn lead<Fut: Future>(&self, key: &str, loader: impl FnOnce() -> Fut) -> Fut::Output {
        let mut leading = LEADING.try_with(Clone::clone).unwrap_or_default();
        leading.push((self.id(), key.to_owned()));
        LEADING.scope(leading, loader()).await
    }

    /// Runs the loader outside single-flight, storing nothing.
    async fn unshared<Fut: Future>(&self, loader: impl FnOnce() -> Fut) -> Fut::Output {
        self.inner.metrics.loader_runs.increment(1);
        loader().await
    }

    async fn read_through_set<T: Cacheable>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
        stale: Duration,
    ) {
        if let Err(err) = self.store(key, value, ttl, stale).await {
            self.absorb("cache unavailable, the loaded value is not stored", &err);
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

    /// Reads `key` without counting it.
    async fn lookup<T: Cacheable>(&self, key: &str) -> Result<Lookup<T>> {
        let inner = &*self.inner;
        match &inner.store {
            Store::Memory(memory) => Ok(memory.get::<T>(key)),
            Store::Remote(remote) => {
                let bytes = self.fetch(remote, key).await?;
                Ok(self.decode(bytes.as_deref()))
            }
        }
    }

    /// The bytes stored under `key` on the remote backend, under the failure policy.
    async fn fetch(&self, remote: &Remote, key: &str) -> Result<Option<Vec<u8>>> {
        let full = self.inner.full_key(key);
        self.call(remote, Op::Get, remote.backend.get(&full)).await
    }

    fn decode<T: Cacheable>(&self, bytes: Option<&[u8]>) -> Lookup<T> {
        let Some(bytes) = bytes else {
            return Lookup::Miss;
        };
        match Some(envelope::decode::<T>(self.inner.codec, bytes)) {
            None => Lookup::Miss,
            Some(Ok(value)) if !envelope::is_fresh(bytes, envelope::now_millis()) => {
                Lookup::Expired(value)
            }
            Some(Ok(value)) => Lookup::Hit(value),
            Some(Err(stale)) => Lookup::Stale(stale.as_str()),
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

    async fn call<T>(
        &self,
        remote: &Remote,
        op: Op,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.guarded(remote, op, Some(remote.timeout), fut).await
    }

    /// Runs one backend operation under the failure policy: breaker, timeout, metrics.
    /// `timeout: None` is for operations that bound their own steps (`delete_pattern`).
    async fn guarded<T>(
        &self,
        remote: &Remote,
        op: Op,
        timeout: Option<Duration>,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let metrics = &self.inner.metrics;
        let Some(attempt) = remote.breaker.attempt(timeout.is_some()) else {
            let err = Error::circuit_open(op.as_str());
            metrics.error(op, err.kind());
            return Err(err);
        };
        let started = Instant::now();
        let result = match timeout {
            Some(limit) => tokio::time::timeout(limit, fut)
                .await
                .unwrap_or_else(|_| Err(Error::timeout(op.as_str(), limit))),
            None => fut.await,
        };
        metrics.latency(op).record(started.elapsed());
        match &result {
            Ok(_) => attempt.succeeded(),
            Err(err) => {
                metrics.error(op, err.kind());
                if err.is_unavailable() {
                    attempt.failed();
                } else {
                    // The backend answered; only its answer was unusable.
                    attempt.succeeded();
                }
            }
        }
        result
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
