//! Logs and metrics: the tracing subscriber (JSON lines in production), the Prometheus recorder,
//! the per-request middleware (request id, access log line, metrics) and `GET /metrics`.
//!
//! Access log: one line per request, in production one JSON object such as
//! `{"timestamp":"2026-12-03T12:00:00.000001Z","level":"INFO","message":"request","target":"http",
//! "request_id":"4be1…","method":"GET","route":"/meals/{id}","status":200,"latency_ms":3.2,"user_id":7}`.
//! `route` is the matched template, never the raw path or query, so no email, token or id typed
//! into a URL reaches the logs; `user_id` is there when the request carried a valid token.
//! `request_id` is the caller's `X-Request-Id` when it is a sane one (1 to 128 of
//! `[A-Za-z0-9._:-]`, so that nothing can be injected into a log line), else a new UUID, and is
//! echoed in the response's `X-Request-Id` header: a user's bug report then finds its log line.
//!
//! Metrics: `http_requests_total{method,route,status}`, `http_request_duration_seconds{method,route}`
//! (histogram), `http_rate_limited_total`, `db_pool_connections{state}` and `db_pool_max_connections`,
//! and with a read replica `db_replica_fallbacks_total{reason}` and `db_replica_up` (see
//! [`crate::replica`]), plus cache-core's `cache_hits_total`, `cache_misses_total`, `cache_errors_total` and the rest.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::app::AppState;
use crate::auth::bearer_token;
use crate::config::Config;

/// Installs the log subscriber: JSON lines in production, readable text otherwise. `RUST_LOG`
/// filters (default `info`). Does nothing when one is already installed.
pub fn init_logging(config: &Config) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _already = if config.is_production() {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.compact().try_init()
    };
}

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use. `None` when another recorder was
/// installed first (then `/metrics` says so).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            // 0.3 is the latency SLO's threshold (p99 under 300 ms): the alert rules read that bucket.
            let buckets = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3, 0.5, 1.0, 2.5, 5.0,
            ];
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &buckets)
                .ok()?
                .install_recorder()
                .map_err(|err| tracing::warn!(error = %err, "no Prometheus recorder: /metrics will be empty"))
                .ok()
        })
        .as_ref()
}

/// The request id header, read from the caller and echoed in every response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The caller's request id when it is safe to log and echo, else a fresh UUID.
fn request_id(request: &Request) -> HeaderValue {
    request
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| {
            let bytes = v.as_bytes();
            (1..=128).contains(&bytes.len())
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("invalid-uuid"))
        })
}

/// Gives every request an id, counts and times it by method, matched route and status, and
/// writes its access log line (see the module docs).
///
/// The user id of the log line comes from checking the bearer token here: the middleware runs
/// outside the rate limiter and the handlers, which check it again (an HMAC, microseconds).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&request);
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let (parts, body) = request.into_parts();
    // The token's user, whatever its session's state: the log says who asked, the handlers
    // decide what they may.
    let user_id = bearer_token(&parts)
        .and_then(|token| state.jwt.verify(token).ok())
        .map(|(user, _session)| user);
    let mut response = next.run(Request::from_parts(parts, body)).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method.clone(), "route" => route.clone())
        .record(elapsed.as_secs_f64());
    let latency_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
    let request_id = id.to_str().unwrap_or("invalid");
    if status >= 500 {
        tracing::error!(target: "http", request_id, method, route, status, latency_ms, user_id, "request");
    } else {
        tracing::info!(target: "http", request_id, method, route, status, latency_ms, user_id, "request");
    }
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let pool = &state.db.pool;
    let (size, idle) = (
        pool.size(),
        u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
    );
    metrics::gauge!("db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("db_pool_connections", "state" => "in_use")
        .set(f64::from(size.saturating_sub(idle)));
    metrics::gauge!("db_pool_max_connections")
        .set(f64::from(state.config.database_max_connections));
    let body = prometheus().map_or_else(
        || "# no Prometheus recorder is installed in this process\n".to_owned(),
        |handle| {
            handle.run_upkeep();
            handle.render()
        },
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
