use cache_core::cache_result;

pub struct Filter {
    pub days: u32,
}

#[cache_result(expire = 60)]
async fn stats(user_id: i64, filter: Filter) -> u64 {
    user_id.unsigned_abs() + u64::from(filter.days)
}

fn main() {}
