//! The two ways to write a cached function that `#[cache_result]` must be no slower than: the
//! macro, and the same read-through written by hand.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache_core::{Cache, cache_result, key};

use crate::data::{DailyMeals, daily_meals};

static LOADS: AtomicU64 = AtomicU64::new(0);

/// How many times either function's loader has run: a hit bench checks it did not move.
pub fn loads() -> u64 {
    LOADS.load(Ordering::Relaxed)
}

/// The loader both run on a miss (never during the hit benches).
fn load(user_id: i64) -> DailyMeals {
    LOADS.fetch_add(1, Ordering::Relaxed);
    DailyMeals {
        user_id,
        ..daily_meals()
    }
}

/// `#[cache_result]` over the loader (a copy of the ~1 KiB value).
#[cache_result(expire = 600, key_prefix = "read_through", cache = cache)]
pub async fn with_macro(cache: &Cache, user_id: i64) -> DailyMeals {
    load(user_id)
}

/// What the macro expands to, by hand: the same key (`read_through:{user_id}`), TTL and
/// `get_or_try_insert_with`.
pub async fn by_hand(cache: &Cache, user_id: i64) -> DailyMeals {
    let result = cache
        .get_or_try_insert_with(
            key!("read_through", user_id),
            Duration::from_secs(600),
            || async move { Ok::<_, Infallible>(load(user_id)) },
        )
        .await;
    match result {
        Ok(value) => value,
        Err(never) => match never {},
    }
}
