//! `Idempotency-Key` on the meal writes, on SQLite + memory and on MariaDB + Redis: a repeat
//! of a request logs nothing more and answers as the first did; copies of one request racing on
//! two replicas log one meal; a key reused with another request, or malformed, is a 422 that
//! writes nothing; a repeated upload keeps one photo, even once the first spent the quota.
//! And the write order the replay relies on: a write that cannot reach the database
//! invalidates nothing, so the cached day keeps answering.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Resp, Stack, TestApp};

async fn post_with_key(app: &TestApp, token: &str, key: &str, meal: &Value) -> Resp {
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/meals")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(axum::body::Body::from(meal.to_string()))
        .unwrap();
    app.send(request).await
}

async fn upload_with_key(app: &TestApp, token: &str, key: &str) -> Resp {
    let (content_type, body) = support::multipart(&[
        ("photo", Some("a.png"), support::images::PNG),
        ("name", None, b"Toast"),
        ("calories", None, b"300"),
    ]);
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/meals/upload")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", content_type)
        .header("idempotency-key", key)
        .body(axum::body::Body::from(body))
        .unwrap();
    app.send(request).await
}

async fn meals_of(app: &TestApp, user: i64) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM meals WHERE user_id = ?")
        .bind(user)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
}

both_stacks!(
    a_repeat_with_the_same_key_logs_nothing_more_and_answers_as_the_first,
    a_key_reused_with_another_request_or_malformed_is_refused_and_writes_nothing,
    copies_of_one_request_racing_on_two_replicas_log_one_meal,
    a_repeated_upload_keeps_one_meal_and_one_photo_even_past_the_quota,
);

async fn a_repeat_with_the_same_key_logs_nothing_more_and_answers_as_the_first(stack: Stack) {
    let app = TestApp::start(stack).await;
    let (token, user) = app.register("repeat@example.com").await;
    // No eaten_at: "now" differs between the copies, and must not tell them apart.
    let meal = json!({"name": "Oats", "calories": 350, "protein_g": 12.5});
    let first = post_with_key(&app, &token, "8e03978e-40d5-43e8-bc93-6894a57f9324", &meal).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = post_with_key(&app, &token, "8e03978e-40d5-43e8-bc93-6894a57f9324", &meal).await;
    assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        again.json(),
        first.json(),
        "the repeat answers as the first did"
    );
    assert_eq!(meals_of(&app, user).await, 1);
    let day = app.get("/meals/daily", Some(&token)).await.json();
    assert_eq!(day["totals"]["calories"], 350);
    assert_eq!(day["meals"].as_array().map(Vec::len), Some(1));

    // Keys are per user: another user's same key is a new meal.
    let (other, other_id) = app.register("other@example.com").await;
    let theirs = post_with_key(&app, &other, "8e03978e-40d5-43e8-bc93-6894a57f9324", &meal).await;
    assert_eq!(theirs.status, StatusCode::CREATED);
    assert_eq!(theirs.header("idempotent-replayed"), None);
    assert_ne!(theirs.json()["id"], first.json()["id"]);
    assert_eq!(meals_of(&app, other_id).await, 1);

    // Once the meal is deleted its key is free again.
    let deleted = app
        .delete(&format!("/meals/{}", first.json()["id"]), Some(&token))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let anew = post_with_key(&app, &token, "8e03978e-40d5-43e8-bc93-6894a57f9324", &meal).await;
    assert_eq!(anew.status, StatusCode::CREATED);
    assert_eq!(anew.header("idempotent-replayed"), None);
    assert_eq!(meals_of(&app, user).await, 1);
}

async fn a_key_reused_with_another_request_or_malformed_is_refused_and_writes_nothing(
    stack: Stack,
) {
    let app = TestApp::start(stack).await;
    let (token, _) = app.register("reuse@example.com").await;
    let first = post_with_key(
        &app,
        &token,
        "k-1",
        &json!({"name": "Oats", "calories": 350}),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let before = app.snapshot().await;

    let other = post_with_key(
        &app,
        &token,
        "k-1",
        &json!({"name": "Oats", "calories": 351}),
    )
    .await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.error_code(), "idempotency_key_reused");
    let too_long = "k".repeat(65);
    for bad in ["", "has spaces", "ünïcode", too_long.as_str()] {
        let resp = post_with_key(&app, &token, bad, &json!({"name": "Tea", "calories": 5})).await;
        assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY, "key {bad:?}");
        assert_eq!(resp.error_code(), "validation_failed", "key {bad:?}");
    }
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused request wrote something"
    );
}

