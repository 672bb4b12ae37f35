//! Redis behind a fault-injecting proxy: what a caller observes under each network fault.
//!
//! `redis.rs` covers a Redis that is killed (connections refused) or paused (`CLIENT PAUSE`);
//! these tests cover what only the network can do: hold bytes (blackhole), slow them down, reset
//! connections, and cut a reply mid-way. Each prints the figures it observed (`--nocapture`);
//! `docs/RELIABILITY.md` quotes them.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use cache_test_support as support;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_core::{Cache, ErrorKind, key};
use support::{FaultProxy, Mode, RedisServer, eventually};

const MINUTE: Duration = Duration::from_secs(60);
/// The operation timeout of every cache here.
const TIMEOUT: Duration = Duration::from_millis(200);
/// Slack over the timeout for a loaded 2-core machine. "Returns within the timeout plus this" is
/// the failure policy's promise; no test asserts any other speed.
const MARGIN: Duration = Duration::from_millis(500);

/// A redis-server, a proxy in front of it, and a cache talking through the proxy.
struct Rig {
    server: RedisServer,
    proxy: FaultProxy,
    cache: Cache,
}

async fn rig(failures: u32, cool_down: Duration) -> Rig {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port()).await;
    let cache = Cache::builder()
        .url(proxy.url())
        .operation_timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .circuit_breaker(failures, cool_down)
        .build()
        .await
        .unwrap();
    Rig {
        server,
        proxy,
        cache,
    }
}

async fn timed<F: Future>(fut: F) -> (F::Output, Duration) {
    let started = Instant::now();
    let out = fut.await;
    (out, started.elapsed())
}

/// A read-through of `key` whose loader answers `"loaded"` and counts its runs.
async fn read_through(cache: &Cache, key: &str, runs: &Arc<AtomicUsize>) -> (String, Duration) {
    let runs = Arc::clone(runs);
    timed(cache.get_or_insert_with(key, MINUTE, || async move {
        runs.fetch_add(1, Ordering::SeqCst);
        "loaded".to_owned()
    }))
    .await
}

