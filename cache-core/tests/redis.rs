//! What only Redis can show: commands on the wire, foreign bytes, outages and recovery.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use cache_test_support as support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_core::codec::Json;
use cache_core::{Cache, ErrorKind, Ttl, key};
use support::{RedisServer, eventually, free_port};

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_pattern_over_50_000_keys_uses_scan_and_unlink_in_batches_never_keys() {
    let server = RedisServer::start();
    let cache = Cache::connect(&server.url()).await.unwrap();
    for chunk in 0..50 {
        let entries: Vec<(String, u32)> = (0..1_000)
            .map(|i| (key!("bulk", chunk, i).to_string(), i))
            .collect();
        cache.set_many(&entries, MINUTE).await.unwrap();
    }
    cache.set("keep", &1_u8, MINUTE).await.unwrap();

    assert_eq!(cache.delete_pattern("bulk:*").await.unwrap(), 50_000);

    assert_eq!(server.calls("keys"), 0, "KEYS must never run");
    assert!(
        server.calls("scan") >= 50,
        "SCAN in batches of at most 1,000"
    );
    assert!(
        server.calls("unlink") >= 50,
        "UNLINK at most 1,000 keys per call"
    );
    assert_eq!(cache.get::<u8>("keep").await.unwrap(), Some(1));
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("cache:bulk:*")
        .query(&mut server.connection())
        .unwrap();
    assert!(left.is_empty());
}

