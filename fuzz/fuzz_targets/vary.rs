//! Vary on a response and the headers of requests: parsing never panics, names come out
//! lowercase and unique, a request always matches the variant its own headers select, and
//! whitespace around list commas does not split variants.
//!
//! Input: lines; `vary: ...` lines are the response's Vary field lines, other `name: value`
//! lines the request's headers.
#![no_main]

use cache_adapters::__fuzz::{
    vary_matches as matches, vary_names, vary_normalized as normalized,
    vary_selecting_values as selecting_values,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut response = HeaderMap::new();
    let mut request = HeaderMap::new();
    let mut spaced = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        else {
            continue;
        };
        if name == http::header::VARY {
            response.append(name, value);
            continue;
        }
        // The same value with spaces around every comma, where no quoted string can be hurt.
        let respaced = match value.to_str() {
            Ok(text) if !text.contains('"') => {
                HeaderValue::from_str(&text.replace(',', " , ")).unwrap_or_else(|_| value.clone())
            }
            _ => value.clone(),
        };
        request.append(name.clone(), value);
        spaced.append(name, respaced);
    }

    let Some(names) = vary_names(&response) else {
        return;
    };
    for (i, name) in names.iter().enumerate() {
        assert!(
            !name.is_empty() && *name == name.to_ascii_lowercase(),
            "{names:?}"
        );
        assert!(!names[..i].contains(name), "{names:?} repeats {name}");
    }
    // Any header the request has, by any name the Vary line may give.
    for name in &names {
        assert_eq!(
            normalized(&request, name).is_some(),
            request.contains_key(name.as_str())
        );
    }
    let selected = selecting_values(&request, &names);
    assert!(
        matches(&selected, &request),
        "a request matches its own variant"
    );
    assert!(
        matches(&selected, &spaced),
        "whitespace does not split variants"
    );
});