/// Redis is unreachable in some way: the first `failures` read-throughs each wait one timeout
/// and answer from the loader; then the breaker is open and read-throughs answer from the loader
/// without sending Redis a byte.
async fn assert_outage_is_absorbed(rig: &Rig, failures: u32, fault: &str) {
    let (cache, proxy) = (&rig.cache, &rig.proxy);
    let runs = Arc::new(AtomicUsize::new(0));
    let mut slowest = Duration::ZERO;
    for _ in 0..failures {
        assert!(!cache.is_circuit_open());
        let (value, took) = read_through(cache, "meal", &runs).await;
        assert_eq!(value, "loaded", "{fault}: the loader answers");
        assert!(
            took <= TIMEOUT + MARGIN,
            "{fault}: a read-through took {took:?}, over the {TIMEOUT:?} timeout + {MARGIN:?}"
        );
        slowest = slowest.max(took);
    }
    assert!(
        cache.is_circuit_open(),
        "{fault}: the breaker opens after {failures} failures"
    );

    let (sent, connections) = (proxy.bytes_from_clients(), proxy.connections());
    let mut slowest_skipped = Duration::ZERO;
    for _ in 0..50 {
        let (value, took) = read_through(cache, "meal", &runs).await;
        assert_eq!(value, "loaded");
        assert!(took <= TIMEOUT + MARGIN, "{fault}: {took:?}");
        slowest_skipped = slowest_skipped.max(took);
    }
    let err = cache.get::<String>("meal").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CircuitOpen, "{err}");
    assert_eq!(
        proxy.bytes_from_clients(),
        sent,
        "{fault}: with the breaker open, not one byte goes towards Redis"
    );
    assert_eq!(
        proxy.connections(),
        connections,
        "{fault}: nor a connection"
    );
    assert_eq!(runs.load(Ordering::SeqCst), failures as usize + 50);
    println!(
        "{fault}: slowest read-through before the breaker opened {slowest:?} \
         (timeout {TIMEOUT:?}); with it open {slowest_skipped:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackholed_redis_read_throughs_return_within_the_timeout_then_skip_redis() {
    let rig = rig(3, MINUTE).await;
    rig.cache
        .set("meal", &"stored".to_owned(), MINUTE)
        .await
        .unwrap();
    rig.proxy.set_mode(Mode::Blackhole);
    assert_outage_is_absorbed(&rig, 3, "blackhole").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_slower_than_the_timeout_is_an_outage_like_a_blackhole() {
    let rig = rig(3, MINUTE).await;
    rig.cache
        .set("meal", &"stored".to_owned(), MINUTE)
        .await
        .unwrap();
    rig.proxy.set_mode(Mode::Delay(1_000));
    assert_outage_is_absorbed(&rig, 3, "delay 1 s each way").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_slower_but_within_the_timeout_still_serves_hits() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port()).await;
    let cache = Cache::builder()
        .url(proxy.url())
        .operation_timeout(Duration::from_secs(2))
        .circuit_breaker(1, MINUTE)
        .build()
        .await
        .unwrap();
    cache
        .set("meal", &"stored".to_owned(), MINUTE)
        .await
        .unwrap();
    proxy.set_mode(Mode::Delay(100));
    let runs = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let (value, took) = read_through(&cache, "meal", &runs).await;
        assert_eq!(value, "stored", "a hit, however slow");
        assert!(
            took >= Duration::from_millis(200),
            "the proxy delays each way: {took:?}"
        );
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert!(!cache.is_circuit_open());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_blackhole_lifts_the_breaker_probes_and_closes_within_one_cool_down() {
    const COOL_DOWN: Duration = Duration::from_secs(1);
    let rig = rig(2, COOL_DOWN).await;
    let (cache, proxy) = (&rig.cache, &rig.proxy);
    cache
        .set("meal", &"stored".to_owned(), MINUTE)
        .await
        .unwrap();
    proxy.set_mode(Mode::Blackhole);
    assert!(cache.get::<String>("meal").await.unwrap_err().is_timeout());
    let before_opening = Instant::now();
    assert!(cache.get::<String>("meal").await.unwrap_err().is_timeout());
    assert!(cache.is_circuit_open());

    proxy.set_mode(Mode::Pass);
    let lifted = Instant::now();
    let runs = Arc::new(AtomicUsize::new(0));
    // Read as a user would until a read-through is a hit again.
    let hit = eventually(COOL_DOWN + TIMEOUT + MARGIN, || async {
        let (value, _) = read_through(cache, "meal", &runs).await;
        if value == "stored" {
            return true;
        }
        // The breaker opened after `before_opening`: until a cool-down after that, every read
        // is skipped, even though Redis answers again.
        assert!(
            Instant::now() >= before_opening + COOL_DOWN || cache.is_circuit_open(),
            "the breaker stays open for its cool-down"
        );
        false
    })
    .await;
    let closed_after = lifted.elapsed();
    assert!(
        hit,
        "within one cool-down ({COOL_DOWN:?}) + {MARGIN:?} of Redis passing again, reads hit"
    );
    assert!(!cache.is_circuit_open(), "the probe closed the breaker");
    assert_eq!(
        cache.get::<String>("meal").await.unwrap().as_deref(),
        Some("stored"),
        "the value stored before the outage is intact"
    );
    println!(
        "recovery: breaker closed {closed_after:?} after the blackhole lifted \
         (cool-down {COOL_DOWN:?}); {} read-throughs answered by the loader meanwhile",
        runs.load(Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_connections_are_errors_and_the_cache_reconnects_when_they_stop() {
    // A breaker that never opens, to see every reset reach the caller.
    let rig = rig(u32::MAX, MINUTE).await;
    let (cache, proxy) = (&rig.cache, &rig.proxy);
    cache
        .set("meal", &"stored".to_owned(), MINUTE)
        .await
        .unwrap();
    proxy.set_mode(Mode::Reset);
    let runs = Arc::new(AtomicUsize::new(0));
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let (value, took) = read_through(cache, "meal", &runs).await;
        assert_eq!(value, "loaded");
        assert!(took <= TIMEOUT + MARGIN, "{took:?}");
        slowest = slowest.max(took);
    }
    let err = cache.get::<String>("meal").await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");

    proxy.set_mode(Mode::Pass);
    let connections = proxy.connections();
    let back = eventually(Duration::from_secs(10), || async {
        matches!(cache.get::<String>("meal").await, Ok(Some(v)) if v == "stored")
    })
    .await;
    assert!(back, "the cache reconnects by itself once resets stop");
    assert!(proxy.connections() > connections, "on a new connection");
    println!("reset: slowest read-through {slowest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_cut_mid_way_is_an_error_never_a_wrong_value() {
    let rig = rig(u32::MAX, MINUTE).await;
    let (cache, proxy) = (&rig.cache, &rig.proxy);
    // Every byte differs from its neighbours, so that a shifted or partial value cannot pass.
    let big: String = (0..64 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    cache.set(key!("big"), &big, MINUTE).await.unwrap();
    // The GET reply: `$LEN\r\n`, the envelope, `\r\n`.
    let stored: usize = redis::cmd("STRLEN")
        .arg("cache:big")
        .query(&mut rig.server.connection())
        .unwrap();
    let reply = format!("${stored}\r\n").len() + stored + 2;
    let runs = Arc::new(AtomicUsize::new(0));
    for cut in [0, 1, 4, 9, 30, reply / 2, reply - 2, reply - 1] {
        proxy.set_mode(Mode::Pass);
        let healthy = eventually(Duration::from_secs(10), || async {
            matches!(cache.get::<String>("big").await, Ok(Some(v)) if v == big)
        })
        .await;
        assert!(healthy, "before cut {cut}: the value reads back whole");

        proxy.set_mode(Mode::CutAfter(cut as u64));
        match cache.get::<String>("big").await {
            Err(err) => assert!(err.is_unavailable(), "cut {cut}: {err}"),
            Ok(found) => panic!(
                "cut after {cut} of {reply} bytes, yet get returned a value of {:?} bytes",
                found.map(|v| v.len())
            ),
        }
        let (value, _) = read_through(cache, "big", &runs).await;
        assert!(
            value == big || value == "loaded",
            "cut {cut}: a read-through gives the stored value or the loader's, got {} bytes",
            value.len()
        );
    }
    proxy.set_mode(Mode::Pass);
    let intact = eventually(Duration::from_secs(10), || async {
        matches!(cache.get::<String>("big").await, Ok(Some(v)) if v == big)
    })
    .await;
    assert!(intact, "nothing wrong was written back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnection_cut_during_its_handshake_does_not_leave_the_cache_stuck() {
    let rig = rig(u32::MAX, MINUTE).await;
    let (cache, proxy) = (&rig.cache, &rig.proxy);
    cache
        .set("meal", &"stored".to_owned(), MINUTE)
        .await
        .unwrap();
    // Every reply is cut after 2 bytes: the open connection's, then those of the handshake
    // (`CLIENT SETINFO`, ...) of every reconnection.
    proxy.set_mode(Mode::CutAfter(2));
    for _ in 0..3 {
        let err = cache.get::<String>("meal").await.unwrap_err();
        assert!(err.is_unavailable(), "{err}");
    }
    proxy.set_mode(Mode::Pass);
    let connections = proxy.connections();
    let back = eventually(Duration::from_secs(10), || async {
        matches!(cache.get::<String>("meal").await, Ok(Some(v)) if v == "stored")
    })
    .await;
    assert!(
        back,
        "once replies pass again the cache reconnects, rather than repeating the failed \
         handshake's error forever"
    );
    assert!(proxy.connections() > connections);
}

/// Two replicas on one Redis; the first saw Redis fail (a blackhole on its path only), so its
/// breaker is open for a long cool-down although Redis answers it again. Its invalidations are
/// still sent: the second replica, which kept reaching Redis and cached the values, reads
/// misses afterwards, not the copies from before the write. Skipped, they stood for their TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_still_sends_invalidations() {
    let rig = rig(1, MINUTE).await;
    let (writer, proxy) = (&rig.cache, &rig.proxy);
    let reader = Cache::builder()
        .url(rig.server.url())
        .operation_timeout(TIMEOUT)
        .build()
        .await
        .unwrap();
    let tagged = || cache_core::Expiry::new(MINUTE).tags(["user:7"]);
    let runs = Arc::new(AtomicUsize::new(0));
    let read = |key: &'static str, tagged_read: bool| {
        let (reader, runs) = (&reader, Arc::clone(&runs));
        async move {
            let load = || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                "loaded".to_owned()
            };
            if tagged_read {
                reader.get_or_insert_with(key, tagged(), load).await
            } else {
                reader.get_or_insert_with(key, MINUTE, load).await
            }
        }
    };
    read("day", false).await;
    read("stats", true).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);

    proxy.set_mode(Mode::Blackhole);
    assert!(writer.get::<String>("day").await.unwrap_err().is_timeout());
    assert!(writer.is_circuit_open());
    proxy.set_mode(Mode::Pass);
    assert!(
        writer
            .get::<String>("day")
            .await
            .unwrap_err()
            .is_circuit_open(),
        "reads are skipped for the cool-down"
    );

    // The write's invalidations, from the replica whose breaker is open.
    assert!(
        writer.delete("day").await.unwrap(),
        "the delete reached Redis"
    );
    writer.invalidate_tag("user:7").await.unwrap();
    assert!(
        !writer.is_circuit_open(),
        "an answered invalidation closes the breaker"
    );

    read("day", false).await;
    read("stats", true).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        4,
        "the other replica reloads both: nothing from before the write is served"
    );
}
