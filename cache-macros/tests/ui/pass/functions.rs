//! Free functions of every return kind, with every option.
use cache_core::{Cache, cache_result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
pub struct Stats {
    pub avg: u32,
}

#[derive(Debug, Clone)]
pub struct AppError;

pub type AppResult<T> = Result<T, AppError>;

const HALF_HOUR: u64 = 30 * 60;

/// Doc comments, other attributes and visibility are kept.
#[cache_result(expire = 1800, key_prefix = "user_stats")]
#[allow(clippy::unused_async)]
pub(crate) async fn user_stats(user_id: i64, days: u32) -> Result<Stats, AppError> {
    Ok(Stats { avg: u32::try_from(user_id).unwrap_or(0) + days })
}

#[cache_result(expire = HALF_HOUR)]
async fn aliased(id: u64) -> AppResult<u64> {
    if id == 0 {
        return Err(AppError);
    }
    Ok(id)
}

#[cache_result(expire = { 2 * HALF_HOUR })]
async fn optional(name: &str) -> Option<String> {
    Some(name.to_owned())
}

#[cache_result(expire = 60, cache_none)]
async fn optional_remembered(id: Option<i64>, flag: bool, c: char) -> Option<(i64, bool, char)> {
    id.map(|id| (id, flag, c))
}

#[cache_result(expire = 60, key = "{user}:{range.0}-{range.1}", skip(verbose), cache = cache)]
async fn templated(cache: &Cache, user: String, range: (u32, u32), verbose: bool) -> Vec<u32> {
    let _ = verbose;
    (range.0..range.1).collect()
}

#[cache_result(expire = 60)]
async fn plain(a: u8, b: (i32, String), c: &str, d: &String) -> u64 {
    u64::from(a) + b.0.unsigned_abs() as u64 + c.len() as u64 + d.len() as u64
}

#[cache_result(expire = 60)]
async fn impl_trait_argument(id: impl cache_core::KeyPart + Send + Sync) -> u8 {
    let _ = id;
    1
}

#[cache_result(expire = 60, skip(_marker))]
async fn with_where<T>(id: i64, _marker: std::marker::PhantomData<T>) -> i64
where
    T: Send,
{
    id
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cache = Cache::memory();
    assert_eq!(user_stats(1, 2).await.ok().map(|s| s.avg), Some(3));
    assert!(aliased(0).await.is_err());
    assert_eq!(optional("a").await.as_deref(), Some("a"));
    assert_eq!(optional_remembered(None, true, 'x').await, None);
    assert_eq!(templated(&cache, "u".to_owned(), (1, 4), true).await, vec![1, 2, 3]);
    assert_eq!(plain(1, (-2, String::new()), "abc", &String::from("d")).await, 7);
    assert_eq!(impl_trait_argument(5_u8).await, 1);
    assert_eq!(with_where::<u8>(4, std::marker::PhantomData).await, 4);
}
