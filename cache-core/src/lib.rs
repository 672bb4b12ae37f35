#![cfg_attr(docsrs, feature(doc_cfg))]
//! A typed cache for Rust web services: in-process memory, Redis or Redis Cluster behind one
//! [`Cache`] handle, with keys that cannot be glob-injected, read-through with stampede
//! protection, and a failure policy under which the cache never fails a request.
//!
//! ```
//! use std::time::Duration;
//! use cache_core::{Cache, key};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Serialize, Deserialize)]
//! struct Stats { avg_kcal: u32 }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cache_core::Result<()> {
//! // Memory unless CACHE_URL says redis://...
//! let cache = Cache::from_env().await?;
//! let user_id = 42_i64;
//! let stats = cache
//!     .get_or_insert_with(key!("user_stats", user_id), Duration::from_secs(1800), || async {
//!         Stats { avg_kcal: 2100 } // the database query goes here
//!     })
//!     .await;
//! assert_eq!(stats.avg_kcal, 2100);
//! cache.delete_pattern(key!("user_stats", user_id).as_str()).await?;
//! # Ok(()) }
//! ```
//!
//! # The parts
//!
//! - [`Cache`]: the handle. `get`, `set`, `delete`, `delete_pattern`, `get_many`, `set_many`,
//!   `get_or_insert_with`, `get_or_try_insert_with`, `get_or_refresh`; `set_with_tags` and
//!   `invalidate_tag`.
//! - [`Expiry`]: how a read-through's value lives: TTL, stale window, refresh ahead, tags, and
//!   [`lock`](Expiry::lock) (one loader per key across replicas).
//! - [`CacheBuilder`]: URL, namespace, [`codec`], timeouts, default [`Ttl`], [`MemoryCapacity`],
//!   circuit breaker, and [`local_tier`](CacheBuilder::local_tier): an in-process tier in front
//!   of Redis, kept coherent across replicas over Redis Pub/Sub.
//! - [`Key`], [`key!`] and [`KeyPart`]: keys from untrusted parts, escaped.
//! - [`Backend`]: the remote tier's trait (bytes in, bytes out), implemented for Redis and for
//!   Redis Cluster (`redis+cluster://host:port,host:port`, see [`Cache::connect`]).
//! - [`flight`]: single-flight, one caller per key does the work and the others share its
//!   outcome (the read-through's stampede protection, usable on its own).
//! - [`metrics`]: the metric names.
//! - [`cache_result`]: `#[cache_result(expire = 1800, key_prefix = "user_stats")]` on an async
//!   function, method or web handler (feature `macros`).
//! - [`install_global`] / [`global`]: the process-wide cache of `#[cache_result]` functions
//!   given no `cache = ..`.
//!
//! # Failure policy
//!
//! The cache accelerates; the database is the truth. Every backend operation has a timeout
//! (250 ms by default) and repeated failures open a circuit breaker that skips the backend for a
//! cool-down, then probes it. `get_or_insert_with` and friends never fail because of the cache:
//! the loader runs and its value is returned, with the failure counted and logged; direct
//! operations return an [`Error`] whose [`ErrorKind`] the caller can match.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `macros` | yes | [`cache_result`], re-exported from `cache-macros` |
//! | `redis` | yes | `redis://` URLs and [`backend::RedisBackend`]; without it (and `cluster`), a memory-only cache with no Redis client compiled: `default-features = false, features = ["macros"]` |
//! | `cluster` | yes | `redis+cluster://` URLs and [`backend::RedisClusterBackend`] (needs `redis`) |
//! | `tls` | no | `rediss://` and `rediss+cluster://` URLs (Redis over TLS, rustls with the ring provider); `CacheBuilder::tls_root_certificates` for a private CA |
//! | `uuid`, `chrono`, `time` | no | [`KeyPart`] for those crates' ids, dates and times |
//! | `axum` | no | [`KeyPart`] for axum's `Path` and `Query` extractors |
//! | `actix` | no | [`KeyPart`] for actix-web's `web::Path` and `web::Query` |
//! | `fuzzing` | no | internal: the entry points of the fuzz targets in `fuzz/`; not API |

pub mod backend;
mod builder;
mod cache;
pub mod codec;
mod envelope;
mod error;
mod expiry;
mod failure;
pub mod flight;
#[cfg(feature = "fuzzing")]
mod fuzzing;
mod global;
mod key;
mod macro_support;
mod memory;
pub mod metrics;
mod pattern;
mod tier;
mod ttl;
mod url;

pub use crate::backend::Backend;
pub use crate::builder::CacheBuilder;
pub use crate::cache::{Cache, Cacheable};
pub use crate::error::{Error, ErrorKind, Result};
pub use crate::expiry::{DEFAULT_LOCK_TIMEOUT, Expiry};
pub use crate::global::{global, install_global};
pub use crate::key::{Key, KeyPart, PartWriter};
pub use crate::memory::MemoryCapacity;
pub use crate::ttl::Ttl;
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use cache_macros::cache_result;

#[doc(hidden)]
pub mod __private {
    pub use crate::macro_support::*;
}

/// For the fuzz targets in `fuzz/` only (feature `fuzzing`): not API, may change at any time.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz {
    pub use crate::fuzzing::*;
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
