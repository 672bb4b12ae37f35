//! The hardening a security review asked for, each item tested as an attacker would try it:
//! login throttling per IP (IPv6 per /64) and per email whatever token is sent, the limiter's
//! in-process fallback when Redis dies, security headers on every response, photos served as
//! images only, a `/foods` cache that junk spellings cannot fill, `PATCH /users/me` as one
//! atomic update, a photo quota that parallel uploads cannot overrun, and a meal delete that
//! invalidates its day whatever fails after it.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use support::{Resp, Stack, TestApp};

both_stacks!(
    login_is_throttled_per_ip_and_per_email_whatever_the_token,
    ipv6_clients_are_throttled_per_64,
    every_response_carries_the_security_headers,
    photos_are_served_as_images_only,
    spellings_of_one_food_search_share_one_cache_entry,
    concurrent_patches_of_different_fields_both_land,
    photo_storage_is_capped_per_user_and_uploads_per_minute,
    parallel_uploads_cannot_together_exceed_the_quota,
    a_day_loaded_before_a_meal_write_is_not_served_after_it,
);

/// `POST path` with a JSON body from `ip`, with an optional bearer token.
async fn post_from(app: &TestApp, ip: &str, path: &str, token: Option<&str>, body: Value) -> Resp {
    let ip: IpAddr = ip.parse().unwrap();
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let mut request = request.body(Body::from(body.to_string())).unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(ip, 40_000)));
    app.send(request).await
}

async fn login_from(app: &TestApp, ip: &str, email: &str, token: Option<&str>) -> StatusCode {
    let body = json!({"email": email, "password": "wrong password!"});
    let resp = post_from(app, ip, "/auth/login", token, body).await;
    if resp.status == StatusCode::TOO_MANY_REQUESTS {
        assert_eq!(resp.error_code(), "rate_limited");
        assert!(resp.header("retry-after").is_some());
    }
    resp.status
}

