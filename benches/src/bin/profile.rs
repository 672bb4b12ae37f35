//! Runs one Redis operation of one client a fixed number of times, for a profiler: the
//! instructions per operation that `valgrind --tool=callgrind` counts are the same run after
//! run, where times on this machine are not. See benches/ANALYSIS.md for how it is used.
//!
//! ```text
//! profile OP SIZE CLIENT TASKS OPS
//! profile get 100b cache-core 64 20000      # against BENCH_REDIS_URL, or its own server
//! ```
//!
//! OP is `get` or `set`, SIZE `1kib` or `100b`, CLIENT one of `cache-core`, `raw-multiplexed`,
//! `deadpool`, `cached-crate`; or OP `batch` of 100 keys with CLIENT `get_many`, `sequential`,
//! `raw_mget` or `raw_mget_decode`. One task runs on a current-thread runtime, more on two
//! workers, as in the benches.

use std::error::Error;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Instant;

use cache_benches::data::{daily_meals, small};
use cache_benches::load::{self, Op};
use cache_benches::server::Redis;
use cache_benches::variants::{Batch, CachedStore, Get, Set, TTL};
use cache_core::{Cache, Cacheable};
use cached::SerializeCachedAsync;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [op, size, client, tasks, ops] = args.as_slice() else {
        return Err("usage: profile get|set 1kib|100b CLIENT TASKS OPS".into());
    };
    let tasks: usize = tasks.parse()?;
    let ops: u64 = ops.parse()?;
    let server = Redis::from_env_or_start();
    let rt = if tasks == 1 {
        load::current_thread_runtime()
    } else {
        load::runtime()
    };
    let took = match size.as_str() {
        "1kib" => rt.block_on(run(server.url(), op, client, tasks, ops, daily_meals()))?,
        "100b" => rt.block_on(run(server.url(), op, client, tasks, ops, small()))?,
        other => return Err(format!("size {other:?}: 1kib or 100b").into()),
    };
    println!(
        "{op} {size} {client}: {ops} operations on {tasks} tasks in {took:?} ({:.0} ops/s)",
        ops as f64 / took.as_secs_f64()
    );
    Ok(())
}

async fn run<T: Cacheable>(
    url: &str,
    op: &str,
    client: &str,
    tasks: usize,
    ops: u64,
    value: T,
) -> Result<std::time::Duration, Box<dyn Error>> {
    let cache = Cache::builder().url(url).namespace("bench").build().await?;
    let conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let pool =
        deadpool_redis::Config::from_url(url).create_pool(Some(deadpool_redis::Runtime::Tokio1))?;
    let store = CachedStore::<T>::builder("bench_cached_profile")
        .connection_string(url)
        .ttl(TTL)
        .build()
        .await?;
    cache.set("profile", &value, TTL).await?;
    let keys: Arc<[String]> = (0..100).map(|i| format!("profile:{i}")).collect();
    let full: Arc<[String]> = keys.iter().map(|k| format!("bench:{k}")).collect();
    let entries: Vec<(&str, T)> = keys.iter().map(|k| (k.as_str(), value.clone())).collect();
    cache.set_many(&entries, TTL).await?;
    store.async_cache_set_ref(&"profile", &value).await?;
    let started = Instant::now();
    match (op, client) {
        ("get", "cache-core") => timed(Get::<T>::CacheCore(cache, "profile"), tasks, ops).await,
        ("get", "raw-multiplexed") => timed(Get::<T>::Raw(conn, "bench:profile"), tasks, ops).await,
        ("get", "deadpool") => timed(Get::<T>::Deadpool(pool, "bench:profile"), tasks, ops).await,
        ("get", "cached-crate") => timed(Get::<T>::Cached(store, "profile"), tasks, ops).await,
        ("set", "cache-core") => timed(Set::CacheCore(cache, "profile", value), tasks, ops).await,
        ("set", "raw-multiplexed") => {
            timed(Set::Raw(conn, "bench:profile", value), tasks, ops).await;
        }
        ("set", "deadpool") => timed(Set::Deadpool(pool, "bench:profile", value), tasks, ops).await,
        ("set", "cached-crate") => timed(Set::Cached(store, "profile", value), tasks, ops).await,
        ("batch", "get_many") => {
            timed(Batch::<T>::GetMany(cache, keys, PhantomData), tasks, ops).await;
        }
        ("batch", "sequential") => {
            timed(Batch::<T>::Sequential(cache, keys, PhantomData), tasks, ops).await;
        }
        ("batch", "raw_mget") => {
            timed(
                Batch::<T>::RawMget(conn, full, false, PhantomData),
                tasks,
                ops,
            )
            .await;
        }
        ("batch", "raw_mget_decode") => {
            timed(
                Batch::<T>::RawMget(conn, full, true, PhantomData),
                tasks,
                ops,
            )
            .await;
        }
        _ => return Err(format!("{op} {client}: unknown operation or client").into()),
    }
    Ok(started.elapsed())
}

async fn timed<O: Op>(op: O, tasks: usize, ops: u64) {
    load::run(&op, tasks, ops).await;
}
