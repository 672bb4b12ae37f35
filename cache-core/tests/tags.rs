//! Tags: `set_with_tags`, `Expiry::tags` and `invalidate_tag`, on every backend; and on Redis,
//! what invalidation costs and how tag versions live.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use cache_test_support as support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cache_core::{Cache, ErrorKind, Expiry};
use support::{Fixture, RedisServer};

const HOUR: Duration = Duration::from_secs(3600);

support::on_every_backend!(
    invalidating_a_tag_misses_every_value_under_it_and_only_those,
    a_tagged_read_through_reloads_after_its_tag_is_invalidated,
    a_tag_invalidated_while_the_loader_runs_voids_what_it_returns,
    tags_that_cannot_be_stored_are_invalid_input,
    get_many_sees_invalidated_tags,
);

async fn invalidating_a_tag_misses_every_value_under_it_and_only_those(fx: &Fixture) {
    let cache = fx.cache().await;
    cache
        .set_with_tags("daily:42", &2100_u32, HOUR, &["user:42"])
        .await
        .unwrap();
    cache
        .set_with_tags("stats:42", &1950_u32, HOUR, &["user:42", "stats"])
        .await
        .unwrap();
    cache
        .set_with_tags("stats:7", &1700_u32, HOUR, &["user:7", "stats"])
        .await
        .unwrap();
    cache.set("plain", &1_u32, HOUR).await.unwrap();

    cache.invalidate_tag("user:42").await.unwrap();
    assert_eq!(cache.get::<u32>("daily:42").await.unwrap(), None);
    assert_eq!(cache.get::<u32>("stats:42").await.unwrap(), None);
    assert_eq!(cache.get::<u32>("stats:7").await.unwrap(), Some(1700));
    assert_eq!(cache.get::<u32>("plain").await.unwrap(), Some(1));

    // Written after the invalidation: a hit again.
    cache
        .set_with_tags("daily:42", &2200_u32, HOUR, &["user:42"])
        .await
        .unwrap();
    assert_eq!(cache.get::<u32>("daily:42").await.unwrap(), Some(2200));

    // A tag nothing was stored under: nothing happens.
    cache.invalidate_tag("user:999").await.unwrap();
    cache.invalidate_tag("stats").await.unwrap();
    assert_eq!(cache.get::<u32>("stats:7").await.unwrap(), None);
    assert_eq!(cache.get::<u32>("daily:42").await.unwrap(), Some(2200));
}

async fn a_tagged_read_through_reloads_after_its_tag_is_invalidated(fx: &Fixture) {
    let cache = fx.cache().await;
    let runs = Arc::new(AtomicU32::new(0));
    let load = || {
        let runs = Arc::clone(&runs);
        let expiry = Expiry::new(HOUR).tags(["user:42"]);
        let cache = cache.clone();
        async move {
            cache
                .get_or_insert_with("daily:42", expiry, || async move {
                    runs.fetch_add(1, Ordering::SeqCst) + 1
                })
                .await
        }
    };
    assert_eq!(load().await, 1);
    assert_eq!(load().await, 1, "a hit");
    cache.invalidate_tag("user:42").await.unwrap();
    assert_eq!(load().await, 2, "reloaded once the tag was invalidated");
    assert_eq!(load().await, 2);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

async fn a_tag_invalidated_while_the_loader_runs_voids_what_it_returns(fx: &Fixture) {
    let cache = fx.cache().await;
    let (release, mut gate) = tokio::sync::watch::channel(false);
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let loading = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_insert_with(
                    "daily:42",
                    Expiry::new(HOUR).tags(["user:42"]),
                    || async move {
                        let _ = started_tx.send(());
                        let _ = gate.wait_for(|open| *open).await;
                        2100_u32 // read from the database before the write below
                    },
                )
                .await
        })
    };
    started.await.unwrap();
    // The write the loader did not see, then its invalidation.
    cache.invalidate_tag("user:42").await.unwrap();
    release.send(true).unwrap();
    assert_eq!(
        loading.await.unwrap(),
        2100,
        "the caller still gets its answer"
    );
    assert_eq!(
        cache.get::<u32>("daily:42").await.unwrap(),
        None,
        "but it is not served to anyone else"
    );
}

