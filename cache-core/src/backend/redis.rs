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
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::mpsc;

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
    connections: Box<[RwLock<Slot>]>,
    next: AtomicUsize,
    address: String,
    op_timeout: Duration,
    /// What a replacement manager is made from (see [`needs_new_manager`]).
    client: redis::Client,
    config: ConnectionManagerConfig,
}

/// One connection manager and how many times it has been replaced.
struct Slot {
    generation: u64,
    manager: ConnectionManager,
}

/// A connection manager taken for one operation, and where it came from.
struct Lease {
    slot: usize,
    generation: u64,
    manager: ConnectionManager,
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
                .map_err(|e| connect_error(&address, e))?;
            managers.push(RwLock::new(Slot {
                generation: 0,
                manager,
            }));
        }
        Ok(Self {
            connections: managers.into_boxed_slice(),
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

    fn connection(&self) -> Lease {
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        let held = self.connections[slot]
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Lease {
            slot,
            generation: held.generation,
            manager: held.manager.clone(),
        }
    }

    /// Turns a command's result into the cache's, replacing the lease's manager when the
    /// error says it will not recover by itself.
    fn settle<T>(&self, lease: &Lease, result: redis::RedisResult<T>) -> Result<T> {
        if let Err(err) = &result
            && needs_new_manager(err)
        {
            self.replace(lease);
        }
        Ok(result?)
    }

    fn replace(&self, lease: &Lease) {
        let mut held = self.connections[lease.slot]
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Another operation on the same manager may have replaced it already.
        if held.generation != lease.generation {
            return;
        }
        // Lazy: it connects on its first use, under that operation's timeout.
        match ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone()) {
            Ok(manager) => {
                held.generation += 1;
                held.manager = manager;
                tracing::debug!(address = %self.address, "redis connection replaced");
            }
            Err(err) => tracing::debug!(error = %err, "redis connection not replaced"),
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        let mut lease = self.connection();
        let result = cmd.query_async(&mut lease.manager).await;
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
    let certificates = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.to_vec()),
    };
    redis::Client::build_with_tls(info, certificates).map_err(|e| {
        Error::config("the TLS root certificates are not valid PEM certificates").with_source(e)
    })
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

/// True for an error after which a manager will not recover by itself. The `redis` crate's
/// manager reconnects after an I/O error, but when a *reconnection* fails otherwise (a reply cut
/// mid-way through the connection's handshake is a parse error; refused credentials are an
/// authentication error), it keeps that failed connection and returns its error to every later
/// call without trying again: the cache would never reach Redis again. `tests/faults.rs` cuts a
/// handshake to show it. Replacing the manager costs one connection attempt, and the circuit
/// breaker paces the calls that can trigger it.
fn needs_new_manager(err: &redis::RedisError) -> bool {
    err.is_unrecoverable_error() && !err.is_io_error()
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

pub(crate) fn set_cmd(key: &str, value: &[u8], ttl: Option<Duration>) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
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
        let mut lease = self.connection();
        let result = pipe.query_async(&mut lease.manager).await;
        self.settle(&lease, result)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let removed: u64 = self.query(redis::cmd("UNLINK").arg(key)).await?;
        Ok(removed > 0)
    }

    async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        let lease = self.connection();
        let mut conn = lease.manager.clone();
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
        let mut lease = self.connection();
        let result = scripts::delete_if_equals()
            .key(key)
            .arg(value)
            .invoke_async(&mut lease.manager)
            .await;
        self.settle(&lease, result)
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
        let lease = self.connection();
        // Sent together on the multiplexed connection: one round trip. Not a `pipe()`: a
        // script invocation there does not fall back to EVAL after a server restart.
        let calls = keys.iter().zip(candidates).map(|(key, candidate)| {
            let mut conn = lease.manager.clone();
            async move {
                scripts::get_or_create()
                    .key(key)
                    .arg(candidate)
                    .arg(millis)
                    .invoke_async::<Vec<u8>>(&mut conn)
                    .await
            }
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
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
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
