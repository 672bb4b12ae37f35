//! Runtime support for `#[cache_result]`: the only items generated code calls, reached through
//! `::cache_core::__private`. Not a public API: names and signatures change without notice.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use crate::cache::Cache;
pub use crate::global::global;
pub use crate::key::Key;
use crate::key::KeyPart;
use crate::ttl::Ttl;

/// A key starting with the function's prefix, written as is (the macro checked it).
#[must_use]
pub fn key(prefix: &'static str) -> Key {
    Key::raw(prefix)
}

/// Adds `:` and an argument as an escaped part.
pub fn push<P: KeyPart + ?Sized>(key: &mut Key, part: &P) {
    key.push(part);
}

/// Adds an argument as an escaped part with no separator (a hole of `key = ".."`).
pub fn append<P: KeyPart + ?Sized>(key: &mut Key, part: &P) {
    key.append(part);
}

/// Adds literal text of `key = ".."` as is (the macro checked it holds no glob metacharacter).
pub fn append_raw(key: &mut Key, text: &'static str) {
    key.append_raw(text);
}

/// The cache named by `cache = ..` (a `Cache`, a reference to one or an `Arc` of one), owned:
/// for when the argument it comes from moves into the function body.
pub fn cache_of<C: AsRef<Cache> + ?Sized>(cache: &C) -> Cache {
    cache.as_ref().clone()
}

/// The cache named by `cache = ..`, borrowed: for when it is reached through a reference
/// argument (`&self`, `cache: &Cache`), which the body only copies.
pub fn cache_ref<C: AsRef<Cache> + ?Sized>(cache: &C) -> &Cache {
    cache.as_ref()
}

/// What a cached function returns, once unwrapped from `Result`, `Option` or `Json`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached",
    label = "the cached value",
    note = "a cached value must be `Serialize + DeserializeOwned + Clone + Send + Sync + 'static`"
)]
pub trait CachedValue: crate::Cacheable {}

impl<T: crate::Cacheable> CachedValue for T {}

/// The error of a cached fallible function: shared with every caller that waited on the same key.
#[diagnostic::on_unimplemented(
    message = "the error type `{Self}` must be `Clone + Send + Sync + 'static`",
    label = "callers waiting on the same key each get a clone of this error",
    note = "wrap a non-Clone source in an `Arc` inside your error type, e.g. `Database(Arc<sqlx::Error>)`"
)]
pub trait SharedError: Clone + Send + Sync + 'static {}

impl<E: Clone + Send + Sync + 'static> SharedError for E {}

/// `None` of an `Option` function without `cache_none`: sent through the error channel, which
/// is never stored.
#[derive(Debug, Clone, Copy)]
pub struct NotCached;

static NO_TTL_WARNED: AtomicBool = AtomicBool::new(false);

/// The read-through every cached function becomes.
///
/// `stale` is the macro's `stale` in seconds (see [`Expiry::stale`](crate::Expiry::stale)),
/// `tags` its `tags` with the arguments filled in ([`Expiry::tags`](crate::Expiry::tags)),
/// `lock` its `lock` ([`Expiry::lock`](crate::Expiry::lock)).
/// `expire` is the macro's `expire` in seconds; without it the cache's default TTL applies, and
/// a cache without one does not store the value (said once at warn): a cached function must
/// say how long its values stay fresh.
pub async fn read_through<T, E, F, Fut>(
    cache: &Cache,
    key: Key,
    expire: Option<u64>,
    stale: Option<u64>,
    tags: Vec<String>,
    lock: bool,
    loader: F,
) -> Result<T, E>
where
    T: CachedValue,
    E: SharedError,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let ttl = match expire {
        Some(secs) => Ttl::secs(secs),
        None if cache.default_ttl().is_some() => Ttl::Default,
        None => {
            if !NO_TTL_WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    key = %key,
                    "#[cache_result] without `expire` on a cache without default_ttl: the value is not cached"
                );
            }
            return loader().await;
        }
    };
    let mut expiry = crate::Expiry::new(ttl)
        .stale(Duration::from_secs(stale.unwrap_or(0)))
        .tags(tags);
    if lock {
        expiry = expiry.lock();
    }
    cache.get_or_try_insert_with(key, expiry, loader).await
}

/// The value of an infallible read-through.
pub fn infallible<T>(result: Result<T, Infallible>) -> T {
    match result {
        Ok(value) => value,
        Err(never) => match never {},
    }
}

/// Adds a type's name to a method's default prefix, escaping only what a glob would read.
pub fn append_type_name(key: &mut Key, name: &'static str) {
    let mut escaped = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '*' | '?' | '[' | ']' | '\\' | '%' => {
                let _ = write!(escaped, "%{:02X}", u32::from(c));
            }
            ' ' => {}
            c => escaped.push(c),
        }
    }
    key.append_raw(&escaped);
}
