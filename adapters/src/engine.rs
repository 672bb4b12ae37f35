//! The caching flow shared by every framework shell: look up, decide, validate, coalesce,
//! store. Decisions come from [`policy`](crate::policy); storage is a [`cache_core::Cache`].
//! This module holds the state and the dispatch of one request; its submodules do the work.

mod lookup;
mod respond;
mod revalidate;
mod store;

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use cache_core::flight::SingleFlight;
use cache_core::{Cache, Key};
use http::header::{AUTHORIZATION, RANGE};
use http::{Method, Request, Response};
use http_body::Body;

use crate::body::CacheBody;
use crate::config::Config;
use crate::policy::{self, CacheControl, Reuse, freshness};
use crate::stored::{StoredResponse, Variants};

pub(crate) use self::revalidate::Refresh;

/// Where requests the cache cannot answer go: the wrapped service of a framework shell.
///
/// Futures need not be `Send` (actix-web services are not); each shell runs background
/// refreshes on its own runtime through [`Origin::spawn_refresh`].
pub(crate) trait Origin<B>: Sized + 'static {
    type Body: Body<Data = Bytes> + Unpin + 'static;
    type Error: 'static;
    fn send(
        &mut self,
        request: Request<B>,
    ) -> impl Future<Output = Result<Response<Self::Body>, Self::Error>>;
    /// Runs `engine.run_refresh(self, refresh)` in the background.
    fn spawn_refresh(self, engine: Arc<Engine>, refresh: Refresh<B>);
}

type Reply<O, B> = Result<Response<CacheBody<<O as Origin<B>>::Body>>, <O as Origin<B>>::Error>;

/// What one cache lookup found, and what `Cache-Status` should say about it.
struct Found {
    variants: Variants,
    key: Key,
}

/// The shared state of one cache layer.
#[derive(Debug)]
pub(crate) struct Engine {
    cache: Cache,
    config: Config,
    /// `Cache-Status` up to this cache's entry: `name; `, rendered once.
    status_prefix: Option<String>,
    misses: SingleFlight<Option<Arc<StoredResponse>>>,
    /// Keys with a background refresh under way: claimed before it is spawned, so that stale
    /// hits arriving before it starts do not spawn another.
    refreshing: Mutex<HashSet<String>>,
}

/// The policy's clock: seconds since the Unix epoch.
fn now() -> u64 {
    freshness::unix_seconds(SystemTime::now())
}

impl Engine {
    pub(crate) fn new(cache: Cache, config: Config) -> Self {
        let status_prefix = config.cache_status.as_ref().map(|name| format!("{name}; "));
        Self {
            cache,
            config,
            status_prefix,
            misses: SingleFlight::new(),
            refreshing: Mutex::default(),
        }
    }

    pub(crate) fn cache(&self) -> &Cache {
        &self.cache
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// Answers one request.
    ///
    /// Not an `async fn`: the shells box this future on every request, and an `async fn`'s
    /// future would hold its arguments twice, as received and as moved into its body.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would store the request twice; see above"
    )]
    pub(crate) fn handle<B, O>(
        self: Arc<Self>,
        request: Request<B>,
        origin: O,
    ) -> impl Future<Output = Reply<O, B>>
    where
        B: 'static,
        O: Origin<B>,
    {
        async move {
            // Paths other than a hit are awaited in boxes of their own: a future is as large as
            // its largest state, and this one is allocated on every request.
            if policy::is_unsafe(request.method()) {
                return Box::pin(self.unsafe_method(request, origin)).await;
            }
            if !(request.method() == Method::GET || request.method() == Method::HEAD) {
                return Box::pin(self.forward(request, origin, "fwd=bypass")).await;
            }
            // The user is not kept past the key: every await of a hit would carry it.
            let (key, personal) = {
                let user = self.user(&request);
                (self.key(&request, user.as_deref()), user.is_some())
            };
            if !personal
                && self.config.user.is_some()
                && request.headers().contains_key(AUTHORIZATION)
            {
                // Keys are per user but this authenticated request has none: its answer is not
                // for others, and the shared entry is not for it.
                let status = "fwd=bypass; detail=no-user";
                return Box::pin(self.forward(request, origin, status)).await;
            }
            let found = Found {
                variants: self.load(&key).await,
                key,
            };
            let request_cc = CacheControl::parse_request(request.headers());
            if let Some(index) = found.variants.select(request.headers()) {
                // A stored response matches: serve it, or validate it first.
                let stored = found.variants.get(index);
                let now = now();
                let age = stored.age(now);
                let lifetime = self.lifetime(stored);
                match policy::freshness::reuse(stored.cache_control(), &request_cc, age, lifetime) {
                    Reuse::Fresh | Reuse::Stale => {
                        return Ok(self.serve(
                            request.method(),
                            request.headers(),
                            stored,
                            age,
                            lifetime,
                            "hit",
                        ));
                    }
                    Reuse::StaleWhileRevalidate => {
                        let reply = self.serve(
                            request.method(),
                            request.headers(),
                            stored,
                            age,
                            lifetime,
                            "hit; fwd=stale",
                        );
                        self.refresh_in_background(request, origin, &found, index);
                        return Ok(reply);
                    }
                    Reuse::Validate => {
                        let validate =
                            self.validate(request, origin, found, index, &request_cc, now);
                        return Box::pin(validate).await;
                    }
                }
            }
            if request_cc.only_if_cached {
                return Ok(self.gateway_timeout());
            }
            if request.method() == Method::HEAD || request.headers().contains_key(RANGE) {
                return Box::pin(self.forward(request, origin, "fwd=miss")).await;
            }
            Box::pin(self.miss(request, origin, found)).await
        }
    }

    /// How long `stored` stays fresh (RFC 9111 §4.2.1), with this layer's heuristics.
    fn lifetime(&self, stored: &StoredResponse) -> u64 {
        freshness::freshness_lifetime(
            stored.status(),
            stored.headers(),
            stored.cache_control(),
            stored.timing(),
            self.config.rules.heuristics,
        )
    }
}