#[tokio::test]
async fn connecting_where_nothing_listens_is_a_clear_error_naming_the_address() {
    let port = free_port();
    let err = Cache::connect(&format!("redis://127.0.0.1:{port}/0"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect);
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn passwords_never_appear_in_errors_or_debug() {
    let port = free_port();
    let url = format!("redis://app:hunter2@127.0.0.1:{port}/0");
    let err = Cache::connect(&url).await.unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    assert!(!format!("{:?}", Cache::builder().url(&url)).contains("hunter2"));
}

#[tokio::test]
async fn sub_second_ttls_are_sent_as_milliseconds_and_never_means_no_expiry() {
    let server = RedisServer::start();
    let cache = Cache::connect(&server.url()).await.unwrap();
    cache
        .set("short", &1_u8, Duration::from_millis(400))
        .await
        .unwrap();
    cache
        .set("tiny", &1_u8, Duration::from_micros(300))
        .await
        .unwrap();
    cache.set("forever", &1_u8, Ttl::Never).await.unwrap();
    let mut conn = server.connection();
    let pttl: i64 = redis::cmd("PTTL")
        .arg("cache:short")
        .query(&mut conn)
        .unwrap();
    assert!((1..=400).contains(&pttl), "PTTL {pttl}");
    let ttl: i64 = redis::cmd("TTL")
        .arg("cache:forever")
        .query(&mut conn)
        .unwrap();
    assert_eq!(ttl, -1);
    // 300 µs rounds up to PX 1, not to the PX 0 that Redis rejects: the set succeeded above.
}

#[tokio::test]
async fn get_many_is_one_mget() {
    let server = RedisServer::start();
    let cache = Cache::connect(&server.url()).await.unwrap();
    let entries: Vec<(String, u8)> = (0..100).map(|i| (format!("k{i}"), 1)).collect();
    cache.set_many(&entries, MINUTE).await.unwrap();
    let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(cache.get_many::<u8>(&keys).await.unwrap().len(), 100);
    assert_eq!(server.calls("mget"), 1);
    assert_eq!(server.calls("get"), 0);
}

#[tokio::test]
async fn garbage_under_a_key_is_a_miss_and_the_next_write_replaces_it() {
    let server = RedisServer::start();
    let cache = Cache::connect(&server.url()).await.unwrap();
    for garbage in [
        &b"not an envelope"[..],
        b"",
        &[0xCA, 1, 1, 0, 0][..],
        &[
            0xCA, 1, 1, 9, 9, 9, 9, 9, 9, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF,
        ][..],
    ] {
        let () = redis::cmd("SET")
            .arg("cache:meal")
            .arg(garbage)
            .query(&mut server.connection())
            .unwrap();
        assert_eq!(
            cache.get::<String>("meal").await.unwrap(),
            None,
            "{garbage:?} reads as a miss"
        );
        let loaded = cache
            .get_or_insert_with("meal", MINUTE, || async { "oats".to_owned() })
            .await;
        assert_eq!(loaded, "oats");
        assert_eq!(
            cache.get::<String>("meal").await.unwrap(),
            Some("oats".to_owned()),
            "overwritten"
        );
        cache.delete("meal").await.unwrap();
    }
}

#[tokio::test]
async fn a_value_written_by_another_codec_is_a_miss() {
    let server = RedisServer::start();
    let json = Cache::builder()
        .url(server.url())
        .codec(Json)
        .build()
        .await
        .unwrap();
    let bincode = Cache::connect(&server.url()).await.unwrap();
    json.set("k", &5_u32, MINUTE).await.unwrap();
    assert_eq!(json.get::<u32>("k").await.unwrap(), Some(5));
    assert_eq!(bincode.get::<u32>("k").await.unwrap(), None);
    let raw: Vec<u8> = redis::cmd("GET")
        .arg("cache:k")
        .query(&mut server.connection())
        .unwrap();
    assert!(
        raw.ends_with(b"5"),
        "JSON payload after the envelope header"
    );
}

/// A cache tuned so that an outage is detected and retried quickly in tests.
async fn outage_ready_cache(server: &RedisServer) -> Cache {
    Cache::builder()
        .url(server.url())
        .operation_timeout(Duration::from_millis(200))
        .connect_timeout(Duration::from_millis(200))
        .circuit_breaker(3, Duration::from_millis(200))
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_test_read_through_keeps_answering_then_recovers_without_restart() {
    let mut server = RedisServer::start();
    let cache = outage_ready_cache(&server).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let read = || {
        let (cache, runs) = (cache.clone(), Arc::clone(&runs));
        async move {
            cache
                .get_or_insert_with(key!("user_stats", 7), MINUTE, || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    2100_u32
                })
                .await
        }
    };
    assert_eq!(read().await, 2100);
    assert_eq!(read().await, 2100);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "second read is a hit");

    server.stop();
    for _ in 0..10 {
        assert_eq!(read().await, 2100, "the loader answers while Redis is down");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 11);
    assert!(
        cache.is_circuit_open(),
        "repeated failures open the breaker"
    );
    let err = cache.get::<u32>(key!("user_stats", 7)).await.unwrap_err();
    assert!(err.is_unavailable(), "direct get reports the outage: {err}");

    server.restart();
    let recovered = eventually(Duration::from_secs(10), || async {
        let before = runs.load(Ordering::SeqCst);
        read().await == 2100 && read().await == 2100 && runs.load(Ordering::SeqCst) <= before + 1
    })
    .await;
    assert!(
        recovered,
        "after Redis returns, reads hit again with no restart of the cache"
    );
    assert!(!cache.is_circuit_open());
    assert_eq!(
        cache.get::<u32>(key!("user_stats", 7)).await.unwrap(),
        Some(2100)
    );
}

#[tokio::test]
async fn a_refused_command_is_an_error_that_does_not_trip_the_breaker() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .url(server.url())
        .circuit_breaker(2, MINUTE)
        .build()
        .await
        .unwrap();
    let () = redis::cmd("LPUSH")
        .arg("cache:list")
        .arg("x")
        .query(&mut server.connection())
        .unwrap();
    for _ in 0..5 {
        let err = cache.get::<u8>("list").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Rejected, "{err}");
    }
    assert!(!cache.is_circuit_open(), "Redis answered: it is up");
    assert_eq!(
        cache
            .get_or_insert_with("list", MINUTE, || async { 3_u8 })
            .await,
        3
    );
    assert_eq!(
        cache.get::<u8>("list").await.unwrap(),
        Some(3),
        "the read-through replaced the list"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_probe_does_not_leave_the_breaker_stuck() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .url(server.url())
        .operation_timeout(Duration::from_millis(300))
        .circuit_breaker(1, Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    cache.set("k", &1_u8, MINUTE).await.unwrap();
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(5_000)
        .arg("ALL")
        .query(&mut server.connection())
        .unwrap();
    assert!(cache.get::<u8>("k").await.unwrap_err().is_timeout());
    assert!(cache.is_circuit_open());
    // After the cool-down, a probe goes out and its caller gives up on it.
    let gave_up = eventually(Duration::from_secs(5), || async {
        tokio::time::timeout(Duration::from_millis(50), cache.get::<u8>("k"))
            .await
            .is_err()
    })
    .await;
    assert!(gave_up, "a probe was sent and abandoned");
    let () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query(&mut server.connection())
        .unwrap();
    let recovered = eventually(Duration::from_secs(5), || async {
        cache.get::<u8>("k").await.ok() == Some(Some(1))
    })
    .await;
    assert!(recovered, "the next caller probes, and the breaker closes");
}

/// A decorator over the real Redis backend, counting the reads that pass through it.
#[derive(Debug)]
struct Counting {
    inner: cache_core::backend::RedisBackend,
    gets: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl cache_core::Backend for Counting {
    async fn get(&self, key: &str) -> cache_core::Result<Option<Vec<u8>>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key).await
    }
    async fn get_many(&self, keys: &[String]) -> cache_core::Result<Vec<Option<Vec<u8>>>> {
        self.inner.get_many(keys).await
    }
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> cache_core::Result<()> {
        self.inner.set(key, value, ttl).await
    }
    async fn set_many(
        &self,
        entries: &[(String, Vec<u8>)],
        ttl: Option<Duration>,
    ) -> cache_core::Result<()> {
        self.inner.set_many(entries, ttl).await
    }
    async fn delete(&self, key: &str) -> cache_core::Result<bool> {
        self.inner.delete(key).await
    }
    async fn delete_pattern(&self, pattern: &str) -> cache_core::Result<u64> {
        self.inner.delete_pattern(pattern).await
    }
    async fn ping(&self) -> cache_core::Result<()> {
        self.inner.ping().await
    }
}

