//! End to end through the `cache_proxy` example against a small origin, on memory and on Redis.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

use cache_test_support as support;

#[path = "../examples/cache_proxy/proxy.rs"]
mod proxy;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::AppendHeaders;
use axum::routing::{any, get};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::Fixture;

/// Requests that reached the origin.
#[derive(Clone, Default)]
struct Seen(Arc<AtomicUsize>);

async fn origin(seen: Seen) -> SocketAddr {
    let counter = seen.clone();
    let app = Router::new()
        .route(
            "/fresh",
            get(move || {
                let n = counter.0.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    let headers = AppendHeaders([
                        ("cache-control", "max-age=60"),
                        ("x-rep", "a"),
                        ("x-rep", "b"),
                    ]);
                    (headers, format!("fresh #{n}"))
                }
            }),
        )
        .route(
            "/odd",
            get(|| async { (StatusCode::from_u16(999).unwrap(), "odd") }),
        )
        .route(
            "/echo",
            any(
                |method: Method, headers: HeaderMap, body: Bytes| async move {
                    let echoed = headers
                        .get("foo")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    format!("{method} {} foo={echoed}", String::from_utf8_lossy(&body))
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// An origin that accepts connections and closes them without answering; counts them.
async fn dropping_origin(seen: Seen) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            seen.0.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    address
}

async fn start_proxy(fx: &Fixture, upstream: SocketAddr) -> SocketAddr {
    let cache = fx.cache().await;
    proxy::spawn(
        "127.0.0.1:0".parse().unwrap(),
        format!("http://{upstream}").parse().unwrap(),
        cache,
    )
    .await
    .unwrap()
}

async fn send(
    proxy: SocketAddr,
    method: &str,
    path: &str,
    body: &'static str,
) -> (StatusCode, HeaderMap, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://{proxy}{path}"))
        .header("foo", "bar")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

support::on_every_backend!(
    fresh_responses_are_served_by_the_proxy,
    extension_methods_headers_and_bodies_are_forwarded,
    any_status_passes_through,
    a_dropped_origin_connection_is_a_502_and_never_retried,
);

async fn fresh_responses_are_served_by_the_proxy(fx: &Fixture) {
    let seen = Seen::default();
    let proxy = start_proxy(fx, origin(seen.clone()).await).await;
    let (status, headers, body) = send(proxy, "GET", "/fresh", "").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "fresh #1"));
    let repeated: Vec<_> = headers
        .get_all("x-rep")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(repeated, ["a", "b"], "repeated headers are kept, in order");
    let (_, headers, body) = send(proxy, "GET", "/fresh", "").await;
    assert_eq!(body, "fresh #1");
    assert!(headers.contains_key("age"));
    assert_eq!(
        headers.get_all("x-rep").iter().count(),
        2,
        "and stored as such"
    );
    assert_eq!(seen.0.load(Ordering::SeqCst), 1);
}

async fn extension_methods_headers_and_bodies_are_forwarded(fx: &Fixture) {
    let proxy = start_proxy(fx, origin(Seen::default()).await).await;
    let (status, _, body) = send(proxy, "M-SEARCH", "/echo", "abc").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "M-SEARCH abc foo=bar")
    );
    let (_, _, body) = send(proxy, "POST", "/echo", "xyz").await;
    assert_eq!(body, "POST xyz foo=bar");
}

async fn any_status_passes_through(fx: &Fixture) {
    let proxy = start_proxy(fx, origin(Seen::default()).await).await;
    let (status, _, body) = send(proxy, "GET", "/odd", "").await;
    assert_eq!((status.as_u16(), body.as_str()), (999, "odd"));
}

async fn a_dropped_origin_connection_is_a_502_and_never_retried(fx: &Fixture) {
    let seen = Seen::default();
    let proxy = start_proxy(fx, dropping_origin(seen.clone()).await).await;
    let (status, _, _) = send(proxy, "GET", "/anything", "").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(seen.0.load(Ordering::SeqCst), 1, "one connection: no retry");
}
