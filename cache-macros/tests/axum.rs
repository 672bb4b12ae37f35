//! An axum router driven in-process: a cached handler runs once for two requests with the same
//! path, and once per user.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use cache_core::{Cache, cache_result};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

#[derive(Clone)]
struct AppState {
    cache: Cache,
    queries: Arc<AtomicUsize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stats {
    user_id: i64,
    days: u32,
    avg_kcal: u32,
}

#[derive(Deserialize)]
struct Range {
    days: u32,
}

#[derive(Debug, Clone)]
enum AppError {
    NoSuchUser,
}

impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        StatusCode::NOT_FOUND.into_response()
    }
}

#[cache_result(expire = 1800, key_prefix = "user_stats", key = "{user_id}:{range.days}", cache = app.cache)]
async fn stats(
    State(app): State<AppState>,
    Path(user_id): Path<i64>,
    Query(range): Query<Range>,
) -> Result<Json<Stats>, AppError> {
    app.queries.fetch_add(1, Ordering::SeqCst);
    if user_id == 404 {
        return Err(AppError::NoSuchUser);
    }
    Ok(Json(Stats {
        user_id,
        days: range.days,
        avg_kcal: 2000,
    }))
}

#[cache_result(expire = 60, cache = app.cache)]
async fn meals(State(app): State<AppState>, Path(user_id): Path<i64>) -> Json<Vec<String>> {
    app.queries.fetch_add(1, Ordering::SeqCst);
    Json(vec![format!("oats for {user_id}")])
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/stats/{user_id}", get(stats))
        .route("/meals/{user_id}", get(meals))
        .with_state(state)
}

async fn call(router: &Router, uri: &str) -> (StatusCode, serde_json::Value) {
    let response = router
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn a_cached_axum_handler_runs_once_per_key() {
    let state = AppState {
        cache: Cache::memory(),
        queries: Arc::default(),
    };
    let queries = Arc::clone(&state.queries);
    let app = router(state);

    let (status, first) = call(&app, "/stats/42?days=7").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["avg_kcal"], 2000);
    let (_, second) = call(&app, "/stats/42?days=7").await;
    assert_eq!(first, second);
    assert_eq!(
        queries.load(Ordering::SeqCst),
        1,
        "same path: one handler run"
    );

    call(&app, "/stats/43?days=7").await;
    assert_eq!(
        queries.load(Ordering::SeqCst),
        2,
        "another user: another run"
    );
    call(&app, "/stats/42?days=30").await;
    assert_eq!(
        queries.load(Ordering::SeqCst),
        3,
        "another query: another run"
    );

    let (status, _) = call(&app, "/stats/404?days=7").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    call(&app, "/stats/404?days=7").await;
    assert_eq!(queries.load(Ordering::SeqCst), 5, "errors are not cached");

    call(&app, "/meals/1").await;
    let (_, body) = call(&app, "/meals/1").await;
    assert_eq!(body[0], "oats for 1");
    assert_eq!(
        queries.load(Ordering::SeqCst),
        6,
        "a plain Json<T> handler is cached too"
    );
}
