//! Metric names and the handles the cache records into, through the `metrics` facade.
//!
//! Every metric carries the labels `namespace` (the cache's namespace) and `backend`
//! (`memory` or `redis`). Install your recorder (Prometheus exporter, ...) before building a
//! cache: handles are registered once, when the cache is built, to keep hits cheap.
//!
//! | name | type | extra labels | meaning |
//! |---|---|---|---|
//! | `cache_hits_total` | counter | | reads that found a usable value |
//! | `cache_misses_total` | counter | | reads that found nothing |
//! | `cache_stale_total` | counter | `reason` | reads that found bytes that did not decode (other format, codec or shape) or a value of another type: counted as misses too |
//! | `cache_stale_served_total` | counter | `reason` | read-throughs that served a value past its TTL, inside its [`Expiry::stale`](crate::Expiry::stale) window, because the loader failed (`loader_error`) or exceeded the soft timeout (`loader_timeout`) |
//! | `cache_errors_total` | counter | `op`, `kind` | failed backend operations (`kind` is [`ErrorKind::as_str`](crate::ErrorKind::as_str)) |
//! | `cache_timeouts_total` | counter | `op` | backend operations that exceeded the operation timeout (also in errors) |
//! | `cache_breaker_open` | gauge | | 1 while the circuit breaker is open, else 0 |
//! | `cache_loader_runs_total` | counter | | loader calls made by read-throughs (misses that reached the database) |
//! | `cache_loads_revoked_total` | counter | | read-through values not stored because their key was deleted (`delete`, `delete_pattern`) while the loader ran |
//! | `cache_operation_seconds` | histogram | `op` | latency of remote backend operations (timed only when a recorder was installed before the cache was built, like every handle here) |
//! | `cache_invalidations_received_total` | counter | `event` | invalidations from other replicas applied to the local tier (`key`, `pattern`, `tag`) |
//! | `cache_lock_total` | counter | `outcome` | read-throughs with [`Expiry::lock`](crate::Expiry::lock): `acquired` (this replica loaded), `waited` (another replica's value arrived), `timed_out` (loaded after waiting the lock timeout), `unavailable` (loaded without the lease: Redis failed) |

use std::time::Instant;

use ::metrics::{Counter, Gauge, Histogram, Label, counter, gauge, histogram};

use crate::ErrorKind;

/// `cache_hits_total`
pub const HITS: &str = "cache_hits_total";
/// `cache_misses_total`
pub const MISSES: &str = "cache_misses_total";
/// `cache_stale_total`
pub const STALE: &str = "cache_stale_total";
/// `cache_errors_total`
pub const ERRORS: &str = "cache_errors_total";
/// Read-throughs that answered with a stale value because the loader failed or was too slow.
pub const STALE_SERVED: &str = "cache_stale_served_total";
/// `cache_timeouts_total`
pub const TIMEOUTS: &str = "cache_timeouts_total";
/// `cache_breaker_open`
pub const BREAKER_OPEN: &str = "cache_breaker_open";
/// `cache_loader_runs_total`
pub const LOADER_RUNS: &str = "cache_loader_runs_total";
/// `cache_loads_revoked_total`
pub const LOADS_REVOKED: &str = "cache_loads_revoked_total";
/// `cache_operation_seconds`
pub const OPERATION_SECONDS: &str = "cache_operation_seconds";
/// `cache_invalidations_received_total`
pub const INVALIDATIONS_RECEIVED: &str = "cache_invalidations_received_total";
/// `cache_lock_total`
pub const LOCK: &str = "cache_lock_total";

/// The backend operations, as the `op` label names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Get,
    GetMany,
    Set,
    SetMany,
    Delete,
    DeletePattern,
    Ping,
    /// Reading (and creating) tag versions for a tagged write.
    TagVersions,
    InvalidateTag,
    /// Announcing an invalidation to the other replicas.
    Publish,
    /// Taking or releasing a cross-replica loader lease.
    Lock,
    /// Claiming a key for a read-through's load (the lease a delete revokes).
    Lease,
}

impl Op {
    /// Whether the operation invalidates: sent even while the circuit breaker is open (see
    /// `Breaker::attempt_anyway`).
    pub(crate) fn invalidates(self) -> bool {
        matches!(
            self,
            Op::Delete | Op::DeletePattern | Op::InvalidateTag | Op::Publish
        )
    }

    const ALL: [Op; 12] = [
        Op::Get,
        Op::GetMany,
        Op::Set,
        Op::SetMany,
        Op::Delete,
        Op::DeletePattern,
        Op::Ping,
        Op::TagVersions,
        Op::InvalidateTag,
        Op::Publish,
        Op::Lock,
        Op::Lease,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::GetMany => "get_many",
            Op::Set => "set",
            Op::SetMany => "set_many",
            Op::Delete => "delete",
            Op::DeletePattern => "delete_pattern",
            Op::Ping => "ping",
            Op::TagVersions => "tag_versions",
            Op::InvalidateTag => "invalidate_tag",
            Op::Publish => "publish",
            Op::Lock => "lock",
            Op::Lease => "lease",
        }
    }
}

