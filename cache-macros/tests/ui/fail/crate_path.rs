//! The generated code names the path `crate = ..` gives, and nothing takes its place.
use cache_core::cache_result;

#[cache_result(crate = not_cache_core, expire = 60)]
async fn wrong_path(id: u64) -> u64 {
    id
}

fn main() {}
