#![cfg_attr(docsrs, feature(doc_cfg))]
//! RFC 9111 HTTP response caching for shared caches over [`cache_core::Cache`]: a tower layer
//! for axum and hyper, and actix-web middleware (feature `actix`), both thin shells around one
//! framework-agnostic policy (RFC 9111 over the `http` crate's types) and one caching flow.
//!
//! ```
//! use axum::{Router, routing::get};
//! use cache_adapters::HttpCacheLayer;
//! use cache_core::Cache;
//!
//! let app: Router = Router::new()
//!     .route("/foods", get(|| async { ([("cache-control", "max-age=60")], "oats, lentils") }))
//!     .layer(HttpCacheLayer::new(Cache::memory()).max_body_bytes(256 * 1024));
//! ```
//!
//! What it does, in short: stores GET responses the RFC lets a shared cache store (never
//! `private`, `no-store`, `Vary: *`, `Set-Cookie` without `public`, or an `Authorization`
//! request's answer unless the response allows it or keys are per user), serves them while
//! fresh with `Age` and `Cache-Status`, revalidates stale ones with `If-None-Match` /
//! `If-Modified-Since`, answers clients' own conditional requests with 304, serves stale under
//! `max-stale`, `stale-while-revalidate` and `stale-if-error`, invalidates on successful unsafe
//! methods, and sends concurrent misses for one URL to the origin once.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `actix` | no | actix-web middleware |
//! | `fuzzing` | no | internal: the entry points of the fuzz targets in `fuzz/`; not API |

#[cfg(feature = "actix")]
mod actix;
mod body;
mod config;
mod engine;
#[cfg(feature = "fuzzing")]
mod fuzzing;
mod layer;
mod policy;
mod stored;

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub use crate::actix::ActixHttpCache;
pub use crate::body::CacheBody;
pub use crate::layer::{HttpCache, HttpCacheLayer, ResponseFuture};

/// For the fuzz targets in `fuzz/` only (feature `fuzzing`): not API, may change at any time.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz {
    pub use crate::fuzzing::*;
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
