//! Entry points for the fuzz targets in `fuzz/`, behind the `fuzzing` feature: thin wrappers
//! over internals (the envelope, the glob matcher) that are not part of the crate's API.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::CodecKind;

fn codec(json: bool) -> CodecKind {
    if json {
        CodecKind::Json
    } else {
        CodecKind::Bincode
    }
}

/// Decodes stored bytes as the cache does: `None` for anything that is not a `T` in an
/// envelope of this version and codec.
pub fn decode_envelope<T: DeserializeOwned>(json: bool, bytes: &[u8]) -> Option<T> {
    crate::envelope::decode(codec(json), bytes).ok()
}

/// Encodes `value` as the cache stores it (no expiry); `None` when the codec cannot.
pub fn encode_envelope<T: Serialize>(json: bool, value: &T) -> Option<Vec<u8>> {
    crate::envelope::encode(codec(json), value, None).ok()
}

/// True when `text` matches the glob `pattern` as Redis (and the memory backend) reads it.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    crate::pattern::matches(pattern.as_bytes(), text.as_bytes())
}

/// True when `delete_pattern` accepts `pattern`.
pub fn glob_is_valid(pattern: &str) -> bool {
    crate::pattern::validate(pattern).is_ok()
}
