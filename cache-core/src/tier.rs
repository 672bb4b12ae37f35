//! The local tier: an in-process copy of hot Redis values, kept coherent across replicas by an
//! invalidation channel on Redis Pub/Sub.
//!
//! # Why Pub/Sub and not RESP3 client tracking
//!
//! Client tracking needs RESP3 push messages on the connection that reads (or a redirect to a
//! second one), tracks by key or by prefix on the server, and tells every client about every
//! change including its own. Pub/Sub works with any Redis, Valkey and Redis Cluster (where
//! `PUBLISH` reaches every node), costs the server nothing per key read, and lets a message
//! carry what the writer knows: a key, a pattern or a tag. So each write, delete,
//! `delete_pattern` and `invalidate_tag` publishes one message on the namespace's channel
//! (`{namespace}#invalidate`), and every replica drops what it names.
//!
//! # Coherence
//!
//! - A message names keys, patterns and tags, never values, and says which replica sent it (a
//!   replica ignores its own).
//! - While a replica is not subscribed, its local tier is bypassed: reads go to Redis and
//!   nothing is filled. On losing the subscription it clears the tier and subscribes again
//!   (clearing once more on success, for the messages it missed).
//! - A read from Redis that raced an invalidation must not put the old value back: each
//!   received message (and each change this replica makes) bumps an epoch, and a fill made
//!   while the epoch moved is undone.
//! - A message lost in transit (the subscriber's socket is alive but the message never came)
//!   leaves a copy stale for at most the local TTL, which bounds every local entry.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::backend::Backend;
use crate::envelope::TagVersion;
use crate::error::{ErrorKind, Result};
use crate::memory::{Entry, MemoryStore};

/// What one invalidation names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    /// A key (below the namespace) was written or deleted.
    Key(&'a str),
    /// Keys matching a glob (below the namespace) were deleted.
    Pattern(&'a str),
    /// A tag was invalidated.
    Tag(&'a str),
}

impl Event<'_> {
    fn code(self) -> (u8, &'static str) {
        match self {
            Self::Key(_) => (b'k', "key"),
            Self::Pattern(_) => (b'p', "pattern"),
            Self::Tag(_) => (b't', "tag"),
        }
    }

    fn text(self) -> &'static str {
        self.code().1
    }
}

/// The local tier of a cache in front of Redis.
pub(crate) struct LocalTier {
    pub(crate) store: Arc<MemoryStore>,
    /// The longest a value stays local.
    pub(crate) ttl: Duration,
    pub(crate) channel: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

/// What the subscriber task and the cache share.
struct State {
    /// This replica's id in the messages it sends.
    origin: u64,
    subscribed: AtomicBool,
    /// Bumped by every invalidation received from another replica (and on losing the channel).
    epoch: AtomicU64,
}

impl Drop for LocalTier {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LocalTier {
    /// Starts the tier and its subscriber. The first subscription is awaited (within
    /// `connect_timeout`), so that a cache is coherent as soon as it is built; if it fails,
    /// the tier stays bypassed while the subscriber keeps trying in the background.
    pub(crate) async fn start(
        store: MemoryStore,
        ttl: Duration,
        backend: Arc<dyn Backend>,
        channel: String,
        connect_timeout: Duration,
        metrics: crate::metrics::Metrics,
    ) -> Result<Self> {
        let store = Arc::new(store);
        let state = Arc::new(State {
            origin: fastrand::u64(..),
            subscribed: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
        });
        let first = match tokio::time::timeout(connect_timeout, backend.subscribe(&channel)).await {
            Ok(Ok(messages)) => Some(messages),
            // A backend without Pub/Sub cannot keep replicas coherent: refuse to build.
            Ok(Err(err)) if err.kind() == ErrorKind::Unsupported => return Err(err),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, channel, "cannot subscribe to the invalidation channel: the local tier is bypassed until it can");
                None
            }
            Err(_) => {
                tracing::warn!(
                    channel,
                    "subscribing to the invalidation channel timed out: the local tier is bypassed until it can"
                );
                None
            }
        };
        if first.is_some() {
            state.subscribed.store(true, Ordering::SeqCst);
        }
        let task = tokio::spawn(subscriber(
            backend,
            channel.clone(),
            Arc::clone(&store),
            Arc::clone(&state),
            first,
            metrics,
        ));
        Ok(Self {
            store,
            ttl,
            channel,
            state,
            task,
        })
    }

    /// Whether the tier may be read and filled: only while subscribed.
    pub(crate) fn is_active(&self) -> bool {
        self.state.subscribed.load(Ordering::SeqCst)
    }

    /// The epoch to pass to [`fill`](Self::fill) for a read or write that starts now.
    pub(crate) fn epoch(&self) -> u64 {
        self.state.epoch.load(Ordering::SeqCst)
    }

    /// Stores `entry` locally unless an invalidation arrived since `epoch` (then the value may
    /// be older than what another replica wrote, and Redis stays the one to ask).
    ///
    /// Insert first, check after: a message applied between the two removes the entry or
    /// makes the check fail, and either way no old value survives it.
    ///
    /// The entry's tags, with the versions read with it, are learnt too, and forgotten again
    /// if the fill is undone: a tag invalidation that raced the read must not be undone by it.
    pub(crate) fn fill(&self, key: &str, entry: Entry, tags: Vec<TagVersion>, epoch: u64) {
        if !self.is_active() {
            return;
        }
        self.store.learn_tags(&tags);
        self.store
            .insert(key.to_owned(), entry.tagged(tags.clone()));
        if self.epoch() != epoch || !self.is_active() {
            self.store.remove(key);
            for (tag, _) in &tags {
                self.store.forget_tag(tag);
            }
        }
    }

