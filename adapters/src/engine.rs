//! The caching flow shared by every framework shell: look up, decide, validate, coalesce,
//! store. Decisions come from [`policy`](crate::policy); storage is a [`cache_core::Cache`].

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use cache_core::{Cache, Flight, Key, SingleFlight, Ttl};
use http::header::{AGE, AUTHORIZATION, CONTENT_LENGTH, HOST, RANGE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, request};
use http_body::Body;
use http_body_util::BodyExt;

use crate::body::CacheBody;
use crate::config::Config;
use crate::policy::{self, CacheControl, Reuse, Timing, conditional, freshness};
use crate::stored::{StoredResponse, Variants};

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

/// A background revalidation (`stale-while-revalidate`), made from the client's own request,
/// which the stale response already answered.
pub(crate) struct Refresh<B> {
    request: Request<B>,
    client_headers: HeaderMap,
    variants: Variants,
    index: usize,
    key: Key,
    personal: bool,
}

type Reply<O, B> = Result<Response<CacheBody<<O as Origin<B>>::Body>>, <O as Origin<B>>::Error>;

/// What one cache lookup found, and what `Cache-Status` should say about it.
struct Found {
    variants: Variants,
    key: Key,
    /// The key has a per-user part: the entry answers one user's requests only.
    personal: bool,
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

/// RFC 9211's response header.
const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

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
    /// future keeps its arguments twice, as received and as moved into its body. Behind axum
    /// that made it 1,304 bytes, this 1,016: under the 1,032 that glibc serves from its
    /// per-thread cache, so a hit's allocation of it stays on the fast path.
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
            // Paths other than a hit are awaited in a box of their own. The future is as large
            // as its largest state, and is moved and allocated on every request: with the
            // miss path inline it was 3,088 bytes.
            if policy::is_unsafe(request.method()) {
                return Box::pin(self.unsafe_method(request, origin)).await;
            }
            if !(request.method() == Method::GET || request.method() == Method::HEAD) {
                return Box::pin(self.forward(request, origin, "fwd=bypass")).await;
            }
            let user = self.user(&request);
            if user.is_none()
                && self.config.user.is_some()
                && request.headers().contains_key(AUTHORIZATION)
            {
                // Keys are per user but this authenticated request has none: its answer is not
                // for others, and the shared entry is not for it.
                let status = "fwd=bypass; detail=no-user";
                return Box::pin(self.forward(request, origin, status)).await;
            }
            let key = self.key(&request, user.as_deref());
            let found = Found {
                variants: self.load(&key).await,
                key,
                personal: user.is_some(),
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

    /// Sends the request on to the origin and passes its response back, unstored.
    async fn forward<B, O: Origin<B>>(
        &self,
        request: Request<B>,
        mut origin: O,
        status: &str,
    ) -> Reply<O, B> {
        let response = origin.send(request).await?;
        Ok(self.passthrough(response, status))
    }

    /// POST, PUT, PATCH, DELETE and other unsafe methods: forward, then invalidate (§4.4).
    async fn unsafe_method<B, O: Origin<B>>(
        &self,
        request: Request<B>,
        mut origin: O,
    ) -> Reply<O, B> {
        let target = request.uri().clone();
        let host = host_of(request.uri(), request.headers()).map(Cow::into_owned);
        let user = self.user(&request);
        let response = origin.send(request).await?;
        let status = response.status();
        if status.is_success() || status.is_redirection() {
            for path in policy::invalidated(&target, host.as_deref(), response.headers()) {
                // The shared entry, and this user's own when keys are per user.
                let users = [None, user.as_deref()];
                for user in users.iter().take(if user.is_some() { 2 } else { 1 }) {
                    let key = self.key_for(host.as_deref(), &path, *user);
                    if let Err(err) = self.cache.delete(&key).await {
                        tracing::debug!(error = %err, "could not invalidate a cached response");
                    }
                }
            }
        }
        Ok(self.passthrough(response, "fwd=bypass"))
    }

    /// The stored response may not be served as it is: ask the origin, with its validators.
    async fn validate<B, O>(
        &self,
        mut request: Request<B>,
        mut origin: O,
        found: Found,
        index: usize,
        request_cc: &CacheControl,
        now: u64,
    ) -> Reply<O, B>
    where
        B: 'static,
        O: Origin<B>,
    {
        if request_cc.only_if_cached {
            return Ok(self.gateway_timeout());
        }
        if request.method() == Method::HEAD || request.headers().contains_key(RANGE) {
            return self.forward(request, origin, "fwd=stale").await;
        }
        let stored = found.variants.get(index);
        let stored_cc = stored.cache_control();
        let age = stored.age(now);
        let lifetime = self.lifetime(stored);
        let client_headers = request.headers().clone();
        conditional::add_validators(request.headers_mut(), stored.headers());
        let response = match origin.send(request).await {
            Ok(response) => response,
            // The origin could not be reached: a disconnected cache may serve stale (§4.2.4).
            Err(_) if freshness::stale_if_disconnected(stored_cc, request_cc) => {
                let detail = "hit; fwd=stale; detail=origin-unreachable";
                return Ok(self.serve(
                    &Method::GET,
                    &client_headers,
                    stored,
                    age,
                    lifetime,
                    detail,
                ));
            }
            Err(err) => return Err(err),
        };
        let status = response.status();
        // The 304 answers the validators of this one stored response (§4.3.3), even when it
        // brings a new ETag: update that response with it.
        if status == StatusCode::NOT_MODIFIED {
            // The 304 is a fresh response: the age and freshness clocks start again.
            let timing = Timing {
                request_time: now,
                response_time: crate::engine::now(),
            };
            let updated = stored.revalidated(response.headers(), timing);
            let age = updated.age(timing.response_time);
            let lifetime = self.lifetime(&updated);
            let mut variants = found.variants.clone();
            variants.insert(updated.clone());
            self.save(&found.key, &variants).await;
            return Ok(self.serve(
                &Method::GET,
                &client_headers,
                &updated,
                age,
                lifetime,
                "fwd=stale; fwd-status=304",
            ));
        }
        if matches!(status.as_u16(), 500 | 502 | 503 | 504)
            && freshness::stale_if_error(stored_cc, request_cc, age, lifetime)
        {
            let detail = "hit; fwd=stale; detail=origin-error";
            return Ok(self.serve(&Method::GET, &client_headers, stored, age, lifetime, detail));
        }
        let (reply, _) = self
            .store_or_pass(
                &Method::GET,
                &client_headers,
                response,
                now,
                found,
                "fwd=stale",
            )
            .await;
        Ok(reply)
    }

    fn lifetime(&self, stored: &StoredResponse) -> u64 {
        freshness::freshness_lifetime(
            stored.status(),
            stored.headers(),
            stored.cache_control(),
            stored.timing(),
            self.config.rules.heuristics,
        )
    }

    /// Nothing stored matches: one request to the origin per key, shared when storable.
    async fn miss<B, O>(&self, request: Request<B>, mut origin: O, found: Found) -> Reply<O, B>
    where
        B: 'static,
        O: Origin<B>,
    {
        // RFC 9211: nothing stored for the URL, or nothing for this request's Vary values.
        let fwd = if found.variants.is_empty() {
            "fwd=uri-miss"
        } else {
            "fwd=vary-miss"
        };
        let flight_key = found.key.as_str().to_owned();
        let leader = match self.misses.join(&flight_key) {
            Flight::Leader(leader) => Some(leader),
            Flight::Follower(follower) => {
                if let Some(Some(stored)) = follower.wait().await
                    && policy::vary::matches(&stored.selecting, request.headers())
                {
                    let age = stored.age(now());
                    let lifetime = self.lifetime(&stored);
                    return Ok(self.serve(
                        request.method(),
                        request.headers(),
                        &stored,
                        age,
                        lifetime,
                        "hit; detail=collapsed",
                    ));
                }
                None
            }
        };
        let method = request.method().clone();
        let headers = request.headers().clone();
        let sent = now();
        let response = origin.send(request).await?;
        let (reply, stored) = self
            .store_or_pass(&method, &headers, response, sent, found, fwd)
            .await;
        if let Some(leader) = leader {
            leader.publish(stored);
        }
        Ok(reply)
    }

    /// Stores a response from the origin when the policy allows and its body fits, and returns
    /// it to the client either way.
    async fn store_or_pass<RB>(
        &self,
        method: &Method,
        request_headers: &HeaderMap,
        response: Response<RB>,
        sent: u64,
        found: Found,
        fwd: &str,
    ) -> (Response<CacheBody<RB>>, Option<Arc<StoredResponse>>)
    where
        RB: Body<Data = Bytes> + Unpin,
    {
        let request_cc = CacheControl::parse_request(request_headers);
        let response_cc = CacheControl::response(response.headers());
        let decision = policy::storable(
            method,
            request_headers,
            &request_cc,
            response.status(),
            response.headers(),
            &response_cc,
            &self.config.rules,
        )
        .or_else(|reason| match reason {
            // The key is per user: a response to an authenticated request is that user's alone.
            policy::NotStorable::Authorization if found.personal => Ok(()),
            other => Err(other),
        })
        .and_then(|()| {
            if self
                .config
                .statuses
                .as_ref()
                .is_some_and(|allowed| !allowed.contains(&response.status()))
            {
                Err(policy::NotStorable::Status)
            } else {
                Ok(())
            }
        });
        if let Err(reason) = decision {
            let detail = format!("{fwd}; detail={}", reason.as_str());
            return (self.passthrough(response, &detail), None);
        }
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.config.max_body as u64) {
            return (
                self.passthrough(response, &format!("{fwd}; detail=too-large")),
                None,
            );
        }
        let (parts, body) = response.into_parts();
        let body = match read_up_to(body, self.config.max_body).await {
            Ok(bytes) => bytes,
            Err(Partial::TooLarge(prefix, rest)) => {
                let mut response = Response::from_parts(parts, CacheBody::streaming(prefix, rest));
                self.mark(response.headers_mut(), &format!("{fwd}; detail=too-large"));
                return (response, None);
            }
            Err(Partial::Failed(prefix, err)) => {
                // The origin broke off mid-body: pass on what arrived and the error, store nothing.
                let mut response = Response::from_parts(parts, CacheBody::failed(prefix, err));
                self.mark(response.headers_mut(), &format!("{fwd}; detail=body-error"));
                return (response, None);
            }
        };
        let stored = StoredResponse::new(
            parts.status,
            &parts.headers,
            body.clone(),
            request_headers,
            Timing {
                request_time: sent,
                response_time: now(),
            },
        );
        let mut variants = found.variants;
        variants.insert(stored.clone());
        self.save(&found.key, &variants).await;
        // The client gets the origin's response as it came: its own Age, its own headers.
        let body = if *method == Method::HEAD {
            CacheBody::empty()
        } else {
            CacheBody::full(body)
        };
        let mut reply = Response::from_parts(parts, body);
        self.mark(reply.headers_mut(), &format!("{fwd}; stored"));
        (reply, Some(Arc::new(stored)))
    }

