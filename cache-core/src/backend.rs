//! The remote tier: the [`Backend`] trait (bytes in, bytes out) and its Redis implementation.
//!
//! A backend knows nothing of types, codecs, namespaces or failure policy: [`Cache`](crate::Cache)
//! encodes, prefixes keys, applies timeouts and the circuit breaker, then calls the backend with
//! full keys and envelope bytes.

pub mod redis;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;

pub use self::redis::RedisBackend;

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
}
