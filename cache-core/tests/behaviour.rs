//! The behaviour every backend must share, written once and run on memory and on a real Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use cache_test_support as support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_core::{Cache, ErrorKind, MemoryCapacity, Ttl, key};
use serde::{Deserialize, Serialize};
use support::{Fixture, eventually};

const MINUTE: Duration = Duration::from_secs(60);

support::on_every_backend!(
    typed_values_roundtrip,
    missing_keys_are_none,
    keys_from_str_string_and_key_builder_agree,
    values_expire_after_their_ttl,
    default_and_never_ttls,
    zero_ttl_is_invalid_input,
    delete_says_whether_the_key_was_there,
    delete_pattern_counts_and_stays_in_its_namespace,
    delete_pattern_cannot_be_glob_injected,
    invalid_patterns_are_errors,
    get_many_and_set_many_keep_order,
    read_through_loads_on_miss_only,
    a_thousand_concurrent_misses_run_the_loader_once,
    loader_errors_are_shared_and_never_cached,
    a_cancelled_loader_hands_over_to_a_waiter,
    a_changed_struct_is_a_miss_and_gets_overwritten,
    a_loader_that_reads_its_own_key_does_not_wait_for_itself,
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Meal {
    id: i64,
    name: String,
    kcal: u32,
    macros: (f32, f32, f32),
    tags: Vec<String>,
}

fn oats() -> Meal {
    Meal {
        id: 7,
        name: "oats".to_owned(),
        kcal: 389,
        macros: (16.9, 6.9, 66.3),
        tags: vec!["breakfast".to_owned()],
    }
}

async fn typed_values_roundtrip(fx: &Fixture) {
    let cache = fx.cache().await;
    cache.set("meal", &oats(), MINUTE).await.unwrap();
    cache.set("n", &42_u64, MINUTE).await.unwrap();
    cache.set("s", &"text".to_owned(), MINUTE).await.unwrap();
    cache.set("opt", &None::<u8>, MINUTE).await.unwrap();
    assert_eq!(cache.get::<Meal>("meal").await.unwrap(), Some(oats()));
    assert_eq!(cache.get::<u64>("n").await.unwrap(), Some(42));
    assert_eq!(
        cache.get::<String>("s").await.unwrap(),
        Some("text".to_owned())
    );
    assert_eq!(cache.get::<Option<u8>>("opt").await.unwrap(), Some(None));
}

async fn missing_keys_are_none(fx: &Fixture) {
    let cache = fx.cache().await;
    assert_eq!(cache.get::<Meal>("nothing here").await.unwrap(), None);
}

async fn keys_from_str_string_and_key_builder_agree(fx: &Fixture) {
    let cache = fx.cache().await;
    let owned = String::from("daily_meals:7:2024-05-01");
    cache.set(&owned, &1_u8, MINUTE).await.unwrap();
    assert_eq!(
        cache.get::<u8>("daily_meals:7:2024-05-01").await.unwrap(),
        Some(1)
    );
    assert_eq!(cache.get::<u8>(owned.clone()).await.unwrap(), Some(1));
    assert_eq!(
        cache
            .get::<u8>(key!("daily_meals", 7, "2024-05-01"))
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        cache
            .get::<u8>(&key!("daily_meals", 7, "2024-05-01"))
            .await
            .unwrap(),
        Some(1)
    );
}

async fn values_expire_after_their_ttl(fx: &Fixture) {
    let cache = fx.cache().await;
    // Sub-second: Redis gets PX, memory a per-entry expiry.
    cache
        .set("short", &1_u8, Duration::from_millis(300))
        .await
        .unwrap();
    cache.set("long", &2_u8, MINUTE).await.unwrap();
    assert_eq!(
        cache.get::<u8>("short").await.unwrap(),
        Some(1),
        "present before its TTL"
    );
    let expired = eventually(Duration::from_secs(5), || async {
        cache.get::<u8>("short").await.unwrap().is_none()
    })
    .await;
    assert!(expired, "a 300 ms value must be gone within 5 s");
    assert_eq!(
        cache.get::<u8>("long").await.unwrap(),
        Some(2),
        "a one-minute value outlives it"
    );
}

async fn default_and_never_ttls(fx: &Fixture) {
    let cache = fx
        .builder()
        .default_ttl(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    cache.set("default", &1_u8, Ttl::Default).await.unwrap();
    cache.set("never", &2_u8, Ttl::Never).await.unwrap();
    let expired = eventually(Duration::from_secs(5), || async {
        cache.get::<u8>("default").await.unwrap().is_none()
    })
    .await;
    assert!(expired, "Ttl::Default takes the builder's 300 ms");
    assert_eq!(cache.get::<u8>("never").await.unwrap(), Some(2));
}

async fn zero_ttl_is_invalid_input(fx: &Fixture) {
    let cache = fx.cache().await;
    let err = cache.set("k", &1_u8, Duration::ZERO).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        cache.get::<u8>("k").await.unwrap(),
        None,
        "nothing was stored"
    );
    // The read-through still answers, from the loader, storing nothing.
    assert_eq!(
        cache
            .get_or_insert_with("k", Duration::ZERO, || async { 5_u8 })
            .await,
        5
    );
    assert_eq!(cache.get::<u8>("k").await.unwrap(), None);
}

async fn delete_says_whether_the_key_was_there(fx: &Fixture) {
    let cache = fx.cache().await;
    cache.set("k", &1_u8, MINUTE).await.unwrap();
    assert!(cache.delete("k").await.unwrap());
    assert!(!cache.delete("k").await.unwrap());
    assert_eq!(cache.get::<u8>("k").await.unwrap(), None);
}

async fn delete_pattern_counts_and_stays_in_its_namespace(fx: &Fixture) {
    let app = fx.builder().namespace("app").build().await.unwrap();
    let other = fx.builder().namespace("other").build().await.unwrap();
    for day in 1..=5 {
        app.set(key!("daily_meals", 7, day), &day, MINUTE)
            .await
            .unwrap();
        other
            .set(key!("daily_meals", 7, day), &day, MINUTE)
            .await
            .unwrap();
    }
    app.set(key!("user_stats", 7), &0_u8, MINUTE).await.unwrap();
    assert_eq!(
        app.delete_pattern(key!("daily_meals", 7).prefix_pattern())
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        app.get::<i32>(key!("daily_meals", 7, 1)).await.unwrap(),
        None
    );
    assert_eq!(
        app.get::<u8>(key!("user_stats", 7)).await.unwrap(),
        Some(0),
        "other prefixes survive"
    );
    assert_eq!(
        app.delete_pattern("*").await.unwrap(),
        1,
        "only its own last key"
    );
    for day in 1..=5 {
        assert_eq!(
            other.get::<i32>(key!("daily_meals", 7, day)).await.unwrap(),
            Some(day),
            "other namespace untouched"
        );
    }
}

async fn delete_pattern_cannot_be_glob_injected(fx: &Fixture) {
    let cache = fx.cache().await;
    let users = ["7", "71", "7*", "7]", "7[", "7?", r"7\", "[7]", "*"];
    for user in users {
        cache
            .set(
                key!("daily_meals", user, "2024-05-01"),
                &user.to_owned(),
                MINUTE,
            )
            .await
            .unwrap();
        cache
            .set(
                key!("daily_meals", user, "2024-05-02"),
                &user.to_owned(),
                MINUTE,
            )
            .await
            .unwrap();
    }
    for (i, victim) in users.iter().enumerate() {
        let removed = cache
            .delete_pattern(key!("daily_meals", victim).prefix_pattern())
            .await
            .unwrap();
        assert_eq!(
            removed, 2,
            "deleting user {victim:?} removes exactly their two keys"
        );
        for (j, user) in users.iter().enumerate() {
            let found = cache
                .get::<String>(key!("daily_meals", user, "2024-05-01"))
                .await
                .unwrap();
            assert_eq!(
                found.is_some(),
                j > i,
                "after deleting {victim:?}, user {user:?}"
            );
        }
    }
}

async fn invalid_patterns_are_errors(fx: &Fixture) {
    let cache = fx.cache().await;
    cache.set("meals:7", &1_u8, MINUTE).await.unwrap();
    for bad in ["meals:[7", r"meals:7\"] {
        let err = cache.delete_pattern(bad).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
    }
    assert_eq!(
        cache.get::<u8>("meals:7").await.unwrap(),
        Some(1),
        "nothing deleted"
    );
}

async fn get_many_and_set_many_keep_order(fx: &Fixture) {
    let cache = fx.cache().await;
    let entries: Vec<(String, u32)> = (0..100).map(|i| (format!("k{i}"), i * 10)).collect();
    cache.set_many(&entries, MINUTE).await.unwrap();
    let mut keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
    keys.insert(50, "absent".to_owned());
    let got = cache.get_many::<u32>(&keys).await.unwrap();
    assert_eq!(got.len(), 101);
    assert_eq!(got[50], None);
    assert_eq!(got[0], Some(0));
    assert_eq!(got[100], Some(990));
    assert!(
        cache
            .get_many::<u32>(&[] as &[&str])
            .await
            .unwrap()
            .is_empty()
    );
}

async fn read_through_loads_on_miss_only(fx: &Fixture) {
    let cache = fx.cache().await;
    let runs = AtomicUsize::new(0);
    for _ in 0..3 {
        let meal = cache
            .get_or_insert_with(key!("meal", 7), MINUTE, || async {
                runs.fetch_add(1, Ordering::SeqCst);
                oats()
            })
            .await;
        assert_eq!(meal, oats());
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        cache.get::<Meal>(key!("meal", 7)).await.unwrap(),
        Some(oats()),
        "the loaded value is stored"
    );
}

async fn a_thousand_concurrent_misses_run_the_loader_once(fx: &Fixture) {
    let cache = fx.cache().await;
    let runs = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..1_000)
        .map(|_| {
            let (cache, runs) = (cache.clone(), Arc::clone(&runs));
            tokio::spawn(async move {
                cache
                    .get_or_insert_with("hot", MINUTE, || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        // A database query's worth of latency, so the others pile up behind it.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        oats()
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), oats());
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "one loader run for 1,000 concurrent misses"
    );
}

async fn loader_errors_are_shared_and_never_cached(fx: &Fixture) {
    let cache = fx.cache().await;
    let runs = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (cache, runs) = (cache.clone(), Arc::clone(&runs));
            tokio::spawn(async move {
                cache
                    .get_or_try_insert_with::<Meal, String, _, _>(
                        "failing",
                        MINUTE,
                        || async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            Err("database is down".to_owned())
                        },
                    )
                    .await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(
            task.await.unwrap(),
            Err("database is down".to_owned()),
            "every waiter gets the loader's error"
        );
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "waiters share the failed run instead of retrying it"
    );
    assert_eq!(
        cache.get::<Meal>("failing").await.unwrap(),
        None,
        "errors are not cached"
    );
    let ok: Result<u8, String> = cache
        .get_or_try_insert_with("failing", MINUTE, || async { Ok(1) })
        .await;
    assert_eq!(ok, Ok(1), "the next call loads again");
}

async fn a_cancelled_loader_hands_over_to_a_waiter(fx: &Fixture) {
    let cache = fx.cache().await;
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let leader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_insert_with("k", MINUTE, || async move {
                    let _ = started_tx.send(());
                    std::future::pending::<u8>().await
                })
                .await
        })
    };
    started_rx.await.unwrap();
    let mut follower = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_insert_with("k", MINUTE, || async { 2_u8 })
                .await
        })
    };
    // The follower must be waiting on the leader before the leader goes away.
    let parked = tokio::time::timeout(Duration::from_millis(200), &mut follower)
        .await
        .is_err();
    assert!(parked, "the follower waits while the leader loads");
    leader.abort();
    assert_eq!(
        follower.await.unwrap(),
        2,
        "the waiter loads once the leader is gone"
    );
    assert_eq!(cache.get::<u8>("k").await.unwrap(), Some(2));
}

