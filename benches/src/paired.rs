//! Paired, interleaved ratios: the project and its peer timed in alternating short blocks,
//! so that the machine's drift (a 2-core VM's speed moves by tens of percent over seconds)
//! falls on both sides of every ratio alike. Criterion's figures are absolute; the targets
//! are judged on these ratios.

use std::time::Duration;

use crate::facts;
use crate::settings::quick;

/// False when `BENCH_PAIRED=0` (to profile one criterion bench without the paired runs).
#[must_use]
pub fn enabled() -> bool {
    std::env::var("BENCH_PAIRED").map_or(true, |v| v != "0")
}

/// How many A/B block pairs a comparison runs.
#[must_use]
pub fn rounds() -> usize {
    if quick() { 31 } else { 101 }
}

/// Times `project` and `peer` in [`rounds`] alternating blocks of the same operation count
/// (the order flips every round), and records the fact `paired_{name}` with the distribution
/// of `project time / peer time` per round. Each closure runs its operation `n` times and
/// returns the time it took.
///
/// `block` is the wall time one block should take, to size `n`. Returns the median ratio
/// (NaN when paired runs are disabled).
pub fn compare<A, B>(name: &str, block: Duration, mut project: A, mut peer: B) -> f64
where
    A: FnMut(u64) -> Duration,
    B: FnMut(u64) -> Duration,
{
    if !enabled() {
        return f64::NAN;
    }
    // Size the block on the project's side: double k until k operations take a millisecond,
    // then take the fastest of three runs at that k (one hiccup must not size every block).
    let mut k = 1_u64;
    for _ in 0..40 {
        if project(k) >= Duration::from_millis(1) {
            break;
        }
        k *= 2;
    }
    let fastest = (0..3).map(|_| project(k)).min().unwrap_or(block);
    let per_op = fastest.as_secs_f64() / k as f64;
    let n = ((block.as_secs_f64() / per_op.max(1e-9)).ceil() as u64).max(1);
    // Warm both sides once at that size.
    let _ = peer(n);
    let mut ratios: Vec<f64> = (0..rounds())
        .map(|round| {
            let (a, b) = if round % 2 == 0 {
                let a = project(n);
                (a, peer(n))
            } else {
                let b = peer(n);
                (project(n), b)
            };
            a.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE)
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((ratios.len() - 1) as f64 * q).round() as usize;
        ratios[i]
    };
    let median = at(0.5);
    facts::record(
        &format!("paired_{name}"),
        &serde_json::json!({
            "median": median,
            "p10": at(0.1),
            "p90": at(0.9),
            "min": at(0.0),
            "max": at(1.0),
            "rounds": ratios.len(),
            "ops_per_block": n,
        }),
    );
    median
}
