//! The read-through: [`Cache::get_or_insert_with`] and its fallible and refresh-ahead twins.
//! One loader per key at a time (single-flight, and optionally one across replicas), a claim
//! that lets a delete win over a load already running, and the stale fallback.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::tags::tag_list;
use super::{Cache, Cacheable, Outcome, Remote, Store};
use crate::envelope::TagVersion;
use crate::error::Result;
use crate::expiry::Expiry;
use crate::flight::{Flight, Leader};
use crate::memory::Lookup;
use crate::metrics::Op;

/// What a locked read-through found before running its loader.
pub(super) enum Lease<T> {
    /// Another replica's load finished: its value.
    Value(T),
    /// This replica holds the lease under this token: it loads, then releases.
    Owner(Vec<u8>),
    /// No lease (Redis failed, or the wait timed out): load anyway.
    None,
}

/// How long a read-through's lease on its key lasts in Redis: a load that takes longer is not
/// stored. The lease of a replica that died mid-load expires by itself after this.
pub(super) const LOAD_LEASE: Duration = Duration::from_secs(60);

/// A running read-through's claim on its key, taken just before its loader runs: a `delete`
/// of the key, or a `delete_pattern` matching it, revokes the claim, and the loader's value is
/// then not stored. Without it, a load that read the database before a write would store its
/// older value after the write's invalidation, for the whole TTL. (Tags need no claim: their
/// versions are read before the loader runs, and a value stored under an old version is a miss.)
pub(super) struct Claim<'a> {
    store: &'a Store,
    key: &'a str,
    token: Token,
}

/// Whose claim it is: a token in the memory store's lease map, or the value of the key's lease
/// in Redis (`{namespace}#load:{key}`, set for [`LOAD_LEASE`]).
pub(super) enum Token {
    Memory(u64),
    Remote(Vec<u8>),
}

impl Drop for Claim<'_> {
    /// Ends a memory claim that did not store (the loader failed, timed out or was dropped). A
    /// Redis lease expires by itself, and costs no round trip on the failure path.
    fn drop(&mut self) {
        if let (Store::Memory(memory), Token::Memory(token)) = (self.store, &self.token) {
            memory.end_load(self.key, *token);
        }
    }
}

tokio::task_local! {
    /// The keys the current task is loading, as (cache id, key).
    static LEADING: Vec<(usize, String)>;
}

