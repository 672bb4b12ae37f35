//! The failure policy's moving parts: a circuit breaker and a rate limit for warnings.
//!
//! Written by hand: the breaker crates on crates.io are either unmaintained or built around
//! their own future wrappers and retry policies; what the cache needs is a lock-free
//! closed / open / half-open state checked on every remote call, which is a few atomics.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Skips the backend after `threshold` consecutive failures, for `cool_down`; then lets one
/// probe through, which closes the breaker on success and reopens it on failure.
#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cool_down: Duration,
    origin: Instant,
    consecutive_failures: AtomicU32,
    /// Milliseconds since `origin` until which the breaker is open; 0 when closed.
    open_until: AtomicU64,
    probing: AtomicBool,
    gauge: ::metrics::Gauge,
}

/// What the breaker says about one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permit {
    /// Closed: call the backend.
    Call,
    /// Half-open: this call is the one probe.
    Probe,
    /// Open: skip the backend.
    Skip,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cool_down: Duration, gauge: ::metrics::Gauge) -> Self {
        gauge.set(0.0);
        Self {
            threshold: threshold.max(1),
            cool_down,
            origin: Instant::now(),
            consecutive_failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            gauge,
        }
    }

    fn now(&self) -> u64 {
        // +1 so that "now" is never 0, the closed marker.
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    pub(crate) fn permit(&self) -> Permit {
        let open_until = self.open_until.load(Ordering::Acquire);
        if open_until == 0 {
            return Permit::Call;
        }
        if self.now() < open_until {
            return Permit::Skip;
        }
        match self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Permit::Probe,
            Err(_) => Permit::Skip,
        }
    }

    /// Starts one backend call, or `None` when the breaker says to skip the backend.
    /// `bounded`: the call has a timeout; only such calls may be the half-open probe, so that a
    /// long scan cannot hold the probe while every other call is skipped.
    pub(crate) fn attempt(&self, bounded: bool) -> Option<Attempt<'_>> {
        match self.permit() {
            Permit::Skip => None,
            Permit::Probe if !bounded => {
                self.probing.store(false, Ordering::Release);
                None
            }
            permit => Some(Attempt {
                breaker: self,
                permit,
                resolved: false,
            }),
        }
    }

    /// Starts a call that is sent whatever the breaker says: an invalidation. Skipping one
    /// because this replica saw the backend fail, while other replicas reach it and serve what
    /// they cached, would leave their copy stale for its whole TTL. While open, it goes as a
    /// plain call (never the probe): a success closes the breaker, a failure is counted.
    pub(crate) fn attempt_anyway(&self, bounded: bool) -> Attempt<'_> {
        self.attempt(bounded).unwrap_or(Attempt {
            breaker: self,
            permit: Permit::Call,
            resolved: false,
        })
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Acquire) != 0
    }

    pub(crate) fn on_success(&self, permit: Permit) {
        if permit == Permit::Probe || self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
            if self.open_until.swap(0, Ordering::AcqRel) != 0 {
                self.gauge.set(0.0);
                tracing::info!("cache backend answers again: circuit breaker closed");
            }
            self.probing.store(false, Ordering::Release);
        }
    }

    pub(crate) fn on_failure(&self, permit: Permit) {
        if permit == Permit::Probe {
            self.open_until
                .store(self.now() + millis(self.cool_down), Ordering::Release);
            self.probing.store(false, Ordering::Release);
            return;
        }
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.threshold
            && self
                .open_until
                .compare_exchange(
                    0,
                    self.now() + millis(self.cool_down),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
        {
            self.gauge.set(1.0);
            tracing::warn!(
                failures,
                cool_down = ?self.cool_down,
                "cache backend keeps failing: circuit breaker open, skipping it for the cool-down"
            );
        }
    }
}

