//! Configuring a [`Cache`]: [`CacheBuilder`].

use std::fmt;
use std::time::Duration;

use crate::cache::{Cache, Client};
use crate::codec::CodecKind;
use crate::error::{Error, Result};
use crate::memory::MemoryCapacity;
use crate::url::{self, Target};

/// Builds a [`Cache`]: backend URL, namespace, codec, timeouts, default TTL, capacity.
///
/// Every setting has a default fit for a web service; `Cache::builder().build()` is a memory
/// cache.
///
/// ```no_run
/// use std::time::Duration;
/// use cache_core::{Cache, codec::Json};
///
/// # async fn run() -> cache_core::Result<()> {
/// let cache = Cache::builder()
///     .url("redis://127.0.0.1:6379/0")
///     .namespace("calories")
///     .codec(Json)
///     .operation_timeout(Duration::from_millis(100))
///     .default_ttl(Duration::from_secs(3600))
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use]
#[derive(Clone)]
pub struct CacheBuilder {
    pub(crate) url: Option<String>,
    pub(crate) backend: Option<std::sync::Arc<dyn crate::Backend>>,
    pub(crate) namespace: String,
    pub(crate) codec: CodecKind,
    pub(crate) pool_size: usize,
    pub(crate) operation_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) default_ttl: Option<Duration>,
    pub(crate) memory_capacity: MemoryCapacity,
    pub(crate) breaker_threshold: u32,
    pub(crate) breaker_cool_down: Duration,
    pub(crate) warn_interval: Duration,
    pub(crate) ttl_jitter: f64,
    pub(crate) tls_root_certificates: Option<Vec<u8>>,
    pub(crate) local_tier: Option<(u64, Duration)>,
}

impl Default for CacheBuilder {
    fn default() -> Self {
        Self {
            url: None,
            backend: None,
            namespace: "cache".to_owned(),
            codec: CodecKind::default(),
            pool_size: 1,
            operation_timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(2),
            default_ttl: None,
            memory_capacity: MemoryCapacity::default(),
            breaker_threshold: 5,
            breaker_cool_down: Duration::from_secs(5),
            warn_interval: Duration::from_secs(10),
            ttl_jitter: 0.0,
            tls_root_certificates: None,
            local_tier: None,
        }
    }
}

impl fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("url", &self.url.as_deref().map(url::redact))
            .field("namespace", &self.namespace)
            .field("codec", &self.codec)
            .field("pool_size", &self.pool_size)
            .field("operation_timeout", &self.operation_timeout)
            .field("default_ttl", &self.default_ttl)
            .field("memory_capacity", &self.memory_capacity)
            .field("ttl_jitter", &self.ttl_jitter)
            .field("local_tier", &self.local_tier)
            .field(
                "tls_root_certificates",
                &self.tls_root_certificates.as_ref().map(|_| "<PEM>"),
            )
            .finish_non_exhaustive()
    }
}

