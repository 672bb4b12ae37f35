//! Redis (and Redis-compatible servers such as Valkey) as a [`Backend`](super::Backend).
//!
//! # Connections
//!
//! The backend holds a small fixed set of `redis` [`MultiplexedConnection`]s (default: one) and
//! hands operations to them round-robin. Concurrent operations share a multiplexed connection
//! and are pipelined on the wire, instead of each checking a connection out of a pool and
//! holding it for a round trip, which is several times slower (benches/ANALYSIS.md, "Connection
//! choices"). More connections help only once one connection's socket is the bottleneck (many
//! cores); see [`CacheBuilder::pool_size`](crate::CacheBuilder::pool_size).
//!
//! # Reconnecting
//!
//! An error after which a connection cannot be used again (the server closed it, a reply could
//! not be parsed) retires that connection; the next operation on its slot connects a new one,
//! under that operation's timeout, and concurrent operations wait for that one attempt rather
//! than each making their own. A failed attempt leaves the slot empty for the next operation to
//! try again, paced by the cache's circuit breaker. That is what lets the cache recover from a
//! Redis restart with no restart of its own (`tests/faults.rs`).
//!
//! Why not `redis::aio::ConnectionManager`, which reconnects by itself: it costs a shared future
//! on every command (benches/ANALYSIS.md §1), and after a reconnection that failed other than
//! on I/O (a handshake cut mid-way, refused credentials) it kept returning that error.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use tokio::sync::{OnceCell, mpsc};

use crate::error::{Error, Result};

/// How many keys one `SCAN` step asks for, and so the most one `UNLINK` removes.
mod commands;
mod connect;
mod pubsub;
pub(crate) mod scripts;

pub(crate) use self::commands::{Prefixed, get_cmd, px, replace_cmd, set_cmd, set_if_absent_cmd};
pub(crate) use self::connect::{client, connect_error};
// The cluster backend connects with them too.
#[cfg(feature = "cluster")]
pub(crate) use self::connect::{client_trusting, refused_credentials, untrusted_certificate};
pub(crate) use self::pubsub::subscribe;

const SCAN_BATCH: usize = 1_000;

/// Redis through a few shared, multiplexed, reconnecting connections.
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
    slots: Box<[RwLock<Slot>]>,
    next: AtomicUsize,
    address: String,
    op_timeout: Duration,
    /// What a replacement connection is made from.
    client: redis::Client,
    config: AsyncConnectionConfig,
}

/// One connection of the set, and how many times it has been retired.
struct Slot {
    generation: u64,
    /// Empty until connected: the first operation to find it empty connects it, the others
    /// wait for that attempt.
    connection: Arc<OnceCell<MultiplexedConnection>>,
}

/// A connection taken for one operation, and where it came from.
struct Lease {
    slot: usize,
    generation: u64,
    connection: MultiplexedConnection,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("address", &self.address)
            .field("connections", &self.slots.len())
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
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for a URL the `redis` crate rejects,
    /// [`ErrorKind::Connect`](crate::ErrorKind::Connect) naming the address when nothing
    /// answers there.
    pub async fn connect(
        url: &str,
        connections: usize,
        connect_timeout: Duration,
        op_timeout: Duration,
    ) -> Result<Self> {
        let client = client(url, None)?;
        Self::connect_client(client, url, connections, connect_timeout, op_timeout).await
    }

    /// [`connect`](Self::connect) with a client already configured (TLS trust anchors).
    pub(crate) async fn connect_client(
        client: redis::Client,
        url: &str,
        connections: usize,
        connect_timeout: Duration,
        op_timeout: Duration,
    ) -> Result<Self> {
        let address = crate::url::redact(url);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            // The cache times every operation itself (and that timeout also covers waiting for a
            // reconnect); a second, per-reply timer inside the connection would only add cost.
            .set_response_timeout(None);
        let mut slots = Vec::with_capacity(connections.max(1));
        for _ in 0..connections.max(1) {
            let connection = client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(|e| connect_error(&address, e))?;
            slots.push(RwLock::new(Slot {
                generation: 0,
                connection: Arc::new(OnceCell::new_with(Some(connection))),
            }));
        }
        Ok(Self {
            slots: slots.into_boxed_slice(),
            next: AtomicUsize::new(0),
            address,
            op_timeout,
            client,
            config,
        })
    }

    /// The server address, with any password masked.
    #[must_use]
    pub fn address(&self) -> &str {
        &self.address
    }

    /// `GET` of the key `prefix` followed by `key`, sent as one argument without building it
    /// first: the cache's hit path.
    pub(crate) async fn get_prefixed(&self, prefix: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.query(&get_cmd(prefix, key)).await
    }

    /// [`set`](super::Backend::set) of the key `prefix` followed by `key`.
    pub(crate) async fn set_prefixed(
        &self,
        prefix: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<()> {
        self.query(&set_cmd(Prefixed(prefix, key), value, ttl))
            .await
    }

    /// A connection for one operation, connecting its slot first when it has none.
    async fn connection(&self) -> Result<Lease> {
        let slot = if self.slots.len() == 1 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()
        };
        let (generation, cell) = {
            let held = self.slots[slot]
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(connection) = held.connection.get() {
                return Ok(Lease {
                    slot,
                    generation: held.generation,
                    connection: connection.clone(),
                });
            }
            (held.generation, Arc::clone(&held.connection))
        };
        // Boxed: the connect future is large, and every operation's future would otherwise
        // carry (and move) its space for the rare operation that reconnects.
        let connection = Box::pin(self.reconnect(&cell)).await?;
        Ok(Lease {
            slot,
            generation,
            connection,
        })
    }

