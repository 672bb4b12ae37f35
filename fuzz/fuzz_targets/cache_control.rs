//! Cache-Control, Pragma and CDN-Cache-Control field lines as a client or an origin may send
//! them: parsing never panics, delta-seconds stay within 2^31, and (for lines without quoted
//! strings) several field lines mean what the same lines joined by commas mean (RFC 9110 §5.3).
//!
//! Input: lines; a line starting `p:` is a Pragma line, `c:` a CDN-Cache-Control line, any other
//! a Cache-Control line.
#![no_main]

use cache_adapters::policy::cache_control::{CacheControl, DELTA_SECONDS_MAX, Seconds};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fn within_bounds(cc: &CacheControl) {
    for s in [
        cc.max_age,
        cc.s_maxage,
        cc.min_fresh,
        cc.stale_while_revalidate,
        cc.stale_if_error,
    ] {
        if let Seconds::Valid(n) = s {
            assert!(n <= DELTA_SECONDS_MAX, "{cc:?}");
        }
    }
    if let Some(Some(n)) = cc.max_stale {
        assert!(n <= DELTA_SECONDS_MAX, "{cc:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    let mut plain_lines = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        let (name, value) = match line {
            [b'p', b':', rest @ ..] => ("pragma", rest),
            [b'c', b':', rest @ ..] => ("cdn-cache-control", rest),
            _ => ("cache-control", line),
        };
        let Ok(value) = HeaderValue::from_bytes(value) else {
            continue;
        };
        if name == "cache-control" {
            plain_lines.push(value.clone());
        }
        headers.append(name, value);
    }
    let parsed = CacheControl::parse(&headers);
    within_bounds(&parsed);
    within_bounds(&CacheControl::parse_request(&headers));
    within_bounds(&CacheControl::response(&headers));

    let texts: Option<Vec<&str>> = plain_lines.iter().map(|v| v.to_str().ok()).collect();
    if let Some(texts) = texts
        && texts.len() > 1
        && !texts.iter().any(|t| t.contains('"'))
    {
        let joined = HeaderValue::from_str(&texts.join(", ")).expect("joined visible ASCII");
        let mut one = HeaderMap::new();
        one.insert("cache-control", joined);
        assert_eq!(CacheControl::parse(&one), parsed, "lines {texts:?}");
    }
});