impl CacheBuilder {
    /// The backend: `memory://` (the default), `redis://[user:pass@]host:port/db`,
    /// `rediss://...` with the `tls` feature, or a Redis Cluster by some of its nodes:
    /// `redis+cluster://[user:pass@]host:port[,host:port...]` (`rediss+cluster://` with `tls`).
    ///
    /// ```no_run
    /// # async fn run() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::builder()
    ///     .url("redis+cluster://cache:secret@10.0.0.1:7000,10.0.0.2:7000")
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// A backend of your own (or a decorator around [`RedisBackend`](crate::backend::RedisBackend))
    /// instead of a URL.
    ///
    /// ```
    /// # async fn run(redis: cache_core::backend::RedisBackend) -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::builder().backend(redis).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn backend(mut self, backend: impl crate::Backend) -> Self {
        self.backend = Some(std::sync::Arc::new(backend));
        self
    }

    /// The prefix of every key this cache touches (default `cache`), so that a shared Redis is
    /// never read, written or scanned outside it. Glob metacharacters are rejected by `build`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The value encoding for remote backends: [`Bincode`](crate::codec::Bincode) (default) or
    /// [`Json`](crate::codec::Json).
    pub fn codec(mut self, codec: impl Into<CodecKind>) -> Self {
        self.codec = codec.into();
        self
    }

    /// How many multiplexed Redis connections to share round-robin (default 1; each one
    /// pipelines any number of concurrent operations). A Redis Cluster always uses one cluster
    /// connection, itself one multiplexed connection per node.
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.pool_size = connections;
        self
    }

    /// The longest one backend operation may take before it counts as failed (default 250 ms).
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// The longest a connection attempt may take (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The TTL of values stored with [`Ttl::Default`](crate::Ttl::Default) (default: none, they
    /// do not expire).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// The bound of the in-process tier (default 10,000 entries).
    pub fn memory_capacity(mut self, capacity: MemoryCapacity) -> Self {
        self.memory_capacity = capacity;
        self
    }

    /// Open the circuit breaker after this many consecutive backend failures (default 5) and
    /// skip the backend for `cool_down` (default 5 s) before probing it again.
    pub fn circuit_breaker(mut self, failures: u32, cool_down: Duration) -> Self {
        self.breaker_threshold = failures;
        self.breaker_cool_down = cool_down;
        self
    }

    /// Log read-through failures at warn at most once per `interval` (default 10 s); the rest
    /// are logged at debug. Every failure is counted either way.
    pub fn warn_interval(mut self, interval: Duration) -> Self {
        self.warn_interval = interval;
        self
    }

    /// Spreads every TTL by up to `fraction` either way (default 0: exact), so that values
    /// written together, after a deploy or a flush, do not all expire in the same second and
    /// send their loads to the database at once. `0.1` turns a 60 s TTL into 54 to 66 s.
    ///
    /// ```
    /// # async fn run() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::builder().ttl_jitter(0.1).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn ttl_jitter(mut self, fraction: f64) -> Self {
        self.ttl_jitter = fraction;
        self
    }

    /// Trust these CA certificates (PEM, one or more) for a `rediss://` URL instead of the
    /// system's roots: for a Redis whose certificate a private CA signed. Feature `tls`.
    ///
    /// ```no_run
    /// # async fn run() -> cache_core::Result<()> {
    /// let ca = std::fs::read("/etc/redis/tls/ca.crt").unwrap_or_default();
    /// let cache = cache_core::Cache::builder()
    ///     .url("rediss://cache:secret@redis.internal:6380/0")
    ///     .tls_root_certificates(ca)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_certificates = Some(pem.into());
        self
    }

    /// An in-process tier of up to `capacity` entries in front of Redis, each kept at most `ttl`:
    /// reads look there first, then in Redis (filling it); writes and deletes go to Redis, then
    /// here, then to the other replicas as an invalidation on Redis Pub/Sub (channel
    /// `{namespace}#invalidate`), which drop their copies. A hit here costs what a memory hit
    /// does, with no round trip.
    ///
    /// `ttl` bounds how stale a copy can be if an invalidation is lost; keep it short (seconds)
    /// for data other replicas write. The guarantees, and what they cost, are in the README's
    /// "Running at scale". Needs a Redis (or cluster) URL, or a backend with Pub/Sub.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use cache_core::Cache;
    ///
    /// # async fn run() -> cache_core::Result<()> {
    /// let cache = Cache::builder()
    ///     .url("redis://127.0.0.1:6379/0")
    ///     .local_tier(10_000, Duration::from_secs(5))
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn local_tier(mut self, capacity: u64, ttl: Duration) -> Self {
        self.local_tier = Some((capacity, ttl));
        self
    }

    /// Validates the settings and connects.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for an invalid URL or setting,
    /// [`ErrorKind::Connect`](crate::ErrorKind::Connect) naming the address when the backend
    /// does not answer.
    pub async fn build(self) -> Result<Cache> {
        self.validate()?;
        if let Some(backend) = self.backend.clone() {
            if self.url.is_some() {
                return Err(Error::config(
                    "both a URL and a backend were given; choose one",
                ));
            }
            return Cache::with_remote(&self, Client::Custom(backend)).await;
        }
        match self.url.as_deref().map(url::parse).transpose()? {
            None | Some(Target::Memory) if self.local_tier.is_some() => Err(Error::config(
                "local_tier is a tier in front of Redis; the memory backend is already local \
                 (set a redis:// URL, or drop local_tier)",
            )),
            None | Some(Target::Memory) => Ok(Cache::with_memory(&self)),
            Some(Target::Redis(url)) => self.connect_redis(&url).await,
            Some(Target::Cluster(nodes)) => self.connect_cluster(&nodes).await,
        }
    }

    #[cfg(feature = "redis")]
    async fn connect_redis(&self, url: &str) -> Result<Cache> {
        let client = crate::backend::client(url, self.tls_root_certificates.as_deref())?;
        let backend = crate::backend::RedisBackend::connect_client(
            client,
            url,
            self.pool_size,
            self.connect_timeout,
            self.operation_timeout,
        )
        .await?;
        Cache::with_remote(self, Client::Redis(std::sync::Arc::new(backend))).await
    }

    #[cfg(not(feature = "redis"))]
    #[allow(clippy::unused_async)]
    async fn connect_redis(&self, url: &str) -> Result<Cache> {
        Err(Error::config(format!(
            "CACHE_URL {:?}: redis:// needs cache-core's \"redis\" feature (on by default); \
             this build has only the memory backend",
            crate::url::redact(url)
        )))
    }

    #[cfg(feature = "cluster")]
    async fn connect_cluster(&self, nodes: &[String]) -> Result<Cache> {
        let url = self.url.as_deref().unwrap_or_default();
        let backend = crate::backend::RedisClusterBackend::connect_nodes(
            nodes,
            url,
            self.tls_root_certificates.as_deref(),
            self.connect_timeout,
            self.operation_timeout,
        )
        .await?;
        Cache::with_remote(self, Client::Cluster(std::sync::Arc::new(backend))).await
    }

    #[cfg(not(feature = "cluster"))]
    #[allow(clippy::unused_async)]
    async fn connect_cluster(&self, _nodes: &[String]) -> Result<Cache> {
        Err(Error::config(format!(
            "CACHE_URL {:?}: redis+cluster:// needs cache-core's \"cluster\" feature (on by \
             default)",
            crate::url::redact(self.url.as_deref().unwrap_or_default())
        )))
    }

    fn validate(&self) -> Result<()> {
        let ns = &self.namespace;
        if ns.is_empty() {
            return Err(Error::config(
                "namespace is empty; every cache needs one (the default is \"cache\")",
            ));
        }
        // `:` is the separator after the namespace: allowing it inside would let namespace `app`
        // match (and delete) the keys of namespace `app:v2`.
        if let Some(bad) = ns
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(Error::config(format!(
                "namespace {ns:?} contains {bad:?}; use letters, digits and '-_.' (e.g. \"calories.v2\") \
                 so that no namespace's keys fall under another's patterns"
            )));
        }
        if self.pool_size == 0 {
            return Err(Error::config(
                "pool_size is 0; at least one connection is needed",
            ));
        }
        if self.operation_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(Error::config("timeouts must be positive"));
        }
        if !(0.0..1.0).contains(&self.ttl_jitter) {
            return Err(Error::config(format!(
                "ttl_jitter {} is outside 0..1; it is a fraction of the TTL, such as 0.1 for +-10%",
                self.ttl_jitter
            )));
        }
        if let Some((capacity, ttl)) = self.local_tier
            && (capacity == 0 || ttl.is_zero())
        {
            return Err(Error::config(format!(
                "local_tier({capacity}, {ttl:?}): both the capacity and the TTL must be positive"
            )));
        }
        if self.default_ttl.is_some_and(|ttl| ttl.is_zero()) {
            return Err(Error::config(
                "default_ttl is zero; use a positive duration, or leave it unset",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rejects_settings_that_would_misbehave() {
        let err = |b: CacheBuilder| async move {
            b.build()
                .await
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(
            err(Cache::builder().namespace(""))
                .await
                .contains("namespace is empty")
        );
        assert!(
            err(Cache::builder().namespace("app*"))
                .await
                .contains("contains '*'")
        );
        assert!(
            err(Cache::builder().namespace("app:v2"))
                .await
                .contains("contains ':'")
        );
        assert!(
            Cache::builder()
                .namespace("calories.v2-x_1")
                .build()
                .await
                .is_ok()
        );
        assert!(
            err(Cache::builder().pool_size(0))
                .await
                .contains("pool_size")
        );
        assert!(
            err(Cache::builder().default_ttl(Duration::ZERO))
                .await
                .contains("default_ttl")
        );
        assert!(
            err(Cache::builder().url("redis//x"))
                .await
                .contains("missing \"://\"")
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let b = Cache::builder().url("redis://u:hunter2@h:6379");
        assert!(!format!("{b:?}").contains("hunter2"));
    }
}
