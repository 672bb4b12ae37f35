//! In-process benches: a cache-core memory hit against a `moka::future::Cache` get and the
//! `cached` crate's sharded LRU+TTL store (each returning a clone of the value), a hit on the
//! local tier of a Redis-backed cache against the memory hit (issue 8: within 1.5x), the
//! `#[cache_result]` hit against the hand-written read-through, and the 1,000-request stampede
//! against moka's own coalescing `get_with`.
//!
//! The local tier needs a Redis behind it (it subscribes to the invalidation channel):
//! `BENCH_REDIS_URL`, or a `redis-server` the bench starts. Its hits never reach the server.

// A benchmark whose setup fails has nothing to measure: it stops, loudly.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use cache_benches::data::{daily_meals, small};
use cache_benches::server::Redis;
use cache_benches::stampede::{self, Tally};
use cache_benches::{facts, paired, read_through, settings};
use cache_core::{Cache, Cacheable};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use tokio::runtime::Runtime;

const TTL: Duration = Duration::from_secs(600);

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn memory_benches(c: &mut Criterion) {
    let server = Redis::from_env_or_start();
    let rt = current_thread();
    hits(c, &rt, server.url(), "1kib", daily_meals());
    hits(c, &rt, server.url(), "100b", small());
    read_through_hits(c, &rt);
    drop(rt);
    stampede(c);
    drop(server);
}

/// A cache on the Redis at `url` with a local tier as large and long-lived as the memory
/// cache it is compared with, holding `value` under `key` locally.
///
/// Checked, not assumed: the key is then removed from Redis behind the cache's back (no
/// invalidation is sent), and the cache must still answer it, which only its local tier can.
fn tiered<T: Cacheable + std::fmt::Debug>(rt: &Runtime, url: &str, key: &str, value: &T) -> Cache {
    rt.block_on(async {
        let cache = Cache::builder()
            .url(url)
            .namespace("bench_tier")
            .local_tier(10_000, TTL)
            .build()
            .await
            .expect("cache-core with a local tier connects to the bench Redis");
        assert!(
            cache.is_local_tier_active(),
            "the local tier is not subscribed to its invalidation channel"
        );
        cache.set(key, value, TTL).await.expect("tiered set");
        let mut conn = redis::Client::open(url)
            .expect("redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection");
        redis::cmd("DEL")
            .arg(format!("bench_tier:{key}"))
            .query_async::<u64>(&mut conn)
            .await
            .expect("DEL of the Redis copy");
        assert!(
            cache.get::<T>(key).await.expect("tiered get").is_some(),
            "a tiered get went past the local tier to Redis"
        );
        cache
    })
}

fn hits<T: Cacheable + std::fmt::Debug>(
    c: &mut Criterion,
    rt: &Runtime,
    url: &str,
    size: &str,
    value: T,
) {
    let key = format!("hit:{size}");
    let tiered = tiered(rt, url, &key, &value);
    // Each as a user builds it: bounded to 10,000 entries, values living 10 minutes.
    let cache = Cache::memory();
    let moka: moka::future::Cache<String, T> = moka::future::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(TTL)
        .build();
    let sharded = cached::ShardedLruTtlCache::<String, T>::new(10_000, TTL);
    rt.block_on(async {
        cache.set(&key, &value, TTL).await.expect("memory set");
        moka.insert(key.clone(), value.clone()).await;
    });
    sharded.set(key.clone(), value);
    assert!(rt.block_on(cache.get::<T>(&key)).expect("get").is_some());
    assert!(rt.block_on(moka.get(&key)).is_some());
    assert!(sharded.get(&key).is_some());

    let mut group = c.benchmark_group(format!("memory_hit_{size}"));
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("cache-core", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(cache.get::<T>(&key).await) });
    });
    group.bench_function("moka-future", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(moka.get(&key).await) });
    });
    group.bench_function("cached-sharded", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(sharded.get(&key)) });
    });
    group.bench_function("cache-core-tiered", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(tiered.get::<T>(&key).await) });
    });
    group.finish();

    let project = |n| timed(rt, n, || async { black_box(cache.get::<T>(&key).await) });
    paired::compare(&format!("memory_hit_{size}_vs_moka"), BLOCK, project, |n| {
        timed(rt, n, || async { black_box(moka.get(&key).await) })
    });
    paired::compare(
        &format!("memory_hit_{size}_vs_cached"),
        BLOCK,
        project,
        |n| timed(rt, n, || async { black_box(sharded.get(&key)) }),
    );
    // Issue 8's target: the local tier costs what a memory hit does (within 1.5x).
    paired::compare(
        &format!("memory_hit_{size}_tiered_vs_memory"),
        BLOCK,
        |n| timed(rt, n, || async { black_box(tiered.get::<T>(&key).await) }),
        project,
    );
    // Its subscriber and connections close on the runtime that runs them.
    rt.block_on(async move { drop(tiered) });
}

/// Interleaved blocks of this length for the paired ratios.
const BLOCK: Duration = Duration::from_millis(3);

/// Awaits `op()` `n` times on `rt`; the time it took.
fn timed<F, Fut>(rt: &Runtime, n: u64, op: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: Future,
{
    rt.block_on(async {
        let started = Instant::now();
        for _ in 0..n {
            black_box(op().await);
        }
        started.elapsed()
    })
}

fn read_through_hits(c: &mut Criterion, rt: &Runtime) {
    let cache = Cache::memory();
    // The first call of each stores the value (the same key); every measured call is a hit.
    rt.block_on(async {
        read_through::with_macro(&cache, 42).await;
        read_through::by_hand(&cache, 42).await;
    });
    let loads_before = read_through::loads();
    let mut group = c.benchmark_group("read_through_memory");
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("cache_result", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(read_through::with_macro(&cache, 42).await) });
    });
    group.bench_function("by_hand", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(read_through::by_hand(&cache, 42).await) });
    });
    group.finish();
    paired::compare(
        "read_through_memory_macro_vs_by_hand",
        BLOCK,
        |n| timed(rt, n, || read_through::with_macro(&cache, 42)),
        |n| timed(rt, n, || read_through::by_hand(&cache, 42)),
    );
    facts::record(
        "read_through_memory_loads_while_measuring_hits",
        &serde_json::json!(read_through::loads() - loads_before),
    );
}

fn stampede(c: &mut Criterion) {
    // Stampedes are about concurrency: the two-worker runtime the Redis benches use.
    let rt = cache_benches::load::runtime();
    let ttl = Duration::from_secs(60);
    let mut group = c.benchmark_group("stampede_memory");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(settings::heavy_measurement());

    let cache = &Cache::memory();
    let tally = &Tally::default();
    group.bench_function("cache-core", |b| {
        b.to_async(&rt)
            .iter_custom(|iters| stampede::cache_core_rounds(cache, iters, tally));
    });
    tally.record("memory_cache_core");

    let moka = &moka::future::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(ttl)
        .build();
    let tally = &Tally::default();
    group.bench_function("moka-get_with", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let moka: moka::future::Cache<String, _> = moka.clone();
                let (took, runs) = stampede::round("stampede", move |key, runs| {
                    let moka = moka.clone();
                    async move {
                        let value = moka.get_with(key.to_string(), stampede::loader(runs)).await;
                        value.user_id == 42
                    }
                })
                .await;
                tally.add(runs);
                total += took;
            }
            total
        });
    });
    tally.record("memory_moka_get_with");
    group.finish();
}

criterion_group! {
    name = benches;
    config = settings::criterion();
    targets = memory_benches
}
criterion_main!(benches);
