//! Fail-safe reads and TTL jitter: a read-through with a stale window answers with the old
//! value when its loader fails or is slow, and jittered TTLs spread expiry. Run on memory and
//! on a real Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use cache_test_support as support;

use std::time::Duration;

use cache_core::{Cache, Expiry};
use support::{Fixture, RedisServer, eventually};

support::on_every_backend!(
    a_failing_loader_gets_the_stale_value_inside_the_window,
    past_the_stale_window_the_loaders_error_is_returned,
    a_loader_past_the_soft_timeout_is_abandoned_for_the_stale_value,
    without_a_stale_value_the_soft_timeout_does_not_apply,
    every_caller_waiting_on_a_failed_load_gets_the_stale_value,
    a_stale_value_is_the_answer_only_for_a_caller_with_a_stale_window,
);

const LIMIT: Duration = Duration::from_secs(10);

async fn load(cache: &Cache, expiry: Expiry, result: Result<u32, String>) -> Result<u32, String> {
    cache
        .get_or_try_insert_with("kcal", expiry, || async { result })
        .await
}

/// Waits until the value is no longer fresh: plain `get` no longer sees it.
async fn wait_until_not_fresh(cache: &Cache) {
    let gone = eventually(LIMIT, || async {
        cache.get::<u32>("kcal").await.unwrap().is_none()
    })
    .await;
    assert!(gone, "the value stayed fresh past its TTL");
}

async fn a_failing_loader_gets_the_stale_value_inside_the_window(fx: &Fixture) {
    let cache = fx.cache().await;
    let expiry = Expiry::new(Duration::from_millis(200)).stale(Duration::from_secs(60));
    assert_eq!(load(&cache, expiry.clone(), Ok(1)).await, Ok(1));
    wait_until_not_fresh(&cache).await;

    assert_eq!(
        load(&cache, expiry.clone(), Err("database down".into())).await,
        Ok(1),
        "stale, not the error"
    );
    assert_eq!(
        cache.get::<u32>("kcal").await.unwrap(),
        None,
        "a stale value is never a plain hit"
    );
    assert_eq!(
        load(&cache, expiry.clone(), Ok(2)).await,
        Ok(2),
        "a working loader replaces it"
    );
    assert_eq!(cache.get::<u32>("kcal").await.unwrap(), Some(2));
    // Without a stale window, the same failure is the caller's.
    let strict = fx.builder().namespace("strict").build().await.unwrap();
    let short = Expiry::new(Duration::from_millis(200));
    strict
        .get_or_try_insert_with("kcal", short.clone(), || async { Ok::<u32, String>(1) })
        .await
        .unwrap();
    wait_until_not_fresh(&strict).await;
    assert_eq!(
        load(&strict, short.clone(), Err("database down".into())).await,
        Err("database down".into())
    );
}

/// The value below is past its TTL and still stored (another caller's stale window keeps it):
/// a caller whose expiry has no stale window gets its loader's error, as it asked. Without
/// this, a value written with no stale window could be served stale too, in the moment
/// between its envelope's TTL and the backend's expiry (the envelope's clock starts first).
async fn a_stale_value_is_the_answer_only_for_a_caller_with_a_stale_window(fx: &Fixture) {
    let cache = fx.cache().await;
    let lenient = Expiry::new(Duration::from_millis(100)).stale(Duration::from_secs(60));
    load(&cache, lenient.clone(), Ok(1)).await.unwrap();
    wait_until_not_fresh(&cache).await;

    let strict = Expiry::new(Duration::from_millis(100));
    assert_eq!(
        load(&cache, strict, Err("database down".into())).await,
        Err("database down".into())
    );
    assert_eq!(
        load(&cache, lenient, Err("database down".into())).await,
        Ok(1)
    );
}

async fn past_the_stale_window_the_loaders_error_is_returned(fx: &Fixture) {
    let cache = fx.cache().await;
    let expiry = Expiry::new(Duration::from_millis(100)).stale(Duration::from_millis(300));
    load(&cache, expiry.clone(), Ok(1)).await.unwrap();
    let failed = eventually(LIMIT, || async {
        load(&cache, expiry.clone(), Err("down".into()))
            .await
            .is_err()
    })
    .await;
    assert!(failed, "the stale value outlived its window");
}

