//! Every route, as a client sees it, on both stacks (SQLite + memory, MariaDB + Redis).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use axum::http::{Method, StatusCode};
use calories_app::cached;
use calories_app::meals::DailySummary;
use calories_app::stats::Stats;
use calories_app::users::User;
use chrono::{Duration, NaiveDate, Utc};
use serde_json::json;
use support::{Stack, TestApp, images, multipart};

both_stacks!(
    register_log_in_and_read_the_day,
    the_day_is_cached_and_every_write_to_it_is_read_at_once,
    days_are_counted_in_the_users_time_zone,
    meals_come_in_pages_newest_first_with_a_total,
    a_user_never_sees_or_touches_another_users_meal,
    photos_are_stored_served_and_removed_with_their_meal,
    stats_are_cached_and_recomputed_after_a_write,
    the_profile_is_cached_and_a_patch_changes_what_every_view_shows,
    foods_are_public_searchable_and_cached_with_etags,
    over_the_rate_limit_is_429_with_retry_after,
    health_metrics_and_the_openapi_document,
);

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

async fn register_log_in_and_read_the_day(stack: Stack) {
    let app = TestApp::start(stack).await;
    let resp = app
        .post("/auth/register", None, json!({"email": " Ann@Example.COM ", "password": "correct horse battery", "name": "Ann", "daily_goal": 1800}))
        .await;
    assert_eq!(resp.status, StatusCode::CREATED);
    let body = resp.json();
    assert_eq!(body["user"]["email"], "ann@example.com");
    assert_eq!(body["user"]["daily_goal"], 1800);
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("password_hash").is_none() && body["user"].get("password_hash").is_none());

    let again = app
        .post(
            "/auth/register",
            None,
            json!({"email": "ann@example.com", "password": "another password"}),
        )
        .await;
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (StatusCode::CONFLICT, "conflict")
    );

    let wrong = app
        .post(
            "/auth/login",
            None,
            json!({"email": "ann@example.com", "password": "wrong password"}),
        )
        .await;
    let unknown = app
        .post(
            "/auth/login",
            None,
            json!({"email": "bob@example.com", "password": "correct horse battery"}),
        )
        .await;
    for resp in [&wrong, &unknown] {
        assert_eq!(
            (resp.status, resp.error_code().as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_credentials")
        );
    }

    let login = app
        .post(
            "/auth/login",
            None,
            json!({"email": "ANN@example.com", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK);
    let token = login.json()["access_token"].as_str().unwrap().to_owned();
    assert!(login.json()["expires_in"].as_u64().unwrap() > 0);

    let me = app.get("/users/me", Some(&token)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["name"], "Ann");

    let meal = app
        .add_meal(
            &token,
            json!({"name": "Oats", "calories": 350, "protein_g": 12.5, "fat_g": 6, "carbs_g": 60}),
        )
        .await;
    assert_eq!(meal["name"], "Oats");
    let day = app.get("/meals/daily", Some(&token)).await;
    assert_eq!(day.status, StatusCode::OK);
    let day = day.json();
    assert_eq!(day["date"], today().to_string());
    assert_eq!(day["meals"][0]["id"], meal["id"]);
    assert_eq!(day["totals"]["calories"], 350);
    assert_eq!(day["totals"]["protein_g"], 12.5);
    assert_eq!(day["remaining"], 1800 - 350);

    let one = app
        .get(&format!("/meals/{}", meal["id"]), Some(&token))
        .await;
    assert_eq!((one.status, one.json()), (StatusCode::OK, meal.clone()));
    let deleted = app
        .delete(&format!("/meals/{}", meal["id"]), Some(&token))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = app
        .get(&format!("/meals/{}", meal["id"]), Some(&token))
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/meals/daily", Some(&token)).await.json()["totals"]["calories"],
        0
    );
}

async fn the_day_is_cached_and_every_write_to_it_is_read_at_once(stack: Stack) {
    let app = TestApp::start(stack).await;
    let (token, id) = app.register("cache@example.com").await;
    let key = cached::daily(id, today());

    let first = app.get("/meals/daily", Some(&token)).await.json();
    assert_eq!(first["meals"].as_array().unwrap().len(), 0);
    let stored: Option<DailySummary> = app.state.cache.get(&key).await.unwrap();
    assert_eq!(
        stored.map(|d| d.meals.len()),
        Some(0),
        "the day is cached after a read"
    );

    let meal = app
        .add_meal(&token, json!({"name": "Soup", "calories": 200}))
        .await;
    let stored: Option<DailySummary> = app.state.cache.get(&key).await.unwrap();
    assert!(stored.is_none(), "logging a meal drops the cached day");
    assert_eq!(
        app.get("/meals/daily", Some(&token)).await.json()["totals"]["calories"],
        200
    );

    // A meal on another day leaves today's cached entry alone and drops that day's.
    let yesterday = today() - Duration::days(1);
    let old_key = cached::daily(id, yesterday);
    app.get(&format!("/meals/daily?date={yesterday}"), Some(&token))
        .await;
    app.add_meal(&token, json!({"name": "Late snack", "calories": 150, "eaten_at": format!("{yesterday}T12:00:00Z")})).await;
    assert!(
        app.state
            .cache
            .get::<DailySummary>(&old_key)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        app.state
            .cache
            .get::<DailySummary>(&key)
            .await
            .unwrap()
            .is_some()
    );
    let old_day = app
        .get(&format!("/meals/daily?date={yesterday}"), Some(&token))
        .await
        .json();
    assert_eq!(old_day["totals"]["calories"], 150);

    app.delete(&format!("/meals/{}", meal["id"]), Some(&token))
        .await;
    assert_eq!(
        app.get("/meals/daily", Some(&token)).await.json()["totals"]["calories"],
        0
    );
}

async fn days_are_counted_in_the_users_time_zone(stack: Stack) {
    let app = TestApp::start(stack).await;
    let (token, _) = app
        .register_with(json!({"email": "tokyo@example.com", "password": "correct horse battery", "time_zone": "Asia/Tokyo"}))
        .await;
    // 20:00 UTC on the 10th is 05:00 on the 11th in Tokyo.
    app.add_meal(
        &token,
        json!({"name": "Breakfast", "calories": 400, "eaten_at": "2026-03-10T20:00:00Z"}),
    )
    .await;
    let tenth = app
        .get("/meals/daily?date=2026-03-10", Some(&token))
        .await
        .json();
    let eleventh = app
        .get("/meals/daily?date=2026-03-11", Some(&token))
        .await
        .json();
    assert_eq!(tenth["totals"]["calories"], 0);
    assert_eq!(eleventh["totals"]["calories"], 400);
    assert_eq!(eleventh["time_zone"], "Asia/Tokyo");

    // Moving to UTC moves the meal to the 10th, at once, although both days were cached.
    let patched = app
        .patch("/users/me", Some(&token), json!({"time_zone": "UTC"}))
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(
        app.get("/meals/daily?date=2026-03-10", Some(&token))
            .await
            .json()["totals"]["calories"],
        400
    );
    assert_eq!(
        app.get("/meals/daily?date=2026-03-11", Some(&token))
            .await
            .json()["totals"]["calories"],
        0
    );
}

async fn meals_come_in_pages_newest_first_with_a_total(stack: Stack) {
    let app = TestApp::start(stack).await;
    let (token, _) = app.register("pages@example.com").await;
    let start = Utc::now() - Duration::hours(30);
    for i in 0..25 {
        let at = (start + Duration::minutes(i * 10)).to_rfc3339();
        app.add_meal(
            &token,
            json!({"name": format!("meal {i}"), "calories": 100 + i, "eaten_at": at}),
        )
        .await;
    }
    let first = app.get("/meals?per_page=10", Some(&token)).await.json();
    assert_eq!(
        (
            first["total"].as_i64(),
            first["total_pages"].as_i64(),
            first["page"].as_i64()
        ),
        (Some(25), Some(3), Some(1))
    );
    assert_eq!(first["items"][0]["name"], "meal 24");
    let last = app
        .get("/meals?per_page=10&page=3", Some(&token))
        .await
        .json();
    let names: Vec<&str> = last["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["meal 4", "meal 3", "meal 2", "meal 1", "meal 0"]);
    let beyond = app
        .get("/meals?per_page=10&page=9", Some(&token))
        .await
        .json();
    assert_eq!(beyond["items"].as_array().unwrap().len(), 0);
    let capped = app.get("/meals?per_page=5000", Some(&token)).await.json();
    assert_eq!(
        (
            capped["per_page"].as_i64(),
            capped["items"].as_array().unwrap().len()
        ),
        (Some(100), 25)
    );
    let default = app.get("/meals", Some(&token)).await.json();
    assert_eq!(default["items"].as_array().unwrap().len(), 20);
}

async fn a_user_never_sees_or_touches_another_users_meal(stack: Stack) {
    let app = TestApp::start(stack).await;
    let (ann, _) = app.register("ann@example.com").await;
    let (bob, _) = app.register("bob@example.com").await;
    let (content_type, form) = multipart(&[
        ("photo", Some("p.png"), images::PNG),
        ("name", None, b"Salad"),
        ("calories", None, b"300"),
    ]);
    let meal = app
        .call(
            Method::POST,
            "/meals/upload",
            Some(&ann),
            Some(&content_type),
            form,
        )
        .await
        .json();
    let id = meal["id"].as_i64().unwrap();

    for (method, uri) in [
        (Method::GET, format!("/meals/{id}")),
        (Method::GET, format!("/meals/{id}/photo")),
        (Method::DELETE, format!("/meals/{id}")),
    ] {
        let resp = app.call(method.clone(), &uri, Some(&bob), None, "").await;
        assert_eq!(
            (resp.status, resp.error_code().as_str()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{method} {uri}"
        );
        let missing = app
            .call(
                method,
                &format!("/meals/{}", id + 1000),
                Some(&bob),
                None,
                "",
            )
            .await;
        assert_eq!(
            missing.json(),
            app.call(
                Method::GET,
                &format!("/meals/{}", id + 1000),
                Some(&bob),
                None,
                ""
            )
            .await
            .json()
        );
    }
    assert_eq!(app.get("/meals", Some(&bob)).await.json()["total"], 0);
    assert_eq!(
        app.get("/meals/daily", Some(&bob)).await.json()["totals"]["calories"],
        0
    );
    assert_eq!(
        app.get(&format!("/meals/{id}"), Some(&ann)).await.status,
        StatusCode::OK,
        "Bob's delete changed nothing"
    );
    assert_eq!(
        app.get(&format!("/meals/{id}/photo"), Some(&ann))
            .await
            .status,
        StatusCode::OK
    );
}

async fn photos_are_stored_served_and_removed_with_their_meal(stack: Stack) {
    let app = TestApp::start(stack).await;
    let (token, _) = app.register("photo@example.com").await;
    for (image, mime) in [
        (images::PNG, "image/png"),
        (images::JPEG, "image/jpeg"),
        (images::WEBP, "image/webp"),
    ] {
        let (content_type, form) = multipart(&[
            ("name", None, b"Pasta"),
            ("calories", None, b"650"),
            ("protein_g", None, b"20.5"),
            ("photo", Some("anything.bin"), image),
        ]);
        let resp = app
            .call(
                Method::POST,
                "/meals/upload",
                Some(&token),
                Some(&content_type),
                form,
            )
            .await;
        assert_eq!(
            resp.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&resp.body)
        );
        let meal = resp.json();
        assert_eq!(
            (meal["calories"].as_i64(), meal["protein_g"].as_f64()),
            (Some(650), Some(20.5))
        );
        let url = meal["photo_url"].as_str().unwrap().to_owned();
        let photo = app.get(&url, Some(&token)).await;
        assert_eq!(photo.status, StatusCode::OK);
        assert_eq!(photo.header("content-type"), Some(mime));
        assert_eq!(&photo.body[..], image);
    }
    let files: Vec<_> = std::fs::read_dir(app.photo_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 3);
    assert!(
        files
            .iter()
            .all(|f| !f.to_string_lossy().contains("anything")),
        "stored under a random name"
    );

    let list = app.get("/meals", Some(&token)).await.json();
    for meal in list["items"].as_array().unwrap() {
        app.delete(&format!("/meals/{}", meal["id"]), Some(&token))
            .await;
    }
    assert_eq!(
        std::fs::read_dir(app.photo_dir()).unwrap().count(),
        0,
        "deleting a meal deletes its photo"
    );

    let plain = app
        .add_meal(&token, json!({"name": "Tea", "calories": 2}))
        .await;
    assert!(plain["photo_url"].is_null());
    let no_photo = app
        .get(&format!("/meals/{}/photo", plain["id"]), Some(&token))
        .await;
    assert_eq!(no_photo.status, StatusCode::NOT_FOUND);
}

async fn stats_are_cached_and_recomputed_after_a_write(stack: Stack) {
    let app = TestApp::start(stack).await;
    let (token, id) = app.register_with(json!({"email": "stats@example.com", "password": "correct horse battery", "daily_goal": 2000})).await;
    let today = today();
    // Logged: today, yesterday, the day before (a streak of 3), then a gap, then day -5.
    for (days_ago, calories) in [(0, 1500), (1, 2500), (2, 1000), (2, 900), (5, 1800)] {
        let at = format!("{}T12:00:00Z", today - Duration::days(days_ago));
        app.add_meal(
            &token,
            json!({"name": "m", "calories": calories, "protein_g": 10, "eaten_at": at}),
        )
        .await;
    }
    let resp = app.get("/stats?days=7", Some(&token)).await;
    assert_eq!(resp.status, StatusCode::OK);
    let stats: Stats = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!((stats.days, stats.to, stats.per_day.len()), (7, today, 7));
    assert_eq!(
        (
            stats.logged_days,
            stats.current_streak,
            stats.longest_streak
        ),
        (4, 3, 3)
    );
    assert_eq!(stats.average.calories, (1500 + 2500 + 1900 + 1800) / 4);
    assert_eq!(stats.days_within_goal, 3);
    assert_eq!(stats.per_day[4].totals.calories, 1900);

    let key = format!("{}:{id}:7:{today}", cached::STATS_PREFIX);
    assert!(
        app.state.cache.get::<Stats>(&key).await.unwrap().is_some(),
        "cached under {key}"
    );
    assert_eq!(
        app.get("/stats", Some(&token)).await.json()["days"],
        7,
        "7 is the default"
    );
    let month = app.get("/stats?days=30", Some(&token)).await.json();
    assert_eq!(month["per_day"].as_array().unwrap().len(), 30);

    app.add_meal(&token, json!({"name": "m", "calories": 700, "eaten_at": format!("{}T12:00:00Z", today - Duration::days(3))})).await;
    assert!(
        app.state.cache.get::<Stats>(&key).await.unwrap().is_none(),
        "a write drops the stats"
    );
    let after: Stats =
        serde_json::from_slice(&app.get("/stats?days=7", Some(&token)).await.body).unwrap();
    assert_eq!((after.logged_days, after.current_streak), (5, 4));
}

async fn the_profile_is_cached_and_a_patch_changes_what_every_view_shows(stack: Stack) {
    let app = TestApp::start(stack).await;
    let (token, id) = app.register("patch@example.com").await;
    let me = app.get("/users/me", Some(&token)).await.json();
    assert_eq!(
        (me["daily_goal"].as_i64(), me["time_zone"].as_str()),
        (Some(2000), Some("UTC"))
    );
    assert!(
        app.state
            .cache
            .get::<User>(cached::profile(id))
            .await
            .unwrap()
            .is_some()
    );
    app.get("/meals/daily", Some(&token)).await;
    app.get("/stats", Some(&token)).await;

    let resp = app
        .patch(
            "/users/me",
            Some(&token),
            json!({"name": "Pat", "daily_goal": 2400, "time_zone": "Europe/Berlin"}),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.json()["name"], "Pat");
    let me = app.get("/users/me", Some(&token)).await.json();
    assert_eq!(
        (
            me["name"].as_str(),
            me["daily_goal"].as_i64(),
            me["time_zone"].as_str()
        ),
        (Some("Pat"), Some(2400), Some("Europe/Berlin"))
    );
    assert_eq!(
        app.get("/meals/daily", Some(&token)).await.json()["daily_goal"],
        2400
    );
    assert_eq!(
        app.get("/stats", Some(&token)).await.json()["daily_goal"],
        2400
    );
    let only_name = app
        .patch("/users/me", Some(&token), json!({"name": "Patricia"}))
        .await
        .json();
    assert_eq!(
        (only_name["name"].as_str(), only_name["daily_goal"].as_i64()),
        (Some("Patricia"), Some(2400))
    );
}

async fn foods_are_public_searchable_and_cached_with_etags(stack: Stack) {
    let app = TestApp::start(stack).await;
    let first = app.get("/foods?q=chick", None).await;
    assert_eq!(first.status, StatusCode::OK);
    let body = first.json();
    let names: Vec<String> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_lowercase())
        .collect();
    assert!(
        !names.is_empty()
            && names
                .iter()
                .all(|n| n.starts_with("chick") || n.contains(" chick")),
        "{names:?}"
    );
    assert!(body["items"][0]["kcal"].as_i64().unwrap() > 0);
    assert_eq!(first.header("cache-control"), Some("public, max-age=300"));
    let etag = first.header("etag").unwrap().to_owned();

    let second = app.get("/foods?q=chick", None).await;
    assert_eq!(second.body, first.body);
    assert!(
        second.header("cache-status").unwrap().contains("hit"),
        "{:?}",
        second.header("cache-status")
    );

    let request = axum::http::Request::get("/foods?q=chick")
        .header("if-none-match", &etag)
        .body(axum::body::Body::empty())
        .unwrap();
    let not_modified = app.send(request).await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);

    let all = app.get("/foods?per_page=100", None).await.json();
    assert!(all["total"].as_i64().unwrap() >= 300);
    let page2 = app.get("/foods?per_page=100&page=2", None).await.json();
    assert_ne!(all["items"][0], page2["items"][0]);
    for literal in ["%25", "_", "%27%20OR%201%3D1%20--"] {
        let resp = app.get(&format!("/foods?q={literal}"), None).await;
        assert_eq!(
            (resp.status, resp.json()["total"].as_i64()),
            (StatusCode::OK, Some(0)),
            "q={literal} is literal text"
        );
    }
}