/// Handles registered once per cache.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    labels: Vec<Label>,
    pub(crate) hits: Counter,
    pub(crate) misses: Counter,
    pub(crate) loader_runs: Counter,
    pub(crate) load_revoked: Counter,
    /// `None` when no recorder was installed: then the clock is not read either.
    latency: Option<[Histogram; Op::ALL.len()]>,
    /// By op, then by error kind: registered up front, since an outage makes errors frequent.
    errors: [[Counter; ERROR_KINDS.len()]; Op::ALL.len()],
    timeouts: [Counter; Op::ALL.len()],
}

const ERROR_KINDS: [ErrorKind; 9] = [
    ErrorKind::Config,
    ErrorKind::Connect,
    ErrorKind::Backend,
    ErrorKind::Rejected,
    ErrorKind::Timeout,
    ErrorKind::CircuitOpen,
    ErrorKind::Codec,
    ErrorKind::InvalidInput,
    ErrorKind::Unsupported,
];

impl Metrics {
    pub(crate) fn new(namespace: &str, backend: &'static str) -> Self {
        let labels = vec![
            Label::new("namespace", namespace.to_owned()),
            Label::new("backend", backend),
        ];
        let by_op = |op: Op| with(&labels, "op", op.as_str());
        Self {
            hits: counter!(HITS, labels.clone()),
            misses: counter!(MISSES, labels.clone()),
            loader_runs: counter!(LOADER_RUNS, labels.clone()),
            load_revoked: counter!(LOADS_REVOKED, labels.clone()),
            latency: recorder_installed()
                .then(|| Op::ALL.map(|op| histogram!(OPERATION_SECONDS, by_op(op)))),
            errors: Op::ALL.map(|op| {
                ERROR_KINDS.map(|kind| counter!(ERRORS, with(&by_op(op), "kind", kind.as_str())))
            }),
            timeouts: Op::ALL.map(|op| counter!(TIMEOUTS, by_op(op))),
            labels,
        }
    }

    pub(crate) fn breaker_gauge(&self) -> Gauge {
        gauge!(BREAKER_OPEN, self.labels.clone())
    }

    /// The start of a timed backend operation, when its latency is recorded at all.
    pub(crate) fn start(&self) -> Option<Instant> {
        self.latency.as_ref().map(|_| Instant::now())
    }

    /// Records the latency of `op` begun at `started` (see [`start`](Self::start)).
    pub(crate) fn record_latency(&self, op: Op, started: Option<Instant>) {
        if let (Some(latency), Some(started)) = (&self.latency, started) {
            latency[op as usize].record(started.elapsed());
        }
    }

    /// Stale reads register on the spot: their reasons vary and they are off the hit path.
    pub(crate) fn stale(&self, reason: &'static str) {
        counter!(STALE, with(&self.labels, "reason", reason)).increment(1);
    }

    /// A stale value served in place of a failed or slow load.
    pub(crate) fn stale_served(&self, reason: &'static str) {
        counter!(STALE_SERVED, with(&self.labels, "reason", reason)).increment(1);
    }

    /// An invalidation from another replica, applied to the local tier.
    pub(crate) fn invalidation_received(&self, event: &'static str) {
        counter!(INVALIDATIONS_RECEIVED, with(&self.labels, "event", event)).increment(1);
    }

    /// How a locked read-through got its value.
    pub(crate) fn lock(&self, outcome: &'static str) {
        counter!(LOCK, with(&self.labels, "outcome", outcome)).increment(1);
    }

    pub(crate) fn error(&self, op: Op, kind: ErrorKind) {
        if let Some(i) = ERROR_KINDS.iter().position(|k| *k == kind) {
            self.errors[op as usize][i].increment(1);
        }
        if kind == ErrorKind::Timeout {
            self.timeouts[op as usize].increment(1);
        }
    }
}

/// Whether a `metrics` recorder is installed (globally, or locally for this thread). Without
/// one, every handle is a no-op, and timing operations for a no-op histogram costs two clock
/// reads per operation for nothing (about 2% of a Redis `GET`'s client work).
///
/// The `metrics` facade has no call for this; its no-op recorder is the one recorder of zero
/// size, as any recorder that records holds state. A recorder of zero size is taken for it.
fn recorder_installed() -> bool {
    ::metrics::with_recorder(|recorder| std::mem::size_of_val(recorder) != 0)
}

fn with(labels: &[Label], key: &'static str, value: &'static str) -> Vec<Label> {
    let mut all = labels.to_vec();
    all.push(Label::new(key, value));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_timed_only_under_a_recorder() {
        // No global recorder is installed in this test binary.
        assert!(!recorder_installed());
        assert!(Metrics::new("ns", "redis").start().is_none());

        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        ::metrics::with_local_recorder(&recorder, || {
            assert!(recorder_installed());
            let metrics = Metrics::new("ns", "redis");
            let started = metrics.start();
            assert!(started.is_some());
            metrics.record_latency(Op::Get, started);
        });
        let recorded = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .any(|(key, ..)| key.key().name() == OPERATION_SECONDS);
        assert!(recorded, "the latency of the GET was recorded");
    }
}
