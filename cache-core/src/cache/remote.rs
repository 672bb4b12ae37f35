//! The read path and the failure policy: a lookup on memory or on the remote store (the local
//! tier first), decoding what was read, and every backend call under its timeout, the circuit
//! breaker and the metrics.

use std::future::Future;
use std::time::Duration;

use super::{Cache, Cacheable, Remote, Store};
use crate::envelope;
use crate::error::{Error, Result};
use crate::memory::{Entry, Lookup};
use crate::metrics::Op;
use crate::tier::{Event, LocalTier};

impl Cache {
    /// Reads `key` without counting it.
    pub(super) fn lookup<T: Cacheable>(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Lookup<T>>> {
        self.lookup_tagged(key, &[])
    }

    /// Reads `key` without counting it; `tags`, the tags the caller expects it to have, are
    /// read in the same round trip.
    pub(super) async fn lookup_tagged<T: Cacheable>(
        &self,
        key: &str,
        tags: &[String],
    ) -> Result<Lookup<T>> {
        let inner = &*self.inner;
        match &inner.store {
            Store::Memory(memory) => Ok(memory.get::<T>(key)),
            Store::Remote(remote) => Ok(self.remote_lookup(remote, key, tags, false).await?.0),
        }
    }

    /// A read on the remote store: the local tier first, if any, then the backend (filling
    /// the local tier with a hit). With how much of its fresh time the value has used, when
    /// `aged` asks for it.
    pub(super) async fn remote_lookup<T: Cacheable>(
        &self,
        remote: &Remote,
        key: &str,
        tags: &[String],
        aged: bool,
    ) -> Result<(Lookup<T>, f64)> {
        let local = remote.local.as_ref().filter(|local| local.is_active());
        if let Some(local) = local
            && let Lookup::Hit(value) = local.store.get::<T>(key)
        {
            // The copy keeps the original's age: refresh-ahead sees it aging.
            let used = if aged {
                local.store.life_used(key)
            } else {
                0.0
            };
            return Ok((Lookup::Hit(value), used));
        }
        let epoch = local.map(LocalTier::epoch);
        let bytes = self.fetch(remote, key, tags).await?;
        let Some(bytes) = bytes else {
            return Ok((Lookup::Miss, 0.0));
        };
        let found = self.decode(Some(&bytes));
        if let (Some(local), Some(epoch), Lookup::Hit(value)) = (local, epoch, &found) {
            self.fill_local(local, key, value, &bytes, epoch);
        }
        // The clock only for refresh-ahead: a plain read does not pay for it.
        let used = if aged {
            envelope::life_used(&bytes, envelope::now_millis())
        } else {
            0.0
        };
        Ok((found, used))
    }

    /// Copies a value read from the backend into the local tier, for at most the local TTL
    /// and never past its own freshness.
    pub(super) fn fill_local<T: Cacheable>(
        &self,
        local: &LocalTier,
        key: &str,
        value: &T,
        bytes: &[u8],
        epoch: u64,
    ) {
        let now = envelope::now_millis();
        let keep = envelope::fresh_left(bytes, now).map_or(local.ttl, |left| left.min(local.ttl));
        if keep.is_zero() {
            return;
        }
        let (age, fresh_for) = envelope::age(bytes, now);
        let tags = envelope::tags(bytes)
            .into_iter()
            .map(|(tag, version)| (tag.to_owned(), version.to_vec()))
            .collect();
        let entry = Entry::copy(value.clone(), keep, fresh_for, age);
        local.fill(key, entry, tags, epoch);
    }

    /// The bytes stored under `key` on the backend, under the failure policy; `None` also when
    /// one of the value's tags was invalidated since it was written. The versions of `known`
    /// tags are read in the same round trip as the value, any others in one more.
    pub(super) async fn fetch(
        &self,
        remote: &Remote,
        key: &str,
        known: &[String],
    ) -> Result<Option<Vec<u8>>> {
        let inner = &*self.inner;
        if !known.is_empty() {
            // Boxed, as is every tag path below: a read's future holds room for its largest
            // branch, and every read moves that future several times on its way down.
            return Box::pin(self.fetch_with_tags(remote, key, known)).await;
        }
        let get = remote.client.get(&inner.prefix, key);
        let bytes = self.call(remote, Op::Get, get).await?;
        if bytes
            .as_deref()
            .is_none_or(|b| envelope::tags(b).is_empty())
        {
            return Ok(bytes);
        }
        Box::pin(self.check_tags(remote, bytes, Vec::new())).await
    }

    pub(super) fn decode<T: Cacheable>(&self, bytes: Option<&[u8]>) -> Lookup<T> {
        let Some(bytes) = bytes else {
            return Lookup::Miss;
        };
        match Some(envelope::decode::<T>(self.inner.codec, bytes)) {
            None => Lookup::Miss,
            Some(Ok(value)) if !envelope::is_fresh(bytes, envelope::now_millis()) => {
                Lookup::Expired(value)
            }
            Some(Ok(value)) => Lookup::Hit(value),
            Some(Err(stale)) => Lookup::Stale(stale.as_str()),
        }
    }

    pub(super) fn call<'a, T>(
        &'a self,
        remote: &'a Remote,
        op: Op,
        fut: impl Future<Output = Result<T>> + 'a,
    ) -> impl Future<Output = Result<T>> {
        self.guarded(remote, op, Some(remote.timeout), fut)
    }

