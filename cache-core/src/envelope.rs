//! The envelope around every stored value: header fields, then the codec's payload.
//!
//! Layout (19 bytes of header, integers little endian):
//!
//! | bytes  | field                                              |
//! |--------|----------------------------------------------------|
//! | 0      | magic `0xCA`                                       |
//! | 1      | envelope format version, now `1`                   |
//! | 2      | codec id ([`Codec::ID`](crate::codec::Codec::ID))  |
//! | 3..11  | written-at, Unix milliseconds                      |
//! | 11..19 | fresh-until, Unix milliseconds, `0` for no limit   |
//! | 19..   | payload                                            |
//!
//! Anything that does not parse (another format version, another codec, bytes written by
//! someone else) is reported as a [`Stale`] reason, which the cache turns into a miss.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::CodecKind;
use crate::error::Result;

const MAGIC: u8 = 0xCA;
const VERSION: u8 = 1;
const HEADER: usize = 19;

/// Why stored bytes were not a usable value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stale {
    /// Not an envelope at all, or one of a format version this build does not read.
    Foreign,
    /// Written by another codec.
    OtherCodec,
    /// The payload does not decode as the requested type.
    Shape,
}

impl Stale {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Foreign => "not an envelope of this version",
            Self::OtherCodec => "written by another codec",
            Self::Shape => "payload does not decode as the requested type",
        }
    }
}

/// Encodes `value` in an envelope; `fresh_for` sets the fresh-until field.
pub(crate) fn encode<T: Serialize + ?Sized>(
    codec: CodecKind,
    value: &T,
    fresh_for: Option<Duration>,
) -> Result<Vec<u8>> {
    let now = unix_millis(SystemTime::now());
    let fresh_until = fresh_for.map_or(0, |d| {
        now.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    });
    let mut out = Vec::with_capacity(HEADER + 64);
    out.extend_from_slice(&[MAGIC, VERSION, codec.id()]);
    out.extend_from_slice(&now.to_le_bytes());
    out.extend_from_slice(&fresh_until.to_le_bytes());
    codec.encode(value, &mut out)?;
    Ok(out)
}

/// Decodes an envelope written by `codec` into a `T`.
pub(crate) fn decode<T: DeserializeOwned>(codec: CodecKind, bytes: &[u8]) -> Result<T, Stale> {
    let header = bytes.get(..HEADER).ok_or(Stale::Foreign)?;
    if header[0] != MAGIC || header[1] != VERSION {
        return Err(Stale::Foreign);
    }
    if header[2] != codec.id() {
        return Err(Stale::OtherCodec);
    }
    codec.decode(&bytes[HEADER..]).map_err(|_| Stale::Shape)
}

/// Whether an envelope that [`decode`]s is still fresh at `now` (Unix milliseconds): its
/// fresh-until is unset or later. Bytes too short to hold a header are not fresh.
pub(crate) fn is_fresh(bytes: &[u8], now: u64) -> bool {
    bytes
        .get(11..HEADER)
        .and_then(|field| field.try_into().ok())
        .map(u64::from_le_bytes)
        .is_some_and(|fresh_until| fresh_until == 0 || fresh_until > now)
}

/// How much of its fresh time an envelope has used at `now`: 0 when written, 1 at its
/// fresh-until; 0 for values without one (they never need a refresh).
pub(crate) fn life_used(bytes: &[u8], now: u64) -> f64 {
    let field = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    match (field(3..11), field(11..HEADER)) {
        (Some(written), Some(fresh_until)) if fresh_until > written => {
            now.saturating_sub(written) as f64 / (fresh_until - written) as f64
        }
        _ => 0.0,
    }
}

/// Now, in Unix milliseconds, the unit of the header's times.
pub(crate) fn now_millis() -> u64 {
    unix_millis(SystemTime::now())
}

fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrips_with_both_codecs() {
        for codec in [CodecKind::Bincode, CodecKind::Json] {
            let bytes = encode(codec, &("meal", 512_u32), None).unwrap_or_default();
            assert_eq!(bytes[2], codec.id());
            assert_eq!(
                decode::<(String, u32)>(codec, &bytes),
                Ok(("meal".to_owned(), 512))
            );
        }
    }

    #[test]
    fn header_records_times() {
        let bytes =
            encode(CodecKind::Bincode, &1_u8, Some(Duration::from_secs(10))).unwrap_or_default();
        let written = u64::from_le_bytes(bytes[3..11].try_into().unwrap_or_default());
        let fresh = u64::from_le_bytes(bytes[11..19].try_into().unwrap_or_default());
        assert!(written > 1_600_000_000_000);
        assert_eq!(fresh - written, 10_000);
    }

    #[test]
    fn freshness_follows_the_fresh_until_field() {
        let now = now_millis();
        let forever = encode(CodecKind::Bincode, &1_u8, None).unwrap_or_default();
        let minute =
            encode(CodecKind::Bincode, &1_u8, Some(Duration::from_secs(60))).unwrap_or_default();
        assert!(is_fresh(&forever, now + 1_000_000_000));
        assert!(is_fresh(&minute, now));
        assert!(!is_fresh(&minute, now + 61_000));
        assert!(!is_fresh(b"short", now));
    }

    #[test]
    fn garbage_and_foreign_bytes_are_stale_not_panics() {
        assert_eq!(decode::<u32>(CodecKind::Bincode, b""), Err(Stale::Foreign));
        assert_eq!(
            decode::<u32>(CodecKind::Bincode, b"hello world, not an envelope"),
            Err(Stale::Foreign)
        );
        let json = encode(CodecKind::Json, &1_u32, None).unwrap_or_default();
        assert_eq!(
            decode::<u32>(CodecKind::Bincode, &json),
            Err(Stale::OtherCodec)
        );
        let mut truncated =
            encode(CodecKind::Bincode, &"a long string value", None).unwrap_or_default();
        truncated.truncate(HEADER + 3);
        assert_eq!(
            decode::<String>(CodecKind::Bincode, &truncated),
            Err(Stale::Shape)
        );
    }
}
