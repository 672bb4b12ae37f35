//! An axum router driven in-process through the cache layer, on memory and on a real Redis.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

use cache_test_support as support;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use cache_adapters::HttpCacheLayer;
use http_body_util::BodyExt;
use support::Fixture;
use tower::ServiceExt;

/// Counts the requests that reach each handler.
#[derive(Clone, Default)]
struct Hits(Arc<AtomicUsize>);

impl Hits {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
    fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

fn app(hits: Hits, layer: HttpCacheLayer) -> Router {
    Router::new()
        .route(
            "/foods/{id}",
            get(|State(h): State<Hits>, Path(id): Path<u32>| async move {
                let n = h.bump();
                (
                    [(header::CACHE_CONTROL, "max-age=60")],
                    format!("food {id} #{n}"),
                )
            })
            .post(|State(h): State<Hits>| async move {
                h.bump();
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/greeting",
            get(|State(h): State<Hits>, headers: HeaderMap| async move {
                h.bump();
                let lang = headers
                    .get("accept-language")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("en")
                    .to_owned();
                let text = if lang.starts_with("fr") {
                    "bonjour"
                } else {
                    "hello"
                };
                (
                    [
                        (header::CACHE_CONTROL, "max-age=60"),
                        (header::VARY, "Accept-Language"),
                    ],
                    text,
                )
            }),
        )
        .route(
            "/me",
            get(|State(h): State<Hits>, headers: HeaderMap| async move {
                h.bump();
                let who = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("nobody")
                    .to_owned();
                (
                    [(header::CACHE_CONTROL, "max-age=60")],
                    format!("profile of {who}"),
                )
            }),
        )
        .route(
            "/login",
            get(|State(h): State<Hits>| async move {
                h.bump();
                (
                    [
                        (header::CACHE_CONTROL, "max-age=60"),
                        (header::SET_COOKIE, "session=secret"),
                    ],
                    "welcome",
                )
            }),
        )
        .route(
            "/tagged",
            get(|State(h): State<Hits>| async move {
                h.bump();
                (
                    [
                        (header::CACHE_CONTROL, "max-age=60"),
                        (header::ETAG, "\"v1\""),
                    ],
                    "tagged body",
                )
            }),
        )
        .route(
            "/slow",
            get(|State(h): State<Hits>| async move {
                h.bump();
                tokio::time::sleep(Duration::from_millis(100)).await;
                ([(header::CACHE_CONTROL, "max-age=60")], "slow body")
            }),
        )
        .route(
            "/big",
            get(|State(h): State<Hits>| async move {
                h.bump();
                (
                    [(header::CACHE_CONTROL, "max-age=60")],
                    "x".repeat(64 * 1024),
                )
                    .into_response()
            }),
        )
        .route(
            "/swr",
            get(|State(h): State<Hits>| async move {
                let n = h.bump();
                (
                    [(
                        header::CACHE_CONTROL,
                        "max-age=1, stale-while-revalidate=60",
                    )],
                    format!("version {n}"),
                )
            }),
        )
        .route(
            "/private",
            get(|State(h): State<Hits>| async move {
                h.bump();
                ([(header::CACHE_CONTROL, "private, max-age=60")], "mine")
            }),
        )
        .layer(layer)
        .with_state(hits)
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn get_req(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn with(uri: &str, name: &str, value: &str) -> Request<Body> {
    Request::get(uri)
        .header(name, value)
        .body(Body::empty())
        .unwrap()
}

fn status_of(headers: &HeaderMap) -> String {
    headers
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

support::on_every_backend!(
    a_fresh_response_is_served_from_the_cache,
    vary_keeps_variants_apart,
    users_never_see_each_others_responses,
    per_user_keys_cache_authenticated_responses_per_user,
    set_cookie_and_private_responses_are_not_stored,
    a_post_invalidates_the_cached_get,
    a_client_revalidating_gets_304_from_the_cache,
    concurrent_misses_reach_the_handler_once,
    oversized_bodies_stream_and_are_not_stored,
    byte_ranges_are_served_from_a_stored_response,
    stale_while_revalidate_serves_stale_and_refreshes_in_the_background,
    per_user_never_shares_an_authenticated_response_without_a_user,
);

/// Polls `future` once, so that it has started, runs `then`, and finishes it.
async fn started<F: Future>(future: F, then: impl FnOnce()) -> F::Output {
    let mut future = std::pin::pin!(future);
    let first = std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await;
    then();
    match first {
        Poll::Ready(output) => output,
        Poll::Pending => future.await,
    }
}

async fn byte_ranges_are_served_from_a_stored_response(fx: &Fixture) {
    let hits = Hits::default();
    let app = app(hits.clone(), HttpCacheLayer::new(fx.cache().await));
    assert_eq!(send(&app, get_req("/foods/9")).await.2, "food 9 #1");
    let (status, headers, body) = send(&app, with("/foods/9", "range", "bytes=0-3")).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::PARTIAL_CONTENT, "food")
    );
    assert_eq!(
        headers.get(header::CONTENT_RANGE).map(|v| v.as_bytes()),
        Some(&b"bytes 0-3/9"[..])
    );
    assert_eq!(
        send(&app, with("/foods/9", "range", "bytes=-2")).await.2,
        "#1"
    );
    assert_eq!(hits.get(), 1, "ranges come from the stored response");
}

async fn stale_while_revalidate_serves_stale_and_refreshes_in_the_background(fx: &Fixture) {
    let hits = Hits::default();
    let app = app(hits.clone(), HttpCacheLayer::new(fx.cache().await));
    assert_eq!(send(&app, get_req("/swr")).await.2, "version 1");
    // Once stale (max-age=1), a request is answered with the stale version at once...
    let served_stale = support::eventually(Duration::from_secs(5), || async {
        let (_, headers, body) = send(&app, get_req("/swr")).await;
        status_of(&headers).contains("fwd=stale") && body == "version 1"
    })
    .await;
    assert!(served_stale, "a stale response is served inside the window");
    // ...while one background request refreshes the entry.
    let refreshed = support::eventually(Duration::from_secs(5), || async {
        send(&app, get_req("/swr")).await.2 == "version 2"
    })
    .await;
    assert!(refreshed, "the background refresh stored the new version");
    assert_eq!(hits.get(), 2, "exactly one refresh");
}

async fn a_fresh_response_is_served_from_the_cache(fx: &Fixture) {
    let hits = Hits::default();
    let app = app(hits.clone(), HttpCacheLayer::new(fx.cache().await));
    let (status, headers, body) = send(&app, get_req("/foods/1")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "food 1 #1"));
    assert!(
        status_of(&headers).contains("fwd=uri-miss; stored"),
        "{headers:?}"
    );
    let (_, headers, body) = send(&app, get_req("/foods/1")).await;
    assert_eq!(body, "food 1 #1", "the second request is a hit");
    assert!(status_of(&headers).contains("hit"));
    assert!(
        headers.contains_key(header::AGE),
        "cached answers carry Age"
    );
    let (_, _, body) = send(&app, get_req("/foods/2")).await;
    assert_eq!(body, "food 2 #2", "another URL is another entry");
    assert_eq!(hits.get(), 2);
    let (_, _, body) = send(&app, with("/foods/1", "cache-control", "no-cache")).await;
    assert_eq!(body, "food 1 #3", "request no-cache goes to the origin");
}

async fn vary_keeps_variants_apart(fx: &Fixture) {
    let hits = Hits::default();
    let app = app(hits.clone(), HttpCacheLayer::new(fx.cache().await));
    let (_, _, body) = send(&app, with("/greeting", "accept-language", "fr")).await;
    assert_eq!(body, "bonjour");
    let (_, headers, body) = send(&app, with("/greeting", "accept-language", "en")).await;
    assert_eq!(body, "hello");
    assert!(
        status_of(&headers).contains("fwd=vary-miss"),
        "stored for the URL, not for this variant: {headers:?}"
    );
    for (lang, text) in [("fr", "bonjour"), ("en", "hello")] {
        assert_eq!(
            send(&app, with("/greeting", "accept-language", lang))
                .await
                .2,
            text
        );
    }
    assert_eq!(hits.get(), 2, "one origin request per variant");
}

async fn users_never_see_each_others_responses(fx: &Fixture) {
    let hits = Hits::default();
    let app = app(hits.clone(), HttpCacheLayer::new(fx.cache().await));
    for who in ["Bearer alice", "Bearer bob", "Bearer alice"] {
        assert_eq!(
            send(&app, with("/me", "authorization", who)).await.2,
            format!("profile of {who}")
        );
    }
    assert_eq!(
        hits.get(),
        3,
        "without per-user keys an authorized answer is never shared"
    );
}

async fn per_user_keys_cache_authenticated_responses_per_user(fx: &Fixture) {
    let hits = Hits::default();
    let layer = HttpCacheLayer::new(fx.cache().await).per_user(|r| {
        r.headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let app = app(hits.clone(), layer);
    for _ in 0..2 {
        assert_eq!(
            send(&app, with("/me", "authorization", "Bearer alice"))
                .await
                .2,
            "profile of Bearer alice"
        );
        assert_eq!(
            send(&app, with("/me", "authorization", "Bearer bob"))
                .await
                .2,
            "profile of Bearer bob"
        );
    }
    assert_eq!(hits.get(), 2, "one origin request per user, then hits");
}

async fn per_user_never_shares_an_authenticated_response_without_a_user(fx: &Fixture) {
    let hits = Hits::default();
    // The identity comes from a header these requests lack: their key function says `None`.
    let layer = HttpCacheLayer::new(fx.cache().await).per_user(|r| {
        r.headers
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let app = app(hits.clone(), layer);
    assert_eq!(send(&app, get_req("/me")).await.2, "profile of nobody");
    for who in ["Bearer alice", "Bearer bob", "Bearer alice"] {
        let (_, headers, body) = send(&app, with("/me", "authorization", who)).await;
        assert_eq!(
            body,
            format!("profile of {who}"),
            "neither the shared entry nor another user's: {headers:?}"
        );
    }
    assert_eq!(
        send(&app, get_req("/me")).await.2,
        "profile of nobody",
        "anonymous requests still share their entry"
    );
    assert_eq!(hits.get(), 4, "no authenticated response was stored");
}

/// On memory only: there a request that has been polled once has looked up its key and joined
/// the flight or become its leader. On a remote backend a lookup still on the wire when the
/// leader finishes starts a flight of its own, and the count would measure that timing instead
/// of whether the services of one layer share their flights.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_share_one_flight_across_the_services_of_a_layer() {
    let fx = &Fixture::memory();
    const REQUESTS: usize = 50;
    let calls = Arc::new(AtomicUsize::new(0));
    // How many requests have been sent; the handler answers only once all have been.
    let (issued, gate) = tokio::sync::watch::channel(0_usize);
    let counter = Arc::clone(&calls);
    // No `with_state`: axum applies the layer to the handler again for every request.
    let app: Router = Router::new()
        .route(
            "/gated",
            get(move || {
                let mut gate = gate.clone();
                counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    gate.wait_for(|n| *n == REQUESTS).await.unwrap();
                    ([(header::CACHE_CONTROL, "max-age=60")], "gated body")
                }
            }),
        )
        .layer(HttpCacheLayer::new(fx.cache().await));
    let issued = Arc::new(issued);
    let requests: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let (app, issued) = (app.clone(), Arc::clone(&issued));
            tokio::spawn(async move {
                let response = started(app.oneshot(get_req("/gated")), || {
                    issued.send_modify(|n| *n += 1);
                })
                .await
                .unwrap();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                String::from_utf8_lossy(&body).into_owned()
            })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), "gated body");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "{REQUESTS} concurrent misses through one layer, one origin request"
    );
}

async fn set_cookie_and_private_responses_are_not_stored(fx: &Fixture) {
    let hits = Hits::default();
    let app = app(hits.clone(), HttpCacheLayer::new(fx.cache().await));
    let (_, headers, _) = send(&app, get_req("/login")).await;
    assert!(
        headers.contains_key(header::SET_COOKIE),
        "passed through to its client"
    );
    let (_, headers, _) = send(&app, get_req("/login")).await;
    assert!(status_of(&headers).contains("detail=set-cookie"));
    send(&app, get_req("/private")).await;
    send(&app, get_req("/private")).await;
    assert_eq!(hits.get(), 4, "neither is reused");
}

async fn a_post_invalidates_the_cached_get(fx: &Fixture) {
    let hits = Hits::default();
    let app = app(hits.clone(), HttpCacheLayer::new(fx.cache().await));
    assert_eq!(send(&app, get_req("/foods/7")).await.2, "food 7 #1");
    assert_eq!(send(&app, get_req("/foods/7")).await.2, "food 7 #1");
    let post = Request::post("/foods/7").body(Body::empty()).unwrap();
    assert_eq!(send(&app, post).await.0, StatusCode::NO_CONTENT);
    assert_eq!(
        send(&app, get_req("/foods/7")).await.2,
        "food 7 #3",
        "the write invalidated the cached read"
    );
}

async fn a_client_revalidating_gets_304_from_the_cache(fx: &Fixture) {
    let hits = Hits::default();
    let app = app(hits.clone(), HttpCacheLayer::new(fx.cache().await));
    send(&app, get_req("/tagged")).await;
    let (status, headers, body) = send(&app, with("/tagged", "if-none-match", "\"v1\"")).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(
        headers.get(header::ETAG).map(|v| v.as_bytes()),
        Some(&b"\"v1\""[..])
    );
    let (status, _, body) = send(&app, with("/tagged", "if-none-match", "\"v0\"")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "tagged body"));
    assert_eq!(hits.get(), 1, "both answered by the cache");
}

async fn concurrent_misses_reach_the_handler_once(fx: &Fixture) {
    let hits = Hits::default();
    let app = app(hits.clone(), HttpCacheLayer::new(fx.cache().await));
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { send(&app, get_req("/slow")).await })
        })
        .collect();
    for call in calls {
        let (status, _, body) = call.await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "slow body"));
    }
    assert_eq!(
        hits.get(),
        1,
        "100 concurrent identical requests, one origin request"
    );
}

async fn oversized_bodies_stream_and_are_not_stored(fx: &Fixture) {
    let hits = Hits::default();
    let app = app(
        hits.clone(),
        HttpCacheLayer::new(fx.cache().await).max_body_bytes(16 * 1024),
    );
    let (_, headers, body) = send(&app, get_req("/big")).await;
    assert_eq!(body.len(), 64 * 1024, "the whole body reaches the client");
    assert!(status_of(&headers).contains("detail=too-large"));
    send(&app, get_req("/big")).await;
    assert_eq!(hits.get(), 2, "and it is not stored");
}

#[tokio::test]
async fn with_redis_down_requests_go_to_the_origin_and_nothing_fails() {
    let mut server = support::RedisServer::start();
    let cache = cache_core::Cache::builder()
        .url(server.url())
        .operation_timeout(Duration::from_millis(200))
        .circuit_breaker(2, Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let hits = Hits::default();
    let app = app(hits.clone(), HttpCacheLayer::new(cache));
    server.stop();
    for i in 1..=5 {
        let (status, _, body) = send(&app, get_req("/foods/3")).await;
        assert_eq!((status, body), (StatusCode::OK, format!("food 3 #{i}")));
    }
}
