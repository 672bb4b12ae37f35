//! What the app caches, under which keys, and what each write invalidates: the one place to read
//! to know why a user always reads their own writes.
//!
//! | key | holds | TTL | tags | dropped by |
//! |---|---|---|---|---|
//! | `profile:{user}` | `GET /users/me` | 10 min | | `PATCH /users/me` (delete) |
//! | `daily:{user}:{date}` | `GET /meals/daily` for one local day | 1 h | `user:{user}`, `day:{user}:{date}` | a meal written or deleted on that day (delete and tag `day:{user}:{date}`); `PATCH /users/me` (tag `user:{user}`) |
//! | `user_stats:{user}:{days}:{today}` | `GET /stats` (`#[cache_result]`) | 30 min | `user:{user}`, `stats:{user}` | any meal write (tag `stats:{user}`); `PATCH /users/me` (tag `user:{user}`) |
//! | `http:..` | `GET /foods` responses (the HTTP layer) | `max-age` | | never written by users |
//!
//! Tags make "everything about this user" one O(1) write (`invalidate_tag`), where a pattern
//! delete would scan the whole key space on every meal write; see cache-core's
//! `Cache::invalidate_tag`. The per-user entries are read from Redis every time
//! (`AppState::cache` has no local tier), so the next read after a write shows it on any
//! replica; only the shared `/foods` answers go through the local tier
//! (`AppState::shared_cache`, `CACHE_LOCAL_CAPACITY`).
//!
//! A day read after 80% of its hour is reloaded in the background (`get_or_refresh` with
//! `refresh_ahead(0.8)`), so a day in use never expires under its readers.
//!
//! The day view, the stats and the profile also keep a stale window (an hour past their TTL) in
//! which they are served when the database fails; a write deletes the entry, window included, so
//! the window never hides a user's own write.
//!
//! Every write runs through [`write()`]: a database connection first (a database that is down
//! fails the write there, before anything is invalidated, so the cached answers keep serving
//! reads through the outage), then the invalidation, the write, the read-your-writes marker
//! and the invalidation again, whatever the write's outcome, in a task of its own. A cache that
//! is down cannot be told, and the write still succeeds (the database is the truth); the entry
//! then ages out by its TTL, and the failure is logged and counted by cache-core.

use std::future::Future;

use cache_core::{Cache, Key, key};
use chrono::NaiveDate;
use sqlx::Any;
use sqlx::pool::PoolConnection;

use crate::app::AppState;
use crate::error::ApiError;

/// The key of a user's cached profile.
#[must_use]
pub fn profile(user: i64) -> Key {
    key!("profile", user)
}

/// The key of one user's day.
#[must_use]
pub fn daily(user: i64, date: NaiveDate) -> Key {
    key!("daily", user, date)
}

/// The prefix `#[cache_result]` puts before the stats' arguments.
pub const STATS_PREFIX: &str = "user_stats";

/// The tag of everything cached about one user's meals and profile (days and stats).
#[must_use]
pub fn user_tag(user: i64) -> String {
    format!("user:{user}")
}

/// The tag of one user's day: invalidated with the day's key on every meal write, because a tag
/// closes the cache-aside race a key delete leaves open. A read-through records its tags'
/// versions *before* its loader runs, so a load that began before a write and stores after the
/// write's invalidation stores a value that is already a miss; a delete alone would let that
/// old day stand for up to its hour.
#[must_use]
pub fn day_tag(user: i64, date: NaiveDate) -> String {
    format!("day:{user}:{date}")
}

/// The tag of one user's stats.
#[must_use]
pub fn stats_tag(user: i64) -> String {
    format!("stats:{user}")
}

/// What a write makes stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// A meal on this (local) day was logged or deleted: that day and every stat of the user.
    MealDay(NaiveDate),
    /// The profile changed: the profile, every day and every stat of the user.
    User,
}