async fn over_the_rate_limit_is_429_with_retry_after(stack: Stack) {
    let app = TestApp::start_with(stack, |c| {
        c.rate_limit_anon_per_minute = 3;
        c.rate_limit_per_minute = 4;
    })
    .await;
    let (token, _) = app.register("limited@example.com").await; // anonymous request 1
    for _ in 0..2 {
        assert_eq!(app.get("/foods?q=rice", None).await.status, StatusCode::OK);
    }
    let limited = app.get("/foods?q=rice", None).await;
    assert_eq!(
        (limited.status, limited.error_code().as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");

    // The signed-in user has a budget of their own.
    for _ in 0..4 {
        assert_eq!(
            app.get("/users/me", Some(&token)).await.status,
            StatusCode::OK
        );
    }
    let limited = app.get("/users/me", Some(&token)).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.header("retry-after").is_some());
    // Health checks are never limited.
    assert_eq!(app.get("/health/live", None).await.status, StatusCode::OK);
}

async fn health_metrics_and_the_openapi_document(stack: Stack) {
    let app = TestApp::start(stack).await;
    assert_eq!(
        app.get("/health/live", None).await.json()["status"],
        "alive"
    );
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    let ready = ready.json();
    assert_eq!(
        (
            ready["status"].as_str(),
            ready["database"].as_str(),
            ready["cache"].as_str()
        ),
        (Some("ready"), Some("up"), Some("up"))
    );
    let expected_backend = if stack == Stack::MariaDbRedis {
        "redis"
    } else {
        "memory"
    };
    assert_eq!(ready["cache_backend"], expected_backend);
    assert_eq!(app.get("/health", None).await.json()["status"], "healthy");

    let (token, _) = app.register("metrics@example.com").await;
    app.get("/meals/daily", Some(&token)).await;
    app.get("/meals/daily", Some(&token)).await;
    app.get("/nowhere", None).await;
    let metrics = String::from_utf8(app.get("/metrics", None).await.body.to_vec()).unwrap();
    for needle in [
        "http_requests_total{method=\"GET\",route=\"/meals/daily\",status=\"200\"}",
        "http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}",
        "http_request_duration_seconds_bucket{method=\"GET\",route=\"/meals/daily\"",
        "cache_hits_total{namespace=\"calories\"",
        "cache_misses_total{namespace=\"calories\"",
        "db_pool_connections{state=\"idle\"}",
        "db_pool_max_connections",
    ] {
        assert!(
            metrics.contains(needle),
            "{needle} missing from /metrics:\n{metrics}"
        );
    }

    let doc = app.get("/openapi.json", None).await.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/auth/register",
        "/auth/login",
        "/users/me",
        "/meals",
        "/meals/upload",
        "/meals/daily",
        "/meals/{id}",
        "/meals/{id}/photo",
        "/stats",
        "/foods",
        "/health/ready",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
}

/// A Redis that dies leaves the service ready ("degraded") and every read answered from the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_is_degraded_not_unready_and_requests_still_succeed() {
    let mut app = TestApp::start(Stack::MariaDbRedis).await;
    let (token, _) = app.register("degraded@example.com").await;
    app.add_meal(&token, json!({"name": "Rice", "calories": 300}))
        .await;
    app.get("/meals/daily", Some(&token)).await;

    app.stop_redis();
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(
        (
            ready.json()["cache"].as_str(),
            ready.json()["database"].as_str()
        ),
        (Some("degraded"), Some("up"))
    );
    let day = app.get("/meals/daily", Some(&token)).await;
    assert_eq!(
        (day.status, day.json()["totals"]["calories"].as_i64()),
        (StatusCode::OK, Some(300))
    );
    let meal = app
        .post(
            "/meals",
            Some(&token),
            json!({"name": "Bread", "calories": 250}),
        )
        .await;
    assert_eq!(
        meal.status,
        StatusCode::CREATED,
        "writes succeed without the cache"
    );
    assert_eq!(
        app.get("/meals/daily", Some(&token)).await.json()["totals"]["calories"],
        550
    );
    assert_eq!(app.get("/stats", Some(&token)).await.status, StatusCode::OK);
}

