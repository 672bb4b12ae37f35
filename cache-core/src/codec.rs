//! Serialization formats for stored values: the [`Codec`] trait, [`Bincode`] and [`Json`].
//!
//! The in-memory backend keeps decoded values and never encodes; a codec is used for the bytes a
//! remote backend stores. Which codec wrote a value is recorded in its envelope, so a value
//! written in another format is a miss rather than garbage.
//!
//! The set of codecs is closed ([`CodecKind`]) so that [`Cache`](crate::Cache) stays one
//! non-generic type that web state, macros and middleware can share; a new format is a new
//! variant behind a feature. Dispatch is a `match` on a two-variant enum, which costs nothing
//! measurable next to a network round trip.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};

/// A serialization format: values in, bytes out, and back.
///
/// Sealed: the formats a cache can write are the variants of [`CodecKind`], so that every
/// stored value names its format by an id every reader knows. The trait is public to encode
/// and decode with a format directly, as a cache does.
///
/// ```
/// use cache_core::codec::{Bincode, Codec, Json};
///
/// let mut bytes = Vec::new();
/// Json::encode(&vec![1, 2, 3], &mut bytes).unwrap();
/// assert_eq!(bytes, b"[1,2,3]");
/// assert_eq!(Json::decode::<Vec<i32>>(&bytes).unwrap(), vec![1, 2, 3]);
///
/// bytes.clear();
/// Bincode::encode(&"hi", &mut bytes).unwrap();
/// assert_eq!(Bincode::decode::<String>(&bytes).unwrap(), "hi");
/// ```
pub trait Codec: sealed::Sealed {
    /// The id written into every envelope: stable forever for a given format.
    const ID: u8;
    /// A human-readable name, for logs.
    const NAME: &'static str;

    /// Appends the encoding of `value` to `out`.
    ///
    /// # Errors
    /// [`ErrorKind::Codec`] when the value cannot be represented in this format.
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()>;

    /// Decodes a whole value from `bytes`; trailing bytes are an error, not ignored.
    ///
    /// # Errors
    /// [`ErrorKind::Codec`] when the bytes are not a complete `T` in this format.
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T>;
}

/// The most bytes one bincode value may claim while it decodes: Redis's largest string
/// (`proto-max-bulk-len`, 512 MiB).
const DECODE_LIMIT: usize = 512 * 1024 * 1024;

/// bincode 2 with its standard configuration (varint integers, little endian): compact and
/// fast, the default. Not self-describing: a struct that gains or loses a field is a miss.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

impl Codec for Bincode {
    const ID: u8 = 1;
    const NAME: &'static str = "bincode";

    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
        bincode::serde::encode_into_std_write(value, out, bincode::config::standard())
            .map_err(Error::bincode)?;
        Ok(())
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        // bincode allocates a string or byte buffer of the length its prefix claims before it
        // reads the bytes, so garbage claiming 2^64 bytes panicked ("capacity overflow") and a
        // claim of a terabyte would abort the process (found by `fuzz/`, target `envelope`).
        // The limit refuses such claims up front; no value Redis can hold exceeds it.
        let config = bincode::config::standard().with_limit::<DECODE_LIMIT>();
        let (value, read) = bincode::serde::decode_from_slice(bytes, config).map_err(|e| {
            Error::new(ErrorKind::Codec, "bincode could not decode the value").with_source(e)
        })?;
        // bincode stops where the value ends; leftover bytes mean the stored value had more
        // fields than `T` (a struct that lost one), which must be a miss, not a wrong value.
        if read != bytes.len() {
            return Err(Error::new(
                ErrorKind::Codec,
                format!(
                    "bincode decoded {read} of {} bytes: the stored value has another shape",
                    bytes.len()
                ),
            ));
        }
        Ok(value)
    }
}

/// JSON through serde_json: readable with `redis-cli` and by other languages.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Codec for Json {
    const ID: u8 = 2;
    const NAME: &'static str = "json";

    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
        serde_json::to_writer(out, value).map_err(Error::json)
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(Error::json)
    }
}