/// Runs one write of `user`'s data, the only way the app writes:
///
/// 1. takes a database connection: a database that is down fails the write here, before
///    anything is invalidated, so a cached day keeps answering reads through the outage (and
///    while [`crate::outage`] knows it is down, at once, without waiting for the pool);
/// 2. invalidates what `stale` names, so that, should this process die between the commit and
///    step 4, no cached answer from before the write is left to outlive it (only one loaded in
///    the instant between the two could be); skipped while cache-core's breaker is open;
/// 3. runs `write` on the connection;
/// 4. sets the read-your-writes marker ([`crate::db::Database::wrote`]; before the
///    invalidation, so that a reload after it comes from the primary), then invalidates again,
///    whatever the write's outcome: a connection lost after the commit (the database
///    stopping) leaves the row written and the error a lie.
///
/// All of it runs to the end in a task of its own, whatever happens to the request: a request
/// future dropped halfway (the client went away, the request timeout fired) after the commit
/// and before the invalidation would leave the cached answer stale until its TTL.
///
/// # Errors
/// No connection within the pool's acquire timeout (503 `unavailable`), the write's own error;
/// a panic in it is a 500.
pub async fn write<T, W, F>(
    state: &AppState,
    user: i64,
    stale: Stale,
    write: W,
) -> Result<T, ApiError>
where
    W: FnOnce(PoolConnection<Any>) -> F + Send + 'static,
    F: Future<Output = Result<T, ApiError>> + Send + 'static,
    T: Send + 'static,
{
    let state = state.clone();
    let run = async move {
        state.db.outage.check()?;
        let conn = state.db.pool.acquire().await;
        state.db.outage.observe(&conn);
        let conn = conn?;
        // Not while cache-core's breaker is open: the cache is most likely down, and this
        // early invalidation only covers a process dying after the commit; the one after the
        // write is sent whatever the breaker says (cache-core sends invalidations anyway).
        if !state.cache.is_circuit_open() {
            forget(&state.cache, user, stale).await;
        }
        let written = write(conn).await;
        state.db.wrote(user).await;
        forget(&state.cache, user, stale).await;
        written
    };
    // In the request's span: what the write logs keeps the request's id.
    tokio::spawn(tracing::Instrument::in_current_span(run))
        .await
        .map_err(ApiError::internal)?
}

async fn forget(cache: &Cache, user: i64, stale: Stale) {
    match stale {
        Stale::MealDay(date) => forget_meal_day(cache, user, date).await,
        Stale::User => forget_user(cache, user).await,
    }
}

/// After a meal on `date` was written or deleted: that day and every stat of the user.
pub async fn forget_meal_day(cache: &Cache, user: i64, date: NaiveDate) {
    // The delete also drops the stale window; the tag closes the race (see `day_tag`). At
    // once: the three share one round trip's wait on the multiplexed connection.
    let (key, day, stats) = (daily(user, date), day_tag(user, date), stats_tag(user));
    let (deleted, day, stats) = tokio::join!(
        cache.delete(&key),
        cache.invalidate_tag(&day),
        cache.invalidate_tag(&stats)
    );
    absorb(cache, deleted.map(drop));
    absorb(cache, day);
    absorb(cache, stats);
}

/// After the profile changed: the profile, every day and every stat of the user.
pub async fn forget_user(cache: &Cache, user: i64) {
    let (key, tag) = (profile(user), user_tag(user));
    let (deleted, tagged) = tokio::join!(cache.delete(&key), cache.invalidate_tag(&tag));
    absorb(cache, deleted.map(drop));
    absorb(cache, tagged);
}

/// A failed invalidation is logged, never returned: the write it follows has already succeeded.
/// While cache-core's circuit breaker is open, at debug only: cache-core warned when it opened
/// and counts every failure, and a line per write through an outage would cost more CPU than
/// the writes.
fn absorb(cache: &Cache, result: cache_core::Result<()>) {
    match result {
        Ok(()) => {}
        Err(err) if err.kind() == cache_core::ErrorKind::CircuitOpen || cache.is_circuit_open() => {
            tracing::debug!(error = %err, "cache invalidation failed: the cache is cut off");
        }
        Err(err) => {
            tracing::warn!(error = %err, "cache invalidation failed; the entry will expire by its TTL");
        }
    }
}