/// The same record after a deploy added a field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MealV2 {
    id: i64,
    name: String,
    kcal: u32,
    macros: (f32, f32, f32),
    tags: Vec<String>,
    fiber: f32,
}

async fn a_changed_struct_is_a_miss_and_gets_overwritten(fx: &Fixture) {
    let cache = fx.cache().await;
    cache.set("meal", &oats(), MINUTE).await.unwrap();
    assert_eq!(
        cache.get::<MealV2>("meal").await.unwrap(),
        None,
        "old shape reads as a miss, not an error"
    );
    let new = MealV2 {
        id: 7,
        name: "oats".to_owned(),
        kcal: 389,
        macros: (16.9, 6.9, 66.3),
        tags: vec![],
        fiber: 10.6,
    };
    let loaded = cache
        .get_or_insert_with("meal", MINUTE, || async { new.clone() })
        .await;
    assert_eq!(loaded, new, "the read-through loads the new shape");
    assert_eq!(
        cache.get::<MealV2>("meal").await.unwrap(),
        Some(new),
        "and overwrites the old one"
    );
}

async fn a_loader_that_reads_its_own_key_does_not_wait_for_itself(fx: &Fixture) {
    let cache = fx.cache().await;
    let inner_cache = cache.clone();
    let value = tokio::time::timeout(
        Duration::from_secs(10),
        cache.get_or_insert_with("outer", MINUTE, || async move {
            // e.g. one cached function calling another that uses the same key
            inner_cache
                .get_or_insert_with("outer", MINUTE, || async { 7_u8 })
                .await
                + 1
        }),
    )
    .await
    .expect("no self-deadlock");
    assert_eq!(value, 8);
    assert_eq!(
        cache.get::<u8>("outer").await.unwrap(),
        Some(8),
        "the outer value is the one stored"
    );
}