async fn login_is_throttled_per_ip_and_per_email_whatever_the_token(stack: Stack) {
    let app = TestApp::start_with(stack, |c| c.rate_limit_auth_per_minute = 3).await;
    let body = json!({"email": "victim@example.com", "password": "correct horse battery"});
    let registered = post_from(&app, "10.0.0.1", "/auth/register", None, body).await;
    assert_eq!(registered.status, StatusCode::CREATED);
    let body = json!({"email": "attacker@example.com", "password": "correct horse battery"});
    let attacker = post_from(&app, "10.0.0.2", "/auth/register", None, body).await;
    let token = attacker.json()["access_token"].as_str().unwrap().to_owned();

    // Per IP: a valid token of the attacker's own does not buy more attempts.
    for i in 0..3 {
        let email = format!("guess{i}@example.com");
        let status = login_from(&app, "10.0.0.3", &email, Some(&token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let status = login_from(&app, "10.0.0.3", "guess9@example.com", Some(&token)).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "a 4th attempt from one IP"
    );
    let other_ip = login_from(&app, "10.0.0.4", "guess9@example.com", Some(&token)).await;
    assert_eq!(
        other_ip,
        StatusCode::UNAUTHORIZED,
        "another IP has its own budget"
    );

    // Per email: its registration and two guesses from as many IPs use its budget of 3.
    for ip in ["10.0.1.1", "10.0.1.2"] {
        let status = login_from(&app, ip, "victim@example.com", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let status = login_from(&app, "10.0.1.3", "Victim@Example.com", None).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the email's budget is spent"
    );
    // Registration counts against the same budgets.
    let body = json!({"email": "victim@example.com", "password": "correct horse battery"});
    let again = post_from(&app, "10.0.1.4", "/auth/register", None, body).await;
    assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS);
}

async fn ipv6_clients_are_throttled_per_64(stack: Stack) {
    let app = TestApp::start_with(stack, |c| c.rate_limit_auth_per_minute = 3).await;
    for (i, ip) in ["2001:db8:0:7::1", "2001:db8:0:7::2", "2001:db8:0:7:ffff::3"]
        .iter()
        .enumerate()
    {
        let email = format!("v6-{i}@example.com");
        assert_eq!(
            login_from(&app, ip, &email, None).await,
            StatusCode::UNAUTHORIZED
        );
    }
    let same_64 = login_from(&app, "2001:db8:0:7:abcd::9", "v6-9@example.com", None).await;
    assert_eq!(
        same_64,
        StatusCode::TOO_MANY_REQUESTS,
        "a new address in the same /64"
    );
    let next_64 = login_from(&app, "2001:db8:0:8::1", "v6-9@example.com", None).await;
    assert_eq!(
        next_64,
        StatusCode::UNAUTHORIZED,
        "the next /64 is another client"
    );
}

/// After the limiter's cool-down, one request asks a Redis that may still be down (a
/// blackholed one: each ask waits the whole 250 ms budget) while the others stay in process;
/// once Redis answers again, the limiter goes back to it. Counted in the bytes clients send
/// through a fault proxy: before the half-open probe, every request in flight at the end of
/// the cool-down sent its script to the dead Redis and waited on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_cool_down_one_request_probes_a_dead_redis_and_the_rest_stay_in_process() {
    use calories_app::ratelimit::{Client, Limits, RateLimiter};
    use std::time::Duration;
    let redis = support::RedisServer::start();
    let proxy = support::redis_support::FaultProxy::start(redis.port()).await;
    let conn = calories_app::redis_conn::SharedRedis::connect(&proxy.url(), None)
        .await
        .unwrap();
    let limits = Limits {
        per_user: 1_000_000,
        ..Limits::default()
    };
    let limiter = RateLimiter::redis(conn, limits);
    let client = Client::User(7);
    // One script call's size on the wire (the second: the first may load the script).
    assert!(limiter.check(&client).await.is_ok());
    let before = proxy.bytes_from_clients();
    assert!(limiter.check(&client).await.is_ok());
    let one_call = proxy.bytes_from_clients() - before;
    assert!(one_call > 0, "the check did not go through Redis");

    proxy.set_mode(support::redis_support::Mode::Blackhole);
    // The first check waits out the budget, then counts in process.
    assert!(limiter.check(&client).await.is_ok());
    let cooling = proxy.bytes_from_clients();
    // Batches of 20 at once until one asks Redis: the end of the cool-down.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let probed = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no request asked Redis again after the cool-down"
        );
        let before = proxy.bytes_from_clients();
        let mut batch = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (limiter, client) = (limiter.clone(), client.clone());
            batch.spawn(async move { limiter.check(&client).await.is_ok() });
        }
        assert!(batch.join_all().await.into_iter().all(|ok| ok));
        let sent = proxy.bytes_from_clients() - before;
        if sent > 0 {
            break sent;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(cooling > 0);
    assert_eq!(
        probed,
        one_call,
        "{} calls went to the dead Redis, not one",
        probed / one_call
    );

    // Redis answers again: after the next cool-down, the probe succeeds and every check
    // goes through Redis again.
    proxy.set_mode(support::redis_support::Mode::Pass);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the limiter did not go back to Redis"
        );
        assert!(limiter.check(&client).await.is_ok());
        let before = proxy.bytes_from_clients();
        assert!(limiter.check(&client).await.is_ok());
        assert!(limiter.check(&client).await.is_ok());
        if proxy.bytes_from_clients() - before == 2 * one_call {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_makes_the_limiter_count_in_process_not_let_everything_through() {
    let mut app = TestApp::start_with(Stack::MariaDbRedis, |c| {
        c.rate_limit_anon_per_minute = 3;
    })
    .await;
    assert!(!app.state.limiter.is_local());
    app.stop_redis();
    for _ in 0..3 {
        assert_eq!(app.get("/health/live", None).await.status, StatusCode::OK);
        assert_eq!(app.get("/foods?q=egg", None).await.status, StatusCode::OK);
    }
    let resp = app.get("/foods?q=egg", None).await;
    assert_eq!(resp.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.error_code(), "rate_limited");
}

fn assert_security_headers(resp: &Resp, what: &str) {
    for (name, value) in calories_app::security::HEADERS {
        if *name == "cache-control" {
            assert!(resp.header(name).is_some(), "{what}: no cache-control");
            continue;
        }
        assert_eq!(resp.header(name), Some(*value), "{what}: {name}");
    }
}

async fn every_response_carries_the_security_headers(stack: Stack) {
    let app = TestApp::start(stack).await;
    let (token, _) = app.register("headers@example.com").await;
    for (uri, token, status) in [
        ("/health/live", None, StatusCode::OK),
        ("/metrics", None, StatusCode::OK),
        ("/openapi.json", None, StatusCode::OK),
        ("/foods?q=egg", None, StatusCode::OK),
        ("/foods?junk=1", None, StatusCode::BAD_REQUEST),
        ("/meals/daily", Some(token.as_str()), StatusCode::OK),
        ("/users/me", None, StatusCode::UNAUTHORIZED),
        ("/no/such/route", None, StatusCode::NOT_FOUND),
    ] {
        let resp = app.get(uri, token).await;
        assert_eq!(resp.status, status, "{uri}");
        assert_security_headers(&resp, uri);
    }
    // User data is never kept by a shared cache; the public food search says its own policy.
    let me = app.get("/users/me", Some(&token)).await;
    assert_eq!(me.header("cache-control"), Some("no-store"));
    let foods = app.get("/foods?q=egg", None).await;
    assert_eq!(foods.header("cache-control"), Some("public, max-age=300"));
}

async fn photos_are_served_as_images_only(stack: Stack) {
    let app = TestApp::start(stack).await;
    let (token, _) = app.register("photo-headers@example.com").await;
    let (content_type, body) = support::multipart(&[
        ("photo", Some("a.png"), support::images::PNG),
        ("name", None, b"Toast"),
        ("calories", None, b"300"),
    ]);
    let created = app
        .call(
            Method::POST,
            "/meals/upload",
            Some(&token),
            Some(&content_type),
            body,
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.json()["id"].as_i64().unwrap();
    let photo = app.get(&format!("/meals/{id}/photo"), Some(&token)).await;
    assert_eq!(photo.status, StatusCode::OK);
    assert_eq!(photo.header("content-type"), Some("image/png"));
    assert_eq!(photo.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(photo.header("content-disposition"), Some("inline"));
    assert_security_headers(&photo, "photo");
}

async fn spellings_of_one_food_search_share_one_cache_entry(stack: Stack) {
    let app = TestApp::start(stack).await;
    let first = app.get("/foods?q=egg", None).await;
    assert_eq!(first.status, StatusCode::OK);
    for spelling in [
        "/foods?q=egg",
        "/foods?q=EGG",
        "/foods?page=1&q=egg",
        "/foods?q=egg&per_page=20",
        "/foods?q=%65gg&page=01",
        "/foods?q=+egg+",
    ] {
        let resp = app.get(spelling, None).await;
        assert_eq!(resp.status, StatusCode::OK, "{spelling}");
        assert_eq!(resp.body, first.body, "{spelling}");
        let status = resp.header("cache-status").unwrap_or_default();
        assert!(status.contains("hit"), "{spelling} was a miss: {status}");
    }
    // per_page above 100 is capped: all of them are the same page, one entry.
    let capped = app.get("/foods?per_page=100", None).await;
    for per_page in [101, 1000, 9_999_999] {
        let resp = app.get(&format!("/foods?per_page={per_page}"), None).await;
        assert_eq!(resp.body, capped.body);
        let status = resp.header("cache-status").unwrap_or_default();
        assert!(status.contains("hit"), "per_page={per_page} was a miss");
    }
    // Junk is refused before the cache, in the one error shape.
    let junk = app.get("/foods?q=egg&utm_source=x", None).await;
    assert_eq!(junk.status, StatusCode::BAD_REQUEST);
    assert_eq!(junk.error_code(), "invalid_query");
    let bad = app.get("/foods?page=0", None).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.error_code(), "validation_failed");
}

async fn concurrent_patches_of_different_fields_both_land(stack: Stack) {
    let app = TestApp::start(stack).await;
    let (token, id) = app.register("patches@example.com").await;
    for round in 0..20_i64 {
        let name = format!("Name {round}");
        let goal = 2000 + round;
        let (a, b) = tokio::join!(
            app.patch("/users/me", Some(&token), json!({"name": name})),
            app.patch("/users/me", Some(&token), json!({"daily_goal": goal})),
        );
        assert_eq!((a.status, b.status), (StatusCode::OK, StatusCode::OK));
        let (stored_name, stored_goal): (String, i64) =
            sqlx::query_as("SELECT name, daily_goal FROM users WHERE id = ?")
                .bind(id)
                .fetch_one(&app.state.db.pool)
                .await
                .unwrap();
        assert_eq!(
            (stored_name.as_str(), stored_goal),
            (name.as_str(), goal),
            "round {round}: one PATCH undid the other"
        );
        let me = app.get("/users/me", Some(&token)).await.json();
        assert_eq!(
            (me["name"].as_str(), me["daily_goal"].as_i64()),
            (Some(name.as_str()), Some(goal))
        );
    }
}

/// The ACL rules of the app's Redis user in a deploy file: the words of its `acl_rules='..'`
/// line and of the `acl_rules="$acl_rules .."` lines that extend it.
fn acl_rules(file: &str) -> String {
    let words: Vec<&str> = file
        .lines()
        .filter_map(|l| l.trim().strip_prefix("acl_rules="))
        .flat_map(|r| r.trim_matches(|c| c == '\'' || c == '"').split_whitespace())
        .filter(|w| !w.ends_with("acl_rules"))
        .collect();
    assert!(words.len() > 10, "no acl_rules lines");
    words.join(" ")
}

/// The Redis user of docker-compose.yml and k8s-example (the same rules in both) runs
/// everything the app does, two replicas with local tiers included, without one denied command
/// (Redis's `ACL LOG` stays empty: the cache swallows errors, so a denied command would
/// otherwise go unseen), and cannot run what the app never needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_files_redis_acl_user_runs_the_app_and_nothing_more() {
    let compose = include_str!("../docker-compose.yml");
    let k8s = include_str!("../../k8s-example/base/redis/redis.yaml");
    let rules = acl_rules(compose);
    assert_eq!(rules, acl_rules(k8s), "compose and Kubernetes disagree");

    // The redis crate names itself with CLIENT SETINFO on every connection; on the deploy
    // files' Redis (7.4) each one would be a denial in ACL LOG without this rule.
    assert!(
        rules.split_whitespace().any(|r| r == "+client|setinfo"),
        "the app's connections would be denied CLIENT SETINFO: {rules}"
    );

    let redis = support::RedisServer::start();
    let mut admin = redis.connection();
    // A Redis before 7.2 has no CLIENT SETINFO (the crate's call fails there as an unknown
    // subcommand, not an ACL denial) and refuses a rule that names it: left out on such a server.
    let setinfo: Vec<redis::Value> = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("client|setinfo")
        .query(&mut admin)
        .unwrap();
    let knows_setinfo = !matches!(setinfo.as_slice(), [redis::Value::Nil]);
    let mut setuser = redis::cmd("ACL");
    setuser
        .arg("SETUSER")
        .arg("calories")
        .arg("on")
        .arg(">acl-test-password");
    for rule in rules
        .split_whitespace()
        .filter(|r| knows_setinfo || *r != "+client|setinfo")
    {
        setuser.arg(rule);
    }
    let () = setuser.query(&mut admin).unwrap();
    let url = format!(
        "redis://calories:acl-test-password@127.0.0.1:{}/0",
        redis.port()
    );
    let a = TestApp::start_with(Stack::MariaDbRedis, |c| {
        c.cache_url = Some(url.clone());
        c.cache_local_tier = Some((1000, std::time::Duration::from_secs(60)));
    })
    .await;
    let b = a.replica().await;
    let (token, _) = a.register("acl@example.com").await;
    for app in [&a, &b] {
        assert_eq!(
            app.get("/meals/daily", Some(&token)).await.json()["totals"]["calories"],
            0
        );
        assert_eq!(
            app.get("/stats", Some(&token)).await.json()["logged_days"],
            0
        );
        assert_eq!(app.get("/foods?q=egg", None).await.status, StatusCode::OK);
    }
    a.add_meal(&token, json!({"name": "Curry", "calories": 700}))
        .await;
    a.patch("/users/me", Some(&token), json!({"daily_goal": 2500}))
        .await;
    // B's local tier hears A's invalidations over Pub/Sub.
    let arrived = support::eventually(std::time::Duration::from_secs(5), || async {
        let day = b.get("/meals/daily", Some(&token)).await.json();
        let stats = b.get("/stats", Some(&token)).await.json();
        day["totals"]["calories"] == 700 && day["remaining"] == 1800 && stats["logged_days"] == 1
    })
    .await;
    assert!(arrived, "B never saw A's writes");
    // Sessions: a refresh (the rotation script) and a logout (the revocation list), seen by B.
    let body = json!({"email": "acl@example.com", "password": "correct horse battery"});
    let pair = a.post("/auth/login", None, body).await.json();
    let rotated = a
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": pair["refresh_token"]}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    let session_token = rotated.json()["access_token"].as_str().unwrap().to_owned();
    let out = a
        .call(
            Method::POST,
            "/auth/logout",
            Some(&session_token),
            None,
            Body::empty(),
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let refused = support::eventually(std::time::Duration::from_secs(5), || async {
        b.get("/users/me", Some(&session_token)).await.status == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(refused, "B still accepts the logged-out token");

    let denied: Vec<redis::Value> = redis::cmd("ACL").arg("LOG").query(&mut admin).unwrap();
    assert!(denied.is_empty(), "the app ran denied commands: {denied:?}");
    let keys: u64 = redis::cmd("DBSIZE").query(&mut admin).unwrap();
    assert!(keys > 2, "the cache stored nothing ({keys} keys)");

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut as_app = client.get_connection().unwrap();
    for cmd in [
        redis::cmd("FLUSHALL"),
        redis::cmd("KEYS").arg("*").clone(),
        redis::cmd("CONFIG").arg("GET").arg("*").clone(),
        redis::cmd("GET").arg("someone-else:key").clone(),
    ] {
        let err = cmd.query::<redis::Value>(&mut as_app).unwrap_err();
        assert!(err.to_string().contains("no permissions"), "{err}");
    }
}

async fn upload_photo(app: &TestApp, token: &str, image: &[u8]) -> Resp {
    let (content_type, body) = support::multipart(&[
        ("photo", Some("a.png"), image),
        ("name", None, b"Toast"),
        ("calories", None, b"300"),
    ]);
    app.call(
        Method::POST,
        "/meals/upload",
        Some(token),
        Some(&content_type),
        body,
    )
    .await
}

/// Files in the photo folder, temporary ones included.
fn photo_files(app: &TestApp) -> usize {
    std::fs::read_dir(app.photo_dir()).map_or(0, |d| d.count())
}

async fn photo_storage_is_capped_per_user_and_uploads_per_minute(stack: Stack) {
    let png = support::images::PNG;
    // Room for exactly three photos.
    let quota = 3 * png.len() as u64;
    let app = TestApp::start_with(stack, |c| {
        c.photo_quota_bytes = quota;
        c.uploads_per_minute = 5;
    })
    .await;
    let (token, _) = app.register("quota@example.com").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let resp = upload_photo(&app, &token, png).await;
        assert_eq!(resp.status, StatusCode::CREATED);
        ids.push(resp.json()["id"].as_i64().unwrap());
    }
    assert_eq!(photo_files(&app), 3);
    let full = upload_photo(&app, &token, png).await;
    assert_eq!(full.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(full.error_code(), "storage_quota_exceeded");
    assert_eq!(photo_files(&app), 3, "a refused upload left a file");
    // Another user has a quota of their own.
    let (other, _) = app.register("quota-other@example.com").await;
    assert_eq!(
        upload_photo(&app, &other, png).await.status,
        StatusCode::CREATED
    );
    // Deleting a meal frees its photo's bytes.
    let deleted = app
        .delete(&format!("/meals/{}", ids[0]), Some(&token))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        upload_photo(&app, &token, png).await.status,
        StatusCode::CREATED
    );
    // Five uploads a minute: the sixth of this user is refused before its body is read.
    let sixth = upload_photo(&app, &token, png).await;
    assert_eq!(sixth.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(sixth.error_code(), "rate_limited");
    // An oversize photo is cut off while streaming and leaves no partial file behind.
    let (big_owner, _) = app.register("quota-big@example.com").await;
    let mut big = png.to_vec();
    big.resize(calories_app::photos::MAX_PHOTO_BYTES + 1, 0);
    let before = photo_files(&app);
    let too_big = upload_photo(&app, &big_owner, &big).await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        photo_files(&app),
        before,
        "a partial upload was left behind"
    );
}

/// Uploads of one user that run at the same time cannot together go over the quota: each
/// is checked against the photos already committed, one after the other. (Checked once before
/// the body is read, as before the fix, all eight passed.)
async fn parallel_uploads_cannot_together_exceed_the_quota(stack: Stack) {
    let png = support::images::PNG;
    let quota = 3 * png.len() as u64;
    let app = TestApp::start_with(stack, |c| {
        c.photo_quota_bytes = quota;
        c.uploads_per_minute = 100;
    })
    .await;
    let (token, id) = app.register("parallel-quota@example.com").await;
    let app = std::sync::Arc::new(app);
    let mut uploads = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (app, token) = (app.clone(), token.clone());
        uploads.spawn(async move { upload_photo(&app, &token, png).await.status });
    }
    let statuses = uploads.join_all().await;
    let stored = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::PAYLOAD_TOO_LARGE)
        .count();
    assert_eq!((stored, refused), (3, 5), "{statuses:?}");
    let used: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(photo_bytes), 0) AS SIGNED) FROM meals WHERE user_id = ?",
    )
    .bind(id)
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    assert_eq!(u64::try_from(used).unwrap(), quota);
    assert_eq!(photo_files(&app), 3, "a refused upload left a file");
}

