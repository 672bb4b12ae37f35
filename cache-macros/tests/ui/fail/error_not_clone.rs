use cache_core::cache_result;

#[derive(Debug)]
pub struct NotClone;

#[cache_result(expire = 60)]
async fn stats(user_id: i64) -> Result<u64, NotClone> {
    Ok(user_id.unsigned_abs())
}

fn main() {}
