//! A caching reverse proxy: hyper server → error-to-502 → [`HttpCache`] → hyper client.
//!
//! Forwards every method (extension methods too), path, query, header and body unchanged,
//! passes any status through (even 999), keeps repeated headers, never retries, and answers
//! 502 when the origin cannot be reached or drops the connection. The cache follows RFC 9111
//! as a shared cache would, strictly: responses with `Set-Cookie` are stored (§7.3) and
//! heuristic freshness is on.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use bytes::Bytes;
use cache_adapters::{HttpCache, HttpCacheLayer};
use cache_core::Cache;
use http::{HeaderMap, HeaderName, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt};

/// What a client sends through the proxy.
pub(crate) type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// The origin, as a tower service: the request's path and query on the upstream base URL.
#[derive(Clone, Debug)]
pub(crate) struct Upstream {
    client: Client<HttpConnector, ProxyBody>,
    base: Uri,
}

impl Upstream {
    /// An upstream at `base` (`http://host:port`).
    pub(crate) fn new(base: Uri) -> Self {
        let client = Client::builder(TokioExecutor::new())
            // An origin that sends more body than its Content-Length says leaves stray bytes
            // on a pooled connection; one connection per request cannot be poisoned.
            .pool_max_idle_per_host(0)
            // Never send a request twice.
            .retry_canceled_requests(false)
            .build_http();
        Self { client, base }
    }
}

impl Service<Request<ProxyBody>> for Upstream {
    type Response = Response<Incoming>;
    type Error = hyper_util::client::legacy::Error;
    type Future = hyper_util::client::legacy::ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<ProxyBody>) -> Self::Future {
        let path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let base = self.base.to_string();
        let target = format!("{}{}", base.trim_end_matches('/'), path);
        if let Ok(uri) = target.parse() {
            *request.uri_mut() = uri;
        }
        strip_hop_by_hop(request.headers_mut());
        request.headers_mut().remove(http::header::HOST);
        self.client.request(request)
    }
}

/// Removes the headers that belong to one connection, not to the message (RFC 9110 §7.6.1).
/// Those the `Connection` header names, and the ones it always means.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|list| list.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    let always = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
        "trailer",
    ];
    for name in always.into_iter().map(HeaderName::from_static).chain(named) {
        headers.remove(name);
    }
}

/// The whole stack for one upstream.
pub(crate) fn stack(upstream: Uri, cache: Cache) -> HttpCache<Upstream> {
    HttpCacheLayer::new(cache)
        .store_set_cookie(true)
        .heuristic_freshness(true)
        .cache_status(Some("cache_proxy"))
        .layer(Upstream::new(upstream))
}

/// Serves the proxy on `listener` until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, service: HttpCache<Upstream>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let service = service.clone();
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |request: Request<Incoming>| {
                let service = service.clone();
                async move { Ok::<_, Infallible>(forward(service, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), handler)
                .await;
        });
    }
}

async fn forward(service: HttpCache<Upstream>, request: Request<Incoming>) -> Response<ProxyBody> {
    let request = request.map(BodyExt::boxed);
    match service.oneshot(request).await {
        Ok(response) => {
            let mut response = response.map(BodyExt::boxed);
            strip_hop_by_hop(response.headers_mut());
            response
        }
        Err(err) => {
            tracing::debug!(error = %err, "origin unreachable");
            let mut response = Response::new(Empty::new().map_err(|never| match never {}).boxed());
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response
        }
    }
}

/// Binds `listen` and serves the proxy in a background task; the bound address.
pub(crate) async fn spawn(
    listen: SocketAddr,
    upstream: Uri,
    cache: Cache,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    tokio::spawn(serve(listener, stack(upstream, cache)));
    Ok(address)
}