/// With RATE_LIMIT_URL on a Redis of its own (noeviction, as Compose and Kubernetes deploy
/// it), filling the cache's Redis far past its maxmemory (allkeys-lru, as deployed) evicts
/// cache entries but can neither reset a client's budget nor sign a user out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_pressure_cannot_evict_the_rate_limit_counters() {
    let (cache_policy, state_policy) = deployed_eviction_policies();
    let limits = support::RedisServer::start();
    let mut limits_admin = limits.connection();
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg(&state_policy)
        .query(&mut limits_admin)
        .unwrap();
    let app = TestApp::start_with(Stack::MariaDbRedis, |c| {
        c.rate_limit_url = Some(limits.url());
        c.rate_limit_anon_per_minute = 3;
    })
    .await;
    // A session, on RATE_LIMIT_URL's Redis too: it must outlive the pressure as well. (From
    // another address, so that the budget below stays untouched.)
    let body = json!({"email": "pressure@example.com", "password": "correct horse battery"});
    let registered = post_from(&app, "203.0.113.9", "/auth/register", None, body.clone()).await;
    assert_eq!(registered.status, StatusCode::CREATED);
    let pair = post_from(&app, "203.0.113.9", "/auth/login", None, body)
        .await
        .json();
    for _ in 0..2 {
        assert_eq!(app.get("/foods?q=egg", None).await.status, StatusCode::OK);
    }
    let key = "calories:ratelimit:{ip:unknown}";
    let count: i64 = redis::cmd("GET").arg(key).query(&mut limits_admin).unwrap();
    assert_eq!(count, 2, "the counter is not on RATE_LIMIT_URL's Redis");

    // The cache's Redis under pressure: 2 MiB of room above what it uses now, 8 MiB written.
    let mut cache_admin = app.redis().unwrap().connection();
    let memory: String = redis::cmd("INFO")
        .arg("memory")
        .query(&mut cache_admin)
        .unwrap();
    let used: u64 = memory
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(used + 2 * 1024 * 1024)
        .arg("maxmemory-policy")
        .arg(&cache_policy)
        .query(&mut cache_admin)
        .unwrap();
    let filler = vec![b'x'; 16 * 1024];
    for i in 0..512 {
        let () = redis::cmd("SET")
            .arg(format!("calories:filler:{i}"))
            .arg(&filler)
            .query(&mut cache_admin)
            .unwrap();
    }
    let evicted: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut cache_admin)
        .unwrap();
    assert!(
        evicted
            .lines()
            .any(|l| l.starts_with("evicted_keys:") && l != "evicted_keys:0"),
        "the cache's Redis evicted nothing"
    );

    assert_eq!(app.get("/foods?q=egg", None).await.status, StatusCode::OK);
    let resp = app.get("/foods?q=egg", None).await;
    assert_eq!(
        resp.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the budget was reset"
    );
    let refresh = json!({"refresh_token": pair["refresh_token"]});
    let refreshed = post_from(&app, "203.0.113.9", "/auth/refresh", None, refresh).await;
    assert_eq!(refreshed.status, StatusCode::OK, "the session was evicted");
}

