//! How long a stored value lives: [`Ttl`].

use std::time::Duration;

use crate::error::{Error, Result};

/// How long a value stays in the cache.
///
/// Every operation that stores takes `impl Into<Ttl>`, so a [`Duration`] works directly.
/// Sub-second durations work on every backend (Redis gets `PX`, in milliseconds, rounded up).
///
/// ```
/// use std::time::Duration;
/// use cache_core::{Cache, Ttl};
///
/// # async fn run() -> cache_core::Result<()> {
/// let cache = Cache::memory();
/// cache.set("a", &1_u32, Duration::from_secs(60)).await?;   // a Duration is a Ttl
/// cache.set("b", &2_u32, Ttl::Default).await?;              // the cache's default TTL
/// cache.set("c", &3_u32, Ttl::Never).await?;                // until deleted or evicted
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Ttl {
    /// The default TTL set with [`CacheBuilder::default_ttl`](crate::CacheBuilder::default_ttl);
    /// without one, the value does not expire.
    #[default]
    Default,
    /// Expire after this long. Zero is rejected as invalid input; a century or more counts as
    /// [`Ttl::Never`] (Redis cannot represent the instant).
    After(Duration),
    /// Never expire (the value can still be deleted, or evicted under memory pressure).
    Never,
}

impl Ttl {
    /// A TTL of `secs` seconds, the unit of the `expire = ..` macro option.
    ///
    /// ```
    /// # use cache_core::Ttl;
    /// assert_eq!(Ttl::secs(1800), Ttl::After(std::time::Duration::from_secs(1800)));
    /// ```
    #[must_use]
    pub const fn secs(secs: u64) -> Self {
        Self::After(Duration::from_secs(secs))
    }

    /// The expiry this TTL gives on a cache whose default is `default`: `None` means never.
    pub(crate) fn resolve(self, default: Option<Duration>) -> Result<Option<Duration>> {
        match self {
            Self::Default => Ok(default),
            Self::Never => Ok(None),
            Self::After(d) if d.is_zero() => Err(Error::invalid_input(
                "a TTL of zero would expire the value before anyone reads it; use a positive duration or Ttl::Never",
            )),
            Self::After(d) if d >= CENTURY => Ok(None),
            Self::After(d) => Ok(Some(d)),
        }
    }
}

/// From this TTL on a value never expires.
const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl From<Duration> for Ttl {
    fn from(d: Duration) -> Self {
        Self::After(d)
    }
}

impl From<Option<Duration>> for Ttl {
    /// `None` is the cache's default TTL.
    fn from(d: Option<Duration>) -> Self {
        d.map_or(Self::Default, Self::After)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_against_the_default() {
        let default = Some(Duration::from_secs(5));
        assert_eq!(Ttl::Default.resolve(default).ok(), Some(default));
        assert_eq!(Ttl::Default.resolve(None).ok(), Some(None));
        assert_eq!(Ttl::Never.resolve(default).ok(), Some(None));
        assert_eq!(
            Ttl::secs(2).resolve(default).ok(),
            Some(Some(Duration::from_secs(2)))
        );
        assert!(
            Ttl::After(Duration::ZERO)
                .resolve(default)
                .is_err_and(|e| e.is_invalid_input())
        );
    }
}
