use cache_core::cache_result;

#[cache_result(expire = 60, stale = 600)]
async fn find_meal(id: i64) -> Option<String> {
    Some(id.to_string())
}

fn main() {}
