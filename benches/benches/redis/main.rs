//! Redis benches: cache-core against the raw `redis` crate (one shared multiplexed connection),
//! deadpool-redis (a connection checked out per operation) and the `cached` crate's async Redis
//! store, on one server, in one process, with the same values.
//!
//! - `redis_{get,set}_{1kib,100b}_{latency,tasks_16,tasks_64,tasks_256}`: one task in a loop
//!   (time per operation), or N concurrent tasks sharing `iters` operations (throughput).
//! - `redis_batch_{1kib,100b}`: `get_many` of 100 keys against 100 sequential `get`s.
//! - `read_through_redis`: a `#[cache_result]` hit against the hand-written read-through.
//! - `stampede_redis`: 1,000 concurrent misses on one key, against a naive GET/load/SET.
//! - `delete_pattern_100k`: `delete_pattern` over 100,000 keys against a raw `SCAN` + `UNLINK`.
//!
//! `BENCH_REDIS_URL` names the server (loopback only); unset, the bench starts its own.

// A benchmark whose setup fails has nothing to measure: it stops, loudly.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use cache_benches::data::{DailyMeals, daily_meals, small};
use cache_benches::load::{self, Op};
use cache_benches::server::Redis;
use cache_benches::stampede::{self, Tally};
use cache_benches::{facts, paired, raw, read_through, settings};
use cache_core::{Cache, Cacheable};
use cached::SerializeCachedAsync;
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use redis::aio::MultiplexedConnection;
use tokio::runtime::Runtime;

use cache_benches::variants::{Batch, CachedStore, Get, Set, TTL};

/// Single-task latency, then throughput at each concurrency.
const MODES: [(&str, usize); 4] = [
    ("latency", 1),
    ("tasks_16", 16),
    ("tasks_64", 64),
    ("tasks_256", 256),
];

struct Fixture {
    url: String,
    cache: Cache,
    conn: MultiplexedConnection,
    pool: deadpool_redis::Pool,
}

impl Fixture {
    async fn connect(url: &str) -> Self {
        let cache = Cache::builder()
            .url(url)
            .namespace("bench")
            .build()
            .await
            .expect("cache-core connects");
        let conn = redis::Client::open(url)
            .expect("redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("raw multiplexed connection");
        // The default pool: max_size = 4 x CPUs, as a user gets it.
        let pool = deadpool_redis::Config::from_url(url)
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .expect("deadpool-redis pool");
        Self {
            url: url.to_owned(),
            cache,
            conn,
            pool,
        }
    }

    async fn cached_store<T: Cacheable>(&self, prefix: &str) -> CachedStore<T> {
        CachedStore::<T>::builder(prefix)
            .connection_string(&self.url)
            .ttl(TTL)
            .build()
            .await
            .expect("cached crate's AsyncRedisCache connects")
    }
}

fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// A runtime and the connections made on it (a connection's driver task lives on the runtime
/// that made it, so each runtime needs its own).
struct Side {
    rt: Runtime,
    fx: Fixture,
}

impl Side {
    fn new(rt: Runtime, url: &str) -> Self {
        let fx = rt.block_on(Fixture::connect(url));
        Self { rt, fx }
    }

