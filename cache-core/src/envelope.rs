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
//! | 19..   | payload (format 1), or tags then payload (format 2)|
//!
//! Format 2 is written for tagged values only, so untagged values keep format 1 and the
//! envelopes of earlier releases. Its tag section, before the payload:
//!
//! | bytes  | field                                              |
//! |--------|----------------------------------------------------|
//! | 1      | number of tags, 1 to 255                           |
//! | each   | tag length (u16), tag, version length (u8), version|
//!
//! A tag's version is what its version key held when the value was written; the value is
//! usable only while every tag still has that version (see [`Cache::invalidate_tag`]).
//!
//! [`Cache::invalidate_tag`]: crate::Cache::invalidate_tag
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
const VERSION_TAGGED: u8 = 2;
const HEADER: usize = 19;

/// A tag and the version it had when a value was written.
pub(crate) type TagVersion = (String, Vec<u8>);

/// A [`TagVersion`] as read from an envelope, borrowing its bytes.
pub(crate) type RecordedTag<'a> = (&'a str, &'a [u8]);

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
    encode_tagged(codec, value, fresh_for, &[])
}

/// [`encode`] with the versions of the value's tags (format 2 when there are any).
///
/// Tags were checked by the caller: at most 255, each at most [`MAX_TAG_LEN`] bytes, versions
/// at most 255 bytes.
pub(crate) fn encode_tagged<T: Serialize + ?Sized>(
    codec: CodecKind,
    value: &T,
    fresh_for: Option<Duration>,
    tags: &[TagVersion],
) -> Result<Vec<u8>> {
    let now = unix_millis(SystemTime::now());
    let fresh_until = fresh_for.map_or(0, |d| {
        now.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    });
    let version = if tags.is_empty() {
        VERSION
    } else {
        VERSION_TAGGED
    };
    let mut out = Vec::with_capacity(HEADER + 64);
    out.extend_from_slice(&[MAGIC, version, codec.id()]);
    out.extend_from_slice(&now.to_le_bytes());
    out.extend_from_slice(&fresh_until.to_le_bytes());
    if !tags.is_empty() {
        out.push(u8::try_from(tags.len()).unwrap_or(u8::MAX));
        for (tag, tag_version) in tags.iter().take(usize::from(u8::MAX)) {
            let tag = &tag.as_bytes()[..tag.len().min(MAX_TAG_LEN)];
            let tag_version = &tag_version[..tag_version.len().min(usize::from(u8::MAX))];
            out.extend_from_slice(&u16::try_from(tag.len()).unwrap_or(u16::MAX).to_le_bytes());
            out.extend_from_slice(tag);
            out.push(u8::try_from(tag_version.len()).unwrap_or(u8::MAX));
            out.extend_from_slice(tag_version);
        }
    }
    codec.encode(value, &mut out)?;
    Ok(out)
}

/// The longest tag, in bytes.
pub(crate) const MAX_TAG_LEN: usize = 1024;

/// Decodes an envelope written by `codec` into a `T`.
pub(crate) fn decode<T: DeserializeOwned>(codec: CodecKind, bytes: &[u8]) -> Result<T, Stale> {
    let (_, payload) = split(bytes)?;
    let header = &bytes[..HEADER];
    if header[2] != codec.id() {
        return Err(Stale::OtherCodec);
    }
    codec.decode(payload).map_err(|_| Stale::Shape)
}

/// The tags of an envelope with the versions they had when it was written, and its payload.
fn split(bytes: &[u8]) -> Result<(Vec<RecordedTag<'_>>, &[u8]), Stale> {
    let header = bytes.get(..HEADER).ok_or(Stale::Foreign)?;
    match (header[0], header[1]) {
        (MAGIC, VERSION) => Ok((Vec::new(), &bytes[HEADER..])),
        (MAGIC, VERSION_TAGGED) => {
            let mut rest = &bytes[HEADER..];
            let mut take = |n: usize| -> Result<&[u8], Stale> {
                let (head, tail) = rest.split_at_checked(n).ok_or(Stale::Foreign)?;
                rest = tail;
                Ok(head)
            };
            let count = take(1)?[0];
            let mut tags = Vec::with_capacity(usize::from(count));
            for _ in 0..count {
                let len = take(2)?;
                let tag = take(usize::from(u16::from_le_bytes([len[0], len[1]])))?;
                let tag = std::str::from_utf8(tag).map_err(|_| Stale::Foreign)?;
                let version_len = take(1)?[0];
                tags.push((tag, take(usize::from(version_len))?));
            }
            Ok((tags, rest))
        }
        _ => Err(Stale::Foreign),
    }
}

/// The tags of an envelope, with the versions they had when it was written; empty for an
/// untagged value or bytes that are not an envelope (which [`decode`] reports).
pub(crate) fn tags(bytes: &[u8]) -> Vec<RecordedTag<'_>> {
    split(bytes).map(|(tags, _)| tags).unwrap_or_default()
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

/// How long an envelope stays fresh after `now` (Unix milliseconds): `None` without a limit,
/// zero once past it.
pub(crate) fn fresh_left(bytes: &[u8], now: u64) -> Option<Duration> {
    let fresh_until = bytes
        .get(11..HEADER)
        .and_then(|field| field.try_into().ok())
        .map_or(1, u64::from_le_bytes);
    (fresh_until != 0).then(|| Duration::from_millis(fresh_until.saturating_sub(now)))
}

/// How old an envelope is at `now`, and how long it was to be fresh (`None`: no limit).
pub(crate) fn age(bytes: &[u8], now: u64) -> (Duration, Option<Duration>) {
    let field = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    let (written, fresh_until) = (field(3..11), field(11..HEADER));
    let fresh =
        (fresh_until != 0).then(|| Duration::from_millis(fresh_until.saturating_sub(written)));
    (Duration::from_millis(now.saturating_sub(written)), fresh)
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
    fn tagged_values_carry_their_tag_versions() {
        let tags = vec![
            ("user:42".to_owned(), b"v1".to_vec()),
            ("meals".to_owned(), Vec::new()),
        ];
        let bytes = encode_tagged(CodecKind::Bincode, &512_u32, None, &tags).unwrap_or_default();
        assert_eq!(bytes[1], VERSION_TAGGED);
        assert_eq!(decode::<u32>(CodecKind::Bincode, &bytes), Ok(512));
        assert_eq!(
            super::tags(&bytes),
            vec![("user:42", &b"v1"[..]), ("meals", &b""[..])]
        );
        // Untagged values keep format 1, readable by earlier releases.
        let plain = encode(CodecKind::Bincode, &512_u32, None).unwrap_or_default();
        assert_eq!(plain[1], VERSION);
        assert!(super::tags(&plain).is_empty());
        // A tag section cut short is foreign bytes, not a panic.
        for cut in HEADER..bytes.len() - 4 {
            assert!(decode::<u32>(CodecKind::Bincode, &bytes[..cut]).is_err());
        }
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
