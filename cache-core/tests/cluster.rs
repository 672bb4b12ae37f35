//! What only a real Redis Cluster can show: keys spread over the masters, `delete_pattern` on
//! every master and across a topology change, a dead master, leases and tags by slot, Pub/Sub
//! across nodes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

/// Not in `support`, which other crates' tests share without rcgen.
#[cfg(feature = "tls")]
use cache_test_support as support;
use cache_test_support::pki;

use std::time::Duration;

use cache_core::backend::RedisClusterBackend;
use cache_core::{Backend, Cache, ErrorKind};
use support::{RedisCluster, eventually, free_port};

const MINUTE: Duration = Duration::from_secs(60);

/// Batches of up to 1,000 keys over three nodes: a generous operation timeout, so that a
/// loaded test machine cannot turn a slow batch into a failure (timeouts are `faults.rs`'s
/// subject, and the dead-master test's below).
const BATCH_TIMEOUT: Duration = Duration::from_secs(5);

async fn cache_on(cluster: &RedisCluster, namespace: &str) -> Cache {
    Cache::builder()
        .url(cluster.url())
        .namespace(namespace)
        .operation_timeout(BATCH_TIMEOUT)
        .build()
        .await
        .expect("build a cache on the cluster")
}

async fn backend(url: &str) -> RedisClusterBackend {
    RedisClusterBackend::connect(url, Duration::from_secs(2), Duration::from_secs(1))
        .await
        .expect("connect to the cluster")
}

