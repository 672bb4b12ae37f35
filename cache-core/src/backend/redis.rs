//! Redis (and Redis-compatible servers such as Valkey) as a [`Backend`](super::Backend).
//!
//! # Connections
//!
//! The backend holds a small fixed set of `redis` [`MultiplexedConnection`]s (default: one) and
//! hands operations to them round-robin. Concurrent operations share a multiplexed connection
//! and are pipelined on the wire, instead of each operation checking a connection out of a pool
//! and holding it for a round trip. On this project's machine, with 50 concurrent tasks, a
//! deadpool-redis checkout per operation gave about 50,000 ops/s where one shared multiplexed
//! connection gave 250,000 to 360,000. More connections help only once one connection's socket
//! is the bottleneck (many cores); see [`CacheBuilder::pool_size`](crate::CacheBuilder::pool_size).
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
//! Why not `redis::aio::ConnectionManager`, which reconnects by itself: it reaches its connection
//! through an `ArcSwap` and a shared future on every command, about 400 instructions per
//! operation, 4% of a whole `GET` (benches/ANALYSIS.md §1); and when a *reconnection* failed
//! other than on I/O (a handshake cut mid-way, refused credentials) it kept that failed
//! connection and returned its error to every later call, so it had to be replaced by hand
//! anyway.

use std::fmt;
use std::future::Future;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use tokio::sync::{OnceCell, mpsc};

use crate::error::{Error, ErrorKind, Result};

/// How many keys one `SCAN` step asks for, and so the most one `UNLINK` removes.
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
    /// [`ErrorKind::Config`] for a URL the `redis` crate rejects, [`ErrorKind::Connect`] naming
    /// the address when nothing answers there.
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

/// A key written as one command argument from its namespace prefix and the caller's key.
/// A key written as two parts, the namespace prefix and the key, into one argument.
pub(crate) struct Prefixed<'a>(pub(crate) &'a str, pub(crate) &'a str);

impl redis::ToRedisArgs for Prefixed<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        let mut arg = out.writer_for_next_arg();
        // Writing into the command's own buffer cannot fail.
        let _ = arg.write_all(self.0.as_bytes());
        let _ = arg.write_all(self.1.as_bytes());
    }
}

/// A client for `url`; with `tls_roots` (PEM), a `rediss://` client that trusts those CAs
/// instead of the system's.
pub(crate) fn client(url: &str, tls_roots: Option<&[u8]>) -> Result<redis::Client> {
    let address = crate::url::redact(url);
    let invalid =
        |e| Error::config(format!("CACHE_URL {address:?} is not a valid Redis URL")).with_source(e);
    let Some(pem) = tls_roots else {
        return redis::Client::open(url).map_err(invalid);
    };
    tls_client(url, &address, pem, invalid)
}

#[cfg(feature = "tls")]
fn tls_client(
    url: &str,
    address: &str,
    pem: &[u8],
    invalid: impl Fn(redis::RedisError) -> Error,
) -> Result<redis::Client> {
    let info = redis::IntoConnectionInfo::into_connection_info(url).map_err(&invalid)?;
    if !matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
        return Err(Error::config(format!(
            "TLS root certificates are set but CACHE_URL {address:?} is not rediss://; \
             use rediss:// so that they are used"
        )));
    }
    use rustls::pki_types::pem::PemObject as _;

    // An empty trust store would fail every handshake later with a vaguer message: say it now.
    let parsed: std::result::Result<Vec<_>, _> =
        rustls::pki_types::CertificateDer::pem_slice_iter(pem).collect();
    match parsed {
        Ok(certificates) if !certificates.is_empty() => {}
        Ok(_) => {
            return Err(Error::config(
                "the TLS root certificates contain no PEM certificate \
                 (\"-----BEGIN CERTIFICATE-----\" ...)",
            ));
        }
        Err(e) => {
            return Err(
                Error::config("the TLS root certificates are not valid PEM certificates")
                    .with_source(e),
            );
        }
    }
    client_trusting(info, pem)
}

/// A TLS client for `info` that trusts the CAs in `pem` (already checked to hold
/// certificates) instead of the system's.
#[cfg(feature = "tls")]
pub(crate) fn client_trusting(info: redis::ConnectionInfo, pem: &[u8]) -> Result<redis::Client> {
    let certificates = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.to_vec()),
    };
    redis::Client::build_with_tls(info, certificates).map_err(|e| {
        Error::config("the TLS root certificates are not valid PEM certificates").with_source(e)
    })
}

