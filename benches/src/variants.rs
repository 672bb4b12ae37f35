//! The Redis GET and SET of each compared client, as [`Op`]s doing equal work: the same bytes
//! on the wire and, for the raw paths, the same bincode 2 decode the cache does. Shared by the
//! `redis` bench and the `profile` binary.

use std::hint::black_box;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::load::Op;
use crate::raw;
use cache_core::{Cache, Cacheable};
use cached::{ConcurrentCachedAsync, SerializeCachedAsync};
use redis::aio::{ConnectionLike, MultiplexedConnection};

/// The TTL of every value written.
pub const TTL: Duration = Duration::from_secs(600);

/// The `cached` crate's async Redis store.
pub type CachedStore<T> = cached::AsyncRedisCache<&'static str, T>;

/// A GET hit, decoded into a `T`.
#[derive(Clone, Debug)]
pub enum Get<T> {
    /// `Cache::get` (key below the `bench` namespace).
    CacheCore(Cache, &'static str),
    /// `GET` on one shared multiplexed connection, then the payload's bincode decode.
    Raw(MultiplexedConnection, &'static str),
    /// A deadpool-redis connection checked out for the `GET`, then the decode.
    Deadpool(deadpool_redis::Pool, &'static str),
    /// `async_cache_get` of the `cached` crate's store (MessagePack inside).
    Cached(CachedStore<T>, &'static str),
}

impl<T: Cacheable> Op for Get<T> {
    async fn run(&mut self) -> bool {
        match self {
            Self::CacheCore(cache, key) => {
                matches!(black_box(cache.get::<T>(*key).await), Ok(Some(_)))
            }
            Self::Raw(conn, key) => raw_get::<T>(conn, key).await,
            Self::Deadpool(pool, key) => match pool.get().await {
                Ok(mut conn) => raw_get::<T>(&mut conn, key).await,
                Err(_) => false,
            },
            Self::Cached(store, key) => {
                matches!(black_box(store.async_cache_get(key).await), Ok(Some(_)))
            }
        }
    }
}

async fn raw_get<T: Cacheable>(conn: &mut impl ConnectionLike, key: &str) -> bool {
    let bytes: Option<Vec<u8>> = redis::cmd("GET")
        .arg(key)
        .query_async(conn)
        .await
        .ok()
        .flatten();
    bytes
        .and_then(|bytes| raw::decode::<T>(&bytes))
        .map(black_box)
        .is_some()
}

/// A SET of a `T` with [`TTL`].
#[derive(Clone, Debug)]
pub enum Set<T> {
    /// `Cache::set`: envelope + bincode encode, `SET .. PX`.
    CacheCore(Cache, &'static str, T),
    /// The same envelope bytes built by hand, `SET .. PX` on the shared multiplexed connection.
    Raw(MultiplexedConnection, &'static str, T),
    /// The same, on a deadpool-redis connection checked out for it.
    Deadpool(deadpool_redis::Pool, &'static str, T),
    /// `async_cache_set_ref` of the `cached` crate: one `PSETEX` (its `async_cache_set` also
    /// reads the old value back, a second command; the faster one is measured).
    Cached(CachedStore<T>, &'static str, T),
}

impl<T: Cacheable> Op for Set<T> {
    async fn run(&mut self) -> bool {
        match self {
            Self::CacheCore(cache, key, value) => cache.set(*key, value, TTL).await.is_ok(),
            Self::Raw(conn, key, value) => raw_set(conn, key, value).await,
            Self::Deadpool(pool, key, value) => match pool.get().await {
                Ok(mut conn) => raw_set(&mut conn, key, value).await,
                Err(_) => false,
            },
            Self::Cached(store, key, value) => store.async_cache_set_ref(key, value).await.is_ok(),
        }
    }
}

async fn raw_set<T: Cacheable>(conn: &mut impl ConnectionLike, key: &str, value: &T) -> bool {
    let bytes = raw::envelope(value, TTL);
    redis::cmd("SET")
        .arg(key)
        .arg(&bytes)
        .arg("PX")
        .arg(raw::px(TTL))
        .query_async::<()>(conn)
        .await
        .is_ok()
}

/// A batch of keys read in one `get_many`, or one `get` after another, or (where the time goes)
/// a raw `MGET`, with or without the decodes.
#[derive(Clone, Debug)]
pub enum Batch<T> {
    /// `Cache::get_many` of the keys.
    GetMany(Cache, Arc<[String]>, PhantomData<fn() -> T>),
    /// `Cache::get` of each key in turn.
    Sequential(Cache, Arc<[String]>, PhantomData<fn() -> T>),
    /// Where `get_many`'s time goes: the raw `MGET` of the same keys, alone or with the
    /// decodes into a `Vec<Option<T>>`.
    RawMget(
        MultiplexedConnection,
        Arc<[String]>,
        bool,
        PhantomData<fn() -> T>,
    ),
}

impl<T: Cacheable> Op for Batch<T> {
    async fn run(&mut self) -> bool {
        match self {
            Self::GetMany(cache, keys, _) => match cache.get_many::<T>(keys).await {
                Ok(found) => black_box(found).iter().all(Option::is_some),
                Err(_) => false,
            },
            Self::Sequential(cache, keys, _) => {
                let mut all = true;
                for key in keys.iter() {
                    all &= matches!(black_box(cache.get::<T>(key).await), Ok(Some(_)));
                }
                all
            }
            Self::RawMget(conn, keys, decode, _) => {
                let found: Vec<Option<Vec<u8>>> =
                    match redis::cmd("MGET").arg(&keys[..]).query_async(conn).await {
                        Ok(found) => found,
                        Err(_) => return false,
                    };
                if *decode {
                    // Into a Vec, as `get_many` returns them: holding 100 values at once costs
                    // the allocator more than decoding and dropping one at a time.
                    let values: Vec<Option<T>> = found
                        .iter()
                        .map(|b| b.as_deref().and_then(raw::decode::<T>))
                        .collect();
                    black_box(values).iter().all(Option::is_some)
                } else {
                    black_box(found).iter().all(Option::is_some)
                }
            }
        }
    }
}
