use cache_core::cache_result;

#[cache_result(expire = 60, skip(db))]
async fn stats(user_id: i64) -> u64 {
    user_id.unsigned_abs()
}

fn main() {}