async fn a_loader_past_the_soft_timeout_is_abandoned_for_the_stale_value(fx: &Fixture) {
    let cache = fx.cache().await;
    let expiry = Expiry::new(Duration::from_millis(200))
        .stale(Duration::from_secs(60))
        .soft_timeout(Duration::from_millis(100));
    load(&cache, expiry.clone(), Ok(1)).await.unwrap();
    wait_until_not_fresh(&cache).await;
    let hung = cache.get_or_try_insert_with("kcal", expiry.clone(), || {
        std::future::pending::<Result<u32, String>>()
    });
    let answer = tokio::time::timeout(LIMIT, hung)
        .await
        .expect("a hung loader was waited for");
    assert_eq!(answer, Ok(1));
}

async fn without_a_stale_value_the_soft_timeout_does_not_apply(fx: &Fixture) {
    let cache = fx.cache().await;
    let expiry = Expiry::new(Duration::from_secs(60))
        .stale(Duration::from_secs(60))
        .soft_timeout(Duration::from_millis(1));
    let slow = cache
        .get_or_try_insert_with("kcal", expiry.clone(), || async {
            tokio::time::sleep(Duration::from_millis(50)).await; // the slow database, not a wait
            Ok::<u32, String>(7)
        })
        .await;
    assert_eq!(
        slow,
        Ok(7),
        "a first load has nothing stale to fall back on: it runs to the end"
    );
}

async fn every_caller_waiting_on_a_failed_load_gets_the_stale_value(fx: &Fixture) {
    let cache = fx.cache().await;
    let expiry = Expiry::new(Duration::from_millis(200)).stale(Duration::from_secs(60));
    load(&cache, expiry.clone(), Ok(1)).await.unwrap();
    wait_until_not_fresh(&cache).await;
    let (release, gate) = tokio::sync::watch::channel(false);
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (cache, mut gate, expiry) = (cache.clone(), gate.clone(), expiry.clone());
            tokio::spawn(async move {
                cache
                    .get_or_try_insert_with("kcal", expiry, || async move {
                        let _ = gate.wait_for(|open| *open).await;
                        Err::<u32, String>("database down".into())
                    })
                    .await
            })
        })
        .collect();
    release.send(true).unwrap();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), Ok(1));
    }
}

/// Jittered TTLs, read back from Redis: spread within the bound, never all equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jittered_ttls_spread_within_their_bound() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .url(server.url())
        .ttl_jitter(0.2)
        .build()
        .await
        .unwrap();
    for i in 0..40 {
        cache
            .set(format!("k{i}"), &i, Duration::from_secs(100))
            .await
            .unwrap();
    }
    let expiry = Expiry::new(Duration::from_secs(100)).stale(Duration::from_secs(50));
    cache
        .get_or_insert_with("stale", expiry, || async { 1_u32 })
        .await;

    let mut conn = server.connection();
    let mut ttls: Vec<i64> = (0..40)
        .map(|i| {
            ::redis::cmd("PTTL")
                .arg(format!("cache:k{i}"))
                .query(&mut conn)
                .unwrap()
        })
        .collect();
    assert!(
        ttls.iter().all(|ms| (79_000..=120_000).contains(ms)),
        "{ttls:?}"
    );
    ttls.sort_unstable();
    ttls.dedup();
    assert!(
        ttls.len() > 20,
        "40 TTLs took only {} values: not spread",
        ttls.len()
    );
    let kept: i64 = ::redis::cmd("PTTL")
        .arg("cache:stale")
        .query(&mut conn)
        .unwrap();
    assert!(
        (129_000..=170_000).contains(&kept),
        "fresh (jittered) plus the stale window: {kept}"
    );
}

#[tokio::test]
async fn a_jitter_outside_zero_to_one_is_a_config_error() {
    for bad in [-0.1, 1.0, 3.0, f64::NAN] {
        let err = Cache::builder().ttl_jitter(bad).build().await.unwrap_err();
        assert!(
            err.is_config() && err.to_string().contains("ttl_jitter"),
            "{bad}: {err}"
        );
    }
}