    /// Connects the empty `cell`, or waits for the operation already connecting it.
    async fn reconnect(
        &self,
        cell: &OnceCell<MultiplexedConnection>,
    ) -> Result<MultiplexedConnection> {
        let connection = cell
            .get_or_try_init(|| async {
                let connection = self
                    .client
                    .get_multiplexed_async_connection_with_config(&self.config)
                    .await?;
                tracing::debug!(address = %self.address, "redis connection replaced");
                Ok::<_, redis::RedisError>(connection)
            })
            .await
            .map_err(Error::redis)?;
        Ok(connection.clone())
    }

    /// Turns a command's result into the cache's, retiring the lease's connection when the
    /// error says it cannot be used again.
    fn settle<T>(&self, lease: &Lease, result: redis::RedisResult<T>) -> Result<T> {
        if let Err(err) = &result
            && err.is_unrecoverable_error()
        {
            self.retire(lease);
        }
        result.map_err(Error::redis)
    }

    /// Empties the lease's slot, so that the next operation there connects anew. Operations
    /// still running on the old connection finish (or fail) on it; it closes with the last.
    fn retire(&self, lease: &Lease) {
        let mut held = self.slots[lease.slot]
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Another operation on the same connection may have retired it already.
        if held.generation != lease.generation {
            return;
        }
        held.generation += 1;
        held.connection = Arc::new(OnceCell::new());
        tracing::debug!(address = %self.address, "redis connection retired");
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        let mut lease = self.connection().await?;
        // `query_async` boxes the connection's future; inline, that future would make every
        // future around it large, and moving those costs more than the allocation.
        let result = cmd.query_async(&mut lease.connection).await;
        self.settle(&lease, result)
    }

    async fn step<T>(
        &self,
        what: &str,
        lease: &Lease,
        fut: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.op_timeout, fut).await {
            Ok(result) => self.settle(lease, result),
            Err(_) => Err(Error::timeout(what, self.op_timeout)),
        }
    }
}

#[async_trait]
impl super::Backend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.query(redis::cmd("GET").arg(key)).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.query(redis::cmd("MGET").arg(keys)).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        self.query(&set_cmd(key, value, ttl)).await
    }

    async fn set_many(&self, entries: &[(String, Vec<u8>)], ttl: Option<Duration>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (key, value) in entries {
            pipe.add_command(set_cmd(key, value, ttl)).ignore();
        }
        let mut lease = self.connection().await?;
        let result = pipe.query_async(&mut lease.connection).await;
        self.settle(&lease, result)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let removed: u64 = self.query(redis::cmd("UNLINK").arg(key)).await?;
        Ok(removed > 0)
    }

    async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        let lease = self.connection().await?;
        let mut conn = lease.connection.clone();
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH);
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .step("SCAN", &lease, scan.query_async(&mut conn))
                .await?;
            if !keys.is_empty() {
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(&keys);
                let n: u64 = self
                    .step("UNLINK", &lease, unlink.query_async(&mut conn))
                    .await?;
                removed += n;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    async fn ping(&self) -> Result<()> {
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }

    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool> {
        let stored: Option<String> = self.query(&set_if_absent_cmd(key, value, ttl)).await?;
        Ok(stored.is_some())
    }

    async fn delete_if_equals(&self, key: &str, value: &[u8]) -> Result<bool> {
        let mut lease = self.connection().await?;
        let result = scripts::delete_if_equals()
            .key(key)
            .arg(value)
            .invoke_async(&mut lease.connection)
            .await;
        self.settle(&lease, result)
    }

    async fn set_if_leased(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        lease_key: &str,
        token: &[u8],
    ) -> Result<bool> {
        let mut lease = self.connection().await?;
        let result = scripts::set_if_leased()
            .key(lease_key)
            .key(key)
            .arg(token)
            .arg(value)
            .arg(ttl.map_or(0, px))
            .invoke_async(&mut lease.connection)
            .await;
        self.settle(&lease, result)
    }

    async fn delete_leased(&self, key: &str, lease_key: &str) -> Result<bool> {
        // One round trip, the lease first: a store script running between the two finds the
        // lease gone.
        let mut pipe = redis::pipe();
        pipe.cmd("UNLINK").arg(lease_key).ignore();
        pipe.cmd("UNLINK").arg(key);
        let mut lease = self.connection().await?;
        let result: redis::RedisResult<(u64,)> = pipe.query_async(&mut lease.connection).await;
        let (removed,) = self.settle(&lease, result)?;
        Ok(removed > 0)
    }

    async fn replace_if_present(&self, key: &str, value: &[u8]) -> Result<bool> {
        let replaced: Option<String> = self.query(&replace_cmd(key, value)).await?;
        Ok(replaced.is_some())
    }

    async fn get_or_create(
        &self,
        keys: &[String],
        candidates: &[Vec<u8>],
        ttl: Option<Duration>,
    ) -> Result<Vec<Vec<u8>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let millis = ttl.map_or(0, px);
        let lease = self.connection().await?;
        // Sent together on the multiplexed connection: one round trip. Not a `pipe()`: a
        // script invocation there does not fall back to EVAL after a server restart.
        let calls = keys.iter().zip(candidates).map(|(key, candidate)| {
            scripts::get_or_create_on(lease.connection.clone(), key, candidate, millis)
        });
        let result = futures_util::future::try_join_all(calls).await;
        self.settle(&lease, result)
    }

    async fn publish(&self, channel: &str, message: &[u8]) -> Result<()> {
        let _: u64 = self
            .query(redis::cmd("PUBLISH").arg(channel).arg(message))
            .await?;
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<mpsc::Receiver<Vec<u8>>> {
        subscribe(&self.client, channel).await
    }
}
