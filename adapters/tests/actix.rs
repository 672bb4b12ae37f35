//! An actix-web app driven in-process through the cache middleware, on memory and on a real
//! Redis: the same cases as the axum tests, so that both frameworks behave alike.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

use cache_test_support as support;

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::{App, HttpRequest, HttpResponse, test, web};
use cache_adapters::HttpCacheLayer;
use support::Fixture;

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

async fn food(hits: web::Data<Hits>, id: web::Path<u32>) -> HttpResponse {
    let n = hits.bump();
    HttpResponse::Ok()
        .insert_header(("cache-control", "max-age=60"))
        .body(format!("food {id} #{n}"))
}

async fn food_post(hits: web::Data<Hits>) -> HttpResponse {
    hits.bump();
    HttpResponse::NoContent().finish()
}

async fn greeting(hits: web::Data<Hits>, request: HttpRequest) -> HttpResponse {
    hits.bump();
    let lang = request
        .headers()
        .get("accept-language")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("en");
    let text = if lang.starts_with("fr") {
        "bonjour"
    } else {
        "hello"
    };
    HttpResponse::Ok()
        .insert_header(("cache-control", "max-age=60"))
        .insert_header(("vary", "Accept-Language"))
        .body(text)
}

async fn me(hits: web::Data<Hits>, request: HttpRequest) -> HttpResponse {
    hits.bump();
    let who = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("nobody")
        .to_owned();
    HttpResponse::Ok()
        .insert_header(("cache-control", "max-age=60"))
        .body(format!("profile of {who}"))
}

async fn login(hits: web::Data<Hits>) -> HttpResponse {
    hits.bump();
    HttpResponse::Ok()
        .insert_header(("cache-control", "max-age=60"))
        .insert_header(("set-cookie", "session=secret"))
        .body("welcome")
}

async fn tagged(hits: web::Data<Hits>) -> HttpResponse {
    hits.bump();
    HttpResponse::Ok()
        .insert_header(("cache-control", "max-age=60"))
        .insert_header(("etag", "\"v1\""))
        .body("tagged body")
}

async fn slow(hits: web::Data<Hits>) -> HttpResponse {
    hits.bump();
    tokio::time::sleep(Duration::from_millis(100)).await;
    HttpResponse::Ok()
        .insert_header(("cache-control", "max-age=60"))
        .body("slow body")
}

async fn big(hits: web::Data<Hits>) -> HttpResponse {
    hits.bump();
    HttpResponse::Ok()
        .insert_header(("cache-control", "max-age=60"))
        .body("x".repeat(64 * 1024))
}

/// Requests that reached [`gated`], which answers only once `issued` reaches `of`.
struct Gate {
    calls: AtomicUsize,
    issued: tokio::sync::watch::Receiver<usize>,
    of: usize,
}

async fn gated(gate: web::Data<Gate>) -> HttpResponse {
    gate.calls.fetch_add(1, Ordering::SeqCst);
    let mut issued = gate.issued.clone();
    issued.wait_for(|n| *n == gate.of).await.unwrap();
    HttpResponse::Ok()
        .insert_header(("cache-control", "max-age=60"))
        .body("gated body")
}

macro_rules! app {
    ($hits:expr, $layer:expr) => {
        test::init_service(
            App::new()
                .wrap($layer)
                .app_data(web::Data::new($hits.clone()))
                .route("/foods/{id}", web::get().to(food))
                .route("/foods/{id}", web::post().to(food_post))
                .route("/greeting", web::get().to(greeting))
                .route("/me", web::get().to(me))
                .route("/login", web::get().to(login))
                .route("/tagged", web::get().to(tagged))
                .route("/slow", web::get().to(slow))
                .route("/big", web::get().to(big)),
        )
        .await
    };
}