/// The `maxmemory-policy` of the cache's Redis and of the state Redis (counters and sessions,
/// `RATE_LIMIT_URL`) as Compose and Kubernetes deploy them; both files must agree, and both
/// must point the app's `RATE_LIMIT_URL` at the state Redis.
fn deployed_eviction_policies() -> (String, String) {
    let compose = include_str!("../docker-compose.yml");
    let env = include_str!("../env.prod.sample");
    let k8s_cache = include_str!("../../k8s-example/base/redis/redis.yaml");
    let k8s_state = include_str!("../../k8s-example/base/redis-state/kustomization.yaml");
    let k8s_secrets = include_str!("../../k8s-example/secrets.yaml.example");
    let values = |file: &str, prefix: &str| -> Vec<String> {
        file.lines()
            .filter_map(|l| l.trim().strip_prefix(prefix))
            .map(|v| v.trim().to_owned())
            .collect()
    };
    // Compose: the cache's service first, then redis-state's override.
    let compose_policies = values(compose, "REDIS_EVICTION:");
    let [cache, state] = compose_policies.as_slice() else {
        panic!("expected two REDIS_EVICTION settings in docker-compose.yml: {compose_policies:?}");
    };
    assert_eq!(
        values(k8s_cache, "maxmemory-policy "),
        std::slice::from_ref(cache)
    );
    assert_eq!(
        values(k8s_state, "maxmemory-policy "),
        std::slice::from_ref(state)
    );
    assert!(
        values(env, "RATE_LIMIT_URL=")
            .iter()
            .any(|u| u.contains("@redis-state:")),
        "env.prod.sample's RATE_LIMIT_URL does not name redis-state"
    );
    assert!(
        values(k8s_secrets, "RATE_LIMIT_URL:")
            .iter()
            .any(|u| u.contains("@redis-service-state:")),
        "secrets.yaml.example's RATE_LIMIT_URL does not name redis-service-state"
    );
    (cache.clone(), state.clone())
}