/// `CACHE_URL=none`: no cache at all; every read comes from the database and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_cache_off_every_read_comes_from_the_database() {
    let app = TestApp::start_with(Stack::SqliteMemory, |c| {
        c.cache_url = Some("none".to_owned());
    })
    .await;
    let (token, id) = app.register("nocache@example.com").await;
    app.add_meal(&token, json!({"name": "Rice", "calories": 300}))
        .await;
    assert_eq!(
        app.get("/meals/daily", Some(&token)).await.json()["totals"]["calories"],
        300
    );
    assert!(
        app.state
            .cache
            .get::<DailySummary>(cached::daily(id, today()))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        app.get("/health/ready", None).await.json()["cache_backend"],
        "none"
    );
}

/// Behind an ingress (`TRUST_FORWARDED_FOR=true`), each client IP in `X-Forwarded-For` has its
/// own budget; the rightmost entry counts, the one the ingress added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_proxy_each_forwarded_client_has_its_own_budget() {
    let app = TestApp::start_with(Stack::SqliteMemory, |c| {
        c.rate_limit_anon_per_minute = 2;
        c.trust_forwarded_for = true;
    })
    .await;
    let from = |chain: &str| {
        axum::http::Request::get("/foods?q=tea")
            .header("x-forwarded-for", chain)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    for _ in 0..2 {
        assert_eq!(app.send(from("203.0.113.7")).await.status, StatusCode::OK);
    }
    assert_eq!(
        app.send(from("203.0.113.7")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A spoofed left entry does not buy a new budget; a new client does.
    assert_eq!(
        app.send(from("198.51.100.1, 203.0.113.7")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(app.send(from("203.0.113.8")).await.status, StatusCode::OK);
}
