//! How a read-through ages what it stores: [`Expiry`], a TTL plus an optional stale window in
//! which the old value is served when the loader fails or is slow, and an optional point from
//! which hits start a background refresh; and what else the stored value depends on: its tags,
//! and whether one replica at a time may load it.

use std::time::Duration;

use crate::ttl::Ttl;

/// The lifetime of a value stored by a read-through
/// ([`Cache::get_or_try_insert_with`](crate::Cache::get_or_try_insert_with)): fresh for its
/// [`Ttl`], then, with [`stale`](Expiry::stale), kept that much longer so that a failing or slow
/// loader does not fail the request while an older answer exists.
///
/// A [`Duration`] or a [`Ttl`] is an `Expiry` without a stale window, so existing calls keep
/// their meaning.
///
/// ```
/// use std::time::Duration;
/// use cache_core::{Cache, Expiry};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Cache::memory();
/// // Fresh for a minute; for ten more, served when the database fails or takes over 200 ms.
/// let expiry = Expiry::new(Duration::from_secs(60))
///     .stale(Duration::from_secs(600))
///     .soft_timeout(Duration::from_millis(200));
/// let total: Result<u32, String> = cache
///     .get_or_try_insert_with("kcal:7", expiry, || async { Ok(2100) })
///     .await;
/// assert_eq!(total, Ok(2100));
/// # }
/// ```
///
/// While fresh, the value is a hit. Past its TTL, plain [`get`](crate::Cache::get) sees a miss,
/// and a read-through runs the loader (once per key, as always): its value replaces the old
/// one; if it fails, or runs past the soft timeout, the stale value is returned instead (and
/// counted in `cache_stale_served_total`), until the stale window closes too.
///
/// Two options concern replicas rather than time: [`tags`](Expiry::tags) end the value early
/// when one of its tags is invalidated, and [`lock`](Expiry::lock) makes one replica load it
/// while the others wait for its value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Expiry {
    pub(crate) ttl: Ttl,
    pub(crate) stale: Duration,
    pub(crate) soft_timeout: Option<Duration>,
    pub(crate) refresh_ahead: Option<f64>,
    pub(crate) tags: Vec<String>,
    pub(crate) lock: Option<Duration>,
}

/// How long a locked read-through waits for another replica's load, and how long a lease
/// lasts, unless set with [`Expiry::lock_timeout`].
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

impl Expiry {
    /// Fresh for `ttl`, no stale window.
    pub fn new(ttl: impl Into<Ttl>) -> Self {
        Self {
            ttl: ttl.into(),
            stale: Duration::ZERO,
            soft_timeout: None,
            refresh_ahead: None,
            tags: Vec::new(),
            lock: None,
        }
    }

    /// Keeps the value `window` past its TTL, to be served when the loader fails or exceeds the
    /// soft timeout. Ignored for values stored without a TTL (they never go stale).
    #[must_use]
    pub fn stale(mut self, window: Duration) -> Self {
        self.stale = window;
        self
    }

    /// With a stale value at hand, a loader still running after `limit` is abandoned (dropped)
    /// and the stale value served. Without a stale value the loader always runs to the end.
    #[must_use]
    pub fn soft_timeout(mut self, limit: Duration) -> Self {
        self.soft_timeout = Some(limit);
        self
    }

    /// With [`Cache::get_or_refresh`](crate::Cache::get_or_refresh): a hit after `fraction` of
    /// the TTL (say `0.8`) still answers at once with the current value, and starts one
    /// background reload for the key, so a hot key is replaced before it expires and no caller
    /// ever waits for it. A fraction outside `0 < f < 1` turns it off.
    #[must_use]
    pub fn refresh_ahead(mut self, fraction: f64) -> Self {
        self.refresh_ahead = (fraction > 0.0 && fraction < 1.0).then_some(fraction);
        self
    }

