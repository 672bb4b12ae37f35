//! The local tier across replicas: three `Cache`s on one Redis stand for three replicas of a
//! service. What one writes, deletes or invalidates, the others stop serving once the
//! invalidation has arrived; without the channel, the local TTL bounds how long they serve it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use cache_test_support as support;

use std::time::Duration;

use cache_core::{Cache, ErrorKind};
use support::{RedisServer, eventually};

const HOUR: Duration = Duration::from_secs(3600);
/// How long a test waits for an invalidation to arrive: far above the bound it is measured at
/// (`benches/`), so that only a lost invalidation fails it.
const ARRIVAL: Duration = Duration::from_secs(5);

async fn replica(server: &RedisServer, local_ttl: Duration) -> Cache {
    let cache = Cache::builder()
        .url(server.url())
        .namespace("app")
        .local_tier(1_000, local_ttl)
        .build()
        .await
        .unwrap();
    assert!(cache.is_local_tier_active(), "subscribed once built");
    cache
}

/// A cache on the same namespace without a local tier: its writes publish nothing, as if
/// their invalidations were lost.
async fn silent(server: &RedisServer) -> Cache {
    Cache::builder()
        .url(server.url())
        .namespace("app")
        .build()
        .await
        .unwrap()
}

/// How many connections are subscribed to the namespace's invalidation channel.
fn subscribers(server: &RedisServer) -> u64 {
    let counts: Vec<(String, u64)> = ::redis::cmd("PUBSUB")
        .arg(&["NUMSUB", "app#invalidate"][..])
        .query(&mut server.connection())
        .unwrap();
    counts[0].1
}

async fn replicas(server: &RedisServer) -> [Cache; 3] {
    [
        replica(server, HOUR).await,
        replica(server, HOUR).await,
        replica(server, HOUR).await,
    ]
}

