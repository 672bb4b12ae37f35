//! Scale-out benches (issue 8), on the bench Redis:
//!
//! - `redis_read_through_tags`: a read-through hit on Redis with `Expiry::tags(["user:42"])`
//!   against the same hit without tags: what checking a tag costs (one `MGET` of the value and
//!   the tag's version instead of one `GET`; one round trip either way).
//! - The invalidation delay between replicas: two caches with a local tier, A and B, on the
//!   same Redis and namespace. B holds a key locally; A writes a new value; a task polling B
//!   (`get` in a tight loop, yielding between reads) times when B first returns it. Not a
//!   criterion figure but a distribution (p50, p90, p99, max, how many under 10 ms), recorded
//!   as the fact `scale_invalidation`.
//!
//! The memory bench holds the third scale-out figure: the local-tier hit against a memory hit.
//!
//! `BENCH_REDIS_URL` names the server (loopback only); unset, the bench starts its own.

// A benchmark whose setup fails has nothing to measure: it stops, loudly.
#![allow(clippy::expect_used)]

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_benches::data::{DailyMeals, daily_meals};
use cache_benches::load::{self, Op};
use cache_benches::server::Redis;
use cache_benches::{facts, paired, settings};
use cache_core::{Cache, Expiry};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use tokio::runtime::Runtime;

const TTL: Duration = Duration::from_secs(600);

/// The bound on the invalidation delay.
const TARGET: Duration = Duration::from_millis(10);

/// A write B has not seen after this long counts as lost (B's local TTL is far longer, so a
/// lost message shows here instead of being hidden by the copy expiring).
const LOST_AFTER: Duration = Duration::from_secs(2);

/// The pause after each write for the invalidation to land before B reads the key back in.
const SETTLE: Duration = Duration::from_millis(2);

fn scale_benches(c: &mut Criterion) {
    let server = Redis::from_env_or_start();
    println!("measuring against {}", server.url());
    tag_check(c, server.url());
    invalidation(server.url());
    drop(server);
}

static LOADS: AtomicU64 = AtomicU64::new(0);

/// A read-through hit of the ~1 KiB value, with or without a tag named by the caller.
#[derive(Clone)]
enum ReadThrough {
    Untagged(Cache),
    Tagged(Cache),
}

impl Op for ReadThrough {
    async fn run(&mut self) -> bool {
        let (cache, key, expiry) = match self {
            Self::Untagged(cache) => (cache, "tags:untagged", Expiry::new(TTL)),
            Self::Tagged(cache) => (cache, "tags:tagged", Expiry::new(TTL).tags(["user:42"])),
        };
        let value = cache
            .get_or_try_insert_with(key, expiry, || async {
                LOADS.fetch_add(1, Ordering::Relaxed);
                Ok::<_, Infallible>(daily_meals())
            })
            .await;
        match value {
            Ok(value) => black_box(value).user_id == 42,
            Err(never) => match never {},
        }
    }
}

fn tag_check(c: &mut Criterion, url: &str) {
    // One task: a current-thread runtime, as the Redis latency rows.
    let rt = load::current_thread_runtime();
    let cache = rt.block_on(async {
        Cache::builder()
            .url(url)
            .namespace("bench_scale")
            .build()
            .await
            .expect("cache-core connects")
    });
    let variants = [
        ("untagged", ReadThrough::Untagged(cache.clone())),
        ("tagged", ReadThrough::Tagged(cache)),
    ];
    // The first call of each stores the value; every measured call is a hit.
    for (_, op) in &variants {
        assert!(rt.block_on(op.clone().run()));
    }
    let loads_before = LOADS.load(Ordering::Relaxed);
    let mut group = c.benchmark_group("redis_read_through_tags");
    group.sampling_mode(SamplingMode::Flat);
    for (variant, op) in &variants {
        group.bench_function(*variant, |b| {
            b.to_async(&rt).iter_custom(|iters| load::run(op, 1, iters));
        });
    }
    group.finish();
    let time = |op: &ReadThrough, n| rt.block_on(load::run(op, 1, n));
    paired::compare(
        "redis_read_through_tags_tagged_vs_untagged",
        Duration::from_millis(5),
        |n| time(&variants[1].1, n),
        |n| time(&variants[0].1, n),
    );
    let loads = LOADS.load(Ordering::Relaxed) - loads_before;
    assert_eq!(loads, 0, "the tag-check hits ran the loader {loads} times");
    rt.block_on(async move { drop(variants) });
}

/// A cache with a local tier on `url`, in the namespace both replicas share.
async fn replica(url: &str) -> Cache {
    let cache = Cache::builder()
        .url(url)
        .namespace("bench_scale_inv")
        .local_tier(10_000, Duration::from_secs(60))
        .build()
        .await
        .expect("cache-core with a local tier connects");
    assert!(
        cache.is_local_tier_active(),
        "the local tier is not subscribed to its invalidation channel"
    );
    cache
}

const KEY: &str = "inv:daily";

fn value(version: i64) -> DailyMeals {
    DailyMeals {
        user_id: version,
        ..daily_meals()
    }
}

/// What B returns for the key: the version it holds.
async fn version(b: &Cache) -> Option<i64> {
    b.get::<DailyMeals>(KEY)
        .await
        .expect("B's get")
        .map(|v| v.user_id)
}