async fn tags_that_cannot_be_stored_are_invalid_input(fx: &Fixture) {
    let cache = fx.cache().await;
    let long = "t".repeat(1025);
    let many: Vec<String> = (0..256).map(|i| format!("t{i}")).collect();
    for tags in [vec![String::new()], vec![long.clone()], many] {
        let err = cache
            .set_with_tags("k", &1_u8, HOUR, &tags)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
    assert_eq!(
        cache.invalidate_tag("").await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    // A read-through never fails for the cache's sake: it loads and stores nothing.
    let value = cache
        .get_or_insert_with("k", Expiry::new(HOUR).tags([long]), || async { 5_u8 })
        .await;
    assert_eq!(value, 5);
    assert_eq!(cache.get::<u8>("k").await.unwrap(), None);
    // Repeated tags are one tag.
    cache
        .set_with_tags("k", &1_u8, HOUR, &["a", "a", "b"])
        .await
        .unwrap();
    cache.invalidate_tag("a").await.unwrap();
    assert_eq!(cache.get::<u8>("k").await.unwrap(), None);
}

async fn get_many_sees_invalidated_tags(fx: &Fixture) {
    let cache = fx.cache().await;
    for user in 0..10_u32 {
        cache
            .set_with_tags(
                format!("day:{user}"),
                &user,
                HOUR,
                &[format!("user:{user}")],
            )
            .await
            .unwrap();
    }
    cache.invalidate_tag("user:3").await.unwrap();
    cache.invalidate_tag("user:8").await.unwrap();
    let keys: Vec<String> = (0..10).map(|user| format!("day:{user}")).collect();
    let found = cache.get_many::<u32>(&keys).await.unwrap();
    let expected: Vec<Option<u32>> = (0..10)
        .map(|user| (user != 3 && user != 8).then_some(user))
        .collect();
    assert_eq!(found, expected);
}

async fn redis_cache(server: &RedisServer) -> Cache {
    Cache::builder()
        .url(server.url())
        .namespace("app")
        .build()
        .await
        .unwrap()
}

/// Invalidating a tag is one command on Redis whatever the number of values under it; none
/// of them is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_is_one_command_whatever_the_number_of_values() {
    let server = RedisServer::start();
    let cache = redis_cache(&server).await;
    let values: Vec<(String, u32)> = (0..1_000).map(|i| (format!("meal:{i}"), i)).collect();
    for (key, value) in &values {
        cache
            .set_with_tags(key, value, HOUR, &["user:42"])
            .await
            .unwrap();
    }
    let total = |server: &RedisServer| -> u64 {
        server
            .command_calls()
            .iter()
            .filter(|(name, _)| name != "info")
            .map(|(_, calls)| calls)
            .sum()
    };
    let before = total(&server);
    cache.invalidate_tag("user:42").await.unwrap();
    assert_eq!(total(&server) - before, 1, "one SET XX KEEPTTL");
    let keys: Vec<&str> = values.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        cache
            .get_many::<u32>(&keys)
            .await
            .unwrap()
            .iter()
            .all(Option::is_none)
    );
    let dbsize: u64 = ::redis::cmd("DBSIZE")
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(
        dbsize, 1_001,
        "the values stay until their TTL; one key per tag, no sets"
    );
}