/// A replica that reads `key` until it sees `want`, then reads it 50 more times: once the new
/// value has arrived, the old one must never come back.
async fn converges(cache: &Cache, key: &str, want: Option<u32>) {
    let arrived = eventually(ARRIVAL, || async {
        cache.get::<u32>(key).await.unwrap() == want
    })
    .await;
    assert!(arrived, "{key} never became {want:?} on another replica");
    for _ in 0..50 {
        assert_eq!(
            cache.get::<u32>(key).await.unwrap(),
            want,
            "{key} went back"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_hit_makes_no_round_trip() {
    let server = RedisServer::start();
    let cache = replica(&server, HOUR).await;
    cache.set("day", &2100_u32, HOUR).await.unwrap();
    let (gets, mgets) = (server.calls("get"), server.calls("mget"));
    for _ in 0..100 {
        assert_eq!(cache.get::<u32>("day").await.unwrap(), Some(2100));
    }
    assert_eq!(
        cache.get_many::<u32>(&["day"]).await.unwrap(),
        vec![Some(2100)]
    );
    assert_eq!((server.calls("get"), server.calls("mget")), (gets, mgets));

    // Another replica reads it from Redis once, then locally.
    let other = replica(&server, HOUR).await;
    for _ in 0..10 {
        assert_eq!(other.get::<u32>("day").await.unwrap(), Some(2100));
    }
    assert_eq!(server.calls("get"), gets + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_deletes_on_one_replica_reach_the_others() {
    let server = RedisServer::start();
    let [a, b, c] = replicas(&server).await;
    a.set("day:7", &1_u32, HOUR).await.unwrap();
    a.set("day:8", &1_u32, HOUR).await.unwrap();
    for cache in [&b, &c] {
        assert_eq!(cache.get::<u32>("day:7").await.unwrap(), Some(1));
        assert_eq!(cache.get::<u32>("day:8").await.unwrap(), Some(1));
    }

    a.set("day:7", &2_u32, HOUR).await.unwrap();
    converges(&b, "day:7", Some(2)).await;
    converges(&c, "day:7", Some(2)).await;

    b.delete("day:7").await.unwrap();
    converges(&a, "day:7", None).await;
    converges(&c, "day:7", None).await;

    c.delete_pattern("day:*").await.unwrap();
    converges(&a, "day:8", None).await;
    converges(&b, "day:8", None).await;

    a.set_many(&[("x", 1_u32), ("y", 1)], HOUR).await.unwrap();
    assert_eq!(b.get::<u32>("x").await.unwrap(), Some(1));
    a.set_many(&[("x", 2_u32), ("y", 2)], HOUR).await.unwrap();
    converges(&b, "x", Some(2)).await;
    converges(&b, "y", Some(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_invalidated_on_one_replica_is_a_miss_on_the_others() {
    let server = RedisServer::start();
    let [a, b, c] = replicas(&server).await;
    a.set_with_tags("day:42", &1_u32, HOUR, &["user:42"])
        .await
        .unwrap();
    a.set_with_tags("day:7", &1_u32, HOUR, &["user:7"])
        .await
        .unwrap();
    for cache in [&b, &c] {
        assert_eq!(cache.get::<u32>("day:42").await.unwrap(), Some(1));
        assert_eq!(cache.get::<u32>("day:7").await.unwrap(), Some(1));
    }
    b.invalidate_tag("user:42").await.unwrap();
    converges(&a, "day:42", None).await;
    converges(&c, "day:42", None).await;
    assert_eq!(c.get::<u32>("day:7").await.unwrap(), Some(1));
}

/// One replica writes a counter 200 times while another reads it as fast as it can: reads
/// that race the invalidations must never put an older value back in the reader's local tier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_racing_writes_never_keep_an_old_value() {
    let server = RedisServer::start();
    let [writer, reader, _] = replicas(&server).await;
    writer.set("n", &0_u32, HOUR).await.unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reading = {
        let (reader, done) = (reader.clone(), done.clone());
        tokio::spawn(async move {
            let mut reads = 0_u32;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                reader.get::<u32>("n").await.unwrap();
                reads += 1;
                tokio::task::yield_now().await;
            }
            reads
        })
    };
    for n in 1..=200_u32 {
        writer.set("n", &n, HOUR).await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(reading.await.unwrap() > 0);
    converges(&reader, "n", Some(200)).await;
}

/// A write that publishes nothing (from a cache without a local tier: the same as a lost
/// message) stays invisible to a replica's local copy until the local TTL ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_invalidation_the_local_ttl_bounds_staleness() {
    let server = RedisServer::start();
    let local_ttl = Duration::from_millis(400);
    let tiered = replica(&server, local_ttl).await;
    let silent = silent(&server).await;
    silent.set("day", &1_u32, HOUR).await.unwrap();
    assert_eq!(tiered.get::<u32>("day").await.unwrap(), Some(1));
    let filled = tokio::time::Instant::now();
    silent.set("day", &2_u32, HOUR).await.unwrap();
    assert_eq!(
        tiered.get::<u32>("day").await.unwrap(),
        Some(1),
        "the local copy answers"
    );
    // The bound itself: once the local TTL has passed, the copy is gone.
    tokio::time::sleep_until(filled + local_ttl).await;
    assert_eq!(tiered.get::<u32>("day").await.unwrap(), Some(2));
}

/// Killing the subscriber's connection (as a network cut or `CLIENT KILL` would): the replica
/// clears its local tier at once (so a value written meanwhile without an invalidation is read
/// fresh from Redis, long before the one-hour local TTL), subscribes again, and from then on
/// receives invalidations as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_loses_its_subscription_clears_its_tier_and_resubscribes() {
    let server = RedisServer::start();
    let [writer, reader, _third] = replicas(&server).await;
    let silent = silent(&server).await;
    // Written without an invalidation, so that none arrives after the reader's fill.
    silent.set("day", &1_u32, HOUR).await.unwrap();
    assert_eq!(reader.get::<u32>("day").await.unwrap(), Some(1));
    silent.set("day", &2_u32, HOUR).await.unwrap();
    assert_eq!(
        reader.get::<u32>("day").await.unwrap(),
        Some(1),
        "still local"
    );

    let killed: u64 = ::redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "pubsub"][..])
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(killed, 3, "one subscriber per tiered replica");

    converges(&reader, "day", Some(2)).await;
    let resubscribed = eventually(ARRIVAL, || async {
        reader.is_local_tier_active() && writer.is_local_tier_active()
    })
    .await;
    assert!(resubscribed);
    let subscribers = || subscribers(&server);
    assert!(
        eventually(ARRIVAL, || async { subscribers() == 3 }).await,
        "every replica subscribed again"
    );
    assert_eq!(reader.get::<u32>("day").await.unwrap(), Some(2));
    writer.set("day", &3_u32, HOUR).await.unwrap();
    converges(&reader, "day", Some(3)).await;
}

/// Redis down: the tiered cache follows the failure policy (errors, never panics; the
/// read-through serves its loader), and recovers its tier once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_bypasses_the_tier_and_it_recovers() {
    let mut server = RedisServer::start();
    let cache = replica(&server, HOUR).await;
    cache.set("day", &1_u32, HOUR).await.unwrap();
    server.stop();
    assert!(
        eventually(ARRIVAL, || async { !cache.is_local_tier_active() }).await,
        "the lost subscription is noticed"
    );
    let err = cache.get::<u32>("day").await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    let loaded = cache
        .get_or_insert_with("day", HOUR, || async { 9_u32 })
        .await;
    assert_eq!(loaded, 9);
    server.restart();
    assert!(
        eventually(Duration::from_secs(15), || async {
            cache.is_local_tier_active()
        })
        .await,
        "subscribed again after the restart"
    );
    // The command connection reconnects on first use after the outage.
    assert!(
        eventually(ARRIVAL, || async {
            cache.set("day", &2_u32, HOUR).await.is_ok()
        })
        .await
    );
    assert_eq!(cache.get::<u32>("day").await.unwrap(), Some(2));
}

#[tokio::test]
async fn a_local_tier_needs_a_remote_backend() {
    let err = Cache::builder()
        .local_tier(100, HOUR)
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("local_tier"), "{err}");
    let err = Cache::builder()
        .url("redis://127.0.0.1:1/0")
        .local_tier(0, HOUR)
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("must be positive"), "{err}");
}

