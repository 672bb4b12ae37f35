//! Sessions with rotating refresh tokens, on both stacks: rotation, reuse detection ending the
//! family, logout of one session, of all, or of another device, access tokens refused once their
//! session ends (at once here, within about a second on another replica), the revocation check
//! costing no Redis round trip per request, and a Redis outage: refresh answers 503, access
//! tokens keep working, and the same refresh token works again once Redis is back.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::redis_support::{FaultProxy, Mode};
use support::{Stack, TestApp};

both_stacks!(
    refresh_rotates_and_a_reused_token_ends_the_whole_session,
    logout_ends_this_session_and_logout_all_every_one,
    a_user_lists_their_sessions_and_ends_another_device,
);

async fn login(app: &TestApp, email: &str) -> Value {
    let body = json!({"email": email, "password": "correct horse battery"});
    let resp = app.post("/auth/login", None, body).await;
    assert_eq!(
        resp.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&resp.body)
    );
    resp.json()
}

async fn refresh(app: &TestApp, refresh_token: &str) -> support::Resp {
    app.post(
        "/auth/refresh",
        None,
        json!({"refresh_token": refresh_token}),
    )
    .await
}

fn access(pair: &Value) -> String {
    pair["access_token"].as_str().unwrap().to_owned()
}

fn refresh_token(pair: &Value) -> String {
    pair["refresh_token"].as_str().unwrap().to_owned()
}

async fn status_of(app: &TestApp, token: &str) -> (StatusCode, Option<String>) {
    let resp = app.get("/users/me", Some(token)).await;
    let code = (resp.status != StatusCode::OK).then(|| resp.error_code());
    (resp.status, code)
}

async fn refresh_rotates_and_a_reused_token_ends_the_whole_session(stack: Stack) {
    let app = TestApp::start(stack).await;
    app.register("rotate@example.com").await;
    let first = login(&app, "rotate@example.com").await;
    assert!(
        first["expires_in"].as_u64().unwrap() <= 900,
        "access tokens are short-lived"
    );

    let second = refresh(&app, &refresh_token(&first)).await;
    assert_eq!(second.status, StatusCode::OK);
    let second = second.json();
    assert_ne!(refresh_token(&second), refresh_token(&first));
    assert_eq!(second["session_id"], first["session_id"]);
    assert_eq!(status_of(&app, &access(&second)).await.0, StatusCode::OK);

    // The first refresh token, presented again: someone has a copy. The session ends.
    let reused = refresh(&app, &refresh_token(&first)).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reused.error_code(), "refresh_token_reused");
    let after = refresh(&app, &refresh_token(&second)).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.error_code(), "invalid_refresh_token");
    for token in [access(&first), access(&second)] {
        assert_eq!(
            status_of(&app, &token).await,
            (StatusCode::UNAUTHORIZED, Some("session_revoked".to_owned()))
        );
    }
    // Junk is a 401 in the one error shape, never a 500.
    for junk in [
        "",
        "x",
        "1.2.3",
        "9.0123456789abcdef0123456789abcdef.",
        "-1.zz.zz",
    ] {
        let resp = refresh(&app, junk).await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{junk:?}");
        assert_eq!(resp.error_code(), "invalid_refresh_token");
    }
}