/// A read-through that names its tags reads their versions in the same round trip as the
/// value: one `MGET` per hit, nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tagged_hit_is_one_round_trip() {
    let server = RedisServer::start();
    let cache = redis_cache(&server).await;
    let expiry = || Expiry::new(HOUR).tags(["user:42", "stats"]);
    cache
        .get_or_insert_with("stats:42", expiry(), || async { 1_u32 })
        .await;
    let calls = |server: &RedisServer| {
        let mut calls = server.command_calls();
        calls.retain(|(name, _)| name != "info");
        calls
    };
    let before = calls(&server);
    for _ in 0..10 {
        let value = cache
            .get_or_insert_with("stats:42", expiry(), || async { 2_u32 })
            .await;
        assert_eq!(value, 1);
    }
    let after = calls(&server);
    let grown: Vec<(String, u64)> = after
        .iter()
        .map(|(name, calls)| {
            let was = before
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, c)| *c);
            (name.clone(), calls - was)
        })
        .filter(|(_, grown)| *grown > 0)
        .collect();
    assert_eq!(grown, vec![("mget".to_owned(), 10)]);

    // A plain get of a tagged value needs its tags' versions too: one more round trip.
    let before = server.calls("mget");
    assert_eq!(cache.get::<u32>("stats:42").await.unwrap(), Some(1));
    assert_eq!(server.calls("mget") - before, 1);
}

/// A tagged miss reads the value (and its tags' versions) once: the single-flight leader does
/// not look again when no flight ended meanwhile, and a refresh-ahead read that missed hands
/// its lookup to the read-through instead of repeating it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tagged_miss_reads_the_backend_once() {
    let server = RedisServer::start();
    let cache = redis_cache(&server).await;
    let expiry = || Expiry::new(HOUR).tags(["user:42", "day:42"]);
    let before = server.calls("mget");
    let value: Result<u32, String> = cache
        .get_or_try_insert_with("daily:42:a", expiry(), || async { Ok(1) })
        .await;
    assert_eq!(value, Ok(1));
    assert_eq!(server.calls("mget") - before, 1, "get_or_try_insert_with");

    let before = server.calls("mget");
    let value: Result<u32, String> = cache
        .get_or_refresh("daily:42:b", expiry().refresh_ahead(0.8), || async {
            Ok(2)
        })
        .await;
    assert_eq!(value, Ok(2));
    assert_eq!(server.calls("mget") - before, 1, "get_or_refresh");

    // Both were stored: the next reads hit, a round trip each.
    let before = server.calls("mget");
    let hit: Result<u32, String> = cache
        .get_or_refresh("daily:42:b", expiry().refresh_ahead(0.8), || async {
            Ok(3)
        })
        .await;
    assert_eq!(hit, Ok(2));
    assert_eq!(server.calls("mget") - before, 1);
}

/// A tag's version key lives at least as long as the longest value under it (so a value can
/// never outlive its tag and come back after an invalidation), and forever for values without
/// a TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_versions_outlive_the_values_under_them() {
    let server = RedisServer::start();
    let cache = redis_cache(&server).await;
    let mut conn = server.connection();
    let pttl = |conn: &mut ::redis::Connection, key: &str| -> i64 {
        ::redis::cmd("PTTL").arg(key).query(conn).unwrap()
    };
    cache
        .set_with_tags("short", &1_u8, Duration::from_secs(60), &["t"])
        .await
        .unwrap();
    cache
        .set_with_tags("long", &1_u8, HOUR, &["t"])
        .await
        .unwrap();
    cache
        .set_with_tags("short2", &1_u8, Duration::from_secs(60), &["t"])
        .await
        .unwrap();
    assert!(pttl(&mut conn, "app#tag:t") > pttl(&mut conn, "app:long"));
    cache
        .set_with_tags("forever", &1_u8, cache_core::Ttl::Never, &["t"])
        .await
        .unwrap();
    assert_eq!(pttl(&mut conn, "app#tag:t"), -1, "no expiry");
    // Outside the namespace's key space: patterns never see (or delete) tag keys.
    assert_eq!(cache.delete_pattern("*").await.unwrap(), 4);
    let version: Option<String> = ::redis::cmd("GET")
        .arg("app#tag:t")
        .query(&mut conn)
        .unwrap();
    assert_eq!(version.map(|v| v.len()), Some(16));
}
