//! The process-wide cache that `#[cache_result]` uses when it is given no `cache = ..`.

use std::sync::OnceLock;

use crate::cache::Cache;
use crate::error::{Error, Result};

static GLOBAL: OnceLock<Cache> = OnceLock::new();

/// Makes `cache` the process-wide cache of every `#[cache_result]` function without a
/// `cache = ..` option. Call it once at startup, before the first cached call.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cache_core::Result<()> {
/// let cache = cache_core::Cache::from_env().await?;
/// cache_core::install_global(cache.clone())?;
/// assert_eq!(cache_core::global().namespace(), cache.namespace());
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`ErrorKind::Config`](crate::ErrorKind::Config) when a process-wide cache is already in use:
/// installed before, or created as the memory fallback by a cached call that came first.
pub fn install_global(cache: Cache) -> Result<()> {
    GLOBAL.set(cache).map_err(|_| {
        Error::config(
            "a process-wide cache is already in use: call install_global once, at startup, \
             before the first #[cache_result] call",
        )
    })
}

/// The process-wide cache: the one given to [`install_global`], or else a memory cache with the
/// default settings, created on first use.
///
/// ```
/// let cache = cache_core::global();
/// assert!(["memory", "redis"].contains(&cache.backend_name()));
/// ```
pub fn global() -> &'static Cache {
    GLOBAL.get_or_init(|| {
        tracing::info!("no cache installed with cache_core::install_global: #[cache_result] uses a memory cache");
        Cache::memory()
    })
}