/// The cache-aside race (issue 17, point 5): a read of the day whose load began before a meal
/// write and stores its (old) day after the write's invalidation. The load here is the app's
/// own read-through, with the handler's expiry, held between "loaded" and "store" while the
/// write happens over HTTP. Invalidating through the day's tag makes that late store a miss.
async fn a_day_loaded_before_a_meal_write_is_not_served_after_it(stack: Stack) {
    use calories_app::meals::{DailySummary, daily_expiry};
    use std::sync::{Arc, Mutex};
    use tokio::sync::oneshot;

    let app = TestApp::start(stack).await;
    let (token, id) = app.register("race@example.com").await;
    let old: DailySummary =
        serde_json::from_value(app.get("/meals/daily", Some(&token)).await.json()).unwrap();
    assert_eq!(old.totals.calories, 0);
    let date = old.date;
    let key = calories_app::cached::daily(id, date);
    app.state.cache.delete(&key).await.unwrap();

    let (loading, loaded) = oneshot::channel::<()>();
    let (release, released) = oneshot::channel::<()>();
    let held = Arc::new(Mutex::new(Some((old, loading, released))));
    let cache = app.state.cache.clone();
    let reader = tokio::spawn(async move {
        cache
            .get_or_refresh(key, daily_expiry(id, date), move || {
                let taken = held.lock().unwrap().take();
                async move {
                    let (old, loading, released) = taken.expect("one load");
                    let _ = loading.send(());
                    let _ = released.await;
                    Ok::<_, calories_app::ApiError>(old)
                }
            })
            .await
    });
    loaded.await.unwrap();
    app.add_meal(&token, json!({"name": "Curry", "calories": 700}))
        .await;
    release.send(()).unwrap();
    let stale = reader.await.unwrap().unwrap();
    assert_eq!(
        stale.totals.calories, 0,
        "the held read returns what it loaded"
    );

    let day = app.get("/meals/daily", Some(&token)).await.json();
    assert_eq!(
        day["totals"]["calories"], 700,
        "the day loaded before the write was served after it"
    );
}

