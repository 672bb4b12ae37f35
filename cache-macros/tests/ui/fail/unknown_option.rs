use cache_core::cache_result;

#[cache_result(expire = 60, ttl = 30)]
async fn stats(user_id: i64) -> u64 {
    user_id.unsigned_abs()
}

fn main() {}
