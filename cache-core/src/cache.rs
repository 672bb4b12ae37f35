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

use crate::builder::CacheBuilder;
use crate::codec::CodecKind;
use crate::envelope;
use crate::envelope::TagVersion;
use crate::error::{Error, Result};
use crate::expiry::Expiry;
use crate::failure::{Breaker, WarnLimiter};
use crate::flight::{Flight, SingleFlight};
use crate::memory::{Entry, Lookup, MemoryStore};
use crate::metrics::{Metrics, Op};
use crate::pattern;
use crate::tier::{Event, LocalTier};
use crate::ttl::Ttl;

mod client;

pub(crate) use self::client::Client;

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

/// What a locked read-through found before running its loader.
enum Lease<T> {
    /// Another replica's load finished: its value.
    Value(T),
    /// This replica holds the lease under this token: it loads, then releases.
    Owner(Vec<u8>),
    /// No lease (Redis failed, or the wait timed out): load anyway.
    None,
}

/// How long a read-through's lease on its key lasts in Redis: a load that takes longer is not
/// stored. The lease of a replica that died mid-load expires by itself after this.
const LOAD_LEASE: Duration = Duration::from_secs(60);

/// A running read-through's claim on its key, taken just before its loader runs: a `delete`
/// of the key, or a `delete_pattern` matching it, revokes the claim, and the loader's value is
/// then not stored. Without it, a load that read the database before a write would store its
/// older value after the write's invalidation, for the whole TTL. (Tags need no claim: their
/// versions are read before the loader runs, and a value stored under an old version is a miss.)
struct Claim<'a> {
    store: &'a Store,
    key: &'a str,
    token: Token,
}

/// Whose claim it is: a token in the memory store's lease map, or the value of the key's lease
/// in Redis (`{namespace}#load:{key}`, set for [`LOAD_LEASE`]).
enum Token {
    Memory(u64),
    Remote(Vec<u8>),
}

impl Drop for Claim<'_> {
    /// Ends a memory claim that did not store (the loader failed, timed out or was dropped). A
    /// Redis lease expires by itself, and costs no round trip on the failure path.
    fn drop(&mut self) {
        if let (Store::Memory(memory), Token::Memory(token)) = (self.store, &self.token) {
            memory.end_load(self.key, *token);
        }
    }
}

