//! How long each bench measures: the full run, or `BENCH_QUICK=1`.

use std::time::Duration;

use criterion::Criterion;

/// True when `BENCH_QUICK` asks for the short mode.
#[must_use]
pub fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The criterion configuration of every bench binary (command-line flags still override it).
#[must_use]
pub fn criterion() -> Criterion {
    let c = Criterion::default().without_plots();
    if quick() {
        c.warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(600))
            .sample_size(10)
    } else {
        c.warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .sample_size(30)
    }
}

/// Measurement time for benches whose one iteration takes tens or hundreds of milliseconds
/// (stampede, `delete_pattern`): run with criterion's minimum of 10 samples.
#[must_use]
pub fn heavy_measurement() -> Duration {
    if quick() {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(4)
    }
}

/// The longest one sample of a concurrent load may take before the bench gives up.
pub const SAMPLE_LIMIT: Duration = Duration::from_secs(120);
