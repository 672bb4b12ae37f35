//! `#[cache_result(expire = 1800, key_prefix = "user_stats")]`: turns an `async fn`, a method or
//! a web handler into a read-through of [`cache_core`]'s `Cache::get_or_try_insert_with`.
//!
//! Use it through `cache_core` (feature `macros`, on by default): `use cache_core::cache_result;`.
//! The documentation, with examples, is on `cache_core::cache_result`.
//!
//! [`cache_core`]: https://docs.rs/cache-core

mod attr;
mod expand;
mod validate;

use proc_macro::TokenStream;

/// Caches an async function's result: the function becomes a read-through of
/// `Cache::get_or_try_insert_with`, with its stampede protection (one body run per key at a
/// time), its failure policy (a dead cache means the body runs, never an error) and its metrics.
///
/// ```
/// use cache_core::{Cache, cache_result};
/// # #[derive(Clone, serde::Serialize, serde::Deserialize)] pub struct Stats { avg: u32 }
/// # #[derive(Debug, Clone)] pub struct AppError;
///
/// #[cache_result(expire = 1800, key_prefix = "user_stats", cache = cache)]
/// async fn user_stats(cache: &Cache, user_id: i64, days: u32) -> Result<Stats, AppError> {
///     Ok(Stats { avg: 2000 }) // the database query; runs on a miss only
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # let cache = Cache::memory();
/// # assert!(user_stats(&cache, 1, 7).await.is_ok());
/// # assert!(cache.get::<Stats>("user_stats:1:7").await.unwrap().is_some());
/// # }
/// ```
///
/// # What is cached
///
/// | return type | cached | not cached |
/// |---|---|---|
/// | `Result<T, E>` (or an alias whose name ends in `Result`) | `Ok(T)` | `Err`: never; callers waiting on the same key get a clone of the error, so `E: Clone` |
/// | `Option<T>` | `Some(T)` | `None`, unless `cache_none` |
/// | `Json<T>`, `web::Json<T>`, inside either of the above or alone | the `T` | |
/// | anything else | the value | |
///
/// Cached values are `Serialize + DeserializeOwned + Clone + Send + Sync + 'static`. A
/// function returning nothing, `impl Trait` or a reference is a compile error.
///
/// # Options
///
/// | option | meaning |
/// |---|---|
/// | `expire = 1800` | seconds; an integer literal or a const expression of type `u64` (`expire = HALF_HOUR`). Without it the cache's default TTL applies, and a cache without one does not store the value (said once, at warn) |
/// | `stale = 600` | seconds to keep serving the last `Ok` past `expire` when the body returns `Err` (`Result` functions only), as [`Expiry::stale`]; same forms as `expire` |
/// | `key_prefix = "user_stats"` | the first part of every key; default: the module path and function name (`my_app::stats::user_stats`), for methods the type's name and the method's |
/// | `key = "{user_id}:{range.days}"` | the key after the prefix, over argument names (and their fields, and `self`), instead of every argument |
/// | `skip(db, state)` | arguments left out of the key |
/// | `cache = state.cache` | the [`Cache`] to use: an expression over the arguments giving a `Cache`, `&Cache` or `Arc<Cache>`; the argument it names is left out of the key. Default: `cache_core::global()`, the cache given to `cache_core::install_global`, or else a memory cache |
/// | `cache_none` | cache `None` too (for `Option` functions) |
/// | `tags = ["user:{user_id}", "stats"]` | store the value under these tags, as [`Expiry::tags`]: `cache.invalidate_tag("user:42")` then voids it on every replica. `{..}` holes name arguments (or their fields, or `self`), shown with `Display`; `{{` and `}}` are literal braces |
/// | `lock = true` | one loader per key across replicas, as [`Expiry::lock`]: on a miss, the replica holding a Redis lease runs the body while the others wait for its value |
/// | `crate = my_cache` | the path of `cache-core` when the dependency is renamed (`my_cache = { package = "cache-core", .. }`), as serde's `crate = ".."`; also written `crate = "my_cache"`. Default: `::cache_core` |
///
/// # Keys
///
/// A key is `{namespace}:{key_prefix}:{part}:{part}..`, one part per argument in order, each
/// escaped as [`Key`] parts are. Arguments become parts through `cache_core::KeyPart`
/// (integers, `bool`, `char`, strings, `Option`, tuples, references; `Uuid`, chrono and time
/// types and the axum / actix-web `Path` and `Query` extractors behind features). Left out by
/// default: `self`, the `cache = ..` argument, and framework state (`State<..>`, `web::Data<..>`).
/// An argument that is not a key part is a compile error on that argument.
///
/// Invalidate one user's entries after a write with the same parts:
///
/// ```
/// # use cache_core::{Cache, cache_result, key};
/// # #[cache_result(expire = 1800, key_prefix = "user_stats", cache = cache)]
/// # async fn user_stats(cache: &Cache, user_id: i64, days: u32) -> u32 { days }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// # let cache = Cache::memory();
/// user_stats(&cache, 42, 7).await;
/// user_stats(&cache, 42, 30).await;
/// // after user 42 logs a meal:
/// let removed = cache.delete_pattern(key!("user_stats", 42_i64).prefix_pattern()).await?;
/// assert_eq!(removed, 2);
/// # Ok(()) }
/// ```
///
/// # Web handlers
///
/// Extractor patterns work as arguments; the handler keeps its signature, so it stays a handler.
///
/// ```
/// use axum::extract::{Path, State};
/// use axum::{Json, Router, routing::get};
/// use cache_core::{Cache, cache_result};
///
/// #[derive(Clone)]
/// struct AppState { cache: Cache }
///
/// #[cache_result(expire = 60, cache = app.cache)]
/// async fn meals(State(app): State<AppState>, Path(user_id): Path<i64>) -> Json<Vec<String>> {
///     Json(vec![format!("oats for {user_id}")])
/// }
///
/// let app: Router = Router::new()
///     .route("/meals/{user_id}", get(meals))
///     .with_state(AppState { cache: Cache::memory() });
/// ```
///
/// [`Cache`]: https://docs.rs/cache-core/latest/cache_core/struct.Cache.html
/// [`Key`]: https://docs.rs/cache-core/latest/cache_core/struct.Key.html
/// [`Expiry::stale`]: https://docs.rs/cache-core/latest/cache_core/struct.Expiry.html#method.stale
/// [`Expiry::tags`]: https://docs.rs/cache-core/latest/cache_core/struct.Expiry.html#method.tags
/// [`Expiry::lock`]: https://docs.rs/cache-core/latest/cache_core/struct.Expiry.html#method.lock
#[proc_macro_attribute]
pub fn cache_result(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::cache_result(attr.into(), item.into()).into()
}

/// Errors collected across parsing and validation, reported together.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, err: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(err),
            None => self.0 = Some(err),
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    fn into_result(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