    /// Drops the local copy of `key` after this replica changed it in Redis, undoing any fill
    /// of an older value still in flight (as a message from another replica would).
    pub(crate) fn forget(&self, key: &str) {
        self.store.remove(key);
        self.state.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// [`forget`](Self::forget) for every key matching a glob.
    pub(crate) fn forget_matching(&self, glob: &str) {
        self.store.remove_matching(glob);
        self.state.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Forgets `tag`'s version after this replica invalidated it.
    pub(crate) fn forget_tag(&self, tag: &str) {
        self.store.forget_tag(tag);
        self.state.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// The message announcing `events` to the other replicas.
    pub(crate) fn message(&self, events: &[Event<'_>]) -> Vec<u8> {
        encode(self.state.origin, events)
    }
}

/// `origin` (8 bytes, little endian), then per event: its kind (`k`, `p` or `t`), the length
/// of its text (u32, little endian) and the text.
fn encode(origin: u64, events: &[Event<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + events.len() * 32);
    out.extend_from_slice(&origin.to_le_bytes());
    for event in events {
        let (Event::Key(text) | Event::Pattern(text) | Event::Tag(text)) = *event;
        out.push(event.code().0);
        out.extend_from_slice(&u32::try_from(text.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    out
}

/// The sender and events of a message; `None` for bytes that are not one.
fn decode(bytes: &[u8]) -> Option<(u64, Vec<Event<'_>>)> {
    let (origin, mut rest) = bytes.split_first_chunk::<8>()?;
    let mut events = Vec::new();
    while let Some((&kind, tail)) = rest.split_first() {
        let (len, tail) = tail.split_first_chunk::<4>()?;
        let (text, tail) =
            tail.split_at_checked(usize::try_from(u32::from_le_bytes(*len)).ok()?)?;
        let text = std::str::from_utf8(text).ok()?;
        events.push(match kind {
            b'k' => Event::Key(text),
            b'p' => Event::Pattern(text),
            b't' => Event::Tag(text),
            _ => return None,
        });
        rest = tail;
    }
    Some((u64::from_le_bytes(*origin), events))
}

/// Applies the invalidations of other replicas; on a lost subscription, clears the tier and
/// subscribes again, backing off from 50 ms to 2 s between failed attempts.
async fn subscriber(
    backend: Arc<dyn Backend>,
    channel: String,
    store: Arc<MemoryStore>,
    state: Arc<State>,
    mut messages: Option<mpsc::Receiver<Vec<u8>>>,
    metrics: crate::metrics::Metrics,
) {
    const FIRST_RETRY: Duration = Duration::from_millis(50);
    let mut retry = FIRST_RETRY;
    loop {
        let Some(mut subscription) = messages.take() else {
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(Duration::from_secs(2));
            match backend.subscribe(&channel).await {
                Ok(subscription) => {
                    // Whatever was published while unsubscribed is lost: start from nothing.
                    state.epoch.fetch_add(1, Ordering::SeqCst);
                    store.clear();
                    state.subscribed.store(true, Ordering::SeqCst);
                    tracing::info!(channel, "subscribed to the invalidation channel again");
                    messages = Some(subscription);
                    retry = FIRST_RETRY;
                }
                Err(err) => tracing::debug!(error = %err, "invalidation channel: subscribe failed"),
            }
            continue;
        };
        while let Some(message) = subscription.recv().await {
            apply(&message, &store, &state, &metrics);
        }
        state.subscribed.store(false, Ordering::SeqCst);
        state.epoch.fetch_add(1, Ordering::SeqCst);
        store.clear();
        tracing::warn!(
            channel,
            "lost the invalidation channel: local tier cleared and bypassed until subscribed again"
        );
    }
}

fn apply(message: &[u8], store: &MemoryStore, state: &State, metrics: &crate::metrics::Metrics) {
    let Some((origin, events)) = decode(message) else {
        // Not ours to read: the safe answer is to forget everything.
        state.epoch.fetch_add(1, Ordering::SeqCst);
        store.clear();
        tracing::debug!("unreadable invalidation message: local tier cleared");
        return;
    };
    if origin == state.origin {
        return;
    }
    state.epoch.fetch_add(1, Ordering::SeqCst);
    for event in &events {
        match *event {
            Event::Key(key) => {
                store.remove(key);
            }
            Event::Pattern(glob) => {
                store.remove_matching(glob);
            }
            Event::Tag(tag) => store.forget_tag(tag),
        }
        metrics.invalidation_received(event.text());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_roundtrip_and_garbage_is_refused() {
        let events = [
            Event::Key("daily:7:2026-11-26"),
            Event::Pattern("daily:7:*"),
            Event::Tag("user:7"),
            Event::Key(""),
        ];
        let bytes = encode(42, &events);
        assert_eq!(decode(&bytes), Some((42, events.to_vec())));
        assert_eq!(decode(&bytes[..7]), None);
        for cut in 9..bytes.len() {
            let decoded = decode(&bytes[..cut]);
            assert!(decoded.is_none() || decoded.is_some_and(|(_, e)| e.len() < events.len()));
        }
        assert_eq!(decode(b"01234567x\x00\x00\x00\x00"), None);
    }
}
