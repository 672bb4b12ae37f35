//! Methods on `&self`, generic methods and associated functions.
use std::sync::Arc;

use cache_core::{Cache, cache_result};

pub struct Repo {
    cache: Arc<Cache>,
    tenant: String,
}

impl Repo {
    #[cache_result(expire = 60, cache = self.cache)]
    pub async fn count(&self, user_id: i64) -> u64 {
        user_id.unsigned_abs()
    }

    #[cache_result(expire = 60, cache = self.cache, key = "{self.tenant}:{user_id}")]
    pub async fn per_tenant(&self, user_id: i64) -> String {
        format!("{}:{user_id}", self.tenant)
    }

    #[cache_result(expire = 60, cache = self.cache)]
    pub async fn generic<T>(&self, id: i64, extra: Option<T>) -> i64
    where
        T: cache_core::KeyPart + Into<i64> + Send + Sync,
    {
        id + extra.map_or(0, Into::into)
    }

    #[cache_result(expire = 60, key_prefix = "repo_lookup")]
    pub async fn associated(id: u32) -> u32 {
        id
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let repo = Repo { cache: Arc::new(Cache::memory()), tenant: "t".to_owned() };
    assert_eq!(repo.count(-3).await, 3);
    assert_eq!(repo.per_tenant(1).await, "t:1");
    assert_eq!(repo.generic::<i32>(1, Some(2)).await, 3);
    assert_eq!(Repo::associated(9).await, 9);
}