/// One call the breaker let through. Resolve it with [`Attempt::succeeded`] or
/// [`Attempt::failed`]; dropped unresolved (the caller's future was cancelled), it gives the
/// probe back so that the next call can probe, instead of leaving the breaker half-open forever.
#[derive(Debug)]
pub(crate) struct Attempt<'a> {
    breaker: &'a Breaker,
    permit: Permit,
    resolved: bool,
}

impl Attempt<'_> {
    pub(crate) fn succeeded(mut self) {
        self.resolved = true;
        self.breaker.on_success(self.permit);
    }

    pub(crate) fn failed(mut self) {
        self.resolved = true;
        self.breaker.on_failure(self.permit);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.resolved && self.permit == Permit::Probe {
            self.breaker.probing.store(false, Ordering::Release);
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2)
}

/// Lets one warning through per interval; the rest go to debug.
#[derive(Debug)]
pub(crate) struct WarnLimiter {
    origin: Instant,
    interval: Duration,
    /// Milliseconds since `origin` of the last warning, plus one; 0 before the first.
    last: AtomicU64,
}

impl WarnLimiter {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            origin: Instant::now(),
            interval,
            last: AtomicU64::new(0),
        }
    }

    /// True when this event should be logged at warn.
    pub(crate) fn allow(&self) -> bool {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < millis(self.interval) {
            return false;
        }
        self.last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32, cool_down: Duration) -> Breaker {
        Breaker::new(threshold, cool_down, ::metrics::Gauge::noop())
    }

    #[test]
    fn opens_after_threshold_and_skips() {
        let b = breaker(3, Duration::from_secs(60));
        for _ in 0..2 {
            assert_eq!(b.permit(), Permit::Call);
            b.on_failure(Permit::Call);
        }
        assert!(!b.is_open());
        b.on_failure(Permit::Call);
        assert!(b.is_open());
        assert_eq!(b.permit(), Permit::Skip);
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = breaker(2, Duration::from_secs(60));
        b.on_failure(Permit::Call);
        b.on_success(Permit::Call);
        b.on_failure(Permit::Call);
        assert!(!b.is_open());
    }

    #[test]
    fn half_open_lets_exactly_one_probe_through() {
        let b = breaker(1, Duration::ZERO);
        b.on_failure(Permit::Call);
        assert!(b.is_open());
        assert_eq!(b.permit(), Permit::Probe);
        assert_eq!(
            b.permit(),
            Permit::Skip,
            "a second caller waits for the probe"
        );
        b.on_failure(Permit::Probe);
        assert!(b.is_open(), "a failed probe reopens");
        assert_eq!(b.permit(), Permit::Probe);
        b.on_success(Permit::Probe);
        assert!(!b.is_open());
        assert_eq!(b.permit(), Permit::Call);
    }

    #[test]
    fn a_cancelled_probe_is_given_back() {
        let b = breaker(1, Duration::ZERO);
        b.on_failure(Permit::Call);
        let probe = b.attempt(true);
        assert!(probe.is_some());
        assert!(b.attempt(true).is_none(), "one probe at a time");
        drop(probe); // the probing request was cancelled
        let next = b.attempt(true);
        assert!(next.is_some(), "the next call probes");
        next.into_iter().for_each(Attempt::succeeded);
        assert!(!b.is_open());
    }

    #[test]
    fn unbounded_calls_never_take_the_probe() {
        let b = breaker(1, Duration::ZERO);
        b.on_failure(Permit::Call);
        assert!(
            b.attempt(false).is_none(),
            "a scan is skipped while half-open"
        );
        assert!(
            b.attempt(true).is_some(),
            "and leaves the probe to a bounded call"
        );
    }

    #[test]
    fn warnings_are_rate_limited() {
        let w = WarnLimiter::new(Duration::from_secs(3600));
        assert!(w.allow());
        assert!(!w.allow());
        let every_time = WarnLimiter::new(Duration::ZERO);
        assert!(every_time.allow());
        assert!(every_time.allow());
    }
}
