//! axum handlers with extractor patterns compile into a router (their futures are `Send`).
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use cache_core::{Cache, cache_result};
use serde::{Deserialize, Serialize};

#[derive(Clone)]
pub struct AppState {
    pub cache: Cache,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Stats {
    pub avg: u32,
}

#[derive(Deserialize)]
pub struct Range {
    pub days: u32,
}

#[derive(Debug, Clone)]
pub struct AppError;

impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}

#[cache_result(expire = 1800, key_prefix = "user_stats", key = "{user_id}:{q.days}", cache = app.cache)]
async fn stats(State(app): State<AppState>, Path(user_id): Path<i64>, Query(q): Query<Range>) -> Json<Stats> {
    let _ = &app;
    Json(Stats { avg: u32::try_from(user_id).unwrap_or(0) + q.days })
}

#[cache_result(expire = 60, cache = app.cache)]
async fn fallible(State(app): State<AppState>, Path((user, day)): Path<(i64, String)>) -> Result<Json<Vec<String>>, AppError> {
    Ok(Json(vec![user.to_string(), day]))
}

fn main() {
    let _router: Router = Router::new()
        .route("/stats/{user_id}", get(stats))
        .route("/meals/{user}/{day}", get(fallible))
        .with_state(AppState { cache: Cache::memory() });
}
