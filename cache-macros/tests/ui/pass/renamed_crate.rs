//! `crate = ..` names the path of cache-core, in both spellings: here a module re-exporting it,
//! as a user who renamed the dependency would name that name. (`tests/ui/fail/crate_path.rs`
//! shows the generated code uses that path and nothing else.)
mod my_cache {
    pub use cache_core::*;
}

use my_cache::{Cache, cache_result};

#[cache_result(crate = my_cache, expire = 60, key_prefix = "by_path", cache = cache)]
async fn by_path(cache: &Cache, id: u64) -> u64 {
    id * 2
}

#[cache_result(crate = "crate::my_cache", expire = 60, key_prefix = "by_string", cache = cache)]
async fn by_string(cache: &Cache, id: u64) -> u64 {
    id * 3
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cache = Cache::memory();
    assert_eq!(by_path(&cache, 7).await, 14);
    assert_eq!(by_string(&cache, 7).await, 21);
    assert_eq!(cache.get::<u64>("by_path:7").await.ok().flatten(), Some(14));
    assert_eq!(cache.get::<u64>("by_string:7").await.ok().flatten(), Some(21));
}