// Only the cluster backend calls it without `tls` (to say TLS needs the feature).
#[cfg(all(not(feature = "tls"), feature = "cluster"))]
pub(crate) fn client_trusting(_info: redis::ConnectionInfo, _pem: &[u8]) -> Result<redis::Client> {
    Err(Error::config(
        "TLS root certificates need cache-core's \"tls\" feature",
    ))
}

#[cfg(not(feature = "tls"))]
fn tls_client(
    _url: &str,
    _address: &str,
    _pem: &[u8],
    _invalid: impl Fn(redis::RedisError) -> Error,
) -> Result<redis::Client> {
    Err(Error::config(
        "TLS root certificates need cache-core's \"tls\" feature",
    ))
}

/// True when the TLS handshake failed on the server's certificate.
#[cfg(feature = "tls")]
pub(crate) fn untrusted_certificate(err: &redis::RedisError) -> bool {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(mut current) = cause {
        // RedisError hands out its cause as an Arc, whose own `source` skips the cause.
        if let Some(shared) = current.downcast_ref::<Shared>() {
            current = &**shared;
        }
        // tokio-rustls reports a failed handshake as an io::Error wrapping rustls's error.
        let tls = current.downcast_ref::<rustls::Error>().or_else(|| {
            current
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(tls) = tls {
            return matches!(tls, rustls::Error::InvalidCertificate(_));
        }
        cause = current.source();
    }
    false
}

#[cfg(not(feature = "tls"))]
pub(crate) fn untrusted_certificate(_err: &redis::RedisError) -> bool {
    false
}

/// True when the server refused the connection's user or password.
pub(crate) fn refused_credentials(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
}

/// The error of a failed connection: refused credentials are a configuration problem, anything
/// else a server that cannot be reached.
pub(crate) fn connect_error(address: &str, e: redis::RedisError) -> Error {
    let err = if refused_credentials(&e) {
        Error::config(format!(
            "Redis at {address} refused the credentials: check the user and password in CACHE_URL \
             (and that the ACL user is enabled)"
        ))
    } else if untrusted_certificate(&e) {
        Error::new(
            ErrorKind::Connect,
            format!(
                "Redis at {address} presented a TLS certificate that is not trusted: if a private \
                 CA signed it, trust that CA with CacheBuilder::tls_root_certificates"
            ),
        )
    } else {
        Error::new(
            ErrorKind::Connect,
            format!("cannot connect to Redis at {address}: is redis-server running and reachable?"),
        )
    };
    // RedisError's Display never includes the connection password.
    err.with_source(e)
}

/// `GET prefix+key`, the key sent as one argument without building it first.
pub(crate) fn get_cmd(prefix: &str, key: &str) -> redis::Cmd {
    let mut cmd = redis::Cmd::with_capacity(2, 3 + prefix.len() + key.len());
    cmd.arg("GET").arg(Prefixed(prefix, key));
    cmd
}

/// `SET key value [PX ttl]`.
pub(crate) fn set_cmd(
    key: impl redis::ToRedisArgs,
    value: &[u8],
    ttl: Option<Duration>,
) -> redis::Cmd {
    // Sized once for the usual key and the options, rather than grown argument by argument.
    let mut cmd = redis::Cmd::with_capacity(6, value.len() + 128);
    cmd.arg("SET").arg(key).arg(value);
    if let Some(ttl) = ttl {
        cmd.arg("PX").arg(px(ttl));
    }
    cmd
}

/// `SET key value PX ttl NX`: stores only where nothing is (a lease).
pub(crate) fn set_if_absent_cmd(key: &str, value: &[u8], ttl: Duration) -> redis::Cmd {
    let mut cmd = set_cmd(key, value, Some(ttl));
    cmd.arg("NX");
    cmd
}

/// `SET key value XX KEEPTTL`: replaces an existing value, keeping its expiry (a tag version).
pub(crate) fn replace_cmd(key: &str, value: &[u8]) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value).arg("XX").arg("KEEPTTL");
    cmd
}

