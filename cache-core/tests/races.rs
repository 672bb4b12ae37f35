//! A write's invalidation wins over a read-through that loaded before it: the cache-aside race.
//!
//! A read misses and its loader reads the database; a write then changes the database and
//! invalidates the key; the loader returns the value it read before the write. That older value
//! must not be stored: every read after the invalidation must load again. Each test holds the
//! loader between its start and its return, invalidates in between (from the same handle and
//! from a second one: on Redis another replica, behind its own local tier in the tiered
//! fixture), then releases it, on every backend.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use cache_test_support as support;

use std::time::Duration;

use cache_core::{Cache, Expiry, key};
use support::Fixture;
use tokio::sync::oneshot;

const MINUTE: Duration = Duration::from_secs(60);

support::on_every_backend!(
    a_delete_during_a_load_wins,
    a_delete_on_another_replica_during_a_load_wins,
    a_pattern_delete_during_a_load_wins,
    a_pattern_delete_on_another_replica_during_a_load_wins,
    a_tag_invalidation_on_another_replica_during_a_load_wins,
    a_load_that_began_after_the_delete_is_stored,
);

/// How a test invalidates while the loader is held.
enum Invalidate {
    Key,
    Pattern,
    Tag,
}

/// A second handle on the fixture's backend: another replica for Redis (with a local tier of
/// its own in the tiered fixture), the same cache for memory (one process is all it has).
async fn other_replica(fx: &Fixture, cache: &Cache) -> Cache {
    if fx.is_redis() {
        fx.cache().await
    } else {
        cache.clone()
    }
}

/// Starts a read-through of `key` whose loader returns `"before the write"` once released;
/// returns when the loader has started, with the switch that releases it and the task.
async fn held_load(
    cache: &Cache,
    key: String,
    expiry: Expiry,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<String>) {
    let (started_tx, started) = oneshot::channel();
    let (release, released) = oneshot::channel::<()>();
    let reader = cache.clone();
    let task = tokio::spawn(async move {
        reader
            .get_or_insert_with(key, expiry, || async move {
                started_tx.send(()).unwrap();
                released.await.unwrap();
                "before the write".to_owned()
            })
            .await
    });
    started.await.expect("the loader starts");
    (release, task)
}

/// Runs the race: a load held open, `how` from `writer` meanwhile, then the load's end. The
/// reader still gets what it loaded; the cache must not keep it.
async fn race(fx: &Fixture, writer_is_other: bool, how: Invalidate) {
    let cache = fx.cache().await;
    let writer = if writer_is_other {
        other_replica(fx, &cache).await
    } else {
        cache.clone()
    };
    let key = key!("daily_meals", 42_i64, "2026-12-03").to_string();
    let expiry = Expiry::new(MINUTE).tags(["user:42"]);
    let (release, load) = held_load(&cache, key.clone(), expiry.clone()).await;

    match how {
        Invalidate::Key => {
            writer.delete(&key).await.unwrap();
        }
        Invalidate::Pattern => {
            writer
                .delete_pattern(key!("daily_meals", 42_i64).prefix_pattern())
                .await
                .unwrap();
        }
        Invalidate::Tag => writer.invalidate_tag("user:42").await.unwrap(),
    }
    release.send(()).unwrap();
    assert_eq!(
        load.await.unwrap(),
        "before the write",
        "the reader gets what it loaded"
    );

    for (name, replica) in [("reader", &cache), ("writer", &writer)] {
        assert_eq!(
            replica.get::<String>(&key).await.unwrap(),
            None,
            "{name}: the value loaded before the invalidation was stored after it"
        );
    }
    // The next read loads again, and that value (read after the write) is kept.
    let reloaded = cache
        .get_or_insert_with(&key, expiry, || async { "after the write".to_owned() })
        .await;
    assert_eq!(reloaded, "after the write");
    assert_eq!(
        writer.get::<String>(&key).await.unwrap().as_deref(),
        Some("after the write")
    );
}

async fn a_delete_during_a_load_wins(fx: &Fixture) {
    race(fx, false, Invalidate::Key).await;
}

async fn a_delete_on_another_replica_during_a_load_wins(fx: &Fixture) {
    race(fx, true, Invalidate::Key).await;
}

async fn a_pattern_delete_during_a_load_wins(fx: &Fixture) {
    race(fx, false, Invalidate::Pattern).await;
}

async fn a_pattern_delete_on_another_replica_during_a_load_wins(fx: &Fixture) {
    race(fx, true, Invalidate::Pattern).await;
}

async fn a_tag_invalidation_on_another_replica_during_a_load_wins(fx: &Fixture) {
    race(fx, true, Invalidate::Tag).await;
}

/// The guard costs nothing to a load that began after the invalidation: its value is stored,
/// and a second reader gets it without running its loader.
async fn a_load_that_began_after_the_delete_is_stored(fx: &Fixture) {
    let cache = fx.cache().await;
    cache.set("k", &1_u32, MINUTE).await.unwrap();
    cache.delete("k").await.unwrap();
    let loaded = cache
        .get_or_insert_with("k", MINUTE, || async { 2_u32 })
        .await;
    assert_eq!(loaded, 2);
    let again = cache
        .get_or_insert_with("k", MINUTE, || async { 3_u32 })
        .await;
    assert_eq!(again, 2, "the value loaded after the delete was stored");
}