async fn counting(server: &RedisServer, gets: &Arc<AtomicUsize>) -> Counting {
    let second = Duration::from_secs(1);
    let inner = cache_core::backend::RedisBackend::connect(&server.url(), 1, second, second)
        .await
        .unwrap();
    Counting {
        inner,
        gets: Arc::clone(gets),
    }
}

#[tokio::test]
async fn a_cache_can_run_on_a_backend_of_your_own() {
    let server = RedisServer::start();
    let gets = Arc::new(AtomicUsize::new(0));
    let cache = Cache::builder()
        .backend(counting(&server, &gets).await)
        .build()
        .await
        .unwrap();
    assert_eq!(cache.backend_name(), "custom");
    cache.set("k", &5_u32, MINUTE).await.unwrap();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(5));
    assert_eq!(
        gets.load(Ordering::SeqCst),
        1,
        "reads go through the decorator"
    );
    let raw: Vec<u8> = redis::cmd("GET")
        .arg("cache:k")
        .query(&mut server.connection())
        .unwrap();
    assert!(
        !raw.is_empty(),
        "stored in the real Redis, under the namespace"
    );
    let both = Cache::builder()
        .url(server.url())
        .backend(counting(&server, &gets).await);
    assert!(
        both.build().await.unwrap_err().is_config(),
        "a URL and a backend: ambiguous"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_times_out_and_read_throughs_still_answer() {
    let server = RedisServer::start();
    let cache = outage_ready_cache(&server).await;
    cache.set("k", &1_u8, MINUTE).await.unwrap();
    // The server stays up but answers nobody for 3 s: a slow Redis.
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3_000)
        .arg("ALL")
        .query(&mut server.connection())
        .unwrap();
    let err = cache.get::<u8>("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(
        cache
            .get_or_insert_with("other", MINUTE, || async { 9_u8 })
            .await,
        9
    );
    let () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query(&mut server.connection())
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_built_while_redis_was_up_serves_loaders_when_it_is_gone_from_the_start() {
    let mut server = RedisServer::start();
    let cache = outage_ready_cache(&server).await;
    server.stop();
    let err = cache.set("k", &1_u8, MINUTE).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    let value: Result<u8, String> = cache
        .get_or_try_insert_with("k", MINUTE, || async { Ok(4) })
        .await;
    assert_eq!(value, Ok(4));
}

/// Closes every client connection of `server` but the one asking; how many were closed.
fn cut_clients(server: &RedisServer) -> u64 {
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .query(&mut server.connection())
        .unwrap()
}

/// Clients connected to `server` other than the one asking.
fn other_clients(server: &RedisServer) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut server.connection())
        .unwrap();
    list.lines().count() - 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_connections_is_used_round_robin_and_each_reconnects_after_being_cut() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .url(server.url())
        .pool_size(3)
        .operation_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    assert_eq!(other_clients(&server), 3, "one connection per pool slot");
    for i in 0..30_u32 {
        cache.set(key!("pooled", i), &i, MINUTE).await.unwrap();
    }

    // Cut every connection of the cache: each slot must notice and connect again by itself.
    assert_eq!(cut_clients(&server), 3);
    let back = eventually(Duration::from_secs(10), || async {
        let mut all = true;
        // Three reads in a row reach the three slots.
        for i in 0..3_u32 {
            all &= cache.get::<u32>(key!("pooled", i)).await.ok() == Some(Some(i));
        }
        all
    })
    .await;
    assert!(back, "every slot reconnected after its connection was cut");
    for i in 0..30_u32 {
        assert_eq!(cache.get::<u32>(key!("pooled", i)).await.unwrap(), Some(i));
    }
    assert_eq!(
        other_clients(&server),
        3,
        "one new connection per slot, the cut ones not kept"
    );
}

/// Connections `server` has accepted since it started.
fn connections_received(server: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut server.connection())
        .unwrap();
    let line = info
        .lines()
        .find_map(|line| line.strip_prefix("total_connections_received:"))
        .unwrap();
    // The connection that asked counts too.
    line.trim().parse::<u64>().unwrap() - 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_operations_on_a_cut_connection_make_one_reconnection_not_one_each() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .url(server.url())
        // Never open: every operation reaches the connection.
        .circuit_breaker(u32::MAX, Duration::from_millis(1))
        .build()
        .await
        .unwrap();
    cache.set("day", &1_u32, MINUTE).await.unwrap();
    let before = connections_received(&server);
    assert_eq!(cut_clients(&server), 1);

    // Two waves of 50 concurrent reads: the first finds the cut connection, the second an
    // empty slot that one of them connects while the others wait for it.
    for _ in 0..2 {
        let reads: Vec<_> = (0..50)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get::<u32>("day").await })
            })
            .collect();
        for read in reads {
            let _ = read.await.unwrap();
        }
    }
    let back = eventually(Duration::from_secs(10), || async {
        cache.get::<u32>("day").await.ok() == Some(Some(1))
    })
    .await;
    assert!(back, "the cache reconnected");
    let after = connections_received(&server);
    assert_eq!(
        after - before - 2,
        1,
        "one reconnection for 100 operations (the test's INFO and KILL connections not counted)"
    );
    assert_eq!(other_clients(&server), 1);
}
