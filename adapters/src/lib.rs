//! RFC 9111 HTTP response caching for shared caches over [`cache_core::Cache`]: a tower layer
//! for axum and hyper, and actix-web middleware (feature `actix`), both thin shells around one
//! framework-agnostic [`policy`].
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `actix` | no | actix-web middleware |

pub mod policy;
