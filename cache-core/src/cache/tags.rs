//! Tags: a value stored under tags, a tag invalidated in O(1) on every replica, and a read
//! value's tag versions checked against the current ones.

use std::time::Duration;

use super::{Cache, Cacheable, Remote, Store};
use crate::envelope::{self, TagVersion};
use crate::error::{Error, Result};
use crate::metrics::Op;
use crate::tier::Event;
use crate::ttl::Ttl;

/// How much longer than its longest entry a tag's version key is kept, so that it never
/// expires before a value that depends on it.
pub(super) const TAG_SLACK: Duration = Duration::from_secs(60);

impl Cache {
    /// Stores `value` under `key` for `ttl`, tagged: [`invalidate_tag`](Cache::invalidate_tag)
    /// of any of `tags` turns it into a miss, on every replica, without scanning keys.
    ///
    /// Each tag has a version key in Redis (`{namespace}#tag:{tag}`, a 16-character string,
    /// kept as long as the longest value tagged with it); the value records the versions its
    /// tags had, and a read compares them, in the same round trip as the value when the caller
    /// names the tags ([`Expiry::tags`](crate::Expiry::tags)) and in one more otherwise.
    /// Invalidating a tag gives it a new version: O(1), whatever the number of values under it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_core::Cache;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_core::Result<()> {
    /// let cache = Cache::memory();
    /// let hour = Duration::from_secs(3600);
    /// cache.set_with_tags("daily:42:2026-11-26", &2100_u32, hour, &["user:42"]).await?;
    /// cache.set_with_tags("stats:42:7", &1950_u32, hour, &["user:42", "stats"]).await?;
    /// cache.set_with_tags("stats:7:7", &1700_u32, hour, &["user:7", "stats"]).await?;
    ///
    /// cache.invalidate_tag("user:42").await?;
    /// assert_eq!(cache.get::<u32>("daily:42:2026-11-26").await?, None);
    /// assert_eq!(cache.get::<u32>("stats:42:7").await?, None);
    /// assert_eq!(cache.get::<u32>("stats:7:7").await?, Some(1700));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As for [`set`](Cache::set); [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput)
    /// for an empty tag, one over 1,024 bytes, or more than 255 tags.
    #[tracing::instrument(name = "cache.set_with_tags", level = "debug", skip_all, fields(key = %key.as_ref()))]
    pub async fn set_with_tags<T: Cacheable>(
        &self,
        key: impl AsRef<str>,
        value: &T,
        ttl: impl Into<Ttl>,
        tags: &[impl AsRef<str>],
    ) -> Result<()> {
        let ttl = ttl.into().resolve(self.inner.default_ttl)?;
        let tags = tag_list(tags)?;
        let versions = self.tag_versions(&tags, ttl, Duration::ZERO).await?;
        self.store(key.as_ref(), value, ttl, Duration::ZERO, versions, None)
            .await
            .map(drop)
    }

    /// Invalidates `tag`: every value stored under it so far is a miss from now on, on every
    /// replica (the local tiers are told through the invalidation channel). Values stored
    /// under it afterwards are hits again. O(1): one write, whatever the number of values.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::memory();
    /// cache.set_with_tags("a", &1_u8, std::time::Duration::from_secs(60), &["t"]).await?;
    /// cache.invalidate_tag("t").await?;
    /// assert_eq!(cache.get::<u8>("a").await?, None);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Backend trouble, as for [`get`](Cache::get), or an invalid tag as for
    /// [`set_with_tags`](Cache::set_with_tags).
    #[tracing::instrument(name = "cache.invalidate_tag", level = "debug", skip_all, fields(tag = %tag.as_ref()))]
    pub async fn invalidate_tag(&self, tag: impl AsRef<str>) -> Result<()> {
        let tag = tag.as_ref();
        check_tag(tag)?;
        let inner = &*self.inner;
        match &inner.store {
            Store::Memory(memory) => {
                memory.bump_tag(tag);
                Ok(())
            }
            Store::Remote(remote) => {
                let version = crate::memory::new_version();
                // A tag without a version key tags nothing alive: there is nothing to change.
                self.call(
                    remote,
                    Op::InvalidateTag,
                    remote
                        .client
                        .backend()
                        .replace_if_present(&inner.tag_key(tag), &version),
                )
                .await?;
                if let Some(local) = &remote.local {
                    local.forget_tag(tag);
                    self.announce(remote, local, &[Event::Tag(tag)]).await?;
                }
                Ok(())
            }
        }
    }

