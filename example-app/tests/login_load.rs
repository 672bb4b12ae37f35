//! 60 parallel logins against a bound of 2 concurrent password hashes: every answer is a 200
//! or a 503 `busy` with `Retry-After`, never more than 2 hashes run at once, and the process's
//! peak memory grows by a bounded amount, where 60 unbounded argon2id hashes take 60 x 19 MiB.
//! Its own test binary, so that no other test moves the process's peak memory (`VmHWM`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;
use support::{Stack, TestApp};

/// The process's peak resident memory so far, KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// argon2id's default memory cost, KiB (m=19456).
const HASH_KIB: u64 = 19_456;
const LOGINS: usize = 60;
const PERMITS: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_parallel_logins_stay_within_the_hashing_bound() {
    let app = Arc::new(
        TestApp::start_with(Stack::SqliteMemory, |c| {
            c.password_hash_concurrency = PERMITS;
            c.password_hash_wait = Duration::from_secs(2);
        })
        .await,
    );
    app.register("load@example.com").await;
    let before = peak_rss_kib();
    let started = Instant::now();
    let logins: Vec<_> = (0..LOGINS)
        .map(|_| {
            let app = Arc::clone(&app);
            tokio::spawn(async move {
                let body =
                    json!({"email": "load@example.com", "password": "correct horse battery"});
                app.post("/auth/login", None, body).await
            })
        })
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for login in logins {
        let resp = login.await.unwrap();
        match resp.status {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(resp.error_code(), "busy");
                assert!(
                    resp.header("retry-after").is_some(),
                    "503 without Retry-After"
                );
                busy += 1;
            }
            other => panic!(
                "login answered {other}: {}",
                String::from_utf8_lossy(&resp.body)
            ),
        }
    }
    let grew = peak_rss_kib().saturating_sub(before);
    println!(
        "{LOGINS} parallel logins, {PERMITS} permits: {ok} ok, {busy} busy, peak RSS +{} MiB, {:.1} s",
        grew / 1024,
        started.elapsed().as_secs_f64()
    );
    assert!(ok >= 1, "no login succeeded");
    assert_eq!(ok + busy, LOGINS);
    // Unbounded, the growth is about LOGINS x HASH_KIB (1,128 MiB measured). Bounded it was
    // 59 to 78 MiB on an idle machine and 136 MiB once in CI under load: freed hash memory the
    // allocator keeps resident counts in the peak. A quarter of the unbounded growth separates
    // the two by more than 2x either way.
    let limit = LOGINS as u64 * HASH_KIB / 4;
    assert!(
        grew < limit,
        "peak memory grew {} MiB (limit {} MiB)",
        grew / 1024,
        limit / 1024
    );
}