/// Which [`Codec`] a cache writes with; chosen with
/// [`CacheBuilder::codec`](crate::CacheBuilder::codec).
///
/// ```
/// use cache_core::codec::{CodecKind, Json};
/// assert_eq!(CodecKind::from(Json), CodecKind::Json);
/// assert_eq!(CodecKind::default(), CodecKind::Bincode);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CodecKind {
    /// [`Bincode`], the default.
    #[default]
    Bincode,
    /// [`Json`].
    Json,
}

impl CodecKind {
    /// The envelope id of this codec.
    #[must_use]
    pub fn id(self) -> u8 {
        match self {
            Self::Bincode => Bincode::ID,
            Self::Json => Json::ID,
        }
    }

    /// The codec's name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Bincode => Bincode::NAME,
            Self::Json => Json::NAME,
        }
    }

    pub(crate) fn encode<T: Serialize + ?Sized>(self, value: &T, out: &mut Vec<u8>) -> Result<()> {
        match self {
            Self::Bincode => Bincode::encode(value, out),
            Self::Json => Json::encode(value, out),
        }
    }

    pub(crate) fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T> {
        match self {
            Self::Bincode => Bincode::decode(bytes),
            Self::Json => Json::decode(bytes),
        }
    }
}

impl From<Bincode> for CodecKind {
    fn from(_: Bincode) -> Self {
        Self::Bincode
    }
}

impl From<Json> for CodecKind {
    fn from(_: Json) -> Self {
        Self::Json
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct V1 {
        id: u64,
        name: String,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct V2 {
        id: u64,
        name: String,
        kcal: u32,
    }

    fn roundtrip<C: Codec>() {
        let v = V1 {
            id: 7,
            name: "oats".to_owned(),
        };
        let mut bytes = Vec::new();
        C::encode(&v, &mut bytes).ok();
        assert_eq!(C::decode::<V1>(&bytes).ok(), Some(v));
    }

    #[test]
    fn both_codecs_roundtrip() {
        roundtrip::<Bincode>();
        roundtrip::<Json>();
    }

    #[test]
    fn a_length_prefix_claiming_more_than_there_is_fails_without_allocating_it() {
        // A string claiming u64::MAX bytes (the fuzzer's find), then one claiming 1 TiB.
        let mut huge = vec![253];
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        let mut tebibyte = vec![253];
        tebibyte.extend_from_slice(&(1_u64 << 40).to_le_bytes());
        for bytes in [huge, tebibyte] {
            assert!(Bincode::decode::<String>(&bytes).is_err());
            assert!(Bincode::decode::<Vec<u8>>(&bytes).is_err());
            assert!(Bincode::decode::<Vec<String>>(&bytes).is_err());
        }
    }

    #[test]
    fn a_changed_struct_does_not_decode() {
        for kind in [CodecKind::Bincode, CodecKind::Json] {
            let mut old = Vec::new();
            kind.encode(
                &V1 {
                    id: 1,
                    name: "a".to_owned(),
                },
                &mut old,
            )
            .ok();
            assert!(kind.decode::<V2>(&old).is_err(), "{kind:?}: gained a field");
            let mut new = Vec::new();
            kind.encode(
                &V2 {
                    id: 1,
                    name: "a".to_owned(),
                    kcal: 3,
                },
                &mut new,
            )
            .ok();
            // JSON ignores unknown fields by serde's default; bincode must see the leftover bytes.
            if kind == CodecKind::Bincode {
                assert!(kind.decode::<V1>(&new).is_err(), "{kind:?}: lost a field");
            }
        }
    }
}

mod sealed {
    /// Only this crate's codecs implement [`Codec`](super::Codec). `pub` in a private module:
    /// nameable by no one outside, as a supertrait of a public trait must be.
    #[allow(unreachable_pub)]
    pub trait Sealed {}

    impl Sealed for super::Bincode {}
    impl Sealed for super::Json {}
}