/// The same coherence on a Redis Cluster: the channel's messages reach every node's
/// subscribers, whichever node each replica subscribed on and whichever owns the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_replicas_see_each_others_writes_and_tags() {
    let cluster = support::RedisCluster::start();
    let mut caches = Vec::new();
    for _ in 0..3 {
        let cache = Cache::builder()
            .url(cluster.url())
            .namespace("app")
            .local_tier(1_000, HOUR)
            .build()
            .await
            .unwrap();
        assert!(cache.is_local_tier_active());
        caches.push(cache);
    }
    let [a, b, c] = [&caches[0], &caches[1], &caches[2]];
    let keys: Vec<String> = (0..20).map(|i| format!("day:{i}")).collect();
    for key in &keys {
        a.set_with_tags(key, &1_u32, HOUR, &["user:42"])
            .await
            .unwrap();
    }
    for cache in [b, c] {
        assert!(
            cache
                .get_many::<u32>(&keys)
                .await
                .unwrap()
                .iter()
                .all(|v| *v == Some(1))
        );
    }
    a.set("day:0", &2_u32, HOUR).await.unwrap();
    converges(b, "day:0", Some(2)).await;
    converges(c, "day:0", Some(2)).await;
    b.invalidate_tag("user:42").await.unwrap();
    for cache in [a, c] {
        converges(cache, "day:1", None).await;
        converges(cache, "day:19", None).await;
    }
    c.delete_pattern("day:*").await.unwrap();
    converges(a, "day:0", None).await;
}

/// A dropped cache closes its subscription at once, not at the channel's next message: a
/// service that builds and drops caches (tests, reloads) leaves no connections behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_cache_unsubscribes() {
    let server = RedisServer::start();
    let subscribers = || subscribers(&server);
    let cache = replica(&server, HOUR).await;
    assert_eq!(subscribers(), 1);
    drop(cache);
    assert!(
        eventually(ARRIVAL, || async { subscribers() == 0 }).await,
        "the subscription outlived its cache"
    );
}