/// `ttl` in whole milliseconds for `PX`, rounded up: a 500 µs TTL must not become `PX 0`,
/// which Redis rejects.
pub(crate) fn px(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_nanos().div_ceil(1_000_000))
        .unwrap_or(u64::MAX)
        .max(1)
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

/// Subscribes to `channel` on a dedicated connection of `client`; the receiver closes when
/// that connection is lost. A subscribed connection can run no other command, hence its own.
pub(crate) async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> Result<mpsc::Receiver<Vec<u8>>> {
    let mut pubsub = client.get_async_pubsub().await.map_err(Error::redis)?;
    pubsub.subscribe(channel).await.map_err(Error::redis)?;
    let mut messages = pubsub.into_on_message();
    // Bounded: a receiver that stops reading holds the forwarder, not unbounded memory.
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                // The subscriber is gone (its cache was dropped): close the connection now
                // rather than at the channel's next message.
                () = tx.closed() => return,
            };
            let Some(message) = message else { return };
            if tx.send(message.get_payload_bytes().to_vec()).await.is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

/// The Lua scripts behind the operations Redis has no single command for. `Script` sends
/// `EVALSHA` and falls back to `EVAL` once per connection when the server does not know it.
pub(crate) mod scripts {
    use std::sync::OnceLock;

    /// `KEYS[1]`: the key; `ARGV[1]`: the value it must hold to be removed.
    pub(crate) fn delete_if_equals() -> &'static redis::Script {
        static SCRIPT: OnceLock<redis::Script> = OnceLock::new();
        SCRIPT.get_or_init(|| {
            redis::Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                   return redis.call('DEL', KEYS[1]) \
                 end \
                 return 0",
            )
        })
    }

    /// `KEYS[1]`: a load's lease; `KEYS[2]`: the key it loads; `ARGV[1]`: the load's token;
    /// `ARGV[2]`: the value; `ARGV[3]`: its expiry in milliseconds, `0` for none. Stores the
    /// value and ends the lease only while the lease holds the token; 1 when stored.
    pub(crate) fn set_if_leased() -> &'static redis::Script {
        static SCRIPT: OnceLock<redis::Script> = OnceLock::new();
        SCRIPT.get_or_init(|| {
            redis::Script::new(
                "if redis.call('GET', KEYS[1]) ~= ARGV[1] then \
                   return 0 \
                 end \
                 redis.call('DEL', KEYS[1]) \
                 if ARGV[3] == '0' then \
                   redis.call('SET', KEYS[2], ARGV[2]) \
                 else \
                   redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3]) \
                 end \
                 return 1",
            )
        })
    }

    /// One call of [`get_or_create`] on `conn`: the value under `key`, created as `candidate`
    /// where missing, kept at least `millis` ms (`0`: never expires).
    pub(crate) async fn get_or_create_on(
        mut conn: impl redis::aio::ConnectionLike,
        key: &str,
        candidate: &[u8],
        millis: u64,
    ) -> redis::RedisResult<Vec<u8>> {
        get_or_create()
            .key(key)
            .arg(candidate)
            .arg(millis)
            .invoke_async(&mut conn)
            .await
    }

    /// `KEYS[1]`: the key; `ARGV[1]`: the value to create it with; `ARGV[2]`: the least expiry
    /// it must have afterwards, in milliseconds, `0` for none. Returns the value.
    pub(crate) fn get_or_create() -> &'static redis::Script {
        static SCRIPT: OnceLock<redis::Script> = OnceLock::new();
        SCRIPT.get_or_init(|| {
            redis::Script::new(
                "local ttl = tonumber(ARGV[2]) \
                 local value = redis.call('GET', KEYS[1]) \
                 if not value then \
                   value = ARGV[1] \
                   if ttl > 0 then \
                     redis.call('SET', KEYS[1], value, 'PX', ttl) \
                   else \
                     redis.call('SET', KEYS[1], value) \
                   end \
                 elseif ttl == 0 then \
                   redis.call('PERSIST', KEYS[1]) \
                 else \
                   local left = redis.call('PTTL', KEYS[1]) \
                   if left >= 0 and left < ttl then \
                     redis.call('PEXPIRE', KEYS[1], ttl) \
                   end \
                 end \
                 return value",
            )
        })
    }
}