/// A meal delete invalidates its day even when a step after the `DELETE` fails: everything
/// that can fail runs before it. The failure is staged in SQLite: a trigger that breaks the
/// user's row when a meal is deleted, so that loading the profile (not cached, as after its
/// ten minutes) fails after the row is gone. Before the reorder the profile was loaded after
/// the `DELETE`: the request failed and the cached day kept listing the deleted meal for an
/// hour. (SQLite only: MariaDB's strict mode refuses the broken value the trigger writes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meal_delete_invalidates_its_day_even_when_a_later_step_fails() {
    let app = TestApp::start(Stack::SqliteMemory).await;
    let (token, id) = app.register("delete-fails@example.com").await;
    let meal = app
        .add_meal(&token, json!({"name": "Curry", "calories": 700}))
        .await;
    let day = app.get("/meals/daily", Some(&token)).await.json();
    assert_eq!(day["totals"]["calories"], 700, "the day is now cached");
    app.state
        .cache
        .delete(&calories_app::cached::profile(id))
        .await
        .unwrap();
    let db = &app.state.db.pool;
    sqlx::query(
        "CREATE TRIGGER break_profile AFTER DELETE ON meals \
         BEGIN UPDATE users SET daily_goal = 'broken' WHERE id = OLD.user_id; END",
    )
    .execute(db)
    .await
    .unwrap();

    let deleted = app
        .delete(&format!("/meals/{}", meal["id"]), Some(&token))
        .await;
    let remaining: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM meals WHERE user_id = ?")
        .bind(id)
        .fetch_one(db)
        .await
        .unwrap();
    assert_eq!(remaining, 0, "the DELETE ran ({})", deleted.status);

    sqlx::query("DROP TRIGGER break_profile")
        .execute(db)
        .await
        .unwrap();
    sqlx::query("UPDATE users SET daily_goal = 2000 WHERE id = ?")
        .bind(id)
        .execute(db)
        .await
        .unwrap();
    let day = app.get("/meals/daily", Some(&token)).await.json();
    assert_eq!(
        (
            day["totals"]["calories"].as_i64(),
            day["meals"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0)),
        "the cached day still lists the deleted meal: {day}"
    );
}

