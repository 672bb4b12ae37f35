//! Entry points for the fuzz targets in `fuzz/`, behind the `fuzzing` feature: thin wrappers
//! over the policy's parsers, which are not part of the crate's API.

use http::HeaderMap;

use crate::policy::cache_control::{self, CacheControl, Seconds};
use crate::policy::vary::{self, Vary};

/// The largest delta-seconds the parser keeps (RFC 9111 §1.2.2); larger values become this.
pub const DELTA_SECONDS_MAX: u64 = cache_control::DELTA_SECONDS_MAX;

/// Parsed Cache-Control directives: compared and printed, not read field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives(CacheControl);

impl Directives {
    /// Every number of seconds the directives carry.
    pub fn seconds(&self) -> Vec<u64> {
        let cc = &self.0;
        let mut all: Vec<u64> = [
            cc.max_age,
            cc.s_maxage,
            cc.min_fresh,
            cc.stale_while_revalidate,
            cc.stale_if_error,
        ]
        .into_iter()
        .filter_map(Seconds::get)
        .collect();
        all.extend(cc.max_stale.flatten());
        all
    }
}

/// The `Cache-Control` field lines of a message, as the cache parses them.
pub fn cache_control(headers: &HeaderMap) -> Directives {
    Directives(CacheControl::parse(headers))
}

/// A request's directives: `Cache-Control`, and `Pragma: no-cache` without it.
pub fn request_cache_control(headers: &HeaderMap) -> Directives {
    Directives(CacheControl::parse_request(headers))
}

/// A response's effective directives: `CDN-Cache-Control` when valid, else `Cache-Control`.
pub fn response_cache_control(headers: &HeaderMap) -> Directives {
    Directives(CacheControl::response(headers))
}

/// The request headers a response's `Vary` names, lowercase and unique; `None` for `Vary: *`.
pub fn vary_names(response: &HeaderMap) -> Option<Vec<String>> {
    match Vary::of(response) {
        Vary::Any => None,
        Vary::Headers(names) => Some(names),
    }
}

/// A request header's value as a stored variant records it; `None` when not sent.
pub fn vary_normalized(request: &HeaderMap, name: &str) -> Option<String> {
    vary::normalized(request, name)
}

/// The values of the headers `names` that select a request's variant.
pub fn vary_selecting_values(
    request: &HeaderMap,
    names: &[String],
) -> Vec<(String, Option<String>)> {
    vary::selecting_values(request, names)
}

/// True when `request` carries the values a variant was selected by.
pub fn vary_matches(selected: &[(String, Option<String>)], request: &HeaderMap) -> bool {
    vary::matches(selected, request)
}
