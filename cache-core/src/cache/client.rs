//! [`Client`]: the remote backend a cache talks to, by kind, so that the built-in Redis and
//! Redis Cluster backends are called directly on the hit and write paths and a custom
//! [`Backend`] through its trait.

use std::sync::Arc;
use std::time::Duration;

use crate::backend::Backend;
#[cfg(feature = "redis")]
use crate::backend::RedisBackend;
#[cfg(feature = "cluster")]
use crate::backend::RedisClusterBackend;
use crate::error::Result;

/// The remote store of a [`Cache`](crate::Cache).
///
/// Every operation goes through [`backend`](Client::backend) (bytes in, bytes out, one trait),
/// except the two every request makes: a read and a write of one key. For the built-in
/// backends those skip the trait's boxed future and send the namespace prefix and the key as one
/// argument without joining them into a `String` first.
#[derive(Debug, Clone)]
pub(crate) enum Client {
    #[cfg(feature = "redis")]
    Redis(Arc<RedisBackend>),
    #[cfg(feature = "cluster")]
    Cluster(Arc<RedisClusterBackend>),
    Custom(Arc<dyn Backend>),
}

impl Client {
    /// The backend, for every operation but the single-key read and write.
    pub(crate) fn backend(&self) -> &dyn Backend {
        match self {
            #[cfg(feature = "redis")]
            Self::Redis(redis) => redis.as_ref(),
            #[cfg(feature = "cluster")]
            Self::Cluster(cluster) => cluster.as_ref(),
            Self::Custom(backend) => backend.as_ref(),
        }
    }

    /// The backend as a shared handle, for the local tier's subscriber task.
    pub(crate) fn shared(&self) -> Arc<dyn Backend> {
        match self {
            #[cfg(feature = "redis")]
            Self::Redis(redis) => Arc::clone(redis) as Arc<dyn Backend>,
            #[cfg(feature = "cluster")]
            Self::Cluster(cluster) => Arc::clone(cluster) as Arc<dyn Backend>,
            Self::Custom(backend) => Arc::clone(backend),
        }
    }

    /// The value under `prefix` + `key`.
    pub(crate) async fn get(&self, prefix: &str, key: &str) -> Result<Option<Vec<u8>>> {
        match self {
            #[cfg(feature = "redis")]
            Self::Redis(redis) => redis.get_prefixed(prefix, key).await,
            // Boxed: the cluster's future is large, and a read's future holds room for its
            // largest branch, which would slow the single-node path.
            #[cfg(feature = "cluster")]
            Self::Cluster(cluster) => Box::pin(cluster.get_prefixed(prefix, key)).await,
            Self::Custom(backend) => backend.get(&full_key(prefix, key)).await,
        }
    }

    /// Stores `value` under `prefix` + `key`, expiring after `ttl`.
    pub(crate) async fn set(
        &self,
        prefix: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<()> {
        match self {
            #[cfg(feature = "redis")]
            Self::Redis(redis) => redis.set_prefixed(prefix, key, value, ttl).await,
            #[cfg(feature = "cluster")]
            Self::Cluster(cluster) => Box::pin(cluster.set_prefixed(prefix, key, value, ttl)).await,
            Self::Custom(backend) => backend.set(&full_key(prefix, key), value, ttl).await,
        }
    }
}

fn full_key(prefix: &str, key: &str) -> String {
    let mut full = String::with_capacity(prefix.len() + key.len());
    full.push_str(prefix);
    full.push_str(key);
    full
}
