use cache_core::cache_result;

// Three problems, all reported in one compile.
#[cache_result(expire = 0, colour = "blue", skip(nope))]
fn stats(user_id: i64) -> u64 {
    user_id.unsigned_abs()
}

fn main() {}
