//! The app under Redis faults, with real MariaDB and Redis: a load of requests while Redis is
//! blackholed through a fault-injecting proxy, then killed and restarted. Every request must
//! succeed, the added p99 latency stays within the cache's operation timeout (plus a margin for
//! a loaded machine), and cache hits resume after each recovery. Figures are printed for
//! docs/RELIABILITY.md (`cargo test -p calories-app --test faults -- --nocapture`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use calories_app::cached;
use calories_app::meals::DailySummary;
use serde_json::json;
use support::redis_support::{FaultProxy, Mode};
use support::{Stack, TestApp, eventually};

/// The cache's default operation timeout, which bounds what a Redis fault may add.
const OPERATION_TIMEOUT: Duration = Duration::from_millis(250);
/// Room for scheduling on a loaded 2-core machine: the bound is a property, not a benchmark.
const MARGIN: Duration = Duration::from_millis(500);
const REQUESTS: usize = 1000;
const LANES: usize = 8;

struct Phase {
    name: &'static str,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// `REQUESTS` requests from `LANES` concurrent clients: 90% day reads, 10% meal writes, over
/// the given users. Panics on any non-2xx answer.
async fn load(app: &Arc<TestApp>, users: &Arc<Vec<(String, i64)>>, name: &'static str) -> Phase {
    let lanes: Vec<_> = (0..LANES)
        .map(|lane| {
            let (app, users) = (Arc::clone(app), Arc::clone(users));
            tokio::spawn(async move {
                let mut took = Vec::with_capacity(REQUESTS / LANES);
                for i in 0..REQUESTS / LANES {
                    let (token, _) = &users[(lane + i) % users.len()];
                    let started = Instant::now();
                    let resp = if i % 10 == 9 {
                        app.post(
                            "/meals",
                            Some(token),
                            json!({"name": "Apple", "calories": 80}),
                        )
                        .await
                    } else {
                        app.get("/meals/daily", Some(token)).await
                    };
                    took.push(started.elapsed());
                    assert!(
                        resp.status.is_success(),
                        "{name}: {} {}",
                        resp.status,
                        String::from_utf8_lossy(&resp.body)
                    );
                }
                took
            })
        })
        .collect();
    let mut all = Vec::with_capacity(REQUESTS);
    for lane in lanes {
        all.extend(lane.await.unwrap());
    }
    all.sort_unstable();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    let phase = Phase {
        name,
        p50: at(0.50),
        p99: at(0.99),
        max: all[all.len() - 1],
    };
    println!(
        "{:<28} {} requests: p50 {:>8.2} ms, p99 {:>8.2} ms, max {:>8.2} ms",
        phase.name,
        all.len(),
        phase.p50.as_secs_f64() * 1e3,
        phase.p99.as_secs_f64() * 1e3,
        phase.max.as_secs_f64() * 1e3
    );
    phase
}

/// Waits until the day of `user` is served from Redis again; returns how long that took.
async fn hits_resume(app: &TestApp, token: &str, user: i64) -> Duration {
    let started = Instant::now();
    let key = cached::daily(user, chrono::Utc::now().date_naive());
    let resumed = eventually(Duration::from_secs(30), || async {
        assert_eq!(
            app.get("/meals/daily", Some(token)).await.status,
            StatusCode::OK
        );
        matches!(app.state.cache.get::<DailySummary>(&key).await, Ok(Some(_)))
    })
    .await;
    assert!(resumed, "cache hits did not resume within 30 s");
    started.elapsed()
}

fn assert_bounded(faulty: &Phase, baseline: &Phase) {
    let added = faulty.p99.saturating_sub(baseline.p99);
    assert!(
        added <= OPERATION_TIMEOUT + MARGIN,
        "{}: p99 {:?} against {:?} without faults adds more than the operation timeout",
        faulty.name,
        faulty.p99,
        baseline.p99
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_redis_faults_every_request_succeeds_and_hits_resume() {
    let mut proxy = None;
    let app = TestApp::start_with(Stack::MariaDbRedis, |config| {
        let redis_port: u16 = config
            .cache_url
            .as_deref()
            .and_then(|url| url.rsplit(':').next())
            .and_then(|tail| tail.split('/').next())
            .and_then(|port| port.parse().ok())
            .expect("the Redis URL names a port");
        let started = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(FaultProxy::start(redis_port))
        });
        config.cache_url = Some(started.url());
        proxy = Some(started);
    })
    .await;
    let proxy = proxy.expect("the proxy started");
    let mut users = Vec::new();
    for n in 0..20 {
        let (token, id) = app.register(&format!("load{n}@example.com")).await;
        app.add_meal(&token, json!({"name": "Oats", "calories": 350}))
            .await;
        users.push((token, id));
    }
    let (token, user) = users[0].clone();
    let (app, users) = (Arc::new(app), Arc::new(users));

    let baseline = load(&app, &users, "no fault").await;

    proxy.set_mode(Mode::Blackhole);
    let blackholed = load(&app, &users, "Redis blackholed").await;
    assert_bounded(&blackholed, &baseline);
    proxy.set_mode(Mode::Pass);
    let recovery = hits_resume(&app, &token, user).await;
    println!(
        "hits resumed {:.2} s after the blackhole lifted",
        recovery.as_secs_f64()
    );
    let after = load(&app, &users, "after the blackhole").await;

    let mut app = Arc::try_unwrap(app)
        .ok()
        .expect("no load task holds the app");
    app.stop_redis();
    let app = Arc::new(app);
    let killed = load(&app, &users, "Redis killed").await;
    assert_bounded(&killed, &baseline);
    let mut app = Arc::try_unwrap(app)
        .ok()
        .expect("no load task holds the app");
    app.restart_redis();
    let recovery = hits_resume(&app, &token, user).await;
    println!(
        "hits resumed {:.2} s after Redis restarted",
        recovery.as_secs_f64()
    );
    let app = Arc::new(app);
    let restarted = load(&app, &users, "after the restart").await;
    for phase in [&after, &restarted] {
        assert_bounded(phase, &baseline);
    }
}
