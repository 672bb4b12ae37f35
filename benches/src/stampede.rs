//! The stampede: [`TASKS`] concurrent requests for one key that is not cached, each served
//! through a read-through whose loader takes [`LOADER_TIME`]. What matters: how many times the
//! loader ran (one is right) and how long until every request had its value.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::data::{DailyMeals, daily_meals};
use crate::settings::SAMPLE_LIMIT;

/// Concurrent requests per round.
pub const TASKS: usize = 1_000;

/// How long the loader (the "database query") takes.
pub const LOADER_TIME: Duration = Duration::from_millis(20);

static ROUND: AtomicU64 = AtomicU64::new(0);

/// The loader: counts its run, takes [`LOADER_TIME`], returns the ~1 KiB value.
pub async fn loader(runs: Arc<AtomicU64>) -> DailyMeals {
    runs.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(LOADER_TIME).await;
    daily_meals()
}

/// One round on a key no round used before: [`TASKS`] spawned tasks each run
/// `serve(key, runs)`; returns the time until the last one is served and the loader's runs.
///
/// # Panics
/// When a request is not served, or the round takes longer than [`SAMPLE_LIMIT`].
pub async fn round<F, Fut>(prefix: &str, serve: F) -> (Duration, u64)
where
    F: Fn(Arc<str>, Arc<AtomicU64>) -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    let key: Arc<str> = format!("{prefix}:{}", ROUND.fetch_add(1, Ordering::Relaxed)).into();
    let runs = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..TASKS)
        .map(|_| tokio::spawn(serve(Arc::clone(&key), Arc::clone(&runs))))
        .collect();
    let served = tokio::time::timeout(SAMPLE_LIMIT, async {
        let mut served = 0;
        for handle in handles {
            served += usize::from(handle.await.unwrap_or(false));
        }
        served
    })
    .await;
    let elapsed = started.elapsed();
    match served {
        Ok(n) if n == TASKS => (elapsed, runs.load(Ordering::Relaxed)),
        Ok(n) => panic!("stampede on {key}: {n} of {TASKS} requests served"),
        Err(_) => panic!("stampede on {key} ran past {SAMPLE_LIMIT:?}"),
    }
}

/// The loader runs seen over every round of one variant.
#[derive(Debug)]
pub struct Tally {
    /// (rounds, fewest runs in a round, most runs in a round)
    seen: Mutex<(u64, u64, u64)>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            seen: Mutex::new((0, u64::MAX, 0)),
        }
    }
}

impl Tally {
    /// Adds one round's runs.
    pub fn add(&self, runs: u64) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.0 += 1;
        seen.1 = seen.1.min(runs);
        seen.2 = seen.2.max(runs);
    }

    /// Records the tally as the fact `stampede_{name}`.
    pub fn record(&self, name: &str) {
        let (rounds, min, max) = *self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if rounds == 0 {
            // Filtered out of this run: leave the last run's fact alone.
            return;
        }
        crate::facts::record(
            &format!("stampede_{name}"),
            &serde_json::json!({
                "rounds": rounds,
                "min_loader_runs": min,
                "max_loader_runs": max,
                "tasks": TASKS,
                "loader_ms": LOADER_TIME.as_millis(),
            }),
        );
    }
}

/// `iters` stampede rounds through cache-core's read-through on `cache`: the time they took,
/// each round's loader runs added to `tally`. Shared by the memory and Redis benches.
pub async fn cache_core_rounds(cache: &cache_core::Cache, iters: u64, tally: &Tally) -> Duration {
    let ttl = Duration::from_secs(60);
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let cache = cache.clone();
        let (took, runs) = round("stampede", move |key, runs| {
            let cache = cache.clone();
            async move {
                cache
                    .get_or_insert_with(&*key, ttl, || loader(runs))
                    .await
                    .user_id
                    == 42
            }
        })
        .await;
        tally.add(runs);
        total += took;
    }
    total
}