/// A request dropped between its write's commit and the day's invalidation (the client went
/// away, the request timeout fired) does not leave the cached day without the meal: the write
/// and its invalidations run to the end in a task of their own. Staged on MariaDB: a trigger
/// holds the INSERT for half a second, the client gives up after 100 ms, and a read in the
/// meantime caches the day from before the commit. With the write in the request's own future
/// (as before), that day hid the meal until its TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meal_write_whose_request_is_dropped_still_invalidates_its_day() {
    use std::time::Duration;
    let app = TestApp::start(Stack::MariaDbRedis).await;
    let (token, id) = app.register("dropped@example.com").await;
    let db = &app.state.db.pool;
    sqlx::raw_sql(
        "CREATE TRIGGER hold_meal AFTER INSERT ON meals FOR EACH ROW SET @held = SLEEP(0.5)",
    )
    .execute(db)
    .await
    .unwrap();
    let request = app.post(
        "/meals",
        Some(&token),
        json!({"name": "Curry", "calories": 700}),
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(100), request)
            .await
            .is_err(),
        "answered while the trigger held the INSERT"
    );
    // While the INSERT is held: this read caches the day without the meal.
    let before = app.get("/meals/daily", Some(&token)).await.json();
    assert_eq!(before["totals"]["calories"], 0);
    let committed = support::eventually(Duration::from_secs(10), || async {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM meals WHERE user_id = ?")
            .bind(id)
            .fetch_one(db)
            .await
            .unwrap();
        n == 1
    })
    .await;
    assert!(committed, "the INSERT never committed");
    sqlx::raw_sql("DROP TRIGGER hold_meal")
        .execute(db)
        .await
        .unwrap();
    let shown = support::eventually(Duration::from_secs(5), || async {
        app.get("/meals/daily", Some(&token)).await.json()["totals"]["calories"] == 700
    })
    .await;
    assert!(shown, "the cached day hides the committed meal");
}
