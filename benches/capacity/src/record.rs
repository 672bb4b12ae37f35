//! What the run measures while it runs: per phase, a latency histogram and status counts per
//! route and the oracle's verdicts; per second, the throughput and latency the chart draws.
//!
//! Latencies are taken from the time a request was *meant* to be sent (see `user.rs`), so a
//! stalled server shows up in them (no coordinated omission).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// The longest latency a histogram keeps exactly (longer ones are clamped): one minute, in µs.
const MAX_MICROS: u64 = 60_000_000;

/// The figures of one route in one phase.
#[derive(Debug, Clone)]
pub(crate) struct RouteStats {
    /// Latency in microseconds, from the intended send time.
    pub(crate) latency: Histogram<u64>,
    /// Responses by status; 0 is a request that got no response.
    pub(crate) statuses: BTreeMap<u16, u64>,
}

impl RouteStats {
    fn new() -> Self {
        Self {
            latency: histogram(3),
            statuses: BTreeMap::new(),
        }
    }
}

/// The figures of one phase.
#[derive(Debug, Clone)]
pub(crate) struct Phase {
    /// The phase's name, as the report shows it.
    pub(crate) name: String,
    /// Seconds from the start of the run to the start and the end of the phase.
    pub(crate) span: (f64, f64),
    /// Per route (`GET /meals/daily`, ...).
    pub(crate) routes: BTreeMap<&'static str, RouteStats>,
    /// Reads that contradicted a write the same user had seen succeed.
    pub(crate) violations: u64,
    /// Reads the oracle checked against what the user had written.
    pub(crate) checked: u64,
    /// Writes with an unknown outcome (no response, 5xx): the next read resynchronised.
    pub(crate) unverified_writes: u64,
    /// Users signed in during the phase.
    pub(crate) logins: u64,
    /// Responses 503 without `Retry-After`.
    pub(crate) no_retry_after: u64,
    /// Requests sent again (see `http::Client::send`).
    pub(crate) resent: u64,
    /// Error answers by status and the error code of their JSON body (`busy`, `unavailable`).
    pub(crate) error_codes: BTreeMap<(u16, String), u64>,
}

impl Phase {
    /// All requests of the phase.
    #[must_use]
    pub(crate) fn requests(&self) -> u64 {
        self.routes.values().flat_map(|r| r.statuses.values()).sum()
    }

    /// Requests whose status is in `range` (0 for no response: `0..1`).
    #[must_use]
    pub(crate) fn with_status(&self, range: std::ops::Range<u16>) -> u64 {
        self.routes
            .values()
            .flat_map(|r| r.statuses.iter())
            .filter(|(s, _)| range.contains(s))
            .map(|(_, n)| n)
            .sum()
    }

    /// Write requests (POST, PATCH, DELETE) other than logins.
    #[must_use]
    pub(crate) fn writes(&self) -> u64 {
        self.routes
            .iter()
            .filter(|(route, _)| !route.starts_with("GET ") && !route.starts_with("POST /auth"))
            .flat_map(|(_, r)| r.statuses.values())
            .sum()
    }

    /// Requests that did not get a 2xx.
    #[must_use]
    pub(crate) fn failed(&self) -> u64 {
        self.requests() - self.with_status(200..300)
    }

    /// Every route's latencies merged.
    #[must_use]
    pub(crate) fn all_latency(&self) -> Histogram<u64> {
        let mut all = histogram(3);
        for route in self.routes.values() {
            // Same bounds on both sides: adding cannot fail.
            let _ = all.add(&route.latency);
        }
        all
    }

    /// Statuses over all routes.
    #[must_use]
    pub(crate) fn statuses(&self) -> BTreeMap<u16, u64> {
        let mut all = BTreeMap::new();
        for route in self.routes.values() {
            for (status, n) in &route.statuses {
                *all.entry(*status).or_insert(0) += n;
            }
        }
        all
    }
}

/// One second of the run, for the chart.
#[derive(Debug, Clone)]
pub(crate) struct Second {
    /// Responses completed in this second.
    pub(crate) requests: u64,
    /// Their latencies, µs.
    pub(crate) latency: Histogram<u64>,
}

#[derive(Debug)]
struct State {
    phases: Vec<Phase>,
    seconds: BTreeMap<u64, Second>,
    violations: Option<File>,
}

/// The run's shared recorder: cheap to call from every user task.
#[derive(Debug)]
pub(crate) struct Recorder {
    started: Instant,
    in_flight: AtomicU64,
    state: Mutex<State>,
}

fn histogram(sigfig: u8) -> Histogram<u64> {
    // Bounds that are valid constants: construction cannot fail.
    Histogram::new_with_bounds(1, MAX_MICROS, sigfig).unwrap_or_else(|_| {
        Histogram::new(sigfig.min(5)).unwrap_or_else(|_| unreachable!("valid sigfig"))
    })
}

