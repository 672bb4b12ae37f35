//! The remote tier: the [`Backend`] trait (bytes in, bytes out) and its Redis and Redis Cluster
//! implementations.
//!
//! A backend knows nothing of types, codecs, namespaces or failure policy: [`Cache`](crate::Cache)
//! encodes, prefixes keys, applies timeouts and the circuit breaker, then calls the backend with
//! full keys and envelope bytes.

#[cfg(feature = "cluster")]
mod cluster;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::error::{Error, Result};

#[cfg(feature = "cluster")]
#[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
pub use self::cluster::RedisClusterBackend;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::RedisBackend;
#[cfg(feature = "redis")]
pub(crate) use self::redis::client;

/// A remote store of bytes under string keys, with per-key expiry.
///
/// Implementations must be safe to call concurrently and should pipeline or pool connections so
/// that concurrent calls do not queue behind each other. Keys arrive fully qualified (namespace
/// included); patterns are Redis globs, already validated.
///
/// ```
/// use cache_core::Backend;
///
/// fn assert_object_safe(_: &dyn Backend) {}
/// ```
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs and the `backend` metric label.
    fn name(&self) -> &'static str {
        "custom"
    }

    /// The stored bytes under `key`, or `None`.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// The stored bytes under each key, in order, in one round trip.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>>;

    /// Stores `value` under `key`, expiring after `ttl` (`None`: never).
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()>;

    /// Stores every entry, each expiring after `ttl`, in one round trip.
    async fn set_many(&self, entries: &[(String, Vec<u8>)], ttl: Option<Duration>) -> Result<()>;

    /// Removes `key`; true when it existed.
    async fn delete(&self, key: &str) -> Result<bool>;

    /// Removes every key matching the glob `pattern` in bounded batches; the number removed.
    ///
    /// Each batch is its own short operation with its own timeout, so the call as a whole may
    /// take as long as the key space needs while never blocking the server for long.
    async fn delete_pattern(&self, pattern: &str) -> Result<u64>;

    /// Checks that the backend answers.
    async fn ping(&self) -> Result<()>;

    /// Stores `value` under `key` only when no value is there, expiring after `ttl`; true when
    /// stored. The cross-replica loader lease (`SET NX PX`) is built on it.
    ///
    /// The default says [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported).
    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool> {
        let _ = (key, value, ttl);
        Err(Error::unsupported(
            self.name(),
            "set_if_absent (loader leases)",
        ))
    }

    /// Removes `key` only when it holds exactly `value`, atomically; true when removed. A lease
    /// is released with it, so that only its owner can release it.
    async fn delete_if_equals(&self, key: &str, value: &[u8]) -> Result<bool> {
        let _ = (key, value);
        Err(Error::unsupported(
            self.name(),
            "delete_if_equals (loader leases)",
        ))
    }

    /// Stores `value` under `key` (expiring after `ttl`) only while `lease_key` holds `token`,
    /// and removes `lease_key`; true when stored. A read-through stores its loaded value with
    /// it: the lease was set when the load began, and a delete in the meantime removed it, so a
    /// value read from the database before a write is never stored after the write's delete.
    ///
    /// The default stores, then takes the lease back, and withdraws the value (if it is still
    /// the one stored) when the lease was gone: correct once it returns, but the withdrawn value
    /// is readable for one round trip. Backends that can do it atomically (Redis, with a script)
    /// override it. Without [`delete_if_equals`](Backend::delete_if_equals) it stores
    /// unguarded, as a plain [`set`](Backend::set).
    async fn set_if_leased(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        lease_key: &str,
        token: &[u8],
    ) -> Result<bool> {
        self.set(key, value, ttl).await?;
        match self.delete_if_equals(lease_key, token).await {
            Ok(true) => Ok(true),
            // A backend without compare-and-delete stores as it always did, unguarded, rather
            // than failing every read-through's store.
            Err(err) if err.kind() == crate::ErrorKind::Unsupported => Ok(true),
            Err(err) => Err(err),
            Ok(false) => {
                self.delete_if_equals(key, value).await?;
                Ok(false)
            }
        }
    }

    /// Removes `key` and the lease of any load of it running (`lease_key`), the lease first:
    /// the load's [`set_if_leased`](Backend::set_if_leased) then fails, or stored before and
    /// its value is removed here. True when `key` was there.
    async fn delete_leased(&self, key: &str, lease_key: &str) -> Result<bool> {
        self.delete(lease_key).await?;
        self.delete(key).await
    }

    /// Replaces the value under `key` with `value`, keeping its expiry, only when the key
    /// exists; true when replaced. A tag is invalidated with it.
    async fn replace_if_present(&self, key: &str, value: &[u8]) -> Result<bool> {
        let _ = (key, value);
        Err(Error::unsupported(self.name(), "replace_if_present (tags)"))
    }

    /// The value under each of `keys`, in order; a key without one first gets the matching
    /// entry of `candidates`. Each key's expiry is then at least `ttl` (`None`: the key never
    /// expires). In one round trip where the backend can. A tagged write reads its tags'
    /// versions with it.
    async fn get_or_create(
        &self,
        keys: &[String],
        candidates: &[Vec<u8>],
        ttl: Option<Duration>,
    ) -> Result<Vec<Vec<u8>>> {
        let _ = (keys, candidates, ttl);
        Err(Error::unsupported(self.name(), "get_or_create (tags)"))
    }

    /// Sends `message` to every subscriber of `channel`.
    async fn publish(&self, channel: &str, message: &[u8]) -> Result<()> {
        let _ = (channel, message);
        Err(Error::unsupported(self.name(), "publish (the local tier)"))
    }

    /// Subscribes to `channel`. Once this returns, every message published on the channel
    /// arrives on the receiver, in order; the receiver closes when the subscription is lost
    /// (the connection broke), and the caller subscribes again.
    async fn subscribe(&self, channel: &str) -> Result<mpsc::Receiver<Vec<u8>>> {
        let _ = channel;
        Err(Error::unsupported(
            self.name(),
            "subscribe (the local tier)",
        ))
    }
}