/// A key of `namespace` (as the cache writes it) that master `master` owns.
fn key_on(cluster: &RedisCluster, namespace: &str, master: usize) -> String {
    (0..)
        .map(|i| format!("k{i}"))
        .find(|key| cluster.master_of(&format!("{namespace}:{key}")) == master)
        .expect("some key hashes to every master")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_keys_spread_over_every_master_and_come_back_in_order() {
    let cluster = RedisCluster::start();
    let cache = cache_on(&cluster, "spread").await;
    assert_eq!(cache.backend_name(), "redis-cluster");
    let entries: Vec<(String, u32)> = (0..1_000).map(|i| (format!("item:{i}"), i)).collect();

    cache.set_many(&entries, MINUTE).await.unwrap();

    let sizes: Vec<u64> = (0..cluster.len()).map(|i| cluster.dbsize(i)).collect();
    assert_eq!(sizes.iter().sum::<u64>(), 1_000, "{sizes:?}");
    assert!(
        sizes.iter().all(|&n| n > 100),
        "every master holds some: {sizes:?}"
    );
    // Asked in another order than written, with missing keys among them.
    let mut keys: Vec<String> = (0..1_000).rev().map(|i| format!("item:{i}")).collect();
    keys.insert(500, "missing:a".to_owned());
    keys.push("missing:b".to_owned());
    let mut expected: Vec<Option<u32>> = (0..1_000).rev().map(Some).collect();
    expected.insert(500, None);
    expected.push(None);
    assert_eq!(cache.get_many::<u32>(&keys).await.unwrap(), expected);
    assert_eq!(cache.get_many::<u32>(&[] as &[String]).await.unwrap(), []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_pattern_removes_matches_on_every_master_and_nothing_else() {
    let cluster = RedisCluster::start();
    let cache = cache_on(&cluster, "app").await;
    let other = cache_on(&cluster, "other").await;
    let doomed: Vec<(String, u8)> = (0..300).map(|i| (format!("user:7:{i}"), 1)).collect();
    let kept: Vec<(String, u8)> = (0..300).map(|i| (format!("user:70:{i}"), 1)).collect();
    cache.set_many(&doomed, MINUTE).await.unwrap();
    cache.set_many(&kept, MINUTE).await.unwrap();
    other.set_many(&doomed, MINUTE).await.unwrap();
    for master in 0..cluster.len() {
        let here: Vec<String> = redis::cmd("KEYS")
            .arg("app:user:7:*")
            .query(&mut cluster.node(master))
            .unwrap();
        assert!(!here.is_empty(), "master {master} holds matching keys");
    }

    assert_eq!(cache.delete_pattern("user:7:*").await.unwrap(), 300);

    for master in 0..cluster.len() {
        let left: Vec<String> = redis::cmd("KEYS")
            .arg("app:user:7:*")
            .query(&mut cluster.node(master))
            .unwrap();
        assert!(left.is_empty(), "master {master} still holds {left:?}");
    }
    let sizes: Vec<u64> = (0..cluster.len()).map(|i| cluster.dbsize(i)).collect();
    assert_eq!(
        sizes.iter().sum::<u64>(),
        600,
        "the other keys stay: {sizes:?}"
    );
    let kept_keys: Vec<&String> = kept.iter().map(|(k, _)| k).collect();
    let found = cache.get_many::<u8>(&kept_keys).await.unwrap();
    assert!(found.iter().all(Option::is_some));
    let doomed_keys: Vec<&String> = doomed.iter().map(|(k, _)| k).collect();
    let found = other.get_many::<u8>(&doomed_keys).await.unwrap();
    assert!(
        found.iter().all(Option::is_some),
        "another namespace is untouched"
    );
    assert_eq!(cache.delete_pattern("user:7:*").await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_pattern_reads_the_topology_again_and_reaches_a_new_master() {
    let mut cluster = RedisCluster::start();
    let cache = cache_on(&cluster, "moving").await;
    let entries: Vec<(String, u32)> = (0..600).map(|i| (format!("meal:{i}"), i)).collect();
    cache.set_many(&entries, MINUTE).await.unwrap();
    // A first run, so that the backend has seen the three-master topology.
    assert_eq!(cache.delete_pattern("nothing:*").await.unwrap(), 0);

    // A fourth master takes a slot of master 0 together with its keys.
    let key = key_on(&cluster, "moving", 0);
    cache.set(&key, &0_u32, MINUTE).await.unwrap();
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(format!("moving:{key}"))
        .query(&mut cluster.node(0))
        .unwrap();
    let fourth = cluster.add_master();
    cluster.move_slot(slot, 0, fourth);
    let moved = cluster.dbsize(fourth);
    assert!(moved >= 1, "the fourth master holds the moved keys");
    // The cache still reads the moved key (its connection follows MOVED).
    assert_eq!(cache.get::<u32>(&key).await.unwrap(), Some(0));

    let removed = cache.delete_pattern("*").await.unwrap();

    assert_eq!(removed, 601);
    for master in 0..cluster.len() {
        assert_eq!(cluster.dbsize(master), 0, "master {master} is empty");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_master_is_an_unavailable_error_the_loader_covers_and_the_cache_recovers() {
    let mut cluster = RedisCluster::start();
    let cache = Cache::builder()
        .url(cluster.url())
        .namespace("outage")
        .operation_timeout(Duration::from_millis(250))
        .circuit_breaker(3, Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    let on_dead = key_on(&cluster, "outage", 0);
    let on_live = key_on(&cluster, "outage", 1);
    cache.set(&on_dead, &1_u32, MINUTE).await.unwrap();
    cache.set(&on_live, &2_u32, MINUTE).await.unwrap();
    // The backend now keeps a direct connection to every master, for SCAN.
    assert_eq!(cache.delete_pattern("nothing:*").await.unwrap(), 0);

    cluster.kill(0);

    let bounded = Duration::from_secs(5);
    let err = tokio::time::timeout(bounded, cache.get::<u32>(&on_dead))
        .await
        .expect("the operation timeout bounds a read from a dead master")
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let loaded = tokio::time::timeout(
        bounded,
        cache.get_or_insert_with(&on_dead, MINUTE, || async { 42_u32 }),
    )
    .await
    .expect("bounded");
    assert_eq!(loaded, 42, "the loader's value, whatever the cache does");

    cluster.restart(0);

    assert!(
        eventually(Duration::from_secs(30), || async {
            cache.set(&on_dead, &3_u32, MINUTE).await.is_ok()
                && cache.get::<u32>(&on_dead).await.ok() == Some(Some(3))
        })
        .await,
        "the cache works again once the master is back"
    );
    assert_eq!(cache.get::<u32>(&on_live).await.unwrap(), Some(2));
    // The kept SCAN connection to the restarted master is stale: replaced within the call.
    assert_eq!(cache.delete_pattern("*").await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_tags_work_key_by_key_on_the_owning_master() {
    let cluster = RedisCluster::start();
    let cluster_backend = backend(&cluster.url()).await;
    let b: &dyn Backend = &cluster_backend;
    assert_eq!(b.name(), "redis-cluster");
    let ttl = Duration::from_secs(30);

    // Leases: SET NX PX, released only by their owner.
    assert!(b.set_if_absent("lease:a", b"owner-1", ttl).await.unwrap());
    assert!(!b.set_if_absent("lease:a", b"owner-2", ttl).await.unwrap());
    assert_eq!(
        b.get("lease:a").await.unwrap().as_deref(),
        Some(&b"owner-1"[..])
    );
    let pttl: i64 = redis::cmd("PTTL")
        .arg("lease:a")
        .query(&mut cluster.node(cluster.master_of("lease:a")))
        .unwrap();
    assert!(pttl > 0 && pttl <= 30_000, "{pttl}");
    assert!(!b.delete_if_equals("lease:a", b"owner-2").await.unwrap());
    assert!(b.delete_if_equals("lease:a", b"owner-1").await.unwrap());
    assert_eq!(b.get("lease:a").await.unwrap(), None);

    // Tags: replaced only when present, keeping the expiry.
    assert!(!b.replace_if_present("tag:x", b"v2").await.unwrap());
    assert_eq!(b.get("tag:x").await.unwrap(), None);
    b.set("tag:x", b"v1", Some(ttl)).await.unwrap();
    assert!(b.replace_if_present("tag:x", b"v2").await.unwrap());
    assert_eq!(b.get("tag:x").await.unwrap().as_deref(), Some(&b"v2"[..]));
    let pttl: i64 = redis::cmd("PTTL")
        .arg("tag:x")
        .query(&mut cluster.node(cluster.master_of("tag:x")))
        .unwrap();
    assert!(pttl > 0, "KEEPTTL kept the expiry: {pttl}");

    // get_or_create over keys on every master: existing values win, the others are created.
    let keys: Vec<String> = (0..30).map(|i| format!("tag:{i}")).collect();
    let masters: std::collections::HashSet<usize> =
        keys.iter().map(|k| cluster.master_of(k)).collect();
    assert_eq!(masters.len(), 3, "the keys span every master");
    b.set("tag:3", b"old", None).await.unwrap();
    let candidates: Vec<Vec<u8>> = (0..30).map(|i| format!("new{i}").into_bytes()).collect();
    let versions = b
        .get_or_create(&keys, &candidates, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let mut expected = candidates.clone();
    expected[3] = b"old".to_vec();
    assert_eq!(versions, expected);
    let again = b
        .get_or_create(&keys, &vec![b"other".to_vec(); 30], None)
        .await
        .unwrap();
    assert_eq!(
        again, expected,
        "a second call reads what the first created"
    );
    let pttl: i64 = redis::cmd("PTTL")
        .arg("tag:5")
        .query(&mut cluster.node(cluster.master_of("tag:5")))
        .unwrap();
    assert_eq!(pttl, -1, "ttl None makes the key persistent");
    assert_eq!(
        b.get_or_create(&[], &[], None).await.unwrap(),
        Vec::<Vec<u8>>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_on_one_node_hears_what_is_published_through_another() {
    let cluster = RedisCluster::start();
    let publisher = backend(&cluster.url()).await;
    // Seeded with master 2 only: it subscribes there.
    let listener = backend(&format!("redis+cluster://127.0.0.1:{}", cluster.port(2))).await;
    // PUBLISH goes to the master of the channel's slot: one channel elsewhere, one on master 2.
    let elsewhere = (0..)
        .map(|i| format!("invalidate:{i}"))
        .find(|c| cluster.master_of(c) != 2)
        .unwrap();
    let same = (0..)
        .map(|i| format!("invalidate:{i}"))
        .find(|c| cluster.master_of(c) == 2)
        .unwrap();

    for channel in [&elsewhere, &same] {
        let mut messages = listener.subscribe(channel).await.unwrap();
        publisher.publish(channel, b"meals:7").await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), messages.recv())
            .await
            .expect("the message arrives");
        assert_eq!(got.as_deref(), Some(&b"meals:7"[..]), "on {channel}");
    }
}

#[tokio::test]
async fn connecting_where_no_seed_answers_names_the_seeds_without_the_password() {
    let (a, b) = (free_port(), free_port());
    let url = format!("redis+cluster://app:s3cret@127.0.0.1:{a},127.0.0.1:{b}");
    let err = Cache::connect(&url).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("127.0.0.1:{a},127.0.0.1:{b}")),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
    assert!(!format!("{err:?}").contains("s3cret"));
}

#[tokio::test]
async fn a_cluster_url_with_a_database_is_a_config_error() {
    let err = Cache::connect("redis+cluster://127.0.0.1:7000/2")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("only database 0"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_url_reach_every_node() {
    let cluster = RedisCluster::start();
    for master in 0..cluster.len() {
        let () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("app")
            .arg("on")
            .arg(">s3cret")
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .query(&mut cluster.node(master))
            .unwrap();
        let () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("default")
            .arg("off")
            .query(&mut cluster.node(master))
            .unwrap();
    }
    let with = |password: &str| cluster.url().replace("://", &format!("://app:{password}@"));
    let cache = Cache::builder()
        .url(with("s3cret"))
        .namespace("acl")
        .build()
        .await
        .unwrap();
    let entries: Vec<(String, u8)> = (0..100).map(|i| (format!("k{i}"), 1)).collect();
    cache.set_many(&entries, MINUTE).await.unwrap();
    // The direct connections that SCAN each master log in too.
    assert_eq!(cache.delete_pattern("k*").await.unwrap(), 100);

    let err = Cache::connect(&with("wr0ng")).await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains("wr0ng"), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("refused the credentials"), "{err}");
}

/// A cluster that speaks only TLS to its clients and on its bus, its certificate signed by a
/// private CA.
#[cfg(feature = "tls")]
mod tls {
    use super::*;
    use crate::pki::Pki;
    use support::cluster::ClusterTls;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rediss_cluster_trusts_a_private_ca_for_every_node_connection() {
        let pki = Pki::new();
        let cluster = RedisCluster::start_tls(ClusterTls {
            cert: pki.cert(),
            key: pki.key(),
            ca: pki.ca(),
        });
        assert!(cluster.url().starts_with("rediss+cluster://"));
        let cache = Cache::builder()
            .url(cluster.url())
            .namespace("tls")
            .tls_root_certificates(pki.ca_pem.clone())
            .operation_timeout(BATCH_TIMEOUT)
            .build()
            .await
            .unwrap();
        let entries: Vec<(String, u32)> = (0..300).map(|i| (format!("k{i}"), i)).collect();
        cache.set_many(&entries, MINUTE).await.unwrap();
        let keys: Vec<&String> = entries.iter().map(|(k, _)| k).collect();
        let found = cache.get_many::<u32>(&keys).await.unwrap();
        assert_eq!(found, (0..300).map(Some).collect::<Vec<_>>());
        assert!((0..cluster.len()).all(|i| cluster.dbsize(i) > 0));
        // SCAN runs over direct TLS connections to each master, with the same trust anchors.
        assert_eq!(cache.delete_pattern("k*").await.unwrap(), 300);

        // The system's roots do not include the private CA.
        let err = Cache::builder()
            .url(cluster.url())
            .connect_timeout(Duration::from_secs(1))
            .build()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
        assert!(
            err.to_string()
                .contains("TLS certificate that is not trusted")
                && err.to_string().contains("tls_root_certificates"),
            "says why, and what to do: {err}"
        );
    }
}
