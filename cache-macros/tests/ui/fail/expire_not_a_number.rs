use cache_core::cache_result;

#[cache_result(expire = "1800")]
async fn text(user_id: i64) -> u64 {
    user_id.unsigned_abs()
}

#[cache_result(expire = -5)]
async fn negative(user_id: i64) -> u64 {
    user_id.unsigned_abs()
}

#[cache_result(expire = 1.5)]
async fn fraction(user_id: i64) -> u64 {
    user_id.unsigned_abs()
}

fn main() {}