/// Makes sure B holds `KEY` at `expected` in its local tier before a write is timed, and
/// proves it: the Redis copy is taken away behind the caches' backs (no invalidation is
/// sent), B must still answer it, and the copy is put back as it was. Returns how many
/// read-backs that took beyond the first.
///
/// B may have read a value from Redis just before the invalidation of the previous one
/// arrived and dropped it; the next write would then time B's Redis reads, not an
/// invalidation. So the bench waits for messages to land, reads the key back into B, and
/// checks.
async fn hold_locally(
    conn: &mut redis::aio::MultiplexedConnection,
    b: &Cache,
    expected: i64,
) -> u64 {
    let full = format!("bench_scale_inv:{KEY}");
    for attempt in 0..100 {
        tokio::time::sleep(SETTLE).await;
        let _ = version(b).await;
        let (pttl, bytes): (u64, Vec<u8>) = redis::pipe()
            .cmd("PTTL")
            .arg(&full)
            .cmd("GETDEL")
            .arg(&full)
            .query_async(&mut *conn)
            .await
            .expect("PTTL and GETDEL of the Redis copy");
        let held = version(b).await == Some(expected);
        redis::cmd("SET")
            .arg(&full)
            .arg(bytes)
            .arg("PX")
            .arg(pttl.max(1))
            .query_async::<()>(&mut *conn)
            .await
            .expect("SET of the Redis copy back");
        if held {
            return attempt;
        }
    }
    panic!("B did not keep {KEY} in its local tier after 100 read-backs");
}

/// One write's delays: from just before `A.set` is called, and from when it returned (zero
/// when B saw the value first), until B returns the new value; `None` when B never did.
type Delay = Option<(Duration, Duration)>;

/// A writes version `version`; a task polling B times when B first returns it.
async fn one_write(a: &Cache, b: &Cache, version_now: i64) -> Delay {
    let (ready, started) = tokio::sync::oneshot::channel();
    let poller = {
        let b = b.clone();
        tokio::spawn(async move {
            // B must hold the old value when A starts writing.
            let first = version(&b).await;
            assert_ne!(
                first,
                Some(version_now),
                "B had the new value before A wrote it"
            );
            let _ = ready.send(());
            let deadline = Instant::now() + LOST_AFTER;
            loop {
                if version(&b).await == Some(version_now) {
                    return Some(Instant::now());
                }
                if Instant::now() > deadline {
                    return None;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    started.await.expect("the poller starts");
    let called = Instant::now();
    a.set(KEY, &value(version_now), TTL).await.expect("A's set");
    let returned = Instant::now();
    let seen = poller.await.expect("the poller finishes")?;
    Some((
        seen.saturating_duration_since(called),
        seen.saturating_duration_since(returned),
    ))
}

/// Distribution of one side of the delays, in microseconds.
fn distribution(mut delays: Vec<Duration>) -> serde_json::Value {
    if delays.is_empty() {
        return serde_json::Value::Null;
    }
    delays.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    // Nearest rank: the smallest delay at least `q` of the writes did not exceed.
    let at = |q: f64| {
        let rank = ((delays.len() as f64 * q).ceil() as usize).clamp(1, delays.len());
        us(delays[rank - 1])
    };
    serde_json::json!({
        "p50_us": at(0.5),
        "p90_us": at(0.9),
        "p99_us": at(0.99),
        "max_us": at(1.0),
        "under_10ms": delays.iter().filter(|d| **d < TARGET).count(),
    })
}

fn invalidation(url: &str) {
    let writes: i64 = if settings::quick() { 300 } else { 2_000 };
    let warm_up = 20;
    // Two workers, as a service on this machine: the poller spins on one.
    let rt: Runtime = load::runtime();
    let (from_call, from_return, lost, read_backs) = rt.block_on(async {
        let (a, b) = (replica(url).await, replica(url).await);
        let mut conn = redis::Client::open(url)
            .expect("redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection");
        a.set(KEY, &value(0), TTL).await.expect("A's first set");
        let (mut from_call, mut from_return, mut lost) = (Vec::new(), Vec::new(), 0_u64);
        let mut read_backs = hold_locally(&mut conn, &b, 0).await;
        for i in 1..=warm_up + writes {
            let delay = one_write(&a, &b, i).await;
            if delay.is_none() {
                // B never saw it: write it again, so that a new invalidation drops B's copy.
                a.set(KEY, &value(i), TTL).await.expect("A's set");
            }
            read_backs += hold_locally(&mut conn, &b, i).await;
            if i <= warm_up {
                continue;
            }
            match delay {
                Some((call, ret)) => {
                    from_call.push(call);
                    from_return.push(ret);
                }
                None => lost += 1,
            }
        }
        drop((a, b));
        (from_call, from_return, lost, read_backs)
    });
    facts::record(
        "scale_invalidation",
        &serde_json::json!({
            "writes": writes,
            "lost": lost,
            "lost_after_ms": LOST_AFTER.as_millis(),
            "extra_read_backs": read_backs,
            "from_call": distribution(from_call),
            "from_return": distribution(from_return),
        }),
    );
}

criterion_group! {
    name = benches;
    config = settings::criterion();
    targets = scale_benches
}
criterion_main!(benches);
