//! The service assembled: the shared [`AppState`] and the [`router`] with every route and the
//! middleware around them.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use cache_adapters::HttpCacheLayer;
use cache_core::Cache;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{JwtKeys, PasswordHashing};
use crate::config::Config;
use crate::db::Database;
use crate::nocache::NoCache;
use crate::ratelimit::RateLimiter;
use crate::redis_conn::SharedRedis;
use crate::sessions::Sessions;
use crate::{
    auth, error, foods, health, meals, openapi, ratelimit, security, stats, telemetry, users,
};

/// The largest JSON body accepted.
pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// What every handler shares: cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database: the truth.
    pub db: Database,
    /// The cache of per-user answers (a day, stats, a profile): copies only, read from the
    /// shared store every time, so the next read after a user's write shows it whichever
    /// replica serves it.
    pub cache: Cache,
    /// The cache of answers every user shares (the food search's HTTP responses): the same
    /// store, plus the local tier when `CACHE_LOCAL_CAPACITY` sets one (else the same handle as
    /// `cache`).
    pub shared_cache: Cache,
    /// The configuration.
    pub config: Arc<Config>,
    /// Token signing and checking.
    pub jwt: Arc<JwtKeys>,
    /// Per-user and per-IP limits.
    pub limiter: RateLimiter,
    /// The bound on concurrent password hashing.
    pub hashing: PasswordHashing,
    /// Sessions, refresh tokens and the revocation list.
    pub sessions: Sessions,
    /// When the process started.
    pub started: Instant,
}

impl AppState {
    /// Connects to the database (migrating it) and the cache that `config` names.
    ///
    /// `CACHE_URL` unset means the in-process memory cache, as with `Cache::from_env`, and
    /// `none` means no cache at all ([`NoCache`]); the URL
    /// comes through [`Config`] so that tests can run several stacks in one process. A Redis that
    /// does not answer at start is an error (a misconfiguration should be loud); once running,
    /// a Redis failure only makes requests slower.
    ///
    /// # Errors
    /// An unreachable database or cache, or a failed migration.
    pub async fn new(config: Config) -> anyhow::Result<Self> {
        config.check_for_serving()?;
        // Before the cache, so that its metric handles register with the recorder.
        let _ = telemetry::prometheus();
        let db = Database::connect(&config.database_url, config.database_max_connections).await?;
        let tls_roots = match &config.cache_tls_ca_file {
            Some(file) => Some(std::fs::read(file).with_context(|| {
                format!(
                    "CACHE_TLS_CA_FILE {}: cannot read it; point it at the PEM file of the CA \
                     that signed Redis's certificate",
                    file.display()
                )
            })?),
            None => None,
        };
        let builder = || {
            let cache = Cache::builder().namespace("calories");
            let cache = match config.cache_url.as_deref() {
                None => cache,
                Some("none") => cache.backend(NoCache),
                Some(url) => cache.url(url),
            };
            match &tls_roots {
                Some(pem) => cache.tls_root_certificates(pem.clone()),
                None => cache,
            }
        };
        let cache = builder().build().await?;
        // The local tier holds only what every user shares. A local copy of a per-user answer
        // lags a write on another replica until its invalidation arrives over Pub/Sub (a few
        // ms, longer on a busy node), while the user's next request, round-robined to another
        // replica, can come sooner: the capacity run's oracle caught that stale read. Per-user
        // answers are read from Redis every time instead (one round trip), which the write's
        // invalidation has already reached.
        let shared_cache = match config.cache_local_tier {
            Some((capacity, ttl)) => builder().local_tier(capacity, ttl).build().await?,
            None => cache.clone(),
        };
        // Shared by the replicas on RATE_LIMIT_URL or else the cache's Redis (single, TLS or
        // cluster); in-process with the memory cache or none.
        let limiter_url = config
            .rate_limit_url
            .as_deref()
            .or(config.cache_url.as_deref());
        let limiter_redis = match limiter_url {
            Some(url) if url.starts_with("redis") => {
                Some(SharedRedis::connect(url, tls_roots.as_deref()).await?)
            }
            _ => None,
        };
        let limiter = match &limiter_redis {
            Some(conn) => RateLimiter::redis(conn.clone(), config.limits()),
            None => RateLimiter::local(config.limits()),
        };
        // Read-your-writes markers beside the limiter's counters: a Redis that does not evict
        // them, shared by every app replica (see crate::replica).
        let db = match config.database_read_url.as_deref() {
            Some(url) => db.with_replica(
                url,
                config.database_read_max_connections,
                config.read_your_writes,
                limiter_redis,
            )?,
            None => db,
        };
        // Sessions live beside the limiter's counters: a Redis that does not evict them.
        let sessions = match limiter_url {
            Some(url) if url.starts_with("redis") => {
                let conn = SharedRedis::connect(url, tls_roots.as_deref()).await?;
                Sessions::redis(conn, config.refresh_ttl, config.jwt_ttl)
            }
            _ => Sessions::memory(config.refresh_ttl, config.jwt_ttl),
        };
        let hashing =
            PasswordHashing::new(config.password_hash_concurrency, config.password_hash_wait);
        Ok(Self {
            db,
            cache,
            shared_cache,
            jwt: Arc::new(JwtKeys::new(&config.jwt_secret, config.jwt_ttl)),
            config: Arc::new(config),
            limiter,
            hashing,
            sessions,
            started: Instant::now(),
        })
    }
}

/// Every route, with its middleware.
///
/// Outermost first: panic catcher, tracing, metrics; then, for the API only, the rate limiter;
/// `/foods` also goes through the HTTP cache layer. Health and metrics are never rate limited.
pub fn router(state: AppState) -> Router {
    let foods = Router::new()
        .route("/foods", get(foods::search))
        .layer(HttpCacheLayer::new(state.shared_cache.clone()).max_body_bytes(512 * 1024))
        // Outside the cache: the cache only ever sees the canonical URI of a valid query.
        .layer(middleware::from_fn(foods::canonical_query));
    let api = Router::new()
        .route("/auth/register", post(auth::register))
        .route("/auth/login", post(auth::login))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/logout-all", post(auth::logout_all))
        .route("/auth/sessions", get(auth::list_sessions))
        .route(
            "/auth/sessions/{id}",
            axum::routing::delete(auth::delete_session),
        )
        .route("/users/me", get(users::me).patch(users::update_me))
        .route("/meals", get(meals::list).post(meals::create))
        .route(
            "/meals/upload",
            post(meals::upload).layer(meals::upload_body_limit()),
        )
        .route("/meals/daily", get(meals::daily))
        .route("/meals/{id}", get(meals::get_one).delete(meals::delete))
        .route("/meals/{id}/photo", get(meals::photo))
        .route("/stats", get(stats::stats))
        .merge(foods)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            ratelimit::limit,
        ));
    let operations = Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/health", get(health::health))
        .route("/metrics", get(telemetry::metrics))
        .route("/openapi.json", get(openapi::openapi_json));
    Router::new()
        .merge(api)
        .merge(operations)
        .fallback(error::route_not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            telemetry::track,
        ))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(error::panic_response))
        // Outermost, so that errors and panics get them too.
        .layer(middleware::from_fn(security::headers))
        .with_state(state)
}
