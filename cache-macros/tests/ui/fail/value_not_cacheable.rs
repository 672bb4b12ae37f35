use cache_core::cache_result;

#[derive(Clone)]
pub struct NotSerializable(pub u64);

#[cache_result(expire = 60)]
async fn stats(user_id: i64) -> NotSerializable {
    NotSerializable(user_id.unsigned_abs())
}

fn main() {}