impl Cache {
    /// The value under `key`, or the loader's value, stored for `ttl` and returned.
    ///
    /// Concurrent calls for one key run the loader once; the others wait and share its value.
    /// The backend never fails this call: on a backend error, timeout or open breaker the loader
    /// runs and its value is returned, and the failure is counted and logged.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// let meals = cache
    ///     .get_or_insert_with("meals:7", std::time::Duration::from_secs(3600), || async {
    ///         vec!["oats".to_owned()] // load from the database here
    ///     })
    ///     .await;
    /// assert_eq!(meals, ["oats"]);
    /// # }
    /// ```
    pub async fn get_or_insert_with<T, F, Fut>(
        &self,
        key: impl AsRef<str>,
        ttl: impl Into<Expiry>,
        loader: F,
    ) -> T
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let result = self
            .get_or_try_insert_with(key, ttl, || async { Ok::<T, Infallible>(loader().await) })
            .await;
        match result {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// Like [`get_or_insert_with`](Cache::get_or_insert_with) for a fallible loader: `Ok` values
    /// are stored, errors never are, and callers that waited on a failed load get a clone of the
    /// loader's error (hence `E: Clone`: wrap a non-`Clone` source in an `Arc`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// let found: Result<u32, String> = cache
    ///     .get_or_try_insert_with("kcal:9", std::time::Duration::from_secs(60), || async {
    ///         Err("meal 9 does not exist".to_owned())
    ///     })
    ///     .await;
    /// assert!(found.is_err());
    /// assert_eq!(cache.get::<u32>("kcal:9").await.unwrap(), None); // errors are not cached
    /// # }
    /// ```
    ///
    /// # Errors
    /// The loader's error, never the cache's.
    #[tracing::instrument(name = "cache.get_or_try_insert_with", level = "debug", skip_all, fields(key = %key.as_ref()))]
    pub async fn get_or_try_insert_with<T, E, F, Fut>(
        &self,
        key: impl AsRef<str>,
        expiry: impl Into<Expiry>,
        loader: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.read_through(key.as_ref(), expiry.into(), None, loader)
            .await
    }

    /// The read-through behind [`get_or_try_insert_with`](Cache::get_or_try_insert_with) and
    /// [`get_or_refresh`](Cache::get_or_refresh). `looked`: the lookup a caller already made
    /// (not a hit), with [`SingleFlight::ended`](crate::flight::SingleFlight::ended) read before
    /// it, so the backend is not asked twice.
    async fn read_through<T, E, F, Fut>(
        &self,
        key: &str,
        expiry: Expiry,
        looked: Option<(Lookup<T>, u64)>,
        loader: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let (ttl, tags) = self.storage_plan(&expiry);
        // A loader that asks for its own key (directly, or through another cached function with
        // the same key) would otherwise wait for itself.
        if self.is_leading(key) {
            return self.unshared(loader).await;
        }
        // A value past its TTL but inside its stale window: the answer if the loader fails.
        // Only for a caller that asked for a stale window: a value past its TTL can outlive it
        // in the backend (another caller's window, or the moment between the envelope's TTL,
        // whose clock starts at encoding, and the backend's expiry).
        let serves_stale = !expiry.stale.is_zero();
        let mut stale: Option<T> = None;
        // After one failed backend call, skip the others (re-check, store): a slow backend must
        // cost a request one timeout, not three.
        // The flights ended before the lookup: if still as many when this call comes to lead,
        // no flight stored the key since, and the leader does not look again.
        let (found, ended) = match looked {
            Some((found, ended)) => (Ok(found), ended),
            None => {
                let ended = self.inner.flights.ended();
                (self.lookup_tagged::<T>(key, &tags).await, ended)
            }
        };
        let mut backend_up = match found {
            Ok(found) => {
                if let Lookup::Expired(value) = &found
                    && serves_stale
                {
                    stale = Some(value.clone());
                }
                match self.count(key, found) {
                    Some(value) => return Ok(value),
                    None => true,
                }
            }
            Err(err) => {
                self.absorb("cache read failed, serving from the loader", &err);
                !err.is_unavailable()
            }
        };
        loop {
            match self.inner.flights.join(key) {
                Flight::Leader(leader) => {
                    if backend_up && self.inner.flights.ended() != ended {
                        // A flight for this key may have finished between our miss and our
                        // joining: look again (uncounted: this request already counted a miss).
                        match self.lookup_tagged::<T>(key, &tags).await {
                            Ok(Lookup::Hit(value)) => {
                                leader.publish(Ok(Arc::new(value.clone())));
                                return Ok(value);
                            }
                            Ok(Lookup::Expired(value)) if serves_stale => stale = Some(value),
                            Ok(_) => {}
                            Err(err) => {
                                self.absorb("cache read failed, serving from the loader", &err);
                                backend_up = !err.is_unavailable();
                            }
                        }
                    }
                    return self
                        .lead_load(key, &expiry, ttl, &tags, &leader, backend_up, stale, loader)
                        .await;
                }
                Flight::Follower(follower) => match follower.wait().await {
                    // The leader was cancelled: elect a new one.
                    None => {}
                    Some(Ok(value)) => match value.downcast_ref::<T>() {
                        Some(value) => return Ok(value.clone()),
                        // Another type is being loaded under this key: load our own, unshared.
                        None => return self.unshared(loader).await,
                    },
                    Some(Err(err)) => match err.downcast_ref::<E>() {
                        Some(err) => return Err(err.clone()),
                        None => return self.unshared(loader).await,
                    },
                },
            }
        }
    }

    /// How a read-through of `expiry` stores what it loads: the TTL (`None`: the expiry is
    /// invalid, so load without storing, said in the log) and the checked tags.
    fn storage_plan(&self, expiry: &Expiry) -> (Option<Option<Duration>>, Vec<String>) {
        let checked = expiry
            .ttl
            .resolve(self.inner.default_ttl)
            .and_then(|ttl| Ok((ttl, tag_list(&expiry.tags)?)));
        match checked {
            Ok((ttl, tags)) => (Some(ttl), tags),
            Err(err) => {
                self.absorb(
                    "read-through with an invalid TTL or tag: loading without storing",
                    &err,
                );
                (None, Vec::new())
            }
        }
    }

    /// What the leader of a key's flight does once the key must load, for a read-through and
    /// for a refresh ahead alike: read the tag versions (a tag invalidated while the loader runs
    /// voids its value), take the cross-replica lock if the expiry asks for it, claim the key (a
    /// delete while the loader runs wins), run the loader (abandoned past the soft timeout when
    /// `stale` can answer instead), hand the outcome to the waiters, store the value, and
    /// release the lock. `backend_up`: false after a failed backend call, to skip the others.
    #[allow(clippy::too_many_arguments)]
    async fn lead_load<T, E, F, Fut>(
        &self,
        key: &str,
        expiry: &Expiry,
        ttl: Option<Option<Duration>>,
        tags: &[String],
        leader: &Leader<'_, Outcome>,
        mut backend_up: bool,
        stale: Option<T>,
        loader: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut store_as = None;
        if let (true, Some(ttl)) = (backend_up, ttl) {
            match self.tag_versions(tags, ttl, expiry.stale).await {
                Ok(versions) => store_as = Some((ttl, versions)),
                Err(err) => {
                    self.absorb("cache unavailable, the loaded value is not stored", &err);
                    backend_up = !err.is_unavailable();
                }
            }
        }
        // One loader across replicas: wait for another's value, or hold the lease.
        let mut lease = None;
        if let (Some(timeout), true, Store::Remote(remote)) =
            (expiry.lock, backend_up, &self.inner.store)
        {
            match self.lease::<T>(remote, key, tags, timeout).await {
                Lease::Value(value) => {
                    leader.publish(Ok(Arc::new(value.clone())));
                    return Ok(value);
                }
                Lease::Owner(token) => lease = Some((remote, token)),
                Lease::None => {}
            }
        }
        // The claim last, just before the loader: a delete from here on wins.
        let store_as = match store_as {
            Some((ttl, versions)) => self
                .begin_load(key)
                .await
                .map(|claim| (ttl, versions, claim)),
            None => None,
        };
        self.inner.metrics.loader_runs.increment(1);
        // With a stale answer at hand, a loader past the soft timeout is abandoned.
        let (loaded, stale) = match (stale, expiry.soft_timeout) {
            (Some(old), Some(limit)) => {
                match tokio::time::timeout(limit, self.lead(key, loader)).await {
                    Ok(loaded) => (loaded, Some(old)),
                    Err(_) => {
                        self.release(lease, key).await;
                        return Ok(self.serve_stale(key, leader, old, "loader_timeout"));
                    }
                }
            }
            (stale, _) => (self.lead(key, loader).await, stale),
        };
        let answer = match (loaded, stale) {
            (Ok(value), _) => {
                // Waiters get the value now, not after the store below.
                leader.publish(Ok(Arc::new(value.clone())));
                if let Some((ttl, versions, claim)) = store_as {
                    self.read_through_set(&claim, &value, ttl, expiry.stale, versions)
                        .await;
                }
                Ok(value)
            }
            (Err(_), Some(old)) => Ok(self.serve_stale(key, leader, old, "loader_error")),
            (Err(err), None) => {
                leader.publish(Err(Arc::new(err.clone())));
                Err(err)
            }
        };
        // After the store: a replica that finds the lease gone finds the value.
        self.release(lease, key).await;
        answer
    }

    /// Takes the cross-replica lease on `key`'s load, or waits for the value of the replica
    /// that holds it: polling from 2 ms, doubling to 50 ms, trying for the lease again each time
    /// (its owner may have failed and released it), for at most `timeout`.
    pub(super) async fn lease<T: Cacheable>(
        &self,
        remote: &Remote,
        key: &str,
        tags: &[String],
        timeout: Duration,
    ) -> Lease<T> {
        let metrics = &self.inner.metrics;
        let lock_key = self.inner.lock_key(key);
        let token = crate::memory::new_version();
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(2);
        loop {
            let taken = self
                .call(
                    remote,
                    Op::Lock,
                    remote
                        .client
                        .backend()
                        .set_if_absent(&lock_key, &token, timeout),
                )
                .await;
            match taken {
                Ok(true) => {
                    // The last owner may have stored the value between our miss and now.
                    if let Ok(Lookup::Hit(value)) = self.lookup_tagged::<T>(key, tags).await {
                        self.release(Some((remote, token)), key).await;
                        metrics.lock("waited");
                        return Lease::Value(value);
                    }
                    metrics.lock("acquired");
                    return Lease::Owner(token);
                }
                Ok(false) => {}
                Err(err) => {
                    self.absorb("cache lock unavailable, loading without it", &err);
                    metrics.lock("unavailable");
                    return Lease::None;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                metrics.lock("timed_out");
                return Lease::None;
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(Duration::from_millis(50));
            match self.lookup_tagged::<T>(key, tags).await {
                Ok(Lookup::Hit(value)) => {
                    metrics.lock("waited");
                    return Lease::Value(value);
                }
                Ok(_) => {}
                Err(err) => {
                    self.absorb("cache read failed while waiting for a lock, loading", &err);
                    metrics.lock("unavailable");
                    return Lease::None;
                }
            }
        }
    }

    /// Releases a lease this replica holds, if it still does (compare and delete).
    pub(super) async fn release(&self, lease: Option<(&Remote, Vec<u8>)>, key: &str) {
        let Some((remote, token)) = lease else {
            return;
        };
        let lock_key = self.inner.lock_key(key);
        let released = self
            .call(
                remote,
                Op::Lock,
                remote.client.backend().delete_if_equals(&lock_key, &token),
            )
            .await;
        if let Err(err) = released {
            self.absorb("cache lock not released; it expires by itself", &err);
        }
    }

    /// Answers a read-through with its stale value (and every caller waiting on it), counted.
    pub(super) fn serve_stale<T: Cacheable>(
        &self,
        key: &str,
        leader: &Leader<'_, Outcome>,
        old: T,
        reason: &'static str,
    ) -> T {
        self.inner.metrics.stale_served(reason);
        tracing::debug!(key, reason, "serving a stale value");
        leader.publish(Ok(Arc::new(old.clone())));
        old
    }

    /// [`get_or_try_insert_with`](Cache::get_or_try_insert_with) for a loader that can also run
    /// in the background (`Fn`, `Send` and `'static`: usually a closure over cloned handles), so
    /// that [`Expiry::refresh_ahead`] can keep a hot key from ever expiring: a hit past that
    /// fraction of its TTL answers at once with the current value and starts one reload in a
    /// spawned task. The reload leads the key's single flight, so however many hits see the key
    /// aging, it runs once at a time per cache (and its clones). Misses, stale values and
    /// failures behave exactly as in `get_or_try_insert_with`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_core::{Cache, Expiry};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = Cache::memory();
    /// let expiry = Expiry::new(Duration::from_secs(60)).refresh_ahead(0.8);
    /// let db = std::sync::Arc::new(2100_u32); // a pool handle, in real code
    /// let total: Result<u32, String> = cache
    ///     .get_or_refresh("kcal:7", expiry, move || {
    ///         let db = db.clone();
    ///         async move { Ok(*db) }
    ///     })
    ///     .await;
    /// assert_eq!(total, Ok(2100));
    /// # }
    /// ```
    ///
    /// # Errors
    /// The loader's error, never the cache's.
    #[tracing::instrument(name = "cache.get_or_refresh", level = "debug", skip_all, fields(key = %key.as_ref()))]
    pub async fn get_or_refresh<T, E, F, Fut>(
        &self,
        key: impl AsRef<str>,
        expiry: impl Into<Expiry>,
        loader: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        E: Clone + Send + Sync + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let key = key.as_ref();
        let expiry = expiry.into();
        if let (Some(fraction), false) = (expiry.refresh_ahead, self.is_leading(key)) {
            let ended = self.inner.flights.ended();
            match self.lookup_aged::<T>(key, &expiry.tags).await {
                Ok((Lookup::Hit(value), used)) => {
                    self.inner.metrics.hits.increment(1);
                    if used >= fraction {
                        self.spawn_refresh(key, expiry.clone(), fraction, loader);
                    }
                    return Ok(value);
                }
                // Anything else is the read-through's to handle (it counts), without looking
                // again.
                Ok((found, _)) => {
                    return self
                        .read_through(key, expiry, Some((found, ended)), loader)
                        .await;
                }
                Err(err) => self.absorb("cache read failed, serving from the loader", &err),
            }
        }
        self.get_or_try_insert_with(key, expiry, loader).await
    }

    /// Reloads `key` in a spawned task, unless a load of it is already running or the value
    /// was replaced since the hit that asked (`fraction`: the refresh point).
    pub(super) fn spawn_refresh<T, E, F, Fut>(
        &self,
        key: &str,
        expiry: Expiry,
        fraction: f64,
        loader: F,
    ) where
        T: Cacheable,
        E: Clone + Send + Sync + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        // Already refreshing (or loading): the hit needs nothing more.
        if self.inner.flights.is_running(key) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (cache, key) = (self.clone(), key.to_owned());
        runtime.spawn(async move {
            let Flight::Leader(leader) = cache.inner.flights.join(&key) else {
                return;
            };
            // A hit that read the old value just before a reload stored the new one would start
            // a second reload: look again now that this task leads.
            let again = cache.lookup_aged::<T>(&key, &expiry.tags).await;
            if matches!(again, Ok((Lookup::Hit(_), used)) if used < fraction) {
                return;
            }
            // The leader's routine of a read-through, with nothing stale to fall back on: a
            // failed reload leaves the current value until its TTL, and the next aging hit
            // tries again.
            let (ttl, tags) = cache.storage_plan(&expiry);
            let _reloaded = cache
                .lead_load::<T, E, _, _>(&key, &expiry, ttl, &tags, &leader, true, None, loader)
                .await;
        });
    }

    /// Reads `key` without counting it, with how much of its fresh time it has used.
    ///
    pub(super) async fn lookup_aged<T: Cacheable>(
        &self,
        key: &str,
        tags: &[String],
    ) -> Result<(Lookup<T>, f64)> {
        let inner = &*self.inner;
        match &inner.store {
            Store::Memory(memory) => Ok((memory.get::<T>(key), memory.life_used(key))),
            Store::Remote(remote) => self.remote_lookup(remote, key, tags, true).await,
        }
    }

    /// Identifies this cache (and its clones) among the keys a task is loading.
    pub(super) fn id(&self) -> usize {
        Arc::as_ptr(&self.inner).cast::<()>() as usize
    }

    pub(super) fn is_leading(&self, key: &str) -> bool {
        let id = self.id();
        LEADING
            .try_with(|leading| leading.iter().any(|(cache, k)| *cache == id && k == key))
            .unwrap_or(false)
    }

    /// Runs the loader with its key recorded as being loaded by the current task.
    pub(super) async fn lead<Fut: Future>(
        &self,
        key: &str,
        loader: impl FnOnce() -> Fut,
    ) -> Fut::Output {
        let mut leading = LEADING.try_with(Clone::clone).unwrap_or_default();
        leading.push((self.id(), key.to_owned()));
        LEADING.scope(leading, loader()).await
    }

    /// Runs the loader outside single-flight, storing nothing.
    pub(super) async fn unshared<Fut: Future>(&self, loader: impl FnOnce() -> Fut) -> Fut::Output {
        self.inner.metrics.loader_runs.increment(1);
        loader().await
    }

    /// Claims `key` for a load about to run (see [`Claim`]); `None` when the backend cannot be
    /// reached, and the load's value is then not stored.
    pub(super) async fn begin_load<'a>(&'a self, key: &'a str) -> Option<Claim<'a>> {
        let inner = &*self.inner;
        let token = match &inner.store {
            Store::Memory(memory) => Token::Memory(memory.begin_load(key)),
            Store::Remote(remote) => {
                let token = crate::memory::new_version();
                let lease_key = inner.lease_key(key);
                let set = remote
                    .client
                    .backend()
                    .set(&lease_key, &token, Some(LOAD_LEASE));
                if let Err(err) = self.call(remote, Op::Lease, set).await {
                    self.absorb("cache unavailable, the loaded value is not stored", &err);
                    return None;
                }
                Token::Remote(token)
            }
        };
        Some(Claim {
            store: &inner.store,
            key,
            token,
        })
    }

    /// Stores a loaded value under its claim: not at all when a delete came since the load began.
    pub(super) async fn read_through_set<T: Cacheable>(
        &self,
        claim: &Claim<'_>,
        value: &T,
        ttl: Option<Duration>,
        stale: Duration,
        tags: Vec<TagVersion>,
    ) {
        match self
            .store(claim.key, value, ttl, stale, tags, Some(&claim.token))
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                self.inner.metrics.load_revoked.increment(1);
                tracing::debug!(
                    key = claim.key,
                    "the key was invalidated while it loaded: the loaded value is not stored"
                );
            }
            Err(err) => self.absorb("cache unavailable, the loaded value is not stored", &err),
        }
    }
}