    /// Asks the origin again in the background (once per key at a time) with the client's
    /// request, whose stale answer is already on its way.
    fn refresh_in_background<B, O: Origin<B>>(
        self: &Arc<Self>,
        mut request: Request<B>,
        origin: O,
        found: &Found,
        index: usize,
    ) {
        let client_headers = request.headers().clone();
        conditional::add_validators(request.headers_mut(), found.variants.get(index).headers());
        let claimed = self
            .refreshing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(found.key.as_str().to_owned());
        if !claimed {
            return;
        }
        let refresh = Refresh {
            request,
            client_headers,
            variants: found.variants.clone(),
            index,
            key: found.key.clone(),
            personal: found.personal,
        };
        origin.spawn_refresh(Arc::clone(self), refresh);
    }

    /// The background half of [`refresh_in_background`](Self::refresh_in_background).
    pub(crate) async fn run_refresh<B, O: Origin<B>>(
        self: Arc<Self>,
        mut origin: O,
        refresh: Refresh<B>,
    ) {
        let Refresh {
            request,
            client_headers,
            variants,
            index,
            key,
            personal,
        } = refresh;
        let _claim = Claim {
            engine: &self,
            key: key.as_str().to_owned(),
        };
        // A request that read the stale entry just before another refresh stored a new one
        // must not refresh it again.
        let current = self.load(&key).await;
        let still_stale = current
            .select(&client_headers)
            .is_some_and(|i| current.get(i) == variants.get(index));
        if !still_stale {
            return;
        }
        let sent = now();
        let Ok(response) = origin.send(request).await else {
            return;
        };
        if response.status() == StatusCode::NOT_MODIFIED {
            let updated = variants.get(index).revalidated(
                response.headers(),
                Timing {
                    request_time: sent,
                    response_time: now(),
                },
            );
            let mut variants = variants;
            variants.insert(updated);
            self.save(&key, &variants).await;
        } else {
            let found = Found {
                variants,
                key,
                personal,
            };
            let (reply, _) = self
                .store_or_pass(
                    &Method::GET,
                    &client_headers,
                    response,
                    sent,
                    found,
                    "fwd=stale",
                )
                .await;
            drop(reply);
        }
    }

