//! Cache-Control, Pragma and CDN-Cache-Control field lines as a client or an origin may send
//! them: parsing never panics, delta-seconds stay within 2^31, and (for lines without quoted
//! strings) several field lines mean what the same lines joined by commas mean (RFC 9110 §5.3).
//!
//! Input: lines; a line starting `p:` is a Pragma line, `c:` a CDN-Cache-Control line, any other
//! a Cache-Control line.
#![no_main]

use cache_adapters::__fuzz::{
    DELTA_SECONDS_MAX, Directives, cache_control, request_cache_control, response_cache_control,
};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fn within_bounds(cc: &Directives) {
    for n in cc.seconds() {
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
    let parsed = cache_control(&headers);
    within_bounds(&parsed);
    within_bounds(&request_cache_control(&headers));
    within_bounds(&response_cache_control(&headers));

    let texts: Option<Vec<&str>> = plain_lines.iter().map(|v| v.to_str().ok()).collect();
    if let Some(texts) = texts
        && texts.len() > 1
        && !texts.iter().any(|t| t.contains('"'))
    {
        let joined = HeaderValue::from_str(&texts.join(", ")).expect("joined visible ASCII");
        let mut one = HeaderMap::new();
        one.insert("cache-control", joined);
        assert_eq!(cache_control(&one), parsed, "lines {texts:?}");
    }
});