async fn read(response: ServiceResponse) -> (StatusCode, HeaderMap, String) {
    let status = response.status();
    let headers = response.headers().clone();
    let body = test::read_body(response).await;
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn get(uri: &str) -> test::TestRequest {
    test::TestRequest::get().uri(uri)
}

fn status_of(headers: &HeaderMap) -> String {
    headers
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

support::on_every_backend!(actix:
    a_fresh_response_is_served_from_the_cache,
    vary_keeps_variants_apart,
    users_never_see_each_others_responses,
    per_user_keys_cache_authenticated_responses_per_user,
    set_cookie_responses_are_not_stored,
    a_post_invalidates_the_cached_get,
    a_client_revalidating_gets_304_from_the_cache,
    concurrent_misses_reach_the_handler_once,
    oversized_bodies_stream_and_are_not_stored,
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

async fn a_fresh_response_is_served_from_the_cache(fx: &Fixture) {
    let hits = Hits::default();
    let app = app!(hits, HttpCacheLayer::new(fx.cache().await));
    let (status, headers, body) =
        read(test::call_service(&app, get("/foods/1").to_request()).await).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "food 1 #1"));
    assert!(
        status_of(&headers).contains("fwd=uri-miss; stored"),
        "{headers:?}"
    );
    let (_, headers, body) =
        read(test::call_service(&app, get("/foods/1").to_request()).await).await;
    assert_eq!(body, "food 1 #1", "the second request is a hit");
    assert!(status_of(&headers).contains("hit"));
    assert!(headers.contains_key("age"));
    let (_, _, body) = read(
        test::call_service(
            &app,
            get("/foods/1")
                .insert_header(("cache-control", "no-cache"))
                .to_request(),
        )
        .await,
    )
    .await;
    assert_eq!(body, "food 1 #2", "request no-cache goes to the origin");
    assert_eq!(hits.get(), 2);
}

async fn vary_keeps_variants_apart(fx: &Fixture) {
    let hits = Hits::default();
    let app = app!(hits, HttpCacheLayer::new(fx.cache().await));
    let greeting = |lang: &str| {
        get("/greeting")
            .insert_header(("accept-language", lang.to_owned()))
            .to_request()
    };
    assert_eq!(
        read(test::call_service(&app, greeting("fr")).await).await.2,
        "bonjour"
    );
    let (_, headers, body) = read(test::call_service(&app, greeting("en")).await).await;
    assert_eq!(body, "hello");
    assert!(
        status_of(&headers).contains("fwd=vary-miss"),
        "stored for the URL, not for this variant: {headers:?}"
    );
    for (lang, text) in [("fr", "bonjour"), ("en", "hello")] {
        assert_eq!(
            read(test::call_service(&app, greeting(lang)).await).await.2,
            text
        );
    }
    assert_eq!(hits.get(), 2, "one origin request per variant");
}

async fn users_never_see_each_others_responses(fx: &Fixture) {
    let hits = Hits::default();
    let app = app!(hits, HttpCacheLayer::new(fx.cache().await));
    for who in ["Bearer alice", "Bearer bob", "Bearer alice"] {
        let request = get("/me")
            .insert_header(("authorization", who))
            .to_request();
        assert_eq!(
            read(test::call_service(&app, request).await).await.2,
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
    let app = app!(hits, layer);
    for _ in 0..2 {
        for who in ["Bearer alice", "Bearer bob"] {
            let request = get("/me")
                .insert_header(("authorization", who))
                .to_request();
            assert_eq!(
                read(test::call_service(&app, request).await).await.2,
                format!("profile of {who}")
            );
        }
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
    let app = app!(hits, layer);
    let me = |who: Option<&str>| {
        let request = get("/me");
        match who {
            Some(who) => request.insert_header(("authorization", who.to_owned())),
            None => request,
        }
        .to_request()
    };
    assert_eq!(
        read(test::call_service(&app, me(None)).await).await.2,
        "profile of nobody"
    );
    for who in ["Bearer alice", "Bearer bob", "Bearer alice"] {
        let (_, headers, body) = read(test::call_service(&app, me(Some(who))).await).await;
        assert_eq!(
            body,
            format!("profile of {who}"),
            "neither the shared entry nor another user's: {headers:?}"
        );
    }
    assert_eq!(
        read(test::call_service(&app, me(None)).await).await.2,
        "profile of nobody",
        "anonymous requests still share their entry"
    );
    assert_eq!(hits.get(), 4, "no authenticated response was stored");
}

/// On memory only: there a request that has been polled once has looked up its key and joined
/// the flight or become its leader. On a remote backend a lookup still on the wire when the
/// leader finishes starts a flight of its own, and the count would measure that timing instead
/// of whether the services of one layer share their flights.
#[actix_web::test]
async fn concurrent_misses_share_one_flight_across_workers() {
    let fx = &Fixture::memory();
    const REQUESTS: usize = 50;
    let (issued, receiver) = tokio::sync::watch::channel(0_usize);
    let gate = web::Data::new(Gate {
        calls: AtomicUsize::new(0),
        issued: receiver,
        of: REQUESTS,
    });
    let layer = HttpCacheLayer::new(fx.cache().await);
    // actix-web builds an app, and the middleware in it, once per worker, from clones of the
    // layer that the server's factory closure captured.
    let mut workers = Vec::new();
    for _ in 0..2 {
        let app = test::init_service(
            App::new()
                .wrap(layer.clone())
                .app_data(gate.clone())
                .route("/gated", web::get().to(gated)),
        )
        .await;
        workers.push(Rc::new(app));
    }
    let issued = Rc::new(issued);
    let requests: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let app = Rc::clone(&workers[i % workers.len()]);
            let issued = Rc::clone(&issued);
            actix_web::rt::spawn(async move {
                let response = started(app.call(get("/gated").to_request()), || {
                    issued.send_modify(|n| *n += 1);
                })
                .await
                .unwrap();
                read(response).await
            })
        })
        .collect();
    for request in requests {
        let (status, _, body) = request.await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "gated body"));
    }
    assert_eq!(
        gate.calls.load(Ordering::SeqCst),
        1,
        "{REQUESTS} concurrent misses on two workers, one origin request"
    );
}

