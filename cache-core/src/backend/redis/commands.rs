//! The single-key commands the Redis and Redis Cluster backends both send, built once here.

use std::io::Write as _;
use std::time::Duration;

/// A key written as one command argument from its namespace prefix and the caller's key.
/// A key written as two parts, the namespace prefix and the key, into one argument.
pub(crate) struct Prefixed<'a>(pub(crate) &'a str, pub(crate) &'a str);

impl redis::ToRedisArgs for Prefixed<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        let mut arg = out.writer_for_next_arg();
        // Writing into the command's own buffer cannot fail.
        let _ = arg.write_all(self.0.as_bytes());
        let _ = arg.write_all(self.1.as_bytes());
    }
}

/// `GET prefix+key`, the key sent as one argument without building it first.
pub(crate) fn get_cmd(prefix: &str, key: &str) -> redis::Cmd {
    let mut cmd = redis::Cmd::with_capacity(2, 3 + prefix.len() + key.len());
    cmd.arg("GET").arg(Prefixed(prefix, key));
    cmd
}

/// `SET key value [PX ttl]`.
pub(crate) fn set_cmd(
    key: impl redis::ToRedisArgs,
    value: &[u8],
    ttl: Option<Duration>,
) -> redis::Cmd {
    // Sized once for the usual key and the options, rather than grown argument by argument.
    let mut cmd = redis::Cmd::with_capacity(6, value.len() + 128);
    cmd.arg("SET").arg(key).arg(value);
    if let Some(ttl) = ttl {
        cmd.arg("PX").arg(px(ttl));
    }
    cmd
}

/// `SET key value PX ttl NX`: stores only where nothing is (a lease).
pub(crate) fn set_if_absent_cmd(key: &str, value: &[u8], ttl: Duration) -> redis::Cmd {
    let mut cmd = set_cmd(key, value, Some(ttl));
    cmd.arg("NX");
    cmd
}

/// `SET key value XX KEEPTTL`: replaces an existing value, keeping its expiry (a tag version).
pub(crate) fn replace_cmd(key: &str, value: &[u8]) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value).arg("XX").arg("KEEPTTL");
    cmd
}

/// `ttl` in whole milliseconds for `PX`, rounded up: a 500 µs TTL must not become `PX 0`,
/// which Redis rejects.
pub(crate) fn px(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_nanos().div_ceil(1_000_000))
        .unwrap_or(u64::MAX)
        .max(1)
}
