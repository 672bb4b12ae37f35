//! Redis (and Redis-compatible servers such as Valkey) as a [`Backend`](super::Backend).
//!
//! # Connections
//!
//! The backend holds a small fixed set of `redis` [`ConnectionManager`]s (default: one) and
//! hands operations to them round-robin. Each is a *multiplexed* connection: concurrent
//! operations share it and are pipelined on the wire, instead of each operation checking a
//! connection out of a pool and holding it for a round trip. On this project's machine, with 50
//! concurrent tasks, a deadpool-redis checkout per operation gave about 50,000 ops/s where one
//! shared multiplexed connection gave 250,000 to 360,000. The manager also reconnects by itself
//! after a broken connection, which is what lets the cache recover from a Redis restart with no
//! restart of its own. More connections help only once one connection's socket is the
//! bottleneck (many cores); see [`CacheBuilder::pool_size`](crate::CacheBuilder::pool_size).

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::{Error, ErrorKind, Result};

/// How many keys one `SCAN` step asks for, and so the most one `UNLINK` removes.
const SCAN_BATCH: usize = 1_000;

/// Redis through a few shared, multiplexed, self-reconnecting connections.
///
/// Usually built for you by [`Cache::connect`](crate::Cache::connect); build one directly to wrap
/// it in your own [`Backend`](super::Backend) decorator, given to
/// [`CacheBuilder::backend`](crate::CacheBuilder::backend).
///
/// ```no_run
/// use std::time::Duration;
/// use cache_core::backend::RedisBackend;
///
/// # async fn run() -> cache_core::Result<()> {
/// let redis = RedisBackend::connect("redis://127.0.0.1:6379/0", 1, Duration::from_secs(1), Duration::from_millis(250)).await?;
/// # Ok(()) }
/// ```
pub struct RedisBackend {
    connections: Box<[ConnectionManager]>,
    next: AtomicUsize,
    address: String,
    op_timeout: Duration,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("address", &self.address)
            .field("connections", &self.connections.len())
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// Connects `connections` multiplexed connections to the server at `url`.
    ///
    /// `connect_timeout` bounds each connection attempt; `op_timeout` bounds each batch of
    /// [`delete_pattern`](super::Backend::delete_pattern). Other operations are bounded by the
    /// [`Cache`](crate::Cache), which times every call it makes.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a URL the `redis` crate rejects, [`ErrorKind::Connect`] naming
    /// the address when nothing answers there.
    pub async fn connect(
        url: &str,
        connections: usize,
        connect_timeout: Duration,
        op_timeout: Duration,
    ) -> Result<Self> {
        let address = crate::url::redact(url);
        let client = redis::Client::open(url).map_err(|e| {
            Error::config(format!("CACHE_URL {address:?} is not a valid Redis URL")).with_source(e)
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            // The cache times every operation itself (and that timeout also covers waiting for a
            // reconnect); a second, per-reply timer inside the connection would only add cost.
            .set_response_timeout(None)
            // A failed command triggers a reconnect; one attempt per trigger keeps an outage from
            // piling up retry loops, and the circuit breaker paces the triggers.
            .set_number_of_retries(0);
        let mut managers = Vec::with_capacity(connections.max(1));
        for _ in 0..connections.max(1) {
            let manager = ConnectionManager::new_with_config(client.clone(), config.clone())
                .await
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Connect,
                        format!("cannot connect to Redis at {address}: is redis-server running and reachable?"),
                    )
                    .with_source(e)
                })?;
            managers.push(manager);
        }
        Ok(Self {
            connections: managers.into_boxed_slice(),
            next: AtomicUsize::new(0),
            address,
            op_timeout,
        })
    }

    /// The server address, with any password masked.
    #[must_use]
    pub fn address(&self) -> &str {
        &self.address
    }

    fn connection(&self) -> ConnectionManager {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[i].clone()
    }

    async fn step<T>(
        &self,
        what: &str,
        fut: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.op_timeout, fut).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(Error::timeout(what, self.op_timeout)),
        }
    }
}

fn set_cmd(key: &str, value: &[u8], ttl: Option<Duration>) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
    if let Some(ttl) = ttl {
        // Round up: a 500 µs TTL must not become "PX 0", which Redis rejects.
        let millis = u64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
        cmd.arg("PX").arg(millis.max(1));
    }
    cmd
}

#[async_trait]
impl super::Backend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut conn = self.connection();
        Ok(redis::cmd("GET").arg(key).query_async(&mut conn).await?)
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.connection();
        Ok(redis::cmd("MGET").arg(keys).query_async(&mut conn).await?)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        let mut conn = self.connection();
        let () = set_cmd(key, value, ttl).query_async(&mut conn).await?;
        Ok(())
    }

    async fn set_many(&self, entries: &[(String, Vec<u8>)], ttl: Option<Duration>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (key, value) in entries {
            pipe.add_command(set_cmd(key, value, ttl)).ignore();
        }
        let mut conn = self.connection();
        let () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let mut conn = self.connection();
        let removed: u64 = redis::cmd("UNLINK").arg(key).query_async(&mut conn).await?;
        Ok(removed > 0)
    }

    async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        let mut conn = self.connection();
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH);
            let (next, keys): (u64, Vec<Vec<u8>>) =
                self.step("SCAN", scan.query_async(&mut conn)).await?;
            if !keys.is_empty() {
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(&keys);
                let n: u64 = self.step("UNLINK", unlink.query_async(&mut conn)).await?;
                removed += n;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.connection();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}
