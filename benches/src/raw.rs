//! The raw paths' share of the work: the same envelope bytes the cache writes and the same
//! bincode 2 decode, so that a raw GET and a cache GET do equal work apart from the library.
//!
//! The layout is cache-core's (its `envelope` module): magic `0xCA`, format version 1, codec id
//! 1 (bincode), written-at and fresh-until as little-endian Unix milliseconds, then the payload.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bytes before the payload.
pub const HEADER: usize = 19;

/// The envelope cache-core writes for `value` with bincode, fresh for `ttl`.
///
/// # Panics
/// When bincode cannot encode the value (the bench values always encode).
#[must_use]
pub fn envelope<T: Serialize>(value: &T, ttl: Duration) -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let fresh_until = now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
    let mut out = Vec::with_capacity(HEADER + 64);
    out.extend_from_slice(&[0xCA, 1, 1]);
    out.extend_from_slice(&now.to_le_bytes());
    out.extend_from_slice(&fresh_until.to_le_bytes());
    if let Err(err) =
        bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())
    {
        panic!("bench value does not encode: {err}");
    }
    out
}

/// Decodes an envelope's payload with bincode 2 (serde, standard configuration).
#[must_use]
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let payload = bytes.get(HEADER..)?;
    bincode::serde::decode_from_slice(payload, bincode::config::standard())
        .ok()
        .map(|(value, _)| value)
}

/// A TTL in whole milliseconds, as `SET .. PX` takes it.
#[must_use]
pub fn px(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}
