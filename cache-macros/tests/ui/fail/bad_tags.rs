use cache_core::{Cache, cache_result};

#[cache_result(expire = 60, tags = "user", cache = _cache)]
async fn not_a_list(_cache: &Cache, _user_id: i64) -> u32 {
    1
}

#[cache_result(expire = 60, tags = ["user:{missing}", 3], lock = "yes", cache = _cache)]
async fn bad_elements(_cache: &Cache, _user_id: i64) -> u32 {
    1
}

fn main() {}
