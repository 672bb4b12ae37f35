//! The crate's one error type, with a kind the caller can match on.

use std::fmt;
use std::time::Duration;

/// What went wrong, in terms a caller can act on.
///
/// Matched by callers of the direct operations (`get`, `set`, ...). The read-through operations
/// (`get_or_insert_with` and friends) never surface these: they count, log, and load instead.
///
/// ```
/// use cache_core::{Cache, ErrorKind};
///
/// # async fn run() {
/// let err = Cache::connect("redis//localhost").await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Config);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration or URL is invalid; fix it and build the cache again.
    Config,
    /// The backend could not be reached when the cache was built.
    Connect,
    /// The backend could not be reached or the connection broke mid-operation; also a server
    /// that says it cannot serve now (loading, cluster down, busy).
    Backend,
    /// The backend answered, refusing the command (a wrong type under the key, an ACL denial):
    /// the backend is up, so this does not count towards the circuit breaker.
    Rejected,
    /// The backend did not answer within the operation timeout.
    Timeout,
    /// The circuit breaker is open after repeated failures: the backend is skipped for a cool-down.
    CircuitOpen,
    /// A value could not be encoded (a value that fails to *decode* is a miss, not an error).
    Codec,
    /// An argument is invalid: a malformed glob pattern, a zero TTL.
    InvalidInput,
    /// The backend does not offer what was asked (a custom [`Backend`](crate::Backend) without
    /// Pub/Sub, say): a configuration problem, not an outage.
    Unsupported,
}

impl ErrorKind {
    /// A short lowercase name, used as the `kind` label of the error metric.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Connect => "connect",
            Self::Backend => "backend",
            Self::Rejected => "rejected",
            Self::Timeout => "timeout",
            Self::CircuitOpen => "circuit_open",
            Self::Codec => "codec",
            Self::InvalidInput => "invalid_input",
            Self::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The error of every fallible operation in this crate.
///
/// The message says what happened and, where there is one, what to do about it.
/// Connection URLs in messages never show a password.
///
/// ```
/// use cache_core::{Cache, ErrorKind};
///
/// # async fn run() {
/// let cache = Cache::memory();
/// let err = cache.delete_pattern("meals:[7").await.unwrap_err();
/// assert!(err.is_invalid_input());
/// assert!(err.to_string().contains("unclosed '['"));
/// # }
/// ```
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Source>,
}

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` saying `message`: for a custom [`Backend`](crate::Backend), which
    /// reports its failures in the kinds the cache's failure policy acts on
    /// ([`ErrorKind::Backend`] and [`ErrorKind::Timeout`] count towards the circuit breaker,
    /// [`ErrorKind::Rejected`] does not).
    ///
    /// ```
    /// use cache_core::{Error, ErrorKind};
    ///
    /// let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    /// let err = Error::new(ErrorKind::Backend, "memcached is unavailable").with_source(io);
    /// assert!(err.is_unavailable());
    /// assert_eq!(err.to_string(), "memcached is unavailable: connection reset");
    /// ```
    #[must_use]
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// This error, caused by `source` (shown after the message, and by
    /// [`source`](std::error::Error::source)).
    #[must_use]
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    pub(crate) fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    pub(crate) fn timeout(operation: &str, after: Duration) -> Self {
        Self::new(
            ErrorKind::Timeout,
            format!(
                "cache {operation} timed out after {after:?}; the backend is slow or unreachable"
            ),
        )
    }

    pub(crate) fn unsupported(backend: &str, what: &str) -> Self {
        Self::new(
            ErrorKind::Unsupported,
            format!("the {backend} backend does not support {what}"),
        )
    }

    pub(crate) fn circuit_open(operation: &str) -> Self {
        Self::new(
            ErrorKind::CircuitOpen,
            format!(
                "cache {operation} skipped: the circuit breaker is open after repeated backend failures"
            ),
        )
    }

    /// What kind of failure this is.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// True when the backend did not answer within the operation timeout.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// True when the operation was skipped because the circuit breaker is open.
    #[must_use]
    pub fn is_circuit_open(&self) -> bool {
        self.kind == ErrorKind::CircuitOpen
    }

    /// True when the backend is unavailable: a broken or refused connection, a timeout, an open
    /// breaker. These count towards the circuit breaker.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Backend | ErrorKind::Connect | ErrorKind::Timeout | ErrorKind::CircuitOpen
        )
    }

    /// True when the configuration or URL is invalid.
    #[must_use]
    pub fn is_config(&self) -> bool {
        self.kind == ErrorKind::Config
    }

    /// True when an argument was invalid (a malformed pattern, a zero TTL).
    #[must_use]
    pub fn is_invalid_input(&self) -> bool {
        self.kind == ErrorKind::InvalidInput
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(source) = &self.source {
            d.field("source", &format_args!("{source}"));
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

// The conversions from the dependencies' errors are crate-private functions, not `From` impls:
// a public `From<redis::RedisError>` would tie this crate's semver to redis's. The dependency's
// error stays reachable as the source.
impl Error {
    /// A redis error, in the kind the failure policy acts on.
    #[cfg(feature = "redis")]
    pub(crate) fn redis(err: redis::RedisError) -> Self {
        use redis::{ErrorKind as K, ServerErrorKind as S};
        let unavailable = err.is_io_error()
            || err.is_connection_refusal()
            || err.is_connection_dropped()
            || err.is_unrecoverable_error()
            || matches!(
                err.kind(),
                K::Server(
                    S::BusyLoading | S::TryAgain | S::ClusterDown | S::MasterDown | S::ReadOnly
                ) | K::ClusterConnectionNotFound
            )
            || err.code() == Some("BUSY");
        let (kind, message) = if err.is_timeout() {
            (ErrorKind::Timeout, "redis did not answer in time")
        } else if unavailable {
            (ErrorKind::Backend, "redis is unavailable")
        } else {
            (ErrorKind::Rejected, "redis refused the command")
        };
        // RedisError's Display never includes the connection password.
        Self::new(kind, message).with_source(err)
    }

    pub(crate) fn bincode(err: bincode::error::EncodeError) -> Self {
        Self::new(ErrorKind::Codec, "bincode could not encode the value").with_source(err)
    }

    pub(crate) fn json(err: serde_json::Error) -> Self {
        Self::new(ErrorKind::Codec, "JSON codec failed").with_source(err)
    }
}