    /// Stores the value under these tags: [`Cache::invalidate_tag`](crate::Cache::invalidate_tag)
    /// of any of them turns it into a miss, on every replica. The tags' versions are read before
    /// the loader runs, so a tag invalidated while it runs also voids what it returns.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_core::{Cache, Expiry};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_core::Result<()> {
    /// let cache = Cache::memory();
    /// let expiry = Expiry::new(Duration::from_secs(600)).tags(["user:42"]);
    /// let day = cache.get_or_insert_with("daily:42:2026-11-26", expiry, || async { 2100_u32 }).await;
    /// cache.invalidate_tag("user:42").await?;
    /// assert_eq!(cache.get::<u32>("daily:42:2026-11-26").await?, None);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn tags<I>(mut self, tags: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// One loader per key across replicas: on a miss, the replica that takes a lease on Redis
    /// (`SET NX PX` with a random token) runs the loader; the others poll for its value (from
    /// 2 ms, doubling to 50 ms), and run the loader themselves only after
    /// [`DEFAULT_LOCK_TIMEOUT`] (or [`lock_timeout`](Expiry::lock_timeout)). The lease
    /// expires after the same time, so a crashed owner holds no one up for longer, and only its
    /// owner's token releases it. Within one process, concurrent misses already share one load;
    /// on the memory backend this changes nothing.
    #[must_use]
    pub fn lock(mut self) -> Self {
        self.lock = Some(self.lock.unwrap_or(DEFAULT_LOCK_TIMEOUT));
        self
    }

    /// [`lock`](Expiry::lock), waiting at most `timeout` for another replica's load (and
    /// leasing for as long): set it above the loader's usual time.
    #[must_use]
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock = Some(timeout.max(Duration::from_millis(1)));
        self
    }

    /// The TTL: how long the value is fresh.
    #[must_use]
    pub fn ttl(&self) -> Ttl {
        self.ttl
    }

    /// How long past its TTL the value may still be served on failure.
    #[must_use]
    pub fn stale_window(&self) -> Duration {
        self.stale
    }

    /// The soft timeout, if set: how long a loader may run before the stale value answers.
    ///
    /// ```
    /// use std::time::Duration;
    /// let expiry = cache_core::Expiry::new(Duration::from_secs(60))
    ///     .stale(Duration::from_secs(600))
    ///     .soft_timeout(Duration::from_millis(200));
    /// assert_eq!(expiry.soft_timeout_limit(), Some(Duration::from_millis(200)));
    /// ```
    #[must_use]
    pub fn soft_timeout_limit(&self) -> Option<Duration> {
        self.soft_timeout
    }

    /// The refresh-ahead fraction of the TTL, if set.
    ///
    /// ```
    /// let expiry = cache_core::Expiry::new(std::time::Duration::from_secs(60)).refresh_ahead(0.8);
    /// assert_eq!(expiry.refresh_ahead_fraction(), Some(0.8));
    /// ```
    #[must_use]
    pub fn refresh_ahead_fraction(&self) -> Option<f64> {
        self.refresh_ahead
    }

    /// The tags the value is stored under.
    ///
    /// ```
    /// let expiry = cache_core::Expiry::new(std::time::Duration::from_secs(60)).tags(["user:7"]);
    /// assert_eq!(expiry.tag_list(), ["user:7"]);
    /// ```
    #[must_use]
    pub fn tag_list(&self) -> &[String] {
        &self.tags
    }

    /// With [`lock`](Expiry::lock), how long another replica's load is waited for (and a lease
    /// lasts); `None` without the lock.
    ///
    /// ```
    /// use cache_core::{DEFAULT_LOCK_TIMEOUT, Expiry};
    /// let expiry = Expiry::new(std::time::Duration::from_secs(60));
    /// assert_eq!(expiry.lock_wait(), None);
    /// assert_eq!(expiry.lock().lock_wait(), Some(DEFAULT_LOCK_TIMEOUT));
    /// ```
    #[must_use]
    pub fn lock_wait(&self) -> Option<Duration> {
        self.lock
    }
}

impl From<Ttl> for Expiry {
    fn from(ttl: Ttl) -> Self {
        Self::new(ttl)
    }
}

impl From<Duration> for Expiry {
    fn from(ttl: Duration) -> Self {
        Self::new(ttl)
    }
}

impl From<Option<Duration>> for Expiry {
    /// `None` is the cache's default TTL.
    fn from(ttl: Option<Duration>) -> Self {
        Self::new(ttl)
    }
}
