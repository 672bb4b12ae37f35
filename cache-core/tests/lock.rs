//! One loader per key across replicas (`Expiry::lock`): three `Cache`s on one Redis stand for
//! three replicas; the lease, its expiry after a crash, and the failure policy.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use cache_test_support as support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cache_core::backend::RedisBackend;
use cache_core::{Backend, Cache, Expiry};
use support::RedisServer;

const HOUR: Duration = Duration::from_secs(3600);

async fn replica(server: &RedisServer, tiered: bool) -> Cache {
    replica_at(&server.url(), "app", tiered).await
}

async fn replica_at(url: &str, namespace: &str, tiered: bool) -> Cache {
    let builder = Cache::builder().url(url).namespace(namespace);
    let builder = if tiered {
        builder.local_tier(1_000, HOUR)
    } else {
        builder
    };
    builder.build().await.unwrap()
}

/// 3 replicas x 100 concurrent misses on one key: the loader (a 200 ms database query) runs
/// once, and every caller gets its value.
async fn hundred_misses_on_three_replicas(url: &str, namespace: &str, tiered: bool) {
    let mut caches = Vec::new();
    for _ in 0..3 {
        caches.push(replica_at(url, namespace, tiered).await);
    }
    let runs = Arc::new(AtomicU32::new(0));
    let mut calls = Vec::new();
    for cache in &caches {
        for _ in 0..100 {
            let (cache, runs) = (cache.clone(), Arc::clone(&runs));
            calls.push(tokio::spawn(async move {
                cache
                    .get_or_insert_with("report", Expiry::new(HOUR).lock(), || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await; // the query
                        2100_u32
                    })
                    .await
            }));
        }
    }
    for call in calls {
        assert_eq!(call.await.unwrap(), 2100);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one loader across replicas");
}

/// The lease key, read behind the cache's back: released by its owner, so absent.
fn assert_released(conn: &mut ::redis::Connection) {
    let lease: Option<String> = ::redis::cmd("GET")
        .arg("app#lock:report")
        .query(conn)
        .unwrap();
    assert_eq!(lease, None, "released by its owner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_times_a_hundred_misses_run_the_loader_once() {
    let server = RedisServer::start();
    hundred_misses_on_three_replicas(&server.url(), "app", false).await;
    assert_released(&mut server.connection());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_with_local_tiers() {
    let server = RedisServer::start();
    hundred_misses_on_three_replicas(&server.url(), "app", true).await;
    assert_released(&mut server.connection());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_on_a_cluster_with_local_tiers() {
    let cluster = support::RedisCluster::start();
    hundred_misses_on_three_replicas(&cluster.url(), "app", true).await;
    assert_released(&mut cluster.node(cluster.master_of("app#lock:report")));
}

/// Without `lock`, each replica loads for itself: what the lease saves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_lock_each_replica_loads() {
    let server = RedisServer::start();
    let runs = Arc::new(AtomicU32::new(0));
    let (gate_tx, gate) = tokio::sync::watch::channel(false);
    let mut calls = Vec::new();
    for _ in 0..3 {
        let cache = replica(&server, false).await;
        let (runs, mut gate) = (Arc::clone(&runs), gate.clone());
        calls.push(tokio::spawn(async move {
            cache
                .get_or_insert_with("report", HOUR, || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    let _ = gate.wait_for(|open| *open).await;
                    1_u32
                })
                .await
        }));
    }
    let all_started = support::eventually(Duration::from_secs(5), || async {
        runs.load(Ordering::SeqCst) == 3
    })
    .await;
    gate_tx.send(true).unwrap();
    for call in calls {
        call.await.unwrap();
    }
    assert!(all_started, "three replicas, three loads");
}

/// An owner that crashed mid-load leaves its lease behind: the others wait for it to expire,
/// then one of them loads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_owners_lease_expires() {
    let server = RedisServer::start();
    let _: () = ::redis::cmd("SET")
        .arg("app#lock:report")
        .arg("token-of-a-dead-replica")
        .arg("PX")
        .arg(300)
        .query(&mut server.connection())
        .unwrap();
    let cache = replica(&server, false).await;
    let runs = Arc::new(AtomicU32::new(0));
    let value = cache
        .get_or_insert_with(
            "report",
            Expiry::new(HOUR).lock_timeout(Duration::from_secs(10)),
            || {
                let runs = Arc::clone(&runs);
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    7_u32
                }
            },
        )
        .await;
    assert_eq!(value, 7);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // The new owner released its own lease, not a stranger's.
    let lease: Option<String> = ::redis::cmd("GET")
        .arg("app#lock:report")
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(lease, None);
}

/// A lease held longer than a waiter's lock timeout: the waiter stops waiting and loads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_loads_itself_after_its_lock_timeout() {
    let server = RedisServer::start();
    let _: () = ::redis::cmd("SET")
        .arg("app#lock:report")
        .arg("held-elsewhere")
        .arg("PX")
        .arg(60_000)
        .query(&mut server.connection())
        .unwrap();
    let cache = replica(&server, false).await;
    let value = cache
        .get_or_insert_with(
            "report",
            Expiry::new(HOUR).lock_timeout(Duration::from_millis(100)),
            || async { 8_u32 },
        )
        .await;
    assert_eq!(value, 8);
    let lease: String = ::redis::cmd("GET")
        .arg("app#lock:report")
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(lease, "held-elsewhere", "another's lease is left alone");
}

/// Only the owner's token releases a lease; setting one is `NX`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_releases_a_lease() {
    let server = RedisServer::start();
    let backend = RedisBackend::connect(
        &server.url(),
        1,
        Duration::from_secs(1),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    let ttl = Duration::from_secs(60);
    assert!(backend.set_if_absent("l", b"mine", ttl).await.unwrap());
    assert!(!backend.set_if_absent("l", b"theirs", ttl).await.unwrap());
    assert!(!backend.delete_if_equals("l", b"theirs").await.unwrap());
    assert!(backend.delete_if_equals("l", b"mine").await.unwrap());
    assert!(backend.set_if_absent("l", b"theirs", ttl).await.unwrap());
}

/// Redis down: a locked read-through still answers from its loader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_a_locked_read_through_still_loads() {
    let mut server = RedisServer::start();
    let cache = replica(&server, false).await;
    server.stop();
    let value = cache
        .get_or_insert_with("report", Expiry::new(HOUR).lock(), || async { 5_u32 })
        .await;
    assert_eq!(value, 5);
}

/// On the memory backend there is one process: `lock` changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_memory_the_lock_is_the_single_flight() {
    let cache = Cache::memory();
    let runs = Arc::new(AtomicU32::new(0));
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let (cache, runs) = (cache.clone(), Arc::clone(&runs));
            tokio::spawn(async move {
                cache
                    .get_or_insert_with("k", Expiry::new(HOUR).lock(), || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        1_u8
                    })
                    .await
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), 1);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
