//! Refresh ahead: a hit past the refresh point answers at once with the current value and
//! reloads the key once in the background, so a hot key never expires. Memory and Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use cache_test_support as support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cache_core::{Cache, Expiry};
use support::{Fixture, eventually};

support::on_every_backend!(
    an_aging_hit_answers_at_once_and_reloads_once_in_the_background,
    before_the_refresh_point_hits_never_reload,
    a_hot_key_read_through_its_ttl_never_misses,
);

/// A loader that returns how many times it ran, and counts its runs.
fn counting_loader(
    runs: &Arc<AtomicU32>,
) -> impl Fn() -> std::future::Ready<Result<u32, String>> + Send + Sync + 'static {
    let runs = Arc::clone(runs);
    move || std::future::ready(Ok(runs.fetch_add(1, Ordering::SeqCst) + 1))
}

async fn read(cache: &Cache, expiry: Expiry, runs: &Arc<AtomicU32>) -> u32 {
    cache
        .get_or_refresh("hot", expiry, counting_loader(runs))
        .await
        .unwrap()
}

async fn an_aging_hit_answers_at_once_and_reloads_once_in_the_background(fx: &Fixture) {
    let cache = fx.cache().await;
    let runs = Arc::new(AtomicU32::new(0));
    let expiry = Expiry::new(Duration::from_millis(1500)).refresh_ahead(0.2);
    assert_eq!(read(&cache, expiry.clone(), &runs).await, 1);
    // Past 20% of the TTL (300 ms), hits start a reload; until it lands they still get value 1.
    let reloaded = eventually(Duration::from_secs(10), || async {
        let answers = futures_join(&cache, expiry.clone(), &runs).await;
        assert!(answers.iter().all(|v| *v == 1 || *v == 2), "{answers:?}");
        cache.get::<u32>("hot").await.unwrap() == Some(2)
    })
    .await;
    assert!(reloaded, "no background reload stored a new value");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "twenty concurrent aging hits reloaded once"
    );
}

/// Twenty concurrent reads of the hot key.
async fn futures_join(cache: &Cache, expiry: Expiry, runs: &Arc<AtomicU32>) -> Vec<u32> {
    let reads: Vec<_> = (0..20)
        .map(|_| {
            let (cache, runs, expiry) = (cache.clone(), Arc::clone(runs), expiry.clone());
            tokio::spawn(async move { read(&cache, expiry, &runs).await })
        })
        .collect();
    let mut answers = Vec::new();
    for read in reads {
        answers.push(read.await.unwrap());
    }
    answers
}

async fn before_the_refresh_point_hits_never_reload(fx: &Fixture) {
    let cache = fx.cache().await;
    let runs = Arc::new(AtomicU32::new(0));
    let expiry = Expiry::new(Duration::from_secs(3600)).refresh_ahead(0.8);
    for _ in 0..50 {
        assert_eq!(read(&cache, expiry.clone(), &runs).await, 1);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

async fn a_hot_key_read_through_its_ttl_never_misses(fx: &Fixture) {
    let cache = fx.cache().await;
    let runs = Arc::new(AtomicU32::new(0));
    // A second of margin between the refresh point and expiry, for a loaded CI machine.
    let ttl = Duration::from_millis(1500);
    let expiry = Expiry::new(ttl).refresh_ahead(0.3);
    read(&cache, expiry.clone(), &runs).await;
    // Read for three TTLs: every reload happens in the background, so the key is always there.
    let until = tokio::time::Instant::now() + ttl * 3;
    let mut misses = 0;
    while tokio::time::Instant::now() < until {
        if cache.get::<u32>("hot").await.unwrap().is_none() {
            misses += 1;
        }
        read(&cache, expiry.clone(), &runs).await;
        tokio::time::sleep(Duration::from_millis(20)).await; // the request rate of a hot key
    }
    assert_eq!(misses, 0, "the hot key expired under load");
    assert!(
        runs.load(Ordering::SeqCst) >= 3,
        "reloaded ahead of each expiry"
    );
}