    /// Runs `op` `n` times across `tasks` tasks on this side's runtime.
    fn time<O: Op>(&self, op: &O, tasks: usize, n: u64) -> Duration {
        self.rt.block_on(load::run(op, tasks, n))
    }
}

/// Single-task measurements run on a current-thread runtime, where the task and its
/// connection's driver share one thread: what is left is the library's work and the round
/// trip, not the luck of which worker wakes. Concurrent ones run on two workers.
struct Sides {
    single: Side,
    multi: Side,
}

fn redis_benches(c: &mut Criterion) {
    let server = Redis::from_env_or_start();
    println!("measuring against {}", server.url());
    let sides = Sides {
        single: Side::new(load::current_thread_runtime(), server.url()),
        multi: Side::new(load::runtime(), server.url()),
    };
    hits_and_sets(c, &sides, "1kib", &daily_meals());
    hits_and_sets(c, &sides, "100b", &small());
    batch(c, &sides.single, "1kib", &daily_meals());
    batch(c, &sides.single, "100b", &small());
    read_through_hits(c, &sides.single);
    stampede(c, &sides.multi);
    delete_pattern(c, &sides.single);
    // Connections close inside their runtimes, before the server goes.
    for side in [sides.single, sides.multi] {
        let Side { rt, fx } = side;
        rt.block_on(async move { drop(fx) });
    }
    drop(server);
}

/// The variants in a fixed order: the project first, then its peers.
const VARIANTS: [&str; 4] = ["cache-core", "raw-multiplexed", "deadpool", "cached-crate"];

/// Runs every variant at every mode, variants interleaved per mode so that drift in the
/// machine's speed during the run touches all of them alike; then the paired ratios of the
/// project against raw redis and against the `cached` crate.
fn matrix<O: Op>(c: &mut Criterion, sides: &Sides, name: &str, build: impl Fn(&Side) -> [O; 4]) {
    let single = build(&sides.single);
    let multi = build(&sides.multi);
    for (side, ops) in [(&sides.single, &single), (&sides.multi, &multi)] {
        for (variant, op) in VARIANTS.iter().zip(ops) {
            assert!(
                side.rt.block_on(op.clone().run()),
                "{name} {variant}: the operation fails before measuring"
            );
        }
    }
    for (mode, tasks) in MODES {
        let (side, ops) = if tasks == 1 {
            (&sides.single, &single)
        } else {
            (&sides.multi, &multi)
        };
        let mut group = c.benchmark_group(format!("{name}_{mode}"));
        group.sampling_mode(SamplingMode::Flat);
        for (variant, op) in VARIANTS.iter().zip(ops) {
            group.bench_function(*variant, |b| {
                b.to_async(&side.rt)
                    .iter_custom(|iters| load::run(op, tasks, iters));
            });
        }
        group.finish();
        let block = Duration::from_millis(5);
        let [project, raw, _, cached] = ops;
        paired::compare(
            &format!("{name}_{mode}_vs_raw"),
            block,
            |n| side.time(project, tasks, n),
            |n| side.time(raw, tasks, n),
        );
        paired::compare(
            &format!("{name}_{mode}_vs_cached"),
            block,
            |n| side.time(project, tasks, n),
            |n| side.time(cached, tasks, n),
        );
    }
}

fn hits_and_sets<T: Cacheable>(c: &mut Criterion, sides: &Sides, size: &str, value: &T) {
    let get_key = leak(format!("get:{size}"));
    let get_full = leak(format!("bench:{get_key}"));
    let set_key = leak(format!("set:{size}"));
    let set_full = leak(format!("bench:{set_key}"));
    let prefix = format!("bench_cached_{size}");
    let stores = |side: &Side| {
        side.rt.block_on(async {
            side.fx
                .cache
                .set(get_key, value, TTL)
                .await
                .expect("cache-core SET of the GET value");
            let store = side.fx.cached_store::<T>(&prefix).await;
            store
                .async_cache_set_ref(&get_key, value)
                .await
                .expect("cached crate SET of the GET value");
            store
        })
    };
    matrix(c, sides, &format!("redis_get_{size}"), |side| {
        let fx = &side.fx;
        [
            Get::CacheCore(fx.cache.clone(), get_key),
            Get::Raw(fx.conn.clone(), get_full),
            Get::Deadpool(fx.pool.clone(), get_full),
            Get::Cached(stores(side), get_key),
        ]
    });
    matrix(c, sides, &format!("redis_set_{size}"), |side| {
        let fx = &side.fx;
        [
            Set::CacheCore(fx.cache.clone(), set_key, value.clone()),
            Set::Raw(fx.conn.clone(), set_full, value.clone()),
            Set::Deadpool(fx.pool.clone(), set_full, value.clone()),
            Set::Cached(stores(side), set_key, value.clone()),
        ]
    });
}

fn batch<T: Cacheable>(c: &mut Criterion, side: &Side, size: &str, value: &T) {
    let (rt, fx) = (&side.rt, &side.fx);
    let keys: Arc<[String]> = (0..100).map(|i| format!("batch:{size}:{i}")).collect();
    let full: Arc<[String]> = keys.iter().map(|k| format!("bench:{k}")).collect();
    let entries: Vec<(&str, T)> = keys.iter().map(|k| (k.as_str(), value.clone())).collect();
    rt.block_on(fx.cache.set_many(&entries, TTL))
        .expect("set_many of the batch");
    let variants = [
        (
            "get_many_100",
            Batch::<T>::GetMany(fx.cache.clone(), Arc::clone(&keys), PhantomData),
        ),
        (
            "sequential_get_100",
            Batch::<T>::Sequential(fx.cache.clone(), Arc::clone(&keys), PhantomData),
        ),
        (
            "raw_mget_100",
            Batch::<T>::RawMget(fx.conn.clone(), Arc::clone(&full), false, PhantomData),
        ),
        (
            "raw_mget_100_decode",
            Batch::<T>::RawMget(fx.conn.clone(), full, true, PhantomData),
        ),
    ];
    for (variant, op) in &variants {
        assert!(rt.block_on(op.clone().run()), "batch {variant} misses");
    }
    let mut group = c.benchmark_group(format!("redis_batch_{size}"));
    group.sampling_mode(SamplingMode::Flat);
    for (variant, op) in &variants {
        group.bench_function(*variant, |b| {
            b.to_async(rt).iter_custom(|iters| load::run(op, 1, iters));
        });
    }
    group.finish();
    paired::compare(
        &format!("redis_batch_{size}_get_many_vs_sequential"),
        Duration::from_millis(10),
        |n| side.time(&variants[0].1, 1, n),
        |n| side.time(&variants[1].1, 1, n),
    );
}

/// A `#[cache_result]` function, or the same read-through by hand, on a hit.
#[derive(Clone)]
enum ReadThrough {
    Macro(Cache),
    ByHand(Cache),
}

impl Op for ReadThrough {
    async fn run(&mut self) -> bool {
        let value = match self {
            Self::Macro(cache) => read_through::with_macro(cache, 42).await,
            Self::ByHand(cache) => read_through::by_hand(cache, 42).await,
        };
        black_box(value).user_id == 42
    }
}

/// The read-through benches of one backend (shared with the memory bench's logic).
fn read_through_hits(c: &mut Criterion, side: &Side) {
    let (rt, fx) = (&side.rt, &side.fx);
    let variants = [
        ("cache_result", ReadThrough::Macro(fx.cache.clone())),
        ("by_hand", ReadThrough::ByHand(fx.cache.clone())),
    ];
    // The first call stores the value; every measured call is a hit.
    for (_, op) in &variants {
        assert!(rt.block_on(op.clone().run()));
    }
    let loads_before = read_through::loads();
    let mut group = c.benchmark_group("read_through_redis");
    group.sampling_mode(SamplingMode::Flat);
    for (variant, op) in &variants {
        group.bench_function(*variant, |b| {
            b.to_async(rt).iter_custom(|iters| load::run(op, 1, iters));
        });
    }
    group.finish();
    paired::compare(
        "read_through_redis_macro_vs_by_hand",
        Duration::from_millis(5),
        |n| side.time(&variants[0].1, 1, n),
        |n| side.time(&variants[1].1, 1, n),
    );
    facts::record(
        "read_through_redis_loads_while_measuring_hits",
        &serde_json::json!(read_through::loads() - loads_before),
    );
}

fn stampede(c: &mut Criterion, side: &Side) {
    let (rt, fx) = (&side.rt, &side.fx);
    let ttl = Duration::from_secs(60);
    let mut group = c.benchmark_group("stampede_redis");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(settings::heavy_measurement());

    let tally = &Tally::default();
    group.bench_function("cache-core", |b| {
        b.to_async(rt)
            .iter_custom(|iters| stampede::cache_core_rounds(&fx.cache, iters, tally));
    });
    tally.record("redis_cache_core");

    let tally = &Tally::default();
    group.bench_function("naive-raw", |b| {
        b.to_async(rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let conn = fx.conn.clone();
                let (took, runs) = stampede::round("stampede", move |key, runs| {
                    let mut conn = conn.clone();
                    async move { naive_read_through(&mut conn, &key, runs, ttl).await }
                })
                .await;
                tally.add(runs);
                total += took;
            }
            total
        });
    });
    tally.record("redis_naive_raw");
    group.finish();
}