    /// A stored response as an answer: with `Age`, `Cache-Status`, and as a 304 when the
    /// client's own validators match.
    fn serve<RB: Body>(
        &self,
        method: &Method,
        request: &HeaderMap,
        stored: &StoredResponse,
        age: u64,
        lifetime: u64,
        status: &str,
    ) -> Response<CacheBody<RB>> {
        let headers = stored.headers();
        let not_modified = conditional::is_conditional(request)
            && stored.status().is_success()
            && conditional::not_modified(request, headers);
        let mut response = if not_modified {
            let mut response = Response::new(CacheBody::empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            for name in [
                "cache-control",
                "content-location",
                "date",
                "etag",
                "expires",
                "vary",
                "last-modified",
            ] {
                for value in headers.get_all(name) {
                    response
                        .headers_mut()
                        .append(HeaderName::from_static(name), value.clone());
                }
            }
            response
        } else if let Some((start, end)) = byte_range(request, stored) {
            // A single byte range of a stored complete response (RFC 9110 §14).
            let total = stored.body.len();
            let mut response = Response::new(CacheBody::full(stored.body.slice(start..=end)));
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            *response.headers_mut() = stored.served_headers();
            if let Ok(range) = HeaderValue::from_str(&format!("bytes {start}-{end}/{total}")) {
                response
                    .headers_mut()
                    .insert(http::header::CONTENT_RANGE, range);
            }
            response
                .headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(end - start + 1));
            response
        } else {
            let body = if method == Method::HEAD {
                CacheBody::empty()
            } else {
                CacheBody::full(stored.body.clone())
            };
            let mut response = Response::new(body);
            *response.status_mut() = stored.status();
            *response.headers_mut() = stored.served_headers();
            response
        };
        response.headers_mut().insert(AGE, number(age));
        let ttl = i128::from(lifetime) - i128::from(age);
        self.mark_parts(
            response.headers_mut(),
            &[status, "; ttl=", itoa::Buffer::new().format(ttl)],
        );
        response
    }

