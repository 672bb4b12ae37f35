//! The step load: open-loop request rates rising in steps, each judged by its p99 and its error
//! share, to find the highest rate the stack sustains.
//!
//! Requests are sent on a fixed schedule (the `k`-th at `start + k / rate`), each by a random
//! signed-in user and timed from its scheduled instant, so a server that falls behind sees its
//! queue in the latencies rather than a slower client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::http::{Call, Client};
use crate::record::{Recorder, ms};

/// The requests of the step load and their weights (out of 100): the users' reads, and meals
/// logged, one request each.
const MIX: &[(&str, &str, &str, u32)] = &[
    ("GET /meals/daily", "GET", "/meals/daily", 45),
    ("GET /users/me", "GET", "/users/me", 15),
    ("GET /stats?days=7", "GET", "/stats?days=7", 10),
    ("GET /stats?days=30", "GET", "/stats?days=30", 5),
    ("GET /foods", "GET", "/foods?q=apple", 15),
    ("POST /meals", "POST", "/meals", 10),
];

/// The judgement: p99 under this...
pub(crate) const P99_LIMIT_MS: f64 = 100.0;
/// ...and errors under this share.
pub(crate) const ERROR_LIMIT: f64 = 0.01;

/// Requests in flight at most; a request over it is counted as failed (status 0) unsent.
const MAX_IN_FLIGHT: usize = 8192;

/// One step's outcome.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// The offered rate, requests per second.
    pub(crate) offered: f64,
    /// Responses per second achieved.
    pub(crate) achieved: f64,
    /// p50 and p99, ms.
    pub p50_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
    /// Non-2xx (and unsent) share.
    pub(crate) error_share: f64,
    /// Whether it met [`P99_LIMIT_MS`] and [`ERROR_LIMIT`].
    pub(crate) passed: bool,
    /// When it ran, seconds since the recorder started.
    pub(crate) span: (f64, f64),
}

/// Runs steps at `start`, `start * factor`, ... each `step` long, until a rate fails twice in a
/// row or `max` is passed; each step is a phase of `recorder` named `{label} {rate}/s`.
///
/// A rate that misses is run once more before the search ends: everything shares two cores,
/// and one stall of a few hundred milliseconds (a page flush, a scheduler hiccup) puts more than
/// 1% of a short step over the p99 limit. A rate the stack cannot sustain misses twice; both
/// tries are reported.
pub(crate) async fn run(
    client: &Client,
    recorder: &Arc<Recorder>,
    tokens: &[String],
    label: &str,
    (start, factor, max): (f64, f64, f64),
    step: Duration,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut rate = start;
    let mut rng = fastrand::Rng::with_seed(7);
    let mut missed_once = false;
    while rate <= max && !tokens.is_empty() {
        let again = if missed_once { " (again)" } else { "" };
        recorder.begin_phase(&format!("{label} {rate:.0}/s{again}"));
        let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let began = Instant::now();
        let count = (rate * step.as_secs_f64()) as u64;
        let mut tasks = tokio::task::JoinSet::new();
        for k in 0..count {
            let intended = began + Duration::from_secs_f64(k as f64 / rate);
            tokio::time::sleep_until(intended.into()).await;
            let (route, method, path, _) = pick(&mut rng);
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                recorder.record(route, intended, 0, false);
                continue;
            };
            let token = tokens[rng.usize(0..tokens.len())].clone();
            let client = client.clone();
            let recorder = Arc::clone(recorder);
            let calories = rng.i64(50..900);
            tasks.spawn(async move {
                let body = (method == "POST").then(|| {
                    (
                        "application/json",
                        Bytes::from(format!(
                            "{{\"name\":\"capacity step meal\",\"calories\":{calories}}}"
                        )),
                    )
                });
                let request_id = format!("cap-step-{k}");
                let reply = client
                    .send(Call {
                        method,
                        path,
                        token: Some(&token),
                        body,
                        request_id: &request_id,
                        idempotency_key: None,
                        repeatable: false,
                    })
                    .await;
                recorder.record(route, intended, reply.status, false);
                drop(permit);
            });
            // Reap finished tasks as we go: the set stays the size of what is in flight.
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
        let elapsed = began.elapsed().as_secs_f64();
        recorder.end_phase();
        let Some(phase) = recorder.current() else {
            break;
        };
        let latency = phase.all_latency();
        let requests = phase.requests().max(1);
        let outcome = Step {
            offered: rate,
            achieved: phase.with_status(200..300) as f64 / elapsed.max(step.as_secs_f64()),
            p50_ms: ms(latency.value_at_quantile(0.5)),
            p99_ms: ms(latency.value_at_quantile(0.99)),
            error_share: phase.failed() as f64 / requests as f64,
            passed: false,
            span: phase.span,
        };
        let passed = outcome.p99_ms < P99_LIMIT_MS && outcome.error_share < ERROR_LIMIT;
        println!(
            "    {label} {rate:.0}/s{again}: {:.0} ok/s, p50 {:.1} ms, p99 {:.1} ms, errors {:.2}% -> {}",
            outcome.achieved,
            outcome.p50_ms,
            outcome.p99_ms,
            outcome.error_share * 100.0,
            if passed { "sustained" } else { "over" }
        );
        steps.push(Step { passed, ..outcome });
        if passed {
            missed_once = false;
            rate *= factor;
        } else if missed_once {
            break;
        } else {
            missed_once = true;
        }
    }
    steps
}

fn pick(rng: &mut fastrand::Rng) -> (&'static str, &'static str, &'static str, u32) {
    let mut r = rng.u32(0..100);
    for entry in MIX {
        if r < entry.3 {
            return *entry;
        }
        r -= entry.3;
    }
    MIX[0]
}

/// The highest offered rate that passed, if any.
#[must_use]
pub(crate) fn sustained(steps: &[Step]) -> Option<f64> {
    steps
        .iter()
        .filter(|s| s.passed)
        .map(|s| s.offered)
        .reduce(f64::max)
}