async fn set_cookie_responses_are_not_stored(fx: &Fixture) {
    let hits = Hits::default();
    let app = app!(hits, HttpCacheLayer::new(fx.cache().await));
    let (_, headers, _) = read(test::call_service(&app, get("/login").to_request()).await).await;
    assert!(headers.contains_key("set-cookie"));
    let (_, headers, _) = read(test::call_service(&app, get("/login").to_request()).await).await;
    assert!(status_of(&headers).contains("detail=set-cookie"));
    assert_eq!(hits.get(), 2);
}

async fn a_post_invalidates_the_cached_get(fx: &Fixture) {
    let hits = Hits::default();
    let app = app!(hits, HttpCacheLayer::new(fx.cache().await));
    assert_eq!(
        read(test::call_service(&app, get("/foods/7").to_request()).await)
            .await
            .2,
        "food 7 #1"
    );
    assert_eq!(
        read(test::call_service(&app, get("/foods/7").to_request()).await)
            .await
            .2,
        "food 7 #1"
    );
    let post = test::TestRequest::post().uri("/foods/7").to_request();
    assert_eq!(
        test::call_service(&app, post).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        read(test::call_service(&app, get("/foods/7").to_request()).await)
            .await
            .2,
        "food 7 #3"
    );
}

async fn a_client_revalidating_gets_304_from_the_cache(fx: &Fixture) {
    let hits = Hits::default();
    let app = app!(hits, HttpCacheLayer::new(fx.cache().await));
    test::call_service(&app, get("/tagged").to_request()).await;
    let request = get("/tagged")
        .insert_header(("if-none-match", "\"v1\""))
        .to_request();
    let (status, headers, body) = read(test::call_service(&app, request).await).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(
        headers.get("etag").map(|v| v.as_bytes()),
        Some(&b"\"v1\""[..])
    );
    assert_eq!(hits.get(), 1);
}

async fn concurrent_misses_reach_the_handler_once(fx: &Fixture) {
    let hits = Hits::default();
    let app = Rc::new(app!(hits, HttpCacheLayer::new(fx.cache().await)));
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let app = Rc::clone(&app);
            actix_web::rt::spawn(async move {
                read(app.call(get("/slow").to_request()).await.unwrap()).await
            })
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
    let app = app!(
        hits,
        HttpCacheLayer::new(fx.cache().await).max_body_bytes(16 * 1024)
    );
    let (_, headers, body) = read(test::call_service(&app, get("/big").to_request()).await).await;
    assert_eq!(body.len(), 64 * 1024);
    assert!(status_of(&headers).contains("detail=too-large"));
    test::call_service(&app, get("/big").to_request()).await;
    assert_eq!(hits.get(), 2);
}
