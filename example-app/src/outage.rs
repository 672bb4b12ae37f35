//! Failing fast while the primary database is unreachable: after a connection to it could not
//! be had (the pool's wait ran out, the socket broke), database work fails at once with 503
//! `unavailable` for a second; then one request tries again (half-open) while the others keep
//! failing fast, and the first success ends the outage.
//!
//! Without it, every write and every cache miss through an outage waits out the pool's 5 s
//! acquire timeout, holding one of the server's `MAX_CONCURRENT_REQUESTS` slots: a few
//! hundred writes a second fill them all, and the cached reads that could have answered get
//! 503 `busy` (the capacity run's MariaDB stop showed exactly that). Cached reads never reach
//! this check; a miss with a stale copy at hand is served the copy (cache-core's fail-safe).
//!
//! Written by hand, a few atomics, as cache-core's breaker and the rate limiter's probe are: no
//! circuit-breaker crate fits a check that wraps sqlx's own pool.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long database work fails fast before one request tries again.
pub const COOL_DOWN: Duration = Duration::from_secs(1);

/// How long the one request trying again has before another may (the pool's acquire timeout,
/// with room).
const PROBE_WINDOW: Duration = Duration::from_secs(6);

/// Whether the primary is known to be unreachable, shared by every clone of the database.
/// Exported as `db_primary_up` (0 during an outage) and `db_fast_failures_total` (work refused
/// without asking the database).
#[derive(Debug)]
pub struct Outage {
    origin: Instant,
    /// Milliseconds since `origin` until which work fails fast; 0 while the primary is up.
    down_until: AtomicU64,
}

impl Default for Outage {
    fn default() -> Self {
        metrics::gauge!("db_primary_up").set(1.0);
        Self {
            origin: Instant::now(),
            down_until: AtomicU64::new(0),
        }
    }
}

impl Outage {
    fn now(&self) -> u64 {
        // +1 so that "now" is never 0, the marker of a primary that is up.
        u64::try_from(self.origin.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    fn millis(d: Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether work may go to the database now: always while it is up; during an outage, only
    /// for the one request that tries again once the cool-down is over.
    ///
    /// # Errors
    /// An I/O error saying the database is unreachable (503 `unavailable` with `Retry-After`).
    ///
    /// ```
    /// use calories_app::outage::Outage;
    /// let outage = Outage::default();
    /// assert!(outage.check().is_ok());
    /// outage.observe::<()>(&Err(sqlx::Error::PoolTimedOut));
    /// assert!(outage.is_down());
    /// assert!(outage.check().is_err(), "fails fast during the cool-down");
    /// outage.observe(&Ok(()));
    /// assert!(!outage.is_down());
    /// ```
    pub fn check(&self) -> Result<(), sqlx::Error> {
        let until = self.down_until.load(Ordering::Acquire);
        if until == 0 {
            return Ok(());
        }
        let now = self.now();
        let probe = now >= until
            && self
                .down_until
                .compare_exchange(
                    until,
                    now.saturating_add(Self::millis(PROBE_WINDOW)),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok();
        if probe {
            return Ok(());
        }
        metrics::counter!("db_fast_failures_total").increment(1);
        Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            "the database was unreachable a moment ago; not asked again until the next probe",
        )))
    }

    /// Records what a database call said: a connection that could not be had starts (or
    /// prolongs) an outage; anything else the database answered ends it.
    pub fn observe<T>(&self, result: &Result<T, sqlx::Error>) {
        let unreachable = matches!(
            result,
            Err(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed)
        );
        if unreachable {
            let until = self.now().saturating_add(Self::millis(COOL_DOWN));
            if self.down_until.swap(until, Ordering::AcqRel) == 0 {
                metrics::gauge!("db_primary_up").set(0.0);
                tracing::warn!(
                    "the database is unreachable: database work fails fast, one probe every {COOL_DOWN:?}"
                );
            }
        } else if self.down_until.swap(0, Ordering::AcqRel) != 0 {
            metrics::gauge!("db_primary_up").set(1.0);
            tracing::info!("the database answers again");
        }
    }

    /// Runs `work` on the primary under this check: refused at once during an outage (but for
    /// the probe), its outcome observed. `work` is a future, so it starts only if let through.
    ///
    /// # Errors
    /// What `work` returns; an I/O error while the primary is known to be unreachable.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use calories_app::outage::Outage;
    /// let outage = Outage::default();
    /// let failed = outage.run(async { Err::<(), _>(sqlx::Error::PoolTimedOut) }).await;
    /// assert!(failed.is_err() && outage.is_down());
    /// let refused = outage.run(async { Ok::<_, sqlx::Error>(1) }).await;
    /// assert!(refused.is_err(), "not run during the cool-down");
    /// # });
    /// ```
    pub async fn run<T>(
        &self,
        work: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        self.check()?;
        let result = work.await;
        self.observe(&result);
        result
    }

    /// Whether an outage is on (work fails fast but for the probes).
    #[must_use]
    pub fn is_down(&self) -> bool {
        self.down_until.load(Ordering::Acquire) != 0
    }
}