/// How much longer than its longest entry a tag's version key is kept, so that it never
/// expires before a value that depends on it.
const TAG_SLACK: Duration = Duration::from_secs(60);

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

    /// Stores `value` under `key` for `ttl`, tagged: [`invalidate_tag`](Cache::invalidate_tag)
    /// of any of `tags` turns it into a miss, on every replica, without scanning keys.
    ///
    /// Each tag has a version key in Redis (`{namespace}#tag:{tag}`, a 16-character string,
    /// kept as long as the longest value tagged with it); the value records the versions its
    /// tags had, and a read compares them, in the same round trip as the value when the caller
    /// names the tags ([`Expiry::tags`]) and in one more otherwise. Invalidating a tag gives it
    /// a new version: O(1), whatever the number of values under it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_core::Cache;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_core::Result<()> {
    /// let cache = Cache::memory();
    /// let hour = Duration::from_secs(3600);
    /// cache.set_with_tags("daily:42:2026-11-26", &2100_u32, hour, &["user:42"]).await?;
    /// cache.set_with_tags("stats:42:7", &1950_u32, hour, &["user:42", "stats"]).await?;
    /// cache.set_with_tags("stats:7:7", &1700_u32, hour, &["user:7", "stats"]).await?;
    ///
    /// cache.invalidate_tag("user:42").await?;
    /// assert_eq!(cache.get::<u32>("daily:42:2026-11-26").await?, None);
    /// assert_eq!(cache.get::<u32>("stats:42:7").await?, None);
    /// assert_eq!(cache.get::<u32>("stats:7:7").await?, Some(1700));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As for [`set`](Cache::set); [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput)
    /// for an empty tag, one over 1,024 bytes, or more than 255 tags.
    #[tracing::instrument(name = "cache.set_with_tags", level = "debug", skip_all, fields(key = %key.as_ref()))]
    pub async fn set_with_tags<T: Cacheable>(
        &self,
        key: impl AsRef<str>,
        value: &T,
        ttl: impl Into<Ttl>,
        tags: &[impl AsRef<str>],
    ) -> Result<()> {
        let ttl = ttl.into().resolve(self.inner.default_ttl)?;
        let tags = tag_list(tags)?;
        let versions = self.tag_versions(&tags, ttl, Duration::ZERO).await?;
        self.store(key.as_ref(), value, ttl, Duration::ZERO, versions, None)
            .await
            .map(drop)
    }

    /// Invalidates `tag`: every value stored under it so far is a miss from now on, on every
    /// replica (the local tiers are told through the invalidation channel). Values stored
    /// under it afterwards are hits again. O(1): one write, whatever the number of values.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::memory();
    /// cache.set_with_tags("a", &1_u8, std::time::Duration::from_secs(60), &["t"]).await?;
    /// cache.invalidate_tag("t").await?;
    /// assert_eq!(cache.get::<u8>("a").await?, None);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Backend trouble, as for [`get`](Cache::get), or an invalid tag as for
    /// [`set_with_tags`](Cache::set_with_tags).
    #[tracing::instrument(name = "cache.invalidate_tag", level = "debug", skip_all, fields(tag = %tag.as_ref()))]
    pub async fn invalidate_tag(&self, tag: impl AsRef<str>) -> Result<()> {
        let tag = tag.as_ref();
        check_tag(tag)?;
        let inner = &*self.inner;
        match &inner.store {
            Store::Memory(memory) => {
                memory.bump_tag(tag);
                Ok(())
            }
            Store::Remote(remote) => {
                let version = crate::memory::new_version();
                // A tag without a version key tags nothing alive: there is nothing to change.
                self.call(
                    remote,
                    Op::InvalidateTag,
                    remote
                        .client
                        .backend()
                        .replace_if_present(&inner.tag_key(tag), &version),
                )
                .await?;
                if let Some(local) = &remote.local {
                    local.forget_tag(tag);
                    self.announce(remote, local, &[Event::Tag(tag)]).await?;
                }
                Ok(())
            }
        }
    }

    /// The current versions of `tags` for a value kept `ttl` plus `stale`, created where
    /// missing, their keys kept at least that long.
    async fn tag_versions(
        &self,
        tags: &[String],
        ttl: Option<Duration>,
        stale: Duration,
    ) -> Result<Vec<TagVersion>> {
        if tags.is_empty() {
            return Ok(Vec::new());
        }
        let inner = &*self.inner;
        match &inner.store {
            Store::Memory(memory) => Ok(memory.tag_versions(tags)),
            Store::Remote(remote) => {
                let keys: Vec<String> = tags.iter().map(|tag| inner.tag_key(tag)).collect();
                let candidates: Vec<Vec<u8>> =
                    tags.iter().map(|_| crate::memory::new_version()).collect();
                // The longest the value can be kept: its TTL jittered up, plus its stale window.
                let keep = ttl.map(|ttl| {
                    ttl.mul_f64(1.0 + inner.ttl_jitter)
                        .saturating_add(stale)
                        .saturating_add(TAG_SLACK)
                });
                let versions = self
                    .call(
                        remote,
                        Op::TagVersions,
                        remote
                            .client
                            .backend()
                            .get_or_create(&keys, &candidates, keep),
                    )
                    .await?;
                Ok(tags.iter().cloned().zip(versions).collect())
            }
        }
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

    /// Tells the other replicas' local tiers what changed.
    async fn announce(
        &self,
        remote: &Remote,
        local: &LocalTier,
        events: &[Event<'_>],
    ) -> Result<()> {
        let message = local.message(events);
        self.call(
            remote,
            Op::Publish,
            remote.client.backend().publish(&local.channel, &message),
        )
        .await
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
        let checked = expiry
            .ttl
            .resolve(self.inner.default_ttl)
            .and_then(|ttl| Ok((ttl, tag_list(&expiry.tags)?)));
        let (ttl, tags) = match checked {
            Ok((ttl, tags)) => (Some(ttl), tags),
            Err(err) => {
                self.absorb(
                    "read-through with an invalid TTL or tag: loading without storing",
                    &err,
                );
                (None, Vec::new())
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
        let mut backend_up = match self.lookup_tagged::<T>(key, &tags).await {
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
                        match self.lookup_tagged::<T>(key, &tags).await {
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
                    // Tag versions before the loader: a tag invalidated while it runs voids
                    // what it returns.
                    let mut store_as = None;
                    if let (true, Some(ttl)) = (backend_up, ttl) {
                        match self.tag_versions(&tags, ttl, expiry.stale).await {
                            Ok(versions) => store_as = Some((ttl, versions)),
                            Err(err) => {
                                self.absorb(
                                    "cache unavailable, the loaded value is not stored",
                                    &err,
                                );
                                backend_up = !err.is_unavailable();
                            }
                        }
                    }
                    // One loader across replicas: wait for another's value, or hold the lease.
                    let mut lease = None;
                    if let (Some(timeout), true, Store::Remote(remote)) =
                        (expiry.lock, backend_up, &self.inner.store)
                    {
                        match self.lease::<T>(remote, key, &tags, timeout).await {
                            Lease::Value(value) => {
                                leader.publish(Ok(Arc::new(value.clone())));
                                return Ok(value);
                            }
                            Lease::Owner(token) => lease = Some((remote, token)),
                            Lease::None => {}
                        }
                    }
                    // The claim last, just before the loader: a delete from here on wins.
                    let store_as = match store_as {
                        Some((ttl, versions)) => self
                            .begin_load(key)
                            .await
                            .map(|claim| (ttl, versions, claim)),
                        None => None,
                    };
                    self.inner.metrics.loader_runs.increment(1);
                    // With a stale answer at hand, a loader past the soft timeout is abandoned.
                    let (loaded, stale) = match (stale, expiry.soft_timeout) {
                        (Some(old), Some(limit)) => {
                            match tokio::time::timeout(limit, self.lead(key, loader)).await {
                                Ok(loaded) => (loaded, Some(old)),
                                Err(_) => {
                                    self.release(lease, key).await;
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
                    let answer = match (loaded, stale) {
                        (Ok(value), _) => {
                            // Waiters get the value now, not after the store below.
                            leader.publish(Ok(Arc::new(value.clone())));
                            if let Some((ttl, versions, claim)) = store_as {
                                self.read_through_set(&claim, &value, ttl, expiry.stale, versions)
                                    .await;
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
                    // After the store: a replica that finds the lease gone finds the value.
                    self.release(lease, key).await;
                    return answer;
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

    /// Takes the cross-replica lease on `key`'s load, or waits for the value of the replica
    /// that holds it: polling from 2 ms, doubling to 50 ms, trying for the lease again each time
    /// (its owner may have failed and released it), for at most `timeout`.
    async fn lease<T: Cacheable>(
        &self,
        remote: &Remote,
        key: &str,
        tags: &[String],
        timeout: Duration,
    ) -> Lease<T> {
        let metrics = &self.inner.metrics;
        let lock_key = self.inner.lock_key(key);
        let token = crate::memory::new_version();
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(2);
        loop {
            let taken = self
                .call(
                    remote,
                    Op::Lock,
                    remote
                        .client
                        .backend()
                        .set_if_absent(&lock_key, &token, timeout),
                )
                .await;
            match taken {
                Ok(true) => {
                    // The last owner may have stored the value between our miss and now.
                    if let Ok(Lookup::Hit(value)) = self.lookup_tagged::<T>(key, tags).await {
                        self.release(Some((remote, token)), key).await;
                        metrics.lock("waited");
                        return Lease::Value(value);
                    }
                    metrics.lock("acquired");
                    return Lease::Owner(token);
                }
                Ok(false) => {}
                Err(err) => {
                    self.absorb("cache lock unavailable, loading without it", &err);
                    metrics.lock("unavailable");
                    return Lease::None;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                metrics.lock("timed_out");
                return Lease::None;
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(Duration::from_millis(50));
            match self.lookup_tagged::<T>(key, tags).await {
                Ok(Lookup::Hit(value)) => {
                    metrics.lock("waited");
                    return Lease::Value(value);
                }
                Ok(_) => {}
                Err(err) => {
                    self.absorb("cache read failed while waiting for a lock, loading", &err);
                    metrics.lock("unavailable");
                    return Lease::None;
                }
            }
        }
    }

    /// Releases a lease this replica holds, if it still does (compare and delete).
    async fn release(&self, lease: Option<(&Remote, Vec<u8>)>, key: &str) {
        let Some((remote, token)) = lease else {
            return;
        };
        let lock_key = self.inner.lock_key(key);
        let released = self
            .call(
                remote,
                Op::Lock,
                remote.client.backend().delete_if_equals(&lock_key, &token),
            )
            .await;
        if let Err(err) = released {
            self.absorb("cache lock not released; it expires by itself", &err);
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
            match self.lookup_aged::<T>(key, &expiry.tags).await {
                Ok((Lookup::Hit(value), used)) => {
                    self.inner.metrics.hits.increment(1);
                    if used >= fraction {
                        self.spawn_refresh(key, expiry.clone(), fraction, loader);
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
            let again = cache.lookup_aged::<T>(&key, &expiry.tags).await;
            if matches!(again, Ok((Lookup::Hit(_), used)) if used < fraction) {
                return;
            }
            // As in a read-through: the tag versions before the load, or no store.
            let store_as = match expiry.ttl.resolve(cache.inner.default_ttl) {
                Ok(ttl) => match cache.tag_versions(&expiry.tags, ttl, expiry.stale).await {
                    Ok(versions) => Some((ttl, versions)),
                    Err(_) => None,
                },
                Err(_) => None,
            };
            let store_as = match store_as {
                Some((ttl, versions)) => cache
                    .begin_load(&key)
                    .await
                    .map(|claim| (ttl, versions, claim)),
                None => None,
            };
            cache.inner.metrics.loader_runs.increment(1);
            match cache.lead(&key, loader).await {
                Ok(value) => {
                    leader.publish(Ok(Arc::new(value.clone())));
                    if let Some((ttl, versions, claim)) = store_as {
                        cache
                            .read_through_set(&claim, &value, ttl, expiry.stale, versions)
                            .await;
                    }
                }
                // The current value stays until its TTL; the next aging hit tries again.
                Err(err) => leader.publish(Err(Arc::new(err))),
            }
        });
    }

    /// Reads `key` without counting it, with how much of its fresh time it has used.
    ///
    async fn lookup_aged<T: Cacheable>(
        &self,
        key: &str,
        tags: &[String],
    ) -> Result<(Lookup<T>, f64)> {
        let inner = &*self.inner;
        match &inner.store {
            Store::Memory(memory) => Ok((memory.get::<T>(key), memory.life_used(key))),
            Store::Remote(remote) => self.remote_lookup(remote, key, tags, true).await,
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

    /// Claims `key` for a load about to run (see [`Claim`]); `None` when the backend cannot be
    /// reached, and the load's value is then not stored.
    async fn begin_load<'a>(&'a self, key: &'a str) -> Option<Claim<'a>> {
        let inner = &*self.inner;
        let token = match &inner.store {
            Store::Memory(memory) => Token::Memory(memory.begin_load(key)),
            Store::Remote(remote) => {
                let token = crate::memory::new_version();
                let lease_key = inner.lease_key(key);
                let set = remote
                    .client
                    .backend()
                    .set(&lease_key, &token, Some(LOAD_LEASE));
                if let Err(err) = self.call(remote, Op::Lease, set).await {
                    self.absorb("cache unavailable, the loaded value is not stored", &err);
                    return None;
                }
                Token::Remote(token)
            }
        };
        Some(Claim {
            store: &inner.store,
            key,
            token,
        })
    }

    /// Stores a loaded value under its claim: not at all when a delete came since the load began.
    async fn read_through_set<T: Cacheable>(
        &self,
        claim: &Claim<'_>,
        value: &T,
        ttl: Option<Duration>,
        stale: Duration,
        tags: Vec<TagVersion>,
    ) {
        match self
            .store(claim.key, value, ttl, stale, tags, Some(&claim.token))
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                self.inner.metrics.load_revoked.increment(1);
                tracing::debug!(
                    key = claim.key,
                    "the key was invalidated while it loaded: the loaded value is not stored"
                );
            }
            Err(err) => self.absorb("cache unavailable, the loaded value is not stored", &err),
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
    fn lookup<T: Cacheable>(&self, key: &str) -> impl Future<Output = Result<Lookup<T>>> {
        self.lookup_tagged(key, &[])
    }

    /// Reads `key` without counting it; `tags`, the tags the caller expects it to have, are
    /// read in the same round trip.
    async fn lookup_tagged<T: Cacheable>(&self, key: &str, tags: &[String]) -> Result<Lookup<T>> {
        let inner = &*self.inner;
        match &inner.store {
            Store::Memory(memory) => Ok(memory.get::<T>(key)),
            Store::Remote(remote) => Ok(self.remote_lookup(remote, key, tags, false).await?.0),
        }
    }

    /// A read on the remote store: the local tier first, if any, then the backend (filling
    /// the local tier with a hit). With how much of its fresh time the value has used, when
    /// `aged` asks for it.
    async fn remote_lookup<T: Cacheable>(
        &self,
        remote: &Remote,
        key: &str,
        tags: &[String],
        aged: bool,
    ) -> Result<(Lookup<T>, f64)> {
        let local = remote.local.as_ref().filter(|local| local.is_active());
        if let Some(local) = local
            && let Lookup::Hit(value) = local.store.get::<T>(key)
        {
            // The copy keeps the original's age: refresh-ahead sees it aging.
            let used = if aged {
                local.store.life_used(key)
            } else {
                0.0
            };
            return Ok((Lookup::Hit(value), used));
        }
        let epoch = local.map(LocalTier::epoch);
        let bytes = self.fetch(remote, key, tags).await?;
        let Some(bytes) = bytes else {
            return Ok((Lookup::Miss, 0.0));
        };
        let found = self.decode(Some(&bytes));
        if let (Some(local), Some(epoch), Lookup::Hit(value)) = (local, epoch, &found) {
            self.fill_local(local, key, value, &bytes, epoch);
        }
        // The clock only for refresh-ahead: a plain read does not pay for it.
        let used = if aged {
            envelope::life_used(&bytes, envelope::now_millis())
        } else {
            0.0
        };
        Ok((found, used))
    }

    /// Copies a value read from the backend into the local tier, for at most the local TTL
    /// and never past its own freshness.
    fn fill_local<T: Cacheable>(
        &self,
        local: &LocalTier,
        key: &str,
        value: &T,
        bytes: &[u8],
        epoch: u64,
    ) {
        let now = envelope::now_millis();
        let keep = envelope::fresh_left(bytes, now).map_or(local.ttl, |left| left.min(local.ttl));
        if keep.is_zero() {
            return;
        }
        let (age, fresh_for) = envelope::age(bytes, now);
        let tags = envelope::tags(bytes)
            .into_iter()
            .map(|(tag, version)| (tag.to_owned(), version.to_vec()))
            .collect();
        let entry = Entry::copy(value.clone(), keep, fresh_for, age);
        local.fill(key, entry, tags, epoch);
    }

    /// The bytes stored under `key` on the backend, under the failure policy; `None` also when
    /// one of the value's tags was invalidated since it was written. The versions of `known`
    /// tags are read in the same round trip as the value, any others in one more.
    async fn fetch(&self, remote: &Remote, key: &str, known: &[String]) -> Result<Option<Vec<u8>>> {
        let inner = &*self.inner;
        if !known.is_empty() {
            // Boxed, as is every tag path below: a read's future holds room for its largest
            // branch, and every read moves that future several times on its way down.
            return Box::pin(self.fetch_with_tags(remote, key, known)).await;
        }
        let get = remote.client.get(&inner.prefix, key);
        let bytes = self.call(remote, Op::Get, get).await?;
        if bytes
            .as_deref()
            .is_none_or(|b| envelope::tags(b).is_empty())
        {
            return Ok(bytes);
        }
        Box::pin(self.check_tags(remote, bytes, Vec::new())).await
    }

    /// [`fetch`](Self::fetch) of a value and the versions of the `known` tags, in one round trip.
    async fn fetch_with_tags(
        &self,
        remote: &Remote,
        key: &str,
        known: &[String],
    ) -> Result<Option<Vec<u8>>> {
        let inner = &*self.inner;
        let mut keys = Vec::with_capacity(1 + known.len());
        keys.push(inner.full_key(key));
        keys.extend(known.iter().map(|tag| inner.tag_key(tag)));
        let mut found = self
            .call(remote, Op::Get, remote.client.backend().get_many(&keys))
            .await?
            .into_iter();
        let bytes = found.next().flatten();
        let versions: Vec<(String, Option<Vec<u8>>)> = known.iter().cloned().zip(found).collect();
        self.check_tags(remote, bytes, versions).await
    }

    /// `bytes`, or `None` when one of the tags it records was invalidated since it was written.
    /// `known`: tag versions already read.
    async fn check_tags(
        &self,
        remote: &Remote,
        bytes: Option<Vec<u8>>,
        known: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<Option<Vec<u8>>> {
        let found = [bytes];
        let current = self.current_tags(remote, &found, known).await?;
        let [bytes] = found;
        Ok(bytes.filter(|_| current.first().copied().unwrap_or(false)))
    }

    /// For each value, whether every tag it records still has the version it recorded (true for
    /// untagged values and misses). `known`: tag versions already read; the others are read
    /// in one round trip.
    async fn current_tags(
        &self,
        remote: &Remote,
        found: &[Option<Vec<u8>>],
        mut known: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<Vec<bool>> {
        let recorded: Vec<Vec<(&str, &[u8])>> = found
            .iter()
            .map(|bytes| bytes.as_deref().map(envelope::tags).unwrap_or_default())
            .collect();
        let mut missing: Vec<&str> = recorded
            .iter()
            .flatten()
            .map(|(tag, _)| *tag)
            .filter(|tag| !known.iter().any(|(k, _)| k == tag))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            let inner = &*self.inner;
            let keys: Vec<String> = missing.iter().map(|tag| inner.tag_key(tag)).collect();
            let versions = self
                .call(remote, Op::Get, remote.client.backend().get_many(&keys))
                .await?;
            known.extend(missing.iter().map(|tag| (*tag).to_owned()).zip(versions));
        }
        Ok(recorded
            .iter()
            .map(|tags| {
                tags.iter().all(|(tag, version)| {
                    known
                        .iter()
                        .any(|(k, v)| k == tag && v.as_deref() == Some(*version))
                })
            })
            .collect())
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

    fn call<'a, T>(
        &'a self,
        remote: &'a Remote,
        op: Op,
        fut: impl Future<Output = Result<T>> + 'a,
    ) -> impl Future<Output = Result<T>> {
        self.guarded(remote, op, Some(remote.timeout), fut)
    }

    /// Runs one backend operation under the failure policy: breaker, timeout, metrics.
    /// `timeout: None` is for operations that bound their own steps (`delete_pattern`).
    ///
    /// Combinators rather than an `async fn`: an `async fn` keeps its argument `fut` for its
    /// whole life besides the copy it awaits, and the future of every backend call would carry
    /// that twice, then be moved whole on every read.
    fn guarded<'a, T>(
        &'a self,
        remote: &'a Remote,
        op: Op,
        timeout: Option<Duration>,
        fut: impl Future<Output = Result<T>> + 'a,
    ) -> impl Future<Output = Result<T>> {
        use futures_util::FutureExt as _;
        use futures_util::future::Either;

        let metrics = &self.inner.metrics;
        let Some(attempt) = remote.breaker.attempt(timeout.is_some()) else {
            let err = Error::circuit_open(op.as_str());
            metrics.error(op, err.kind());
            return Either::Left(std::future::ready(Err(err)));
        };
        let started = metrics.start();
        // Unbounded: a deadline past any the clock can reach, which never fires.
        let limit = timeout.unwrap_or(Duration::MAX);
        let timed = tokio::time::timeout(limit, fut).map(move |result| {
            let result = result.unwrap_or_else(|_| Err(Error::timeout(op.as_str(), limit)));
            metrics.record_latency(op, started);
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
        });
        Either::Right(timed)
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

/// Checks tags given by a caller and drops repeats.
fn tag_list(tags: &[impl AsRef<str>]) -> Result<Vec<String>> {
    if tags.len() > usize::from(u8::MAX) {
        return Err(Error::invalid_input(format!(
            "{} tags on one value; at most 255",
            tags.len()
        )));
    }
    let mut list: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = tag.as_ref();
        check_tag(tag)?;
        if !list.iter().any(|t| t == tag) {
            list.push(tag.to_owned());
        }
    }
    Ok(list)
}

fn check_tag(tag: &str) -> Result<()> {
    if tag.is_empty() {
        return Err(Error::invalid_input(
            "a tag is empty; tags name what values depend on, such as \"user:42\"",
        ));
    }
    if tag.len() > envelope::MAX_TAG_LEN {
        return Err(Error::invalid_input(format!(
            "a tag of {} bytes; at most {}",
            tag.len(),
            envelope::MAX_TAG_LEN
        )));
    }
    Ok(())
}
