//! calories-app: a calories-tracking service, written the way a Rust team would ship it, that
//! shows cache-core's three uses against real traffic, a real database and real invalidation:
//!
//! - the typed API: `GET /meals/daily` ([`meals::daily`]) and `GET /users/me` ([`users::profile`]);
//! - `#[cache_result]`: `GET /stats` ([`stats::user_stats`]);
//! - the HTTP layer: `GET /foods` ([`foods::search`]) through cache-adapters.
//!
//! [`cached`] lists every key and what invalidates it. It runs with no services at all (SQLite in
//! `./data`, the memory cache) and on MySQL and Redis when `DATABASE_URL` and `CACHE_URL` say so.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let state = calories_app::AppState::new(calories_app::Config::from_env()?).await?;
//! let listener = tokio::net::TcpListener::bind(state.config.bind_addr).await?;
//! calories_app::serve(listener, state, std::future::pending()).await?;
//! # Ok(()) }
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod auth;
pub mod cached;
pub mod config;
pub mod db;
pub mod error;
pub mod extract;
pub mod foods;
pub mod health;
pub mod idempotency;
pub mod meals;
pub mod nocache;
pub mod openapi;
pub mod outage;
pub mod photos;
pub mod probe;
pub mod ratelimit;
pub mod redis_conn;
pub mod replica;
pub mod security;
pub mod seed;
pub mod server;
pub mod sessions;
pub mod stats;
pub mod telemetry;
pub mod users;
pub mod validate;

use std::future::Future;

pub use crate::app::{AppState, router};
pub use crate::config::Config;
pub use crate::error::ApiError;
pub use crate::openapi::ApiDoc;
pub use crate::ratelimit::RateLimiter;

/// Serves `state`'s router on `listener` until `shutdown` completes, then lets in-flight
/// requests finish (for at most `SHUTDOWN_GRACE_SECONDS`) before returning; with the header,
/// request and concurrency bounds of [`server`].
///
/// # Errors
/// The listener failed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve(listener, state, shutdown).await
}

/// Completes on SIGTERM (what Kubernetes and Docker send) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// The workspace README's examples, run as doctests here: the app depends on every crate they
/// use, and a published crate may not reach outside its own folder.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct WorkspaceReadmeDoctests;
