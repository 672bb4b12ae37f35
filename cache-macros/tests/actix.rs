//! An actix-web app driven in-process: a cached handler runs once for two requests with the same
//! path, and once per user, with `#[get]` written above or below `#[cache_result]`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{App, get, test, web};
use cache_core::{Cache, cache_result};

#[derive(Clone)]
struct Queries(Arc<AtomicUsize>);

#[get("/stats/{user_id}")]
#[cache_result(expire = 1800, key_prefix = "user_stats", cache = cache.get_ref(), skip(queries))]
async fn stats(
    cache: web::Data<Cache>,
    queries: web::Data<Queries>,
    user_id: web::Path<i64>,
) -> web::Json<Vec<i64>> {
    queries.0.fetch_add(1, Ordering::SeqCst);
    web::Json(vec![*user_id, 2000])
}

#[cache_result(expire = 60, cache = cache.get_ref(), skip(queries))]
#[get("/totals/{user_id}")]
async fn totals(
    cache: web::Data<Cache>,
    queries: web::Data<Queries>,
    user_id: web::Path<i64>,
) -> web::Json<i64> {
    queries.0.fetch_add(1, Ordering::SeqCst);
    web::Json(user_id.into_inner() * 10)
}

#[actix_web::test]
async fn a_cached_actix_handler_runs_once_per_key() {
    let queries = Queries(Arc::default());
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(Cache::memory()))
            .app_data(web::Data::new(queries.clone()))
            .service(stats)
            .service(totals),
    )
    .await;
    let get = |uri: &str| test::TestRequest::get().uri(uri).to_request();

    let first: Vec<i64> = test::call_and_read_body_json(&app, get("/stats/42")).await;
    let second: Vec<i64> = test::call_and_read_body_json(&app, get("/stats/42")).await;
    assert_eq!(first, vec![42, 2000]);
    assert_eq!(first, second);
    assert_eq!(
        queries.0.load(Ordering::SeqCst),
        1,
        "same path: one handler run"
    );
    let other: Vec<i64> = test::call_and_read_body_json(&app, get("/stats/43")).await;
    assert_eq!(other[0], 43);
    assert_eq!(
        queries.0.load(Ordering::SeqCst),
        2,
        "another user: another run"
    );

    let total: i64 = test::call_and_read_body_json(&app, get("/totals/5")).await;
    let again: i64 = test::call_and_read_body_json(&app, get("/totals/5")).await;
    assert_eq!((total, again), (50, 50));
    assert_eq!(
        queries.0.load(Ordering::SeqCst),
        3,
        "#[get] below #[cache_result] works the same"
    );
}
