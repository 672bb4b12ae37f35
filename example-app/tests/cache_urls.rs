//! Every `CACHE_URL` form cache-core accepts runs the whole app, rate limiter included:
//! `redis+cluster://` (a real three-master cluster), `rediss://` with a private CA
//! (`CACHE_TLS_CA_FILE`), and `memory://`. Each test checks what a user sees (the day after a
//! write, a shared rate limit) and, behind the app's back, that the keys are where they belong.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use cache_test_support::pki;

use axum::http::StatusCode;
use serde_json::json;
use support::redis_support::{RedisCluster, RedisServer};
use support::{Stack, TestApp};

/// A user's day, written then read: the read after the write sees it (the cache was
/// invalidated on whatever backend), and a second read is served from the cache.
async fn the_day_follows_writes(app: &TestApp, email: &str) {
    let (token, _) = app.register(email).await;
    let day = app.get("/meals/daily", Some(&token)).await;
    assert_eq!(day.status, StatusCode::OK);
    assert_eq!(day.json()["totals"]["calories"], 0);
    app.add_meal(&token, json!({"name": "Curry", "calories": 700}))
        .await;
    assert_eq!(
        app.get("/meals/daily", Some(&token)).await.json()["totals"]["calories"],
        700
    );
    assert_eq!(
        app.get("/meals/daily", Some(&token)).await.json()["totals"]["calories"],
        700
    );
}

/// Two replicas with an anonymous limit of 4 a minute: the fifth request, on either, is 429.
async fn the_limit_is_shared(a: &TestApp, b: &TestApp) {
    for app in [a, b, a, b] {
        assert_eq!(app.get("/foods?q=egg", None).await.status, StatusCode::OK);
    }
    for app in [a, b] {
        let resp = app.get("/foods?q=egg", None).await;
        assert_eq!(resp.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.error_code(), "rate_limited");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_url_runs_the_cache_and_the_shared_rate_limiter() {
    let cluster = RedisCluster::start();
    let url = cluster.url();
    assert!(url.starts_with("redis+cluster://"), "{url}");
    let a = TestApp::start_with(Stack::MariaDbRedis, |c| {
        c.cache_url = Some(url.clone());
        c.rate_limit_anon_per_minute = 4;
    })
    .await;
    assert_eq!(a.state.cache.backend_name(), "redis-cluster");
    assert!(!a.state.limiter.is_local());
    let b = a.replica().await;
    the_limit_is_shared(&a, &b).await;

    // The counter is one key in a hash tag, on the master that owns its slot.
    let key = "calories:ratelimit:{ip:unknown}";
    let count: i64 = redis::cmd("GET")
        .arg(key)
        .query(&mut cluster.node(cluster.master_of(key)))
        .unwrap();
    assert_eq!(count, 6);

    let a = TestApp::start_with(Stack::MariaDbRedis, |c| c.cache_url = Some(url.clone())).await;
    the_day_follows_writes(&a, "cluster@example.com").await;
    let keys: u64 = (0..cluster.len()).map(|i| cluster.dbsize(i)).sum();
    assert!(keys > 1, "the cluster holds no cache entry ({keys} keys)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rediss_url_trusts_the_private_ca_of_cache_tls_ca_file() {
    let pki = pki::Pki::new();
    let redis = RedisServer::start_tls(&pki.cert(), &pki.key(), &pki.ca());
    let url = redis.tls_url();

    // Without the CA, the server's certificate is untrusted: the app refuses to start.
    let dir = tempfile::tempdir().unwrap();
    let mut config = calories_app::Config {
        cache_url: Some(url.clone()),
        database_url: format!("sqlite://{}/c.db", dir.path().display()),
        ..calories_app::Config::default()
    };
    let err = calories_app::AppState::new(config.clone())
        .await
        .expect_err("an untrusted certificate must fail the start");
    assert!(
        format!("{err:#}").to_lowercase().contains("certificate"),
        "{err:#}"
    );
    config.cache_tls_ca_file = Some(pki.ca().with_file_name("missing.pem"));
    let err = calories_app::AppState::new(config)
        .await
        .expect_err("a missing CA file must fail the start");
    assert!(format!("{err:#}").contains("CACHE_TLS_CA_FILE"), "{err:#}");

    let a = TestApp::start_with(Stack::SqliteMemory, |c| {
        c.cache_url = Some(url.clone());
        c.cache_tls_ca_file = Some(pki.ca());
        c.rate_limit_anon_per_minute = 4;
    })
    .await;
    assert_eq!(a.state.cache.backend_name(), "redis");
    let b = a.replica().await;
    the_limit_is_shared(&a, &b).await;
    let app = TestApp::start_with(Stack::SqliteMemory, |c| {
        c.cache_url = Some(url.clone());
        c.cache_tls_ca_file = Some(pki.ca());
    })
    .await;
    the_day_follows_writes(&app, "tls@example.com").await;
    // Behind the app's back on the plain port: the entries went through TLS to this server.
    let keys: u64 = redis::cmd("DBSIZE").query(&mut redis.connection()).unwrap();
    assert!(keys > 1, "the TLS Redis holds no cache entry ({keys} keys)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_url_is_the_in_process_cache_and_limiter() {
    let app = TestApp::start_with(Stack::SqliteMemory, |c| {
        c.cache_url = Some("memory://".to_owned());
        c.rate_limit_anon_per_minute = 3;
    })
    .await;
    assert_eq!(app.state.cache.backend_name(), "memory");
    assert!(app.state.limiter.is_local());
    // One anonymous request (the registration), then two more within the limit of 3.
    the_day_follows_writes(&app, "memory@example.com").await;
    for _ in 0..2 {
        assert_eq!(app.get("/foods?q=egg", None).await.status, StatusCode::OK);
    }
    assert_eq!(
        app.get("/foods?q=egg", None).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}
