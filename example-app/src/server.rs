//! The HTTP server: hyper's HTTP/1 connections with the bounds a service exposed to the
//! internet needs, which `axum::serve` does not set.
//!
//! - headers must arrive within `HEADER_READ_TIMEOUT_SECONDS` (slowloris: a client that sends a
//!   header line now and then would otherwise hold a connection forever);
//! - a whole request, body included, within `REQUEST_TIMEOUT_SECONDS`, else 408 in the JSON
//!   error shape (an upload at 1 byte/s is cut off);
//! - at most `MAX_CONCURRENT_REQUESTS` in the handlers at once, else 503 `busy` with
//!   `Retry-After` (health and metrics are exempt, so probes still answer under load);
//! - shutdown lets in-flight requests finish for at most `SHUTDOWN_GRACE_SECONDS`, then returns.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::app::{AppState, router};
use crate::error::ApiError;

/// The bounds the server keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// How long a client may take to send its request line and headers.
    pub header_read_timeout: Duration,
    /// How long a request may take, body and handler included.
    pub request_timeout: Duration,
    /// Requests in the handlers at once.
    pub max_concurrent_requests: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 256,
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

#[derive(Clone)]
struct Bounds {
    limits: ServerLimits,
    slots: Arc<Semaphore>,
}

/// Serves `state`'s router on `listener` until `shutdown` completes, then lets in-flight
/// requests finish for at most the configured grace.
///
/// # Errors
/// The listener failed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.config.server_limits();
    let bounds = Bounds {
        limits,
        slots: Arc::new(Semaphore::new(limits.max_concurrent_requests.max(1))),
    };
    let app: Router = router(state).layer(middleware::from_fn_with_state(bounds, bound));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = app
            .clone()
            .map_request(move |request: Request<hyper::body::Incoming>| {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(
                "requests still in flight after the {:?} shutdown grace; stopping anyway",
                limits.shutdown_grace
            );
        }
    }
    Ok(())
}

/// The per-request bounds: a concurrency slot (except for operations routes), then the deadline.
async fn bound(State(bounds): State<Bounds>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let exempt = path.starts_with("/health") || path == "/metrics";
    let _slot = if exempt {
        None
    } else {
        match bounds.slots.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => {
                metrics::counter!("http_concurrency_rejected_total").increment(1);
                return ApiError::busy(Duration::from_secs(1)).into_response();
            }
        }
    };
    match tokio::time::timeout(bounds.limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request took longer than {} s, body included; send it faster or in \
                 smaller parts",
                bounds.limits.request_timeout.as_secs_f64()
            ),
        )
        .into_response(),
    }
}
