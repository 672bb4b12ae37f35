//! Read replicas: which database answers a read when `DATABASE_READ_URL` names a replica, how a
//! user who just wrote reads their own write, and the fallback to the primary when the replica
//! is down.
//!
//! # Routing
//!
//! Writes, transactions and the reads a write depends on (the quota check of an upload, the meal
//! a delete is about to delete, login) always use the primary pool. Other reads go through
//! [`Database::read`](crate::db::Database::read), which picks the pool:
//!
//! 1. no replica configured: the primary (the SQLite stack and a single MySQL are unchanged);
//! 2. the user wrote in the last `READ_YOUR_WRITES_SECONDS` (default 5): the primary;
//! 3. the replica is marked down: the primary;
//! 4. otherwise the replica; if it fails, the primary answers the same read.
//!
//! # Read-your-writes: a per-user marker, not GTID
//!
//! After a user's write commits, [`Database::wrote`](crate::db::Database::wrote) records a
//! marker that lives `READ_YOUR_WRITES_SECONDS`: in this process (a map lookup) and, when the
//! app has a Redis, under `calories:wrote:{user}` in the Redis of the rate limiter and the
//! sessions (`RATE_LIMIT_URL`, else `CACHE_URL`), so a write served by one app replica sends
//! that user's reads on every app replica to the primary. Not in the cache: a cache Redis
//! evicts keys under pressure (an evicted marker is a stale read), and marker lookups would
//! count as cache misses and sink the hit ratio the alerts watch. A marker that cannot be read
//! (Redis down or slower than [`MARKER_BUDGET`]) sends the read to the primary: correct, only
//! slower. The marker is set *before* the write's cache
//! invalidation, and the cached reads' loaders choose their pool when they run, so a day or a
//! stat reloaded after a write comes from the primary and the cache never stores a day without
//! the meal just logged (a load that had already chosen the replica before the write is caught
//! by the tag versions of [`crate::cached`]: what it stores is already a miss).
//!
//! The alternative, GTID (take `@@last_gtid` on the write's connection, then
//! `MASTER_GTID_WAIT` on the replica before reading), is exact whatever the lag but needs every
//! write to run on a held connection and every marked read to wait on the replica; it is
//! MariaDB-only (MySQL spells it `WAIT_FOR_EXECUTED_GTID_SET`). The marker works for every
//! write path as it is, costs one Redis `GET` per routed read, and its one assumption is stated
//! here: **the replica's lag must stay under `READ_YOUR_WRITES_SECONDS`**. A replica lagging
//! longer can show (and cache) a day without a meal written more than the window ago; alert on
//! replication lag (`Seconds_Behind_Master`) well under the window, or raise the window.
//!
//! # A dead replica
//!
//! The replica pool connects lazily (a replica that is down does not stop the app from
//! starting) and waits at most [`REPLICA_ACQUIRE_TIMEOUT`] for a connection. A read that fails
//! on the replica because it cannot be reached marks the replica down for [`REPLICA_RETRY`]:
//! meanwhile every read goes straight to the primary, and afterwards the next read tries the
//! replica again, so a replica that comes back is used again by itself. Each time the replica is
//! marked down one warning is logged (so at most one per [`REPLICA_RETRY`], not one per
//! request). A statement the replica refuses (say a column a migration added that has not
//! replicated yet) is answered by the primary without marking the replica down.
//!
//! Metrics: `db_replica_fallbacks_total{reason}` counts the reads the primary answered instead
//! of the replica (`reason="unreachable"` for a failed or marked-down replica, `"error"` for a
//! refused statement), and the gauge `db_replica_up` is 1 while the replica answers, 0 while it
//! is marked down.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::AnyPool;

use crate::outage::Outage;
use crate::redis_conn::SharedRedis;

/// The longest a read waits for a replica connection before the primary answers instead.
pub const REPLICA_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a replica that failed is left alone before a read tries it again.
pub const REPLICA_RETRY: Duration = Duration::from_secs(5);

/// The default of `READ_YOUR_WRITES_SECONDS`.
pub const DEFAULT_READ_YOUR_WRITES: Duration = Duration::from_secs(5);

/// The longest a marker lookup or store in Redis may take.
pub const MARKER_BUDGET: Duration = Duration::from_millis(250);

/// Local markers kept before the expired ones are first swept.
const SWEEP_AT: usize = 4096;

/// The users who wrote recently, in this process, and the size at which the next sweep of the
/// expired ones runs: twice what the last sweep left (at least [`SWEEP_AT`]), so a map of
/// many live markers is not walked on every write (amortised O(1) per write).
#[derive(Debug, Default)]
struct Writers {
    until: HashMap<i64, Instant>,
    sweep_at: usize,
}

/// A read replica: its pool, whether it is up, and who wrote recently.
#[derive(Debug)]
pub struct Replica {
    pool: AnyPool,
    window: Duration,
    shared: Option<SharedRedis>,
    down_until: Mutex<Option<Instant>>,
    writers: Mutex<Writers>,
}