#[tokio::test]
async fn two_memory_caches_are_independent() {
    let (a, b) = (Cache::memory(), Cache::memory());
    a.set("k", &1_u8, MINUTE).await.unwrap();
    assert_eq!(b.get::<u8>("k").await.unwrap(), None);
    assert_eq!(
        a.clone().get::<u8>("k").await.unwrap(),
        Some(1),
        "clones share"
    );
}

/// How many of `keys` are present right now.
async fn present(cache: &Cache, keys: &[String]) -> usize {
    cache
        .get_many::<Vec<u8>>(keys)
        .await
        .unwrap()
        .iter()
        .filter(|v| v.is_some())
        .count()
}

#[tokio::test]
async fn the_memory_tier_is_bounded_by_entries() {
    let cache = Cache::builder()
        .memory_capacity(MemoryCapacity::Entries(100))
        .build()
        .await
        .unwrap();
    let keys: Vec<String> = (0..1_000).map(|i| format!("k{i}")).collect();
    for key in &keys {
        cache.set(key, &vec![0_u8; 16], MINUTE).await.unwrap();
    }
    let bounded = eventually(Duration::from_secs(5), || async {
        present(&cache, &keys).await <= 100
    })
    .await;
    assert!(bounded, "at most 100 of 1,000 entries stay");
    assert!(present(&cache, &keys).await > 0);
}

#[tokio::test]
async fn the_memory_tier_is_bounded_by_bytes() {
    // 64 KiB holds about sixty 1 KiB values, whatever their count.
    let cache = Cache::builder()
        .memory_capacity(MemoryCapacity::Bytes(64 * 1024))
        .build()
        .await
        .unwrap();
    let keys: Vec<String> = (0..1_000).map(|i| format!("k{i}")).collect();
    for key in &keys {
        cache.set(key, &vec![7_u8; 1024], MINUTE).await.unwrap();
    }
    let bounded = eventually(Duration::from_secs(5), || async {
        present(&cache, &keys).await <= 64
    })
    .await;
    assert!(bounded, "1 KiB values in a 64 KiB tier: at most 64 stay");
    assert!(present(&cache, &keys).await > 0);
}
