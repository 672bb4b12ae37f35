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
/// (`CACHE_LOCAL_CAPACITY`), as in Kubernetes behind a round-robin ingress: a user's next read
/// after a write on A shows it on B and C at once, with no wait for A's invalidation to reach
/// them, because per-user answers are read from Redis every time (each read of B makes a Redis
/// GET); the local tier holds only the shared `/foods` answers. (With per-user answers in the
/// local tier, the capacity run's oracle caught B serving the day from before the write.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_with_local_tiers_read_a_users_own_write_at_once() {
    let a = TestApp::start_with(Stack::MariaDbRedis, |c| {
        c.cache_local_tier = Some((10_000, std::time::Duration::from_secs(3600)));
    })
    .await;
    let (b, c) = (a.replica().await, a.replica().await);
    assert!(b.state.shared_cache.is_local_tier_active());
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
    // B's day is cached now; each further read of it is still a Redis GET.
    let mut redis = a.redis().unwrap().connection();
    let gets = |redis: &mut redis::Connection| -> u64 {
        let info: String = redis::cmd("INFO").arg("commandstats").query(redis).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let before = gets(&mut redis);
    for _ in 0..5 {
        b.get("/meals/daily", Some(&token)).await;
    }
    assert!(
        gets(&mut redis) >= before + 5,
        "B served the user's day from its local tier"
    );

    a.add_meal(&token, json!({"name": "Curry", "calories": 700}))
        .await;
    a.patch("/users/me", Some(&token), json!({"daily_goal": 2600}))
        .await;
    for app in [&b, &c] {
        let day = app.get("/meals/daily", Some(&token)).await.json();
        let stats = app.get("/stats", Some(&token)).await.json();
        let me = app.get("/users/me", Some(&token)).await.json();
        assert_eq!(
            (
                &day["totals"]["calories"],
                &day["remaining"],
                &stats["logged_days"],
                &me["daily_goal"]
            ),
            (&json!(700), &json!(2600 - 700), &json!(1), &json!(2600)),
            "a replica served the user an answer from before their write"
        );
    }
    // The shared answers still come from each replica's memory.
    for app in [&b, &c] {
        assert_eq!(app.get("/foods?q=egg", None).await.status, StatusCode::OK);
    }
    let before = gets(&mut redis);
    for app in [&b, &c] {
        for _ in 0..5 {
            assert_eq!(app.get("/foods?q=egg", None).await.status, StatusCode::OK);
        }
    }
    assert_eq!(
        gets(&mut redis),
        before,
        "/foods did not come from the local tiers"
    );
}
