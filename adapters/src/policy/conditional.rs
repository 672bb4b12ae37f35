//! Conditional requests (RFC 9110 §13, RFC 9111 §4.3): answering a client's own conditions from
//! the cache, and asking the origin to validate a stored response.

use http::HeaderMap;
use http::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};

use super::cache_control::split_list;
use super::freshness::http_date;

/// Weak comparison of two entity tags (RFC 9110 §8.8.3.2): equal opaque tags, `W/` ignored.
#[must_use]
pub(crate) fn weak_eq(a: &str, b: &str) -> bool {
    let strip = |t: &str| t.trim().strip_prefix("W/").unwrap_or(t.trim()).to_owned();
    strip(a) == strip(b)
}

/// True when the client's `If-None-Match` / `If-Modified-Since` hold for a stored response with
/// `stored` headers, so that the cache itself answers 304 (RFC 9110 §13.2.2 order: If-None-Match
/// first, If-Modified-Since only without it).
#[must_use]
pub(crate) fn not_modified(request: &HeaderMap, stored: &HeaderMap) -> bool {
    if request.contains_key(IF_NONE_MATCH) {
        let Some(etag) = stored.get(ETAG).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        return request
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|list| split_list(list).any(|tag| tag == "*" || weak_eq(tag, etag)));
    }
    match (
        http_date(request, IF_MODIFIED_SINCE),
        http_date(stored, LAST_MODIFIED),
    ) {
        (Some(since), Some(modified)) => modified <= since,
        _ => false,
    }
}

/// True when the client sent validators of its own.
#[must_use]
pub(crate) fn is_conditional(request: &HeaderMap) -> bool {
    request.contains_key(IF_NONE_MATCH) || request.contains_key(IF_MODIFIED_SINCE)
}

/// Replaces a request's validators with those of the stored response, so the origin can answer
/// 304 (RFC 9111 §4.3.1). False when the stored response has none: validation is then a plain
/// request.
pub(crate) fn add_validators(request: &mut HeaderMap, stored: &HeaderMap) -> bool {
    request.remove(IF_NONE_MATCH);
    request.remove(IF_MODIFIED_SINCE);
    let mut any = false;
    if let Some(etag) = stored.get(ETAG) {
        request.insert(IF_NONE_MATCH, etag.clone());
        any = true;
    }
    if let Some(modified) = stored.get(LAST_MODIFIED) {
        request.insert(IF_MODIFIED_SINCE, modified.clone());
        any = true;
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| {
                (
                    http::HeaderName::from_static(n),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn if_none_match_uses_weak_comparison_and_star() {
        let stored = h(&[("etag", "\"abc\"")]);
        assert!(not_modified(&h(&[("if-none-match", "W/\"abc\"")]), &stored));
        assert!(not_modified(
            &h(&[("if-none-match", "\"x\", \"abc\"")]),
            &stored
        ));
        assert!(not_modified(&h(&[("if-none-match", "*")]), &stored));
        assert!(!not_modified(&h(&[("if-none-match", "\"x\"")]), &stored));
    }

    #[test]
    fn if_modified_since_only_without_if_none_match() {
        let stored = h(&[
            ("last-modified", "Tue, 15 Nov 1994 08:12:31 GMT"),
            ("etag", "\"a\""),
        ]);
        assert!(not_modified(
            &h(&[("if-modified-since", "Tue, 15 Nov 1994 08:12:31 GMT")]),
            &stored
        ));
        assert!(!not_modified(
            &h(&[("if-modified-since", "Mon, 14 Nov 1994 08:12:31 GMT")]),
            &stored
        ));
        assert!(!not_modified(
            &h(&[
                ("if-modified-since", "Tue, 15 Nov 1994 08:12:31 GMT"),
                ("if-none-match", "\"b\"")
            ]),
            &stored
        ));
    }

    #[test]
    fn validation_requests_carry_the_stored_validators() {
        let mut req = h(&[("if-none-match", "\"client\"")]);
        assert!(add_validators(
            &mut req,
            &h(&[
                ("etag", "\"a\""),
                ("last-modified", "Tue, 15 Nov 1994 08:12:31 GMT")
            ])
        ));
        assert_eq!(
            req.get(IF_NONE_MATCH).map(|v| v.as_bytes()),
            Some(&b"\"a\""[..])
        );
        assert!(req.contains_key(IF_MODIFIED_SINCE));
        assert!(!add_validators(&mut req, &HeaderMap::new()));
    }
}