    /// The current versions of `tags` for a value kept `ttl` plus `stale`, created where
    /// missing, their keys kept at least that long.
    pub(super) async fn tag_versions(
        &self,
        tags: &[String],
        ttl: Option<Duration>,
        stale: Duration,
    ) -> Result<Vec<TagVersion>> {
        if tags.is_empty() {
            return Ok(Vec::new());
        }
        let inner = &*self.inner;
        match &inner.store {
            Store::Memory(memory) => Ok(memory.tag_versions(tags)),
            Store::Remote(remote) => {
                let keys: Vec<String> = tags.iter().map(|tag| inner.tag_key(tag)).collect();
                let candidates: Vec<Vec<u8>> =
                    tags.iter().map(|_| crate::memory::new_version()).collect();
                // The longest the value can be kept: its TTL jittered up, plus its stale window.
                let keep = ttl.map(|ttl| {
                    ttl.mul_f64(1.0 + inner.ttl_jitter)
                        .saturating_add(stale)
                        .saturating_add(TAG_SLACK)
                });
                let versions = self
                    .call(
                        remote,
                        Op::TagVersions,
                        remote
                            .client
                            .backend()
                            .get_or_create(&keys, &candidates, keep),
                    )
                    .await?;
                Ok(tags.iter().cloned().zip(versions).collect())
            }
        }
    }

    /// [`fetch`](Self::fetch) of a value and the versions of the `known` tags, in one round trip.
    pub(super) async fn fetch_with_tags(
        &self,
        remote: &Remote,
        key: &str,
        known: &[String],
    ) -> Result<Option<Vec<u8>>> {
        let inner = &*self.inner;
        let mut keys = Vec::with_capacity(1 + known.len());
        keys.push(inner.full_key(key));
        keys.extend(known.iter().map(|tag| inner.tag_key(tag)));
        let mut found = self
            .call(remote, Op::Get, remote.client.backend().get_many(&keys))
            .await?
            .into_iter();
        let bytes = found.next().flatten();
        let versions: Vec<(String, Option<Vec<u8>>)> = known.iter().cloned().zip(found).collect();
        self.check_tags(remote, bytes, versions).await
    }

    /// `bytes`, or `None` when one of the tags it records was invalidated since it was written.
    /// `known`: tag versions already read.
    pub(super) async fn check_tags(
        &self,
        remote: &Remote,
        bytes: Option<Vec<u8>>,
        known: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<Option<Vec<u8>>> {
        let found = [bytes];
        let current = self.current_tags(remote, &found, known).await?;
        let [bytes] = found;
        Ok(bytes.filter(|_| current.first().copied().unwrap_or(false)))
    }

    /// For each value, whether every tag it records still has the version it recorded (true for
    /// untagged values and misses). `known`: tag versions already read; the others are read
    /// in one round trip.
    pub(super) async fn current_tags(
        &self,
        remote: &Remote,
        found: &[Option<Vec<u8>>],
        mut known: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<Vec<bool>> {
        let recorded: Vec<Vec<(&str, &[u8])>> = found
            .iter()
            .map(|bytes| bytes.as_deref().map(envelope::tags).unwrap_or_default())
            .collect();
        let mut missing: Vec<&str> = recorded
            .iter()
            .flatten()
            .map(|(tag, _)| *tag)
            .filter(|tag| !known.iter().any(|(k, _)| k == tag))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            let inner = &*self.inner;
            let keys: Vec<String> = missing.iter().map(|tag| inner.tag_key(tag)).collect();
            let versions = self
                .call(remote, Op::Get, remote.client.backend().get_many(&keys))
                .await?;
            known.extend(missing.iter().map(|tag| (*tag).to_owned()).zip(versions));
        }
        Ok(recorded
            .iter()
            .map(|tags| {
                tags.iter().all(|(tag, version)| {
                    known
                        .iter()
                        .any(|(k, v)| k == tag && v.as_deref() == Some(*version))
                })
            })
            .collect())
    }
}

/// Checks tags given by a caller and drops repeats.
pub(super) fn tag_list(tags: &[impl AsRef<str>]) -> Result<Vec<String>> {
    if tags.len() > usize::from(u8::MAX) {
        return Err(Error::invalid_input(format!(
            "{} tags on one value; at most 255",
            tags.len()
        )));
    }
    let mut list: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = tag.as_ref();
        check_tag(tag)?;
        if !list.iter().any(|t| t == tag) {
            list.push(tag.to_owned());
        }
    }
    Ok(list)
}

pub(super) fn check_tag(tag: &str) -> Result<()> {
    if tag.is_empty() {
        return Err(Error::invalid_input(
            "a tag is empty; tags name what values depend on, such as \"user:42\"",
        ));
    }
    if tag.len() > envelope::MAX_TAG_LEN {
        return Err(Error::invalid_input(format!(
            "a tag of {} bytes; at most {}",
            tag.len(),
            envelope::MAX_TAG_LEN
        )));
    }
    Ok(())
}