    fn passthrough<RB: Body>(
        &self,
        response: Response<RB>,
        status: &str,
    ) -> Response<CacheBody<RB>> {
        let mut response = response.map(|body| CacheBody::streaming(VecDeque::new(), body));
        self.mark(response.headers_mut(), status);
        response
    }

    fn gateway_timeout<RB: Body>(&self) -> Response<CacheBody<RB>> {
        let mut response = Response::new(CacheBody::empty());
        *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
        self.mark(response.headers_mut(), "fwd=miss; detail=only-if-cached");
        response
    }

    /// Adds this cache's entry to `Cache-Status` (RFC 9211).
    fn mark(&self, headers: &mut HeaderMap, status: &str) {
        self.mark_parts(headers, &[status]);
    }

    /// [`mark`](Self::mark) with the status given in pieces: served on every hit, so it is
    /// written once, into a buffer of its exact size, which the header value then owns.
    fn mark_parts(&self, headers: &mut HeaderMap, status: &[&str]) {
        let Some(prefix) = &self.status_prefix else {
            return;
        };
        let len = prefix.len() + status.iter().map(|part| part.len()).sum::<usize>();
        let mut text = String::with_capacity(len);
        text.push_str(prefix);
        for part in status {
            text.push_str(part);
        }
        if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(text)) {
            headers.append(CACHE_STATUS, value);
        }
    }

    /// The per-user part of the key, when keys are per user.
    fn user<B>(&self, request: &Request<B>) -> Option<String> {
        // The key function sees a copy of the head, made only when there is one to call.
        let user = self.config.user.as_ref()?;
        user(&parts_of(request))
    }

    fn key<B>(&self, request: &Request<B>, user: Option<&str>) -> Key {
        let uri = request.uri();
        let host = host_of(uri, request.headers());
        let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
        self.key_for(host.as_deref(), path_and_query, user)
    }

    fn key_for(&self, host: Option<&str>, path_and_query: &str, user: Option<&str>) -> Key {
        let key = cache_core::key!("http", host.unwrap_or("-"), path_and_query);
        match user {
            Some(user) => key.part(user),
            None => key,
        }
    }

    async fn load(&self, key: &Key) -> Variants {
        match self.cache.get::<Variants>(key).await {
            Ok(found) => found.unwrap_or_default(),
            Err(err) => {
                tracing::debug!(error = %err, "cache unavailable: forwarding to the origin");
                Variants::default()
            }
        }
    }

    /// Stores the variants for as long as any of them may still be served or revalidated.
    async fn save(&self, key: &Key, variants: &Variants) {
        let now = now();
        let keep = variants
            .iter()
            .map(|stored| {
                let cc = stored.cache_control();
                let lifetime = self.lifetime(stored);
                let left = lifetime.saturating_sub(stored.age(now));
                let stale = cc
                    .stale_while_revalidate
                    .get()
                    .unwrap_or(0)
                    .max(cc.stale_if_error.get().unwrap_or(0));
                left.saturating_add(stale.max(self.config.retention.as_secs()))
            })
            .max()
            .unwrap_or(0)
            .max(1);
        if let Err(err) = self
            .cache
            .set(key, variants, Ttl::After(Duration::from_secs(keep)))
            .await
        {
            tracing::debug!(error = %err, "could not store a response");
        }
    }
}

