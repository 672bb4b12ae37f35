//! The load driver: one operation, run `iters` times by one or many tokio tasks, timed.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::settings::SAMPLE_LIMIT;

/// One benchmarked operation. Each task gets its own clone (a connection handle, a cache
/// handle), so the loop itself clones nothing.
pub trait Op: Clone + Send + 'static {
    /// Runs the operation once; false when it did not do what it measures (a GET that missed).
    fn run(&mut self) -> impl Future<Output = bool> + Send;
}

/// The tokio runtime the Redis benches run on: two workers, like a service on this machine.
///
/// # Panics
/// When the runtime cannot be built.
#[must_use]
pub fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => panic!("cannot build the tokio runtime: {err}"),
    }
}

/// The runtime of single-task measurements: one thread for the task and its connections.
///
/// # Panics
/// When the runtime cannot be built.
#[must_use]
pub fn current_thread_runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => panic!("cannot build the tokio runtime: {err}"),
    }
}

/// Runs `op` `iters` times in total across `tasks` spawned tasks (each doing an equal share)
/// and returns the wall time from the first spawn to the last completion.
///
/// # Panics
/// When an operation fails (a measurement of hits that missed is no measurement), or when the
/// sample takes longer than [`SAMPLE_LIMIT`].
pub async fn run<O: Op>(op: &O, tasks: usize, iters: u64) -> Duration {
    let tasks = tasks.max(1);
    let n = tasks as u64;
    let started = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let mut op = op.clone();
            let share = iters / n + u64::from(i < iters % n);
            tokio::spawn(async move {
                let mut failed = 0_u64;
                for _ in 0..share {
                    if !op.run().await {
                        failed += 1;
                    }
                }
                failed
            })
        })
        .collect();
    let joined = tokio::time::timeout(SAMPLE_LIMIT, async {
        let mut failed = 0;
        for handle in handles {
            failed += handle.await.unwrap_or(u64::MAX / 2);
        }
        failed
    })
    .await;
    let elapsed = started.elapsed();
    match joined {
        Ok(0) => elapsed,
        Ok(failed) => panic!("{failed} of {iters} operations failed"),
        Err(_) => panic!("a sample ran past {SAMPLE_LIMIT:?}: is the server overloaded?"),
    }
}
