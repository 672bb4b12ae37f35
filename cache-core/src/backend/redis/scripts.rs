//! The Lua scripts behind the operations Redis has no single command for. `Script` sends
//! `EVALSHA` and falls back to `EVAL` once per connection when the server does not know it.

use std::sync::OnceLock;

/// `KEYS[1]`: the key; `ARGV[1]`: the value it must hold to be removed.
pub(crate) fn delete_if_equals() -> &'static redis::Script {
    static SCRIPT: OnceLock<redis::Script> = OnceLock::new();
    SCRIPT.get_or_init(|| {
        redis::Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then \
               return redis.call('DEL', KEYS[1]) \
             end \
             return 0",
        )
    })
}

/// `KEYS[1]`: a load's lease; `KEYS[2]`: the key it loads; `ARGV[1]`: the load's token;
/// `ARGV[2]`: the value; `ARGV[3]`: its expiry in milliseconds, `0` for none. Stores the
/// value and ends the lease only while the lease holds the token; 1 when stored.
pub(crate) fn set_if_leased() -> &'static redis::Script {
    static SCRIPT: OnceLock<redis::Script> = OnceLock::new();
    SCRIPT.get_or_init(|| {
        redis::Script::new(
            "if redis.call('GET', KEYS[1]) ~= ARGV[1] then \
               return 0 \
             end \
             redis.call('DEL', KEYS[1]) \
             if ARGV[3] == '0' then \
               redis.call('SET', KEYS[2], ARGV[2]) \
             else \
               redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3]) \
             end \
             return 1",
        )
    })
}

/// One call of [`get_or_create`] on `conn`: the value under `key`, created as `candidate`
/// where missing, kept at least `millis` ms (`0`: never expires).
pub(crate) async fn get_or_create_on(
    mut conn: impl redis::aio::ConnectionLike,
    key: &str,
    candidate: &[u8],
    millis: u64,
) -> redis::RedisResult<Vec<u8>> {
    get_or_create()
        .key(key)
        .arg(candidate)
        .arg(millis)
        .invoke_async(&mut conn)
        .await
}

/// `KEYS[1]`: the key; `ARGV[1]`: the value to create it with; `ARGV[2]`: the least expiry
/// it must have afterwards, in milliseconds, `0` for none. Returns the value.
pub(crate) fn get_or_create() -> &'static redis::Script {
    static SCRIPT: OnceLock<redis::Script> = OnceLock::new();
    SCRIPT.get_or_init(|| {
        redis::Script::new(
            "local ttl = tonumber(ARGV[2]) \
             local value = redis.call('GET', KEYS[1]) \
             if not value then \
               value = ARGV[1] \
               if ttl > 0 then \
                 redis.call('SET', KEYS[1], value, 'PX', ttl) \
               else \
                 redis.call('SET', KEYS[1], value) \
               end \
             elseif ttl == 0 then \
               redis.call('PERSIST', KEYS[1]) \
             else \
               local left = redis.call('PTTL', KEYS[1]) \
               if left >= 0 and left < ttl then \
                 redis.call('PEXPIRE', KEYS[1], ttl) \
               end \
             end \
             return value",
        )
    })
}