/// GET; on a miss, load and SET: what a read-through without single-flight does.
async fn naive_read_through(
    conn: &mut MultiplexedConnection,
    key: &str,
    runs: Arc<AtomicU64>,
    ttl: Duration,
) -> bool {
    let full = format!("bench:{key}");
    let found: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&full)
        .query_async(conn)
        .await
        .ok()
        .flatten();
    if let Some(value) = found.and_then(|bytes| raw::decode::<DailyMeals>(&bytes)) {
        return value.user_id == 42;
    }
    let value = stampede::loader(runs).await;
    redis::cmd("SET")
        .arg(&full)
        .arg(raw::envelope(&value, ttl))
        .arg("PX")
        .arg(raw::px(ttl))
        .query_async::<()>(conn)
        .await
        .is_ok()
}

const DELETE_KEYS: u64 = 100_000;

/// Writes `bench:del:0` .. `bench:del:99999` in pipelines of 10,000.
async fn populate(conn: &mut MultiplexedConnection) {
    for start in (0..DELETE_KEYS).step_by(10_000) {
        let mut pipe = redis::pipe();
        for i in start..(start + 10_000).min(DELETE_KEYS) {
            pipe.cmd("SET")
                .arg(format!("bench:del:{i}"))
                .arg(i)
                .ignore();
        }
        pipe.query_async::<()>(&mut *conn)
            .await
            .expect("populate the keys to delete");
    }
}