async fn logout_ends_this_session_and_logout_all_every_one(stack: Stack) {
    let app = TestApp::start(stack).await;
    app.register("logout@example.com").await;
    let (a, b) = (
        login(&app, "logout@example.com").await,
        login(&app, "logout@example.com").await,
    );
    let resp = app
        .call(
            axum::http::Method::POST,
            "/auth/logout",
            Some(&access(&a)),
            None,
            "",
        )
        .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    assert_eq!(
        status_of(&app, &access(&a)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh(&app, &refresh_token(&a)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_of(&app, &access(&b)).await.0,
        StatusCode::OK,
        "B is another session"
    );

    let c = login(&app, "logout@example.com").await;
    let resp = app
        .call(
            axum::http::Method::POST,
            "/auth/logout-all",
            Some(&access(&b)),
            None,
            "",
        )
        .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    for pair in [&b, &c] {
        assert_eq!(
            status_of(&app, &access(pair)).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            refresh(&app, &refresh_token(pair)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // A new login works as before.
    let d = login(&app, "logout@example.com").await;
    assert_eq!(status_of(&app, &access(&d)).await.0, StatusCode::OK);
}

async fn a_user_lists_their_sessions_and_ends_another_device(stack: Stack) {
    let app = TestApp::start(stack).await;
    app.register("devices@example.com").await;
    let phone = login(&app, "devices@example.com").await;
    let laptop = login(&app, "devices@example.com").await;
    let listed = app.get("/auth/sessions", Some(&access(&laptop))).await;
    assert_eq!(listed.status, StatusCode::OK);
    let listed = listed.json();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "register, phone and laptop: {listed}");
    let current: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["current"] == true)
        .collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], laptop["session_id"]);

    let phone_id = phone["session_id"].as_str().unwrap();
    let resp = app
        .delete(
            &format!("/auth/sessions/{phone_id}"),
            Some(&access(&laptop)),
        )
        .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    assert_eq!(
        status_of(&app, &access(&phone)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status_of(&app, &access(&laptop)).await.0, StatusCode::OK);
    // Gone, unknown, malformed, or someone else's: 404 alike.
    let (other, _) = app.register("devices-other@example.com").await;
    let laptop_id = laptop["session_id"].as_str().unwrap();
    for (id, token) in [
        (phone_id, access(&laptop)),
        ("0123456789abcdef0123456789abcdef", access(&laptop)),
        ("not-a-session", access(&laptop)),
        (laptop_id, other.clone()),
    ] {
        let resp = app
            .delete(&format!("/auth/sessions/{id}"), Some(&token))
            .await;
        assert_eq!(resp.status, StatusCode::NOT_FOUND, "{id}");
        assert_eq!(resp.error_code(), "not_found");
    }
    assert_eq!(status_of(&app, &access(&laptop)).await.0, StatusCode::OK);
}

/// A logout on replica A reaches replica B through the revocation list B reloads each second;
/// B's check of it costs no Redis command per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_reaches_every_replica_within_seconds_at_no_round_trip_per_request() {
    let a = TestApp::start(Stack::MariaDbRedis).await;
    let b = a.replica().await;
    a.register("replicas-logout@example.com").await;
    let pair = login(&a, "replicas-logout@example.com").await;
    let token = access(&pair);
    assert_eq!(status_of(&b, &token).await.0, StatusCode::OK);

    // The hot path: an authenticated, cached read. Count Redis commands over 200 of them.
    let redis = a.redis().unwrap();
    let before = redis.command_calls();
    let started = Instant::now();
    const REQUESTS: u64 = 200;
    for _ in 0..REQUESTS {
        assert_eq!(
            b.get("/users/me", Some(&token)).await.status,
            StatusCode::OK
        );
    }
    let elapsed = started.elapsed();
    let after = redis.command_calls();
    let delta = |name: &str| {
        let of =
            |calls: &[(String, u64)]| calls.iter().find(|(c, _)| c == name).map_or(0, |(_, n)| *n);
        of(&after) - of(&before)
    };
    let total: u64 =
        after.iter().map(|(_, n)| n).sum::<u64>() - before.iter().map(|(_, n)| n).sum::<u64>();
    let polls = delta("zrangebyscore");
    // Two replicas reload once a second each, whatever the traffic.
    let poll_bound = 2 * (elapsed.as_secs() + 2);
    println!(
        "{REQUESTS} authenticated reads in {elapsed:?}: {total} Redis commands in all \
         ({:.2} per request), of which {polls} revocation-list reloads; evalsha {} with incr {} \
         and pttl {} inside it (the rate limiter's one round trip), get {} (the cached profile)",
        total as f64 / REQUESTS as f64,
        delta("evalsha"),
        delta("incr"),
        delta("pttl"),
        delta("get")
    );
    assert!(
        polls <= poll_bound,
        "{polls} reloads in {elapsed:?}: the check is per request"
    );
    for per_request in ["zscore", "sismember", "exists", "hget"] {
        assert_eq!(delta(per_request), 0, "{per_request} ran on the hot path");
    }

    let resp = a
        .call(
            axum::http::Method::POST,
            "/auth/logout",
            Some(&token),
            None,
            "",
        )
        .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    let started = Instant::now();
    let revoked = support::eventually(Duration::from_secs(5), || async {
        status_of(&b, &token).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(
        revoked,
        "replica B still accepts a logged-out token after 5 s"
    );
    println!("logout on A refused on B after {:?}", started.elapsed());
}

/// Redis unreachable: refresh, login and logout answer 503 with Retry-After, the access token
/// keeps working (from the database and the last revocation list), and once Redis answers again
/// the same refresh token works: no session was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_refresh_is_503_access_tokens_work_and_nothing_is_lost() {
    let redis = support::RedisServer::start();
    let proxy = FaultProxy::start(redis.port()).await;
    let url = proxy.url();
    let app = TestApp::start_with(Stack::MariaDbRedis, |c| c.cache_url = Some(url.clone())).await;
    app.register("outage@example.com").await;
    let pair = login(&app, "outage@example.com").await;

    proxy.set_mode(Mode::Reset);
    let resp = refresh(&app, &refresh_token(&pair)).await;
    assert_eq!(resp.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.error_code(), "sessions_unavailable");
    assert!(resp.header("retry-after").is_some());
    assert_eq!(status_of(&app, &access(&pair)).await.0, StatusCode::OK);

    proxy.set_mode(Mode::Pass);
    let back = support::eventually(Duration::from_secs(10), || async {
        refresh(&app, &refresh_token(&pair)).await.status == StatusCode::OK
    })
    .await;
    assert!(
        back,
        "the refresh token did not work again once Redis was back"
    );
}