    /// Runs one backend operation under the failure policy: breaker (an open one skips the
    /// operation, unless it invalidates: see `Op::invalidates`), timeout, metrics.
    /// `timeout: None` is for operations that bound their own steps (`delete_pattern`).
    ///
    /// Combinators rather than an `async fn`: an `async fn` keeps its argument `fut` for its
    /// whole life besides the copy it awaits, and the future of every backend call would carry
    /// that twice, then be moved whole on every read.
    pub(super) fn guarded<'a, T>(
        &'a self,
        remote: &'a Remote,
        op: Op,
        timeout: Option<Duration>,
        fut: impl Future<Output = Result<T>> + 'a,
    ) -> impl Future<Output = Result<T>> {
        use futures_util::FutureExt as _;
        use futures_util::future::Either;

        let metrics = &self.inner.metrics;
        let bounded = timeout.is_some();
        let attempt = if op.invalidates() {
            Some(remote.breaker.attempt_anyway(bounded))
        } else {
            remote.breaker.attempt(bounded)
        };
        let Some(attempt) = attempt else {
            let err = Error::circuit_open(op.as_str());
            metrics.error(op, err.kind());
            return Either::Left(std::future::ready(Err(err)));
        };
        let started = metrics.start();
        // Unbounded: a deadline past any the clock can reach, which never fires.
        let limit = timeout.unwrap_or(Duration::MAX);
        let timed = tokio::time::timeout(limit, fut).map(move |result| {
            let result = result.unwrap_or_else(|_| Err(Error::timeout(op.as_str(), limit)));
            metrics.record_latency(op, started);
            match &result {
                Ok(_) => attempt.succeeded(),
                Err(err) => {
                    metrics.error(op, err.kind());
                    if err.is_unavailable() {
                        attempt.failed();
                    } else {
                        // The backend answered; only its answer was unusable.
                        attempt.succeeded();
                    }
                }
            }
            result
        });
        Either::Right(timed)
    }

    /// Tells the other replicas' local tiers what changed.
    pub(super) async fn announce(
        &self,
        remote: &Remote,
        local: &LocalTier,
        events: &[Event<'_>],
    ) -> Result<()> {
        let message = local.message(events);
        self.call(
            remote,
            Op::Publish,
            remote.client.backend().publish(&local.channel, &message),
        )
        .await
    }
}
