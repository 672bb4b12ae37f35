//! The tower shell: [`HttpCacheLayer`] builds [`HttpCache<S>`], for axum, hyper and any tower stack.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use cache_core::Cache;
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::CacheBody;
use crate::config::Config;
use crate::engine::{Engine, Origin, Refresh};

/// Caches responses per RFC 9111 (shared cache) in a [`Cache`]: memory or Redis, so that a
/// response cached by one replica is a hit on every other.
///
/// ```
/// use axum::{Router, routing::get};
/// use cache_adapters::HttpCacheLayer;
/// use cache_core::Cache;
///
/// let app: Router = Router::new()
///     .route("/foods", get(|| async { ([("cache-control", "max-age=60")], "oats, lentils") }))
///     .layer(HttpCacheLayer::new(Cache::memory()));
/// ```
///
/// Clones of a layer, and every service it makes, share one state: concurrent misses for a URL
/// reach the origin once across all of them. axum applies a layer again per request to a router
/// without state, and actix-web once per worker: build the layer once and clone it.
#[must_use]
#[derive(Clone, Debug)]
pub struct HttpCacheLayer {
    pub(crate) engine: Arc<Engine>,
}

impl HttpCacheLayer {
    /// A layer storing responses in `cache`, with the defaults: no heuristic freshness, bodies up
    /// to 1 MiB, every status the RFC allows, a `Cache-Status` header named `cache-adapters`.
    pub fn new(cache: Cache) -> Self {
        Self {
            engine: Arc::new(Engine::new(cache, Config::default())),
        }
    }

    /// This layer with its configuration changed, and a state of its own to go with it.
    fn configure(self, change: impl FnOnce(&mut Config)) -> Self {
        let mut config = self.engine.config().clone();
        change(&mut config);
        Self {
            engine: Arc::new(Engine::new(self.engine.cache().clone(), config)),
        }
    }

    /// Caches responses per user: `user` derives an identity (a user id, a token's subject)
    /// from the request, which becomes part of the cache key. Responses to requests with
    /// `Authorization` are then stored (they are that user's alone); anonymous requests
    /// (`None`) share entries as usual. A request with `Authorization` but no identity
    /// (`None`) bypasses the cache: it is neither answered from the shared entry nor stored.
    ///
    /// ```
    /// # use cache_adapters::HttpCacheLayer;
    /// let layer = HttpCacheLayer::new(cache_core::Cache::memory()).per_user(|request| {
    ///     request.headers.get("authorization")?.to_str().ok().map(str::to_owned)
    /// });
    /// ```
    pub fn per_user(self, user: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static) -> Self {
        self.configure(|config| config.user = Some(Arc::new(user)))
    }

    /// Freshness for responses that state none (no `max-age`, `s-maxage` or `Expires`).
    pub fn default_ttl(self, ttl: Duration) -> Self {
        self.configure(|config| config.rules.heuristics.default_ttl = Some(ttl))
    }

    /// Heuristic freshness from `Last-Modified` (RFC 9111 §4.2.2): off by default.
    pub fn heuristic_freshness(self, enabled: bool) -> Self {
        self.configure(|config| config.rules.heuristics.last_modified_fraction = enabled)
    }

    /// Store responses that carry `Set-Cookie` (RFC 9111 §7.3 allows it). Off by default:
    /// behind an application a cookie is usually a session, which a shared cache must never
    /// replay to another user. A response can still opt in with `Cache-Control: public`.
    pub fn store_set_cookie(self, enabled: bool) -> Self {
        self.configure(|config| config.rules.store_set_cookie = enabled)
    }

    /// The largest body stored (default 1 MiB); larger responses stream through, unstored.
    pub fn max_body_bytes(self, limit: usize) -> Self {
        self.configure(|config| config.max_body = limit)
    }

    /// Store only responses with these statuses (default: every status the RFC allows).
    pub fn statuses(self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.configure(|config| config.statuses = Some(statuses.into_iter().collect()))
    }

    /// The name this cache gives itself in the `Cache-Status` response header (RFC 9211), or
    /// `None` to add no such header.
    pub fn cache_status(self, name: Option<impl Into<String>>) -> Self {
        self.configure(|config| config.cache_status = name.map(Into::into))
    }

    /// How long an entry is kept after it goes stale, to be revalidated with a conditional
    /// request or served under `max-stale` / `stale-*` (default one hour).
    pub fn retention(self, keep: Duration) -> Self {
        self.configure(|config| config.retention = keep)
    }
}

impl<S> Layer<S> for HttpCacheLayer {
    type Service = HttpCache<S>;

    fn layer(&self, inner: S) -> HttpCache<S> {
        HttpCache {
            inner,
            engine: Arc::clone(&self.engine),
        }
    }
}

/// The caching service [`HttpCacheLayer`] wraps around `S`.
#[derive(Clone, Debug)]
pub struct HttpCache<S> {
    inner: S,
    engine: Arc<Engine>,
}

/// The inner service, as the engine's origin.
#[derive(Clone)]
struct Inner<S>(S);

impl<S, B, RB> Origin<B> for Inner<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    B: Send + 'static,
    RB: Body<Data = Bytes> + Send + Unpin + 'static,
{
    type Body = RB;
    type Error = S::Error;

    async fn send(&mut self, request: Request<B>) -> Result<Response<RB>, S::Error> {
        std::future::poll_fn(|cx| self.0.poll_ready(cx)).await?;
        self.0.call(request).await
    }

    fn spawn_refresh(self, engine: Arc<Engine>, refresh: Refresh<B>) {
        tokio::spawn(engine.run_refresh(self, refresh));
    }
}

impl<S, B, RB> Service<Request<B>> for HttpCache<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    B: Send + 'static,
    RB: Body<Data = Bytes> + Send + Unpin + 'static,
{
    type Response = Response<CacheBody<RB>>;
    type Error = S::Error;
    type Future = ResponseFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The clone is not ready; the original, which was, serves this request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let engine = Arc::clone(&self.engine);
        ResponseFuture {
            inner: Box::pin(engine.handle(request, Inner(inner))),
        }
    }
}

/// The future of [`HttpCache`]'s responses.
pub struct ResponseFuture<T> {
    inner: Pin<Box<dyn Future<Output = T> + Send>>,
}

impl<T> fmt::Debug for ResponseFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<T> Future for ResponseFuture<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.inner.as_mut().poll(cx)
    }
}
