use cache_core::cache_result;

const NONE: u64 = 0;

#[cache_result(expire = NONE)]
async fn stats(user_id: i64) -> u64 {
    user_id.unsigned_abs()
}

fn main() {}