async fn copies_of_one_request_racing_on_two_replicas_log_one_meal(stack: Stack) {
    let app = std::sync::Arc::new(TestApp::start(stack).await);
    let other = std::sync::Arc::new(app.replica().await);
    let (token, user) = app.register("race@example.com").await;
    let mut copies = tokio::task::JoinSet::new();
    for i in 0..8 {
        let target = if i % 2 == 0 {
            app.clone()
        } else {
            other.clone()
        };
        let token = token.clone();
        copies.spawn(async move {
            post_with_key(
                &target,
                &token,
                "race-key",
                &json!({"name": "Soup", "calories": 220}),
            )
            .await
        });
    }
    let answers = copies.join_all().await;
    let ids: Vec<Value> = answers
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
            r.json()["id"].clone()
        })
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "different meals: {ids:?}"
    );
    let fresh = answers
        .iter()
        .filter(|r| r.header("idempotent-replayed").is_none())
        .count();
    assert_eq!(fresh, 1, "one copy logs, the others replay");
    assert_eq!(meals_of(&app, user).await, 1);
}

async fn a_repeated_upload_keeps_one_meal_and_one_photo_even_past_the_quota(stack: Stack) {
    // Room for exactly one photo: the repeat must replay, not answer 413.
    let quota = u64::try_from(support::images::PNG.len()).unwrap();
    let app = TestApp::start_with(stack, |c| c.photo_quota_bytes = quota).await;
    let (token, user) = app.register("upload@example.com").await;
    let first = upload_with_key(&app, &token, "upload-1").await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let again = upload_with_key(&app, &token, "upload-1").await;
    assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json(), first.json());
    assert_eq!(meals_of(&app, user).await, 1);
    let files = std::fs::read_dir(app.photo_dir()).map_or(0, |d| d.count());
    assert_eq!(files, 1, "the repeat's photo file was kept");
    let photo = app
        .get(first.json()["photo_url"].as_str().unwrap(), Some(&token))
        .await;
    assert_eq!(photo.status, StatusCode::OK);
    // A new key is a new upload, and the quota is spent.
    let new = upload_with_key(&app, &token, "upload-2").await;
    assert_eq!(new.status, StatusCode::PAYLOAD_TOO_LARGE);
}

/// A write that cannot get a database connection fails before it invalidates anything: the
/// cached day keeps answering, as it must while MariaDB is down (the capacity run's outage);
/// the outage is then known, later writes fail at once, and they land again once the database
/// is back. Staged by holding the pool's only connection, so the write's wait for one times
/// out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_cannot_reach_the_database_leaves_the_cached_day_answering() {
    let app = TestApp::start_with(Stack::SqliteMemory, |c| c.database_max_connections = 1).await;
    let (token, _) = app.register("outage@example.com").await;
    app.add_meal(&token, json!({"name": "Curry", "calories": 700}))
        .await;
    // The day and the profile are now cached.
    let day = app.get("/meals/daily", Some(&token)).await;
    assert_eq!(day.json()["totals"]["calories"], 700);
    assert_eq!(
        app.get("/users/me", Some(&token)).await.status,
        StatusCode::OK
    );

    let held = app.state.db.pool.acquire().await.unwrap();
    let write = app
        .post(
            "/meals",
            Some(&token),
            json!({"name": "Tea", "calories": 5}),
        )
        .await;
    assert_eq!(
        write.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        write.body
    );
    assert!(write.header("retry-after").is_some());
    // The outage is known now: the next writes fail at once (503 `unavailable`), not after
    // another wait for the pool, and cached reads keep answering.
    assert!(app.state.db.outage.is_down());
    let again = app
        .post(
            "/meals",
            Some(&token),
            json!({"name": "Tea", "calories": 5}),
        )
        .await;
    assert_eq!(again.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(again.error_code(), "unavailable");
    let cached = app.get("/meals/daily", Some(&token)).await;
    assert_eq!(cached.status, StatusCode::OK, "{:?}", cached.body);
    assert_eq!(cached.json()["totals"]["calories"], 700);
    // The database is back: after the cool-down one write tries it, and writes land again.
    drop(held);
    let back = support::eventually(std::time::Duration::from_secs(15), || async {
        app.post(
            "/meals",
            Some(&token),
            json!({"name": "Tea", "calories": 5}),
        )
        .await
        .status
            == StatusCode::CREATED
    })
    .await;
    assert!(back, "writes did not resume once the database was back");
    assert!(!app.state.db.outage.is_down());
    let day = app.get("/meals/daily", Some(&token)).await.json();
    assert_eq!(
        day["totals"]["calories"], 705,
        "the day shows the write: {day}"
    );
}