impl Replica {
    /// A replica over `pool`; a user who wrote reads from the primary for `window`, on every
    /// app replica that shares the Redis `shared`.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// sqlx::any::install_default_drivers();
    /// let pool = sqlx::any::AnyPoolOptions::new().connect_lazy("sqlite::memory:").unwrap();
    /// let replica = calories_app::replica::Replica::new(pool, Duration::from_secs(5), None);
    /// assert_eq!(replica.window(), Duration::from_secs(5));
    /// # });
    /// ```
    #[must_use]
    pub fn new(pool: AnyPool, window: Duration, shared: Option<SharedRedis>) -> Self {
        metrics::gauge!("db_replica_up").set(1.0);
        Self {
            pool,
            window,
            shared,
            down_until: Mutex::new(None),
            writers: Mutex::new(Writers {
                until: HashMap::new(),
                sweep_at: SWEEP_AT,
            }),
        }
    }

    /// The replica's pool.
    #[must_use]
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// How long a user who wrote reads from the primary.
    #[must_use]
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Records that `user` just wrote: here, and in Redis for the other app replicas.
    pub async fn wrote(&self, user: i64) {
        let now = Instant::now();
        if let Ok(mut writers) = self.writers.lock() {
            if writers.until.len() >= writers.sweep_at {
                writers.until.retain(|_, until| *until > now);
                writers.sweep_at = (writers.until.len() * 2).max(SWEEP_AT);
            }
            writers.until.insert(user, now + self.window);
        }
        let Some(redis) = &self.shared else { return };
        let millis = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        let set = redis::cmd("SET")
            .arg(marker_key(user))
            .arg(1)
            .arg("PX")
            .arg(millis)
            .to_owned();
        let stored = tokio::time::timeout(MARKER_BUDGET, redis.query::<()>(&set)).await;
        if !matches!(stored, Ok(Ok(()))) {
            // This replica still routes the user to the primary; the others may not.
            tracing::warn!(user, "cannot share the read-your-writes marker in Redis");
        }
    }

    /// Whether `user`'s reads must see the primary: a live marker here or in Redis. A Redis
    /// that cannot be asked sends the read to the primary (correct, only slower).
    async fn must_read_primary(&self, user: i64) -> bool {
        let now = Instant::now();
        let local = self.writers.lock().map_or(true, |w| {
            w.until.get(&user).is_some_and(|until| *until > now)
        });
        if local {
            return true;
        }
        let Some(redis) = &self.shared else {
            return false;
        };
        let get = redis::cmd("GET").arg(marker_key(user)).to_owned();
        let marker = tokio::time::timeout(MARKER_BUDGET, redis.query::<Option<u8>>(&get)).await;
        !matches!(marker, Ok(Ok(None)))
    }

    fn is_down(&self) -> bool {
        self.down_until
            .lock()
            .is_ok_and(|d| d.is_some_and(|until| until > Instant::now()))
    }

    fn mark_down(&self, err: &sqlx::Error) {
        if let Ok(mut down) = self.down_until.lock() {
            *down = Some(Instant::now() + REPLICA_RETRY);
        }
        metrics::gauge!("db_replica_up").set(0.0);
        tracing::warn!(
            error = %err,
            retry_in_s = REPLICA_RETRY.as_secs(),
            "the read replica is unreachable: reads go to the primary until it answers again"
        );
    }

    fn mark_up(&self) {
        let was_down = self.down_until.lock().is_ok_and(|mut d| d.take().is_some());
        if was_down {
            metrics::gauge!("db_replica_up").set(1.0);
            tracing::info!("the read replica answers again: reads go to it");
        }
    }

    /// Runs `query` on the pool the module docs describe, falling back to `primary`, which
    /// `outage` guards (a primary known to be unreachable refuses at once, as without a replica).
    pub(crate) async fn read<T, F, Fut>(
        &self,
        primary: &AnyPool,
        outage: &Outage,
        user: Option<i64>,
        query: F,
    ) -> Result<T, sqlx::Error>
    where
        F: Fn(AnyPool) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let on_primary = || outage.run(query(primary.clone()));
        let own_write = match user {
            Some(user) => self.must_read_primary(user).await,
            None => false,
        };
        if own_write {
            return on_primary().await;
        }
        if self.is_down() {
            fallback("unreachable");
            return on_primary().await;
        }
        match query(self.pool.clone()).await {
            Ok(value) => {
                self.mark_up();
                Ok(value)
            }
            Err(err) if is_unreachable(&err) => {
                self.mark_down(&err);
                fallback("unreachable");
                on_primary().await
            }
            // Not found is an answer, the same on both.
            Err(sqlx::Error::RowNotFound) => Err(sqlx::Error::RowNotFound),
            Err(err) => {
                tracing::debug!(error = %err, "the read replica refused a read; the primary answers");
                fallback("error");
                on_primary().await
            }
        }
    }
}

/// The Redis key of `user`'s marker (in the `calories*` keys the app's ACL user may touch).
fn marker_key(user: i64) -> String {
    format!("calories:wrote:{user}")
}

fn fallback(reason: &'static str) {
    metrics::counter!("db_replica_fallbacks_total", "reason" => reason).increment(1);
}

/// Whether `err` says the replica cannot be reached (rather than that it refused a statement).
fn is_unreachable(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_)
    )
}
