//! Stored bytes, as a Redis shared with other programs may hold under any key: decoding them as
//! any type, with either codec, is a value or a miss, never a panic or a runaway allocation; and
//! whatever decodes re-encodes to bytes that decode to the same value.
#![no_main]

use std::collections::BTreeMap;

use cache_core::__fuzz::{decode_envelope, encode_envelope};
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Meal {
    id: i64,
    name: String,
    kcal: Option<u32>,
    tags: Vec<String>,
    portions: BTreeMap<String, u16>,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Kind {
    Snack,
    Dish(u8),
    Plan { days: Vec<u8>, note: Option<String> },
}

fn roundtrip<T>(json: bool, data: &[u8])
where
    T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Some(value) = decode_envelope::<T>(json, data) else {
        return;
    };
    let again = encode_envelope(json, &value).expect("a decoded value encodes again");
    assert_eq!(decode_envelope::<T>(json, &again), Some(value));
}

fuzz_target!(|data: &[u8]| {
    for json in [false, true] {
        roundtrip::<Meal>(json, data);
        roundtrip::<(u8, Kind)>(json, data);
        roundtrip::<Vec<u64>>(json, data);
        roundtrip::<String>(json, data);
        roundtrip::<Option<Vec<String>>>(json, data);
        // Self-describing only: bincode must refuse it, not panic.
        let _ = decode_envelope::<serde_json::Value>(json, data);
    }
});
