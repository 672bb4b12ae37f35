//! `CACHE_URL=none`: a cache backend that stores nothing, so every read goes to the database.
//!
//! For measuring what the cache buys (`benches/http.sh` runs `/meals/daily` with and without it)
//! and for ruling the cache out while debugging. Every code path stays the same; only the
//! backend's answers change.

use std::time::Duration;

use async_trait::async_trait;
use cache_core::Backend;

/// A backend that stores nothing: every get is a miss, every write succeeds and is forgotten,
/// and the operations of tags and loader leases answer as they would on an empty store (so an
/// invalidation succeeds, with nothing to invalidate, instead of logging a failure per write).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// let cache = cache_core::Cache::builder().backend(calories_app::nocache::NoCache).build().await?;
/// cache.set("k", &1_u32, std::time::Duration::from_secs(60)).await?;
/// assert_eq!(cache.get::<u32>("k").await?, None);
/// cache.invalidate_tag("user:1").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCache;

#[async_trait]
impl Backend for NoCache {
    fn name(&self) -> &'static str {
        "none"
    }

    async fn get(&self, _key: &str) -> cache_core::Result<Option<Vec<u8>>> {
        Ok(None)
    }

    async fn get_many(&self, keys: &[String]) -> cache_core::Result<Vec<Option<Vec<u8>>>> {
        Ok(vec![None; keys.len()])
    }

    async fn set(
        &self,
        _key: &str,
        _value: &[u8],
        _ttl: Option<Duration>,
    ) -> cache_core::Result<()> {
        Ok(())
    }

    async fn set_many(
        &self,
        _entries: &[(String, Vec<u8>)],
        _ttl: Option<Duration>,
    ) -> cache_core::Result<()> {
        Ok(())
    }

    async fn delete(&self, _key: &str) -> cache_core::Result<bool> {
        Ok(false)
    }

    async fn delete_pattern(&self, _pattern: &str) -> cache_core::Result<u64> {
        Ok(0)
    }

    async fn ping(&self) -> cache_core::Result<()> {
        Ok(())
    }

    async fn set_if_absent(
        &self,
        _key: &str,
        _value: &[u8],
        _ttl: Duration,
    ) -> cache_core::Result<bool> {
        Ok(true)
    }

    async fn delete_if_equals(&self, _key: &str, _value: &[u8]) -> cache_core::Result<bool> {
        Ok(false)
    }

    async fn replace_if_present(&self, _key: &str, _value: &[u8]) -> cache_core::Result<bool> {
        Ok(false)
    }

    async fn get_or_create(
        &self,
        _keys: &[String],
        candidates: &[Vec<u8>],
        _ttl: Option<Duration>,
    ) -> cache_core::Result<Vec<Vec<u8>>> {
        Ok(candidates.to_vec())
    }
}
