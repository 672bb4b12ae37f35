//! The generated code names the path `crate = ..` gives, and nothing else takes its place.
use cache_core::cache_result;

#[cache_result(crate = not_cache_core, expire = 60)]
async fn wrong_path(id: u64) -> u64 {
    id
}

#[cache_result(crate = 7, expire = 60)]
async fn not_a_path(id: u64) -> u64 {
    id
}

fn main() {}
