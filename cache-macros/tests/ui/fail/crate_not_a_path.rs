use cache_core::cache_result;

#[cache_result(crate = 7, expire = 60)]
async fn not_a_path(id: u64) -> u64 {
    id
}

fn main() {}
