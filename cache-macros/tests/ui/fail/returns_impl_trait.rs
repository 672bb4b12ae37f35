use cache_core::cache_result;

#[cache_result(expire = 60)]
async fn stats(user_id: i64) -> impl std::fmt::Display {
    user_id
}

fn main() {}
