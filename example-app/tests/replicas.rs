//! Two instances of the app sharing one MariaDB and one Redis, as replicas behind a load
//! balancer: a write on one is read on the other at once, and the rate limit is shared.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::StatusCode;
use serde_json::json;
use support::{Stack, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_replica_is_read_on_the_other_at_once() {
    let a = TestApp::start(Stack::MariaDbRedis).await;
    let b = a.replica().await;
    let (token, _) = a.register("replicas@example.com").await;

    // B reads first, so B's answers are cached in the shared Redis before each write on A.
    assert_eq!(
        b.get("/meals/daily", Some(&token)).await.json()["totals"]["calories"],
        0
    );
    assert_eq!(b.get("/stats", Some(&token)).await.json()["logged_days"], 0);
    assert_eq!(
        b.get("/users/me", Some(&token)).await.json()["daily_goal"],
        2000
    );

    let meal = a
        .add_meal(&token, json!({"name": "Curry", "calories": 700}))
        .await;
    assert_eq!(
        b.get("/meals/daily", Some(&token)).await.json()["totals"]["calories"],
        700
    );
    assert_eq!(b.get("/stats", Some(&token)).await.json()["logged_days"], 1);

    a.patch("/users/me", Some(&token), json!({"daily_goal": 2600}))
        .await;
    assert_eq!(
        b.get("/users/me", Some(&token)).await.json()["daily_goal"],
        2600
    );
    assert_eq!(
        b.get("/meals/daily", Some(&token)).await.json()["remaining"],
        2600 - 700
    );

    assert_eq!(
        b.delete(&format!("/meals/{}", meal["id"]), Some(&token))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        a.get("/meals/daily", Some(&token)).await.json()["totals"]["calories"],
        0
    );
    assert_eq!(
        a.get(&format!("/meals/{}", meal["id"]), Some(&token))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_is_shared_by_the_replicas() {
    let a = TestApp::start_with(Stack::MariaDbRedis, |c| c.rate_limit_anon_per_minute = 4).await;
    let b = a.replica().await;
    for app in [&a, &b, &a, &b] {
        assert_eq!(app.get("/foods?q=egg", None).await.status, StatusCode::OK);
    }
    for app in [&a, &b] {
        let resp = app.get("/foods?q=egg", None).await;
        assert_eq!(resp.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(resp.header("retry-after").is_some());
    }
}

/// Three replicas, each with a local tier in front of the shared Redis
/// (`CACHE_LOCAL_CAPACITY`): each serves hits from its own memory, and a write on any of them
/// reaches the others as soon as its invalidation arrives (awaited here; the distribution is
/// measured in `benches/RESULTS.md`), after which none of them serves the old answer again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_with_local_tiers_see_each_others_writes() {
    let a = TestApp::start_with(Stack::MariaDbRedis, |c| {
        c.cache_local_tier = Some((10_000, std::time::Duration::from_secs(3600)));
    })
    .await;
    let (b, c) = (a.replica().await, a.replica().await);
    assert!(b.state.cache.is_local_tier_active());
    let (token, _) = a.register("local-tiers@example.com").await;
    for app in [&b, &c] {
        assert_eq!(
            app.get("/meals/daily", Some(&token)).await.json()["totals"]["calories"],
            0
        );
        assert_eq!(
            app.get("/stats", Some(&token)).await.json()["logged_days"],
            0
        );
    }

    a.add_meal(&token, json!({"name": "Curry", "calories": 700}))
        .await;
    a.patch("/users/me", Some(&token), json!({"daily_goal": 2600}))
        .await;
    for app in [&b, &c] {
        let arrived = support::eventually(std::time::Duration::from_secs(5), || async {
            let day = app.get("/meals/daily", Some(&token)).await.json();
            let stats = app.get("/stats", Some(&token)).await.json();
            let me = app.get("/users/me", Some(&token)).await.json();
            day["totals"]["calories"] == 700
                && day["remaining"] == 2600 - 700
                && stats["logged_days"] == 1
                && me["daily_goal"] == 2600
        })
        .await;
        assert!(
            arrived,
            "the writes on A never reached a replica's local tier"
        );
        for _ in 0..10 {
            let day = app.get("/meals/daily", Some(&token)).await.json();
            assert_eq!(day["totals"]["calories"], 700, "an old day came back");
        }
    }
}