/// `SCAN MATCH pattern COUNT 1000` and `UNLINK` what it finds, to the end of the key space.
async fn scan_unlink(conn: &mut MultiplexedConnection, pattern: &str) -> u64 {
    let mut cursor: u64 = 0;
    let mut removed = 0;
    // Bounded: a full SCAN of this key space takes a few hundred steps.
    for _ in 0..1_000_000 {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1_000)
            .query_async(&mut *conn)
            .await
            .expect("SCAN");
        if !keys.is_empty() {
            let n: u64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut *conn)
                .await
                .expect("UNLINK");
            removed += n;
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    removed
}

fn delete_pattern(c: &mut Criterion, side: &Side) {
    let (rt, fx) = (&side.rt, &side.fx);
    let mut group = c.benchmark_group("delete_pattern_100k");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(settings::heavy_measurement());
    group.bench_function("cache-core", |b| {
        b.to_async(rt).iter_custom(|iters| async move {
            let mut conn = fx.conn.clone();
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                populate(&mut conn).await;
                let started = Instant::now();
                let removed = fx
                    .cache
                    .delete_pattern("del:*")
                    .await
                    .expect("delete_pattern");
                total += started.elapsed();
                assert_eq!(
                    removed, DELETE_KEYS,
                    "delete_pattern removed the wrong count"
                );
            }
            total
        });
    });
    group.bench_function("raw-scan-unlink", |b| {
        b.to_async(rt).iter_custom(|iters| async move {
            let mut conn = fx.conn.clone();
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                populate(&mut conn).await;
                let started = Instant::now();
                let removed = scan_unlink(&mut conn, "bench:del:*").await;
                total += started.elapsed();
                assert_eq!(
                    removed, DELETE_KEYS,
                    "SCAN + UNLINK removed the wrong count"
                );
            }
            total
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = settings::criterion();
    targets = redis_benches
}
criterion_main!(benches);
