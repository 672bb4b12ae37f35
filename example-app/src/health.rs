//! Health endpoints: `/health/live` (the process answers), `/health/ready` (the database answers;
//! the cache is reported, and a dead Redis is "degraded", not "not ready"), and `/health`, the
//! combined report of the original guide.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::extract::Json;

/// The state of one dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Dependency {
    /// It answered.
    Up,
    /// It did not answer; the service works without it, more slowly.
    Degraded,
    /// It did not answer; the service cannot work.
    Down,
}

/// The body of `/health/live`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    /// Always `alive`.
    pub status: &'static str,
}

/// The body of `/health/ready` and `/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` / `healthy`, or `not_ready` / `unhealthy`.
    pub status: &'static str,
    /// The database.
    pub database: Dependency,
    /// The cache: `up`, or `degraded` when Redis does not answer.
    pub cache: Dependency,
    /// `memory` or `redis`.
    pub cache_backend: &'static str,
    /// The service's version.
    pub version: &'static str,
    /// Seconds since the process started.
    pub uptime_seconds: u64,
}

/// The process is up: no dependency is checked, so a slow database never gets it restarted.
#[utoipa::path(get, path = "/health/live", tag = "operations", responses((status = 200, body = Liveness)))]
pub async fn live() -> Json<Liveness> {
    Json(Liveness { status: "alive" })
}

/// Ready for traffic when the database answers; 503 otherwise.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    report(&state, ("ready", "not_ready")).await
}

/// The combined report of the original guide: 200 `healthy` or 503 `unhealthy`.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    report(&state, ("healthy", "unhealthy")).await
}

async fn report(
    state: &AppState,
    words: (&'static str, &'static str),
) -> (StatusCode, Json<Readiness>) {
    let (database, cache) = tokio::join!(state.db.is_reachable(), async {
        matches!(
            tokio::time::timeout(Duration::from_secs(1), state.cache.ping()).await,
            Ok(Ok(()))
        )
    });
    let body = Readiness {
        status: if database { words.0 } else { words.1 },
        database: if database {
            Dependency::Up
        } else {
            Dependency::Down
        },
        cache: if cache {
            Dependency::Up
        } else {
            Dependency::Degraded
        },
        cache_backend: state.cache.backend_name(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started.elapsed().as_secs(),
    };
    let status = if database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
