use cache_core::cache_result;

#[cache_result(expire = 60, key = "{user_id}:{days}", skip(days))]
async fn stats(user_id: i64, days: u32) -> u64 {
    user_id.unsigned_abs() + u64::from(days)
}

fn main() {}