impl Recorder {
    /// A recorder whose oracle violations are appended, one line each, to `violations_log`.
    ///
    /// # Errors
    /// The log cannot be created.
    pub(crate) fn new(violations_log: &Path) -> anyhow::Result<Self> {
        let file = File::create(violations_log)?;
        Ok(Self {
            started: Instant::now(),
            in_flight: AtomicU64::new(0),
            state: Mutex::new(State {
                phases: Vec::new(),
                seconds: BTreeMap::new(),
                violations: Some(file),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere must not take the figures with it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a user's request sent; [`Recorder::record`] with `sent` ends it.
    pub(crate) fn sending(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// Users' requests sent and not yet answered.
    #[must_use]
    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Ends the current phase (if any) and starts `name`.
    pub(crate) fn begin_phase(&self, name: &str) {
        let now = self.started.elapsed().as_secs_f64();
        let mut state = self.lock();
        if let Some(last) = state.phases.last_mut() {
            last.span.1 = now;
        }
        state.phases.push(Phase {
            name: name.to_owned(),
            span: (now, now),
            routes: BTreeMap::new(),
            violations: 0,
            checked: 0,
            unverified_writes: 0,
            logins: 0,
            no_retry_after: 0,
            resent: 0,
            error_codes: BTreeMap::new(),
        });
    }

    /// Ends the current phase.
    pub(crate) fn end_phase(&self) {
        let now = self.started.elapsed().as_secs_f64();
        if let Some(last) = self.lock().phases.last_mut() {
            last.span.1 = now;
        }
    }

    /// Records a response (`status` 0: none) of `route` meant to be sent at `intended`;
    /// `sent` when [`Recorder::sending`] counted it.
    pub(crate) fn record(&self, route: &'static str, intended: Instant, status: u16, sent: bool) {
        if sent {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        let done = Instant::now();
        let micros = u64::try_from(done.saturating_duration_since(intended).as_micros())
            .unwrap_or(MAX_MICROS)
            .clamp(1, MAX_MICROS);
        let second = done.saturating_duration_since(self.started).as_secs();
        let mut state = self.lock();
        if let Some(phase) = state.phases.last_mut() {
            let stats = phase.routes.entry(route).or_insert_with(RouteStats::new);
            stats.latency.saturating_record(micros);
            *stats.statuses.entry(status).or_insert(0) += 1;
        }
        let slot = state.seconds.entry(second).or_insert_with(|| Second {
            requests: 0,
            latency: histogram(2),
        });
        slot.requests += 1;
        slot.latency.saturating_record(micros);
    }

    /// Counts a read the oracle checked.
    pub(crate) fn checked(&self) {
        if let Some(phase) = self.lock().phases.last_mut() {
            phase.checked += 1;
        }
    }

    /// Counts a write whose outcome is unknown.
    pub(crate) fn unverified_write(&self) {
        if let Some(phase) = self.lock().phases.last_mut() {
            phase.unverified_writes += 1;
        }
    }

    /// Counts a 503 that came without `Retry-After`.
    pub(crate) fn no_retry_after(&self) {
        if let Some(phase) = self.lock().phases.last_mut() {
            phase.no_retry_after += 1;
        }
    }

    /// Counts an error answer (4xx, 5xx) by status and the `error.code` of its body.
    pub(crate) fn error_code(&self, status: u16, code: &str) {
        if let Some(phase) = self.lock().phases.last_mut() {
            *phase
                .error_codes
                .entry((status, code.to_owned()))
                .or_insert(0) += 1;
        }
    }

    /// Counts a request sent again (see `http::Client::send`).
    pub(crate) fn resent(&self) {
        if let Some(phase) = self.lock().phases.last_mut() {
            phase.resent += 1;
        }
    }

    /// Counts a user signed in.
    pub(crate) fn login(&self) {
        if let Some(phase) = self.lock().phases.last_mut() {
            phase.logins += 1;
        }
    }

    /// Counts an oracle violation and logs it with the request ids involved.
    pub(crate) fn violation(&self, user: u64, what: &str, request_ids: &[String]) {
        let at = self.started.elapsed().as_secs_f64();
        let mut state = self.lock();
        let phase = state.phases.last_mut().map_or_else(String::new, |p| {
            p.violations += 1;
            p.name.clone()
        });
        if let Some(file) = state.violations.as_mut() {
            let _ = writeln!(
                file,
                "t={at:.3}s phase={phase:?} user={user} requests={} : {what}",
                request_ids.join(",")
            );
        }
    }

    /// The phases so far.
    #[must_use]
    pub(crate) fn phases(&self) -> Vec<Phase> {
        self.lock().phases.clone()
    }

    /// The last phase's figures so far.
    #[must_use]
    pub(crate) fn current(&self) -> Option<Phase> {
        self.lock().phases.last().cloned()
    }

    /// The per-second series: (second, requests, p50 ms, p99 ms).
    #[must_use]
    pub(crate) fn series(&self) -> Vec<(u64, u64, f64, f64)> {
        self.lock()
            .seconds
            .iter()
            .map(|(s, v)| {
                (
                    *s,
                    v.requests,
                    ms(v.latency.value_at_quantile(0.5)),
                    ms(v.latency.value_at_quantile(0.99)),
                )
            })
            .collect()
    }

    /// Seconds since the run started.
    #[must_use]
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Microseconds as milliseconds.
#[must_use]
pub(crate) fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}