/// Releases a background refresh's claim on its key when the refresh ends, however it ends.
struct Claim<'a> {
    engine: &'a Engine,
    key: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.engine
            .refreshing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

/// The one satisfiable byte range a request asks of a stored 200, as inclusive offsets:
/// `bytes=a-b`, `bytes=a-` or `bytes=-n`. Anything else (several ranges, other units, out of
/// bounds) is `None`, and the whole response is served: a cache may ignore Range.
fn byte_range(request: &HeaderMap, stored: &StoredResponse) -> Option<(usize, usize)> {
    if stored.status() != StatusCode::OK || stored.body.is_empty() {
        return None;
    }
    let spec = request
        .get(RANGE)?
        .to_str()
        .ok()?
        .trim()
        .strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let len = stored.body.len();
    let (start, end) = if first.is_empty() {
        let suffix: usize = last.parse().ok()?;
        (len - suffix.min(len), len - 1)
    } else {
        let start: usize = first.parse().ok()?;
        let end = if last.is_empty() {
            len - 1
        } else {
            last.parse::<usize>().ok()?.min(len - 1)
        };
        (start, end)
    };
    (start <= end && end < len).then_some((start, end))
}

/// A snapshot of a request's head for the per-user key function.
fn parts_of<B>(request: &Request<B>) -> request::Parts {
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = request.method().clone();
    parts.uri = request.uri().clone();
    parts.version = request.version();
    parts.headers = request.headers().clone();
    parts
}

/// `n` as a header value. `HeaderValue::from(u64)` writes into a 20-byte buffer, which then
/// takes a second allocation to share; a copy of the digits takes one.
fn number(n: u64) -> HeaderValue {
    let digits = Bytes::copy_from_slice(itoa::Buffer::new().format(n).as_bytes());
    HeaderValue::from_maybe_shared(digits).unwrap_or_else(|_| HeaderValue::from(n))
}

/// The request's host, lower case; copied only when it is not already.
fn host_of<'a>(uri: &'a http::Uri, headers: &'a HeaderMap) -> Option<Cow<'a, str>> {
    let host = match uri.authority() {
        Some(authority) => authority.as_str(),
        None => headers.get(HOST)?.to_str().ok()?,
    };
    Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    })
}

enum Partial<B: Body> {
    TooLarge(VecDeque<Bytes>, B),
    Failed(VecDeque<Bytes>, B::Error),
}

/// Reads a whole body of at most `limit` bytes; a larger one comes back as what was read plus
/// the rest, to stream on.
async fn read_up_to<B: Body<Data = Bytes> + Unpin>(
    mut body: B,
    limit: usize,
) -> Result<Bytes, Partial<B>> {
    let mut chunks: VecDeque<Bytes> = VecDeque::new();
    let mut total = 0;
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    total += data.len();
                    chunks.push_back(data);
                    if total > limit {
                        return Err(Partial::TooLarge(chunks, body));
                    }
                }
            }
            Some(Err(err)) => return Err(Partial::Failed(chunks, err)),
        }
    }
    let mut all = BytesMut::with_capacity(total);
    for chunk in chunks {
        all.extend_from_slice(&chunk);
    }
    Ok(all.freeze())
}
