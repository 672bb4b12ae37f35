//! Measures how the Redis backend's connection strategy performs under concurrency, against the
//! alternatives, in one process on the same server: the evidence behind the README's choice.
//!
//! ```text
//! CACHE_URL=redis://127.0.0.1:6379/0 cargo run --release -p cache-benches --bin connection_throughput
//! ```
//!
//! Each variant runs `OPS` GETs of a 256-byte value from `TASKS` concurrent tasks. The raw
//! variants read the bytes only; the cache variants also decode the envelope.

use std::future::Future;
use std::time::{Duration, Instant};

use cache_core::Cache;
use redis::AsyncCommands;

const TASKS: usize = 50;
const OPS: usize = 100_000;

async fn run<F, Fut>(name: &str, op: F) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                for _ in 0..OPS / TASKS {
                    op().await;
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    let rate = OPS as f64 / started.elapsed().as_secs_f64();
    println!("{name:<48} {rate:>10.0} ops/s");
    rate
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("CACHE_URL").map_err(|_| "set CACHE_URL=redis://127.0.0.1:6379/0")?;
    let value = "x".repeat(256);
    println!("{TASKS} concurrent tasks, {OPS} GETs of a 256-byte value per variant, {url}");

    let client = redis::Client::open(url.as_str())?;
    let multiplexed = client.get_multiplexed_async_connection().await?;
    let () = multiplexed.clone().set("bench:raw", &value).await?;
    let raw = run("raw redis, one shared multiplexed connection", move || {
        let mut conn = multiplexed.clone();
        async move {
            let _: Option<Vec<u8>> = conn.get("bench:raw").await.ok().flatten();
        }
    })
    .await;

    let manager = redis::aio::ConnectionManager::new(client.clone()).await?;
    run("raw redis, one shared ConnectionManager", move || {
        let mut conn = manager.clone();
        async move {
            let _: Option<Vec<u8>> = conn.get("bench:raw").await.ok().flatten();
        }
    })
    .await;

    let pool = deadpool_redis::Config::from_url(url.as_str())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))?;
    run(
        "deadpool-redis, a connection checked out per GET",
        move || {
            let pool = pool.clone();
            async move {
                if let Ok(mut conn) = pool.get().await {
                    let _: Option<Vec<u8>> = conn.get("bench:raw").await.ok().flatten();
                }
            }
        },
    )
    .await;

    for connections in [1, 2, 4] {
        let cache = Cache::builder()
            .url(url.as_str())
            .namespace("bench")
            .pool_size(connections)
            .operation_timeout(Duration::from_secs(5))
            .build()
            .await?;
        cache
            .set("cached", &value, Duration::from_secs(600))
            .await?;
        let name = format!("cache-core, pool_size({connections}), with decode");
        let rate = run(&name, move || {
            let cache = cache.clone();
            async move {
                let _ = cache.get::<String>("cached").await;
            }
        })
        .await;
        println!("{:<48} {:>10.2}x raw", "", rate / raw);
    }
    Ok(())
}
