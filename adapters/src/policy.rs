//! RFC 9111 for a shared cache, framework-agnostic, over the `http` crate's types: what may be
//! stored, for how long, under which key, and whether a stored response may answer a request.
//!
//! Every function here is pure: no I/O, no clock (callers pass `now`). The engine and both
//! framework shells call it, so axum and actix-web behave identically.

pub(crate) mod cache_control;
pub(crate) mod conditional;
pub(crate) mod freshness;
pub(crate) mod vary;

use http::header::{AUTHORIZATION, CONTENT_LOCATION, LOCATION, SET_COOKIE};
use http::{HeaderMap, HeaderName, Method, StatusCode, Uri};

pub(crate) use self::cache_control::CacheControl;
pub(crate) use self::freshness::{Heuristics, Reuse, Timing};

/// The choices RFC 9111 leaves to a cache, as this one makes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Rules {
    /// Freshness for responses that state none.
    pub(crate) heuristics: Heuristics,
    /// Store responses that set cookies (RFC 9111 §7.3 allows it). Off by default: behind an
    /// application a `Set-Cookie` is usually a session, which a shared cache must not replay
    /// to another user; the response can still opt in with `public`.
    pub(crate) store_set_cookie: bool,
}
pub(crate) use self::vary::Vary;

/// Why a response is not stored, for the `Cache-Status` detail and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotStorable {
    /// Only GET responses are stored.
    Method,
    /// The status is not final, is partial content, or is one this cache does not store.
    Status,
    /// `no-store` in the request or the response.
    NoStore,
    /// `private`: for the user's own cache only.
    Private,
    /// The request carried `Authorization` and the response did not allow sharing it.
    Authorization,
    /// `Vary: *`
    VaryAny,
    /// `Set-Cookie` on a response not explicitly `public`.
    SetCookie,
    /// Nothing to reuse it by: no freshness, no validators, no default TTL.
    Useless,
    /// `must-understand` with a status this cache does not know.
    NotUnderstood,
}

impl NotStorable {
    /// A short reason, used as `Cache-Status: ...; detail=`.
    #[must_use]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Method => "method",
            Self::Status => "status",
            Self::NoStore => "no-store",
            Self::Private => "private",
            Self::Authorization => "authorization",
            Self::VaryAny => "vary-star",
            Self::SetCookie => "set-cookie",
            Self::Useless => "no-freshness",
            Self::NotUnderstood => "must-understand",
        }
    }
}

/// Statuses whose semantics this cache knows (RFC 9110 §15), for `must-understand`.
fn understood(status: StatusCode) -> bool {
    matches!(status.as_u16(), 200..=206 | 300..=305 | 307 | 308 | 400..=418 | 421..=426 | 428 | 429 | 431 | 451 | 500..=505 | 511)
}

/// Whether a shared cache may store a response (RFC 9111 §3, §3.5).
///
/// `rules.heuristics` says whether responses without explicit freshness can still be fresh for
/// a while (default TTL, heuristic freshness from `Last-Modified`); without either, such a
/// response is stored only if it has a validator to revalidate with. `response_cc` is the
/// response's effective directives ([`CacheControl::response`]).
///
/// # Errors
/// Why it may not.
pub(crate) fn storable(
    method: &Method,
    request: &HeaderMap,
    request_cc: &CacheControl,
    status: StatusCode,
    response: &HeaderMap,
    response_cc: &CacheControl,
    rules: &Rules,
) -> Result<(), NotStorable> {
    if method != Method::GET {
        return Err(NotStorable::Method);
    }
    // must-understand: a cache that knows the status may ignore the response's no-store (§5.2.2.3).
    if response_cc.must_understand && !understood(status) {
        return Err(NotStorable::NotUnderstood);
    }
    if request_cc.no_store || (response_cc.no_store && !response_cc.must_understand) {
        return Err(NotStorable::NoStore);
    }
    if !status.is_success()
        && !status.is_redirection()
        && !status.is_client_error()
        && !status.is_server_error()
    {
        return Err(NotStorable::Status);
    }
    // Partial content and 304 are not complete responses; this cache stores only whole ones.
    if status == StatusCode::PARTIAL_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Err(NotStorable::Status);
    }
    if response_cc.private {
        return Err(NotStorable::Private);
    }
    if request.contains_key(AUTHORIZATION)
        && !(response_cc.public || response_cc.s_maxage.is_present() || response_cc.must_revalidate)
    {
        return Err(NotStorable::Authorization);
    }
    if Vary::of(response) == Vary::Any {
        return Err(NotStorable::VaryAny);
    }
    if !rules.store_set_cookie && response.contains_key(SET_COOKIE) && !response_cc.public {
        return Err(NotStorable::SetCookie);
    }
    let explicit = freshness::has_explicit_freshness(response, response_cc) || response_cc.public;
    let heuristics = rules.heuristics;
    let heuristic = freshness::heuristically_cacheable(status)
        && (heuristics.default_ttl.is_some()
            || (heuristics.last_modified_fraction
                && response.contains_key(http::header::LAST_MODIFIED)));
    let validators = response.contains_key(http::header::ETAG)
        || response.contains_key(http::header::LAST_MODIFIED);
    let reusable_status = explicit || freshness::heuristically_cacheable(status);
    if !reusable_status || !(explicit || heuristic || validators) {
        return Err(NotStorable::Useless);
    }
    Ok(())
}

/// Hop-by-hop headers (RFC 9110 §7.6.1), never stored or forwarded from storage, including
/// those the `Connection` header names.
#[must_use]
pub(crate) fn hop_by_hop(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
        "trailer",
    ]
    .into_iter()
    .map(HeaderName::from_static)
    .collect();
    for value in headers.get_all(http::header::CONNECTION) {
        let Ok(text) = value.to_str() else { continue };
        for name in cache_control::split_list(text) {
            if let Ok(name) = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) {
                names.push(name);
            }
        }
    }
    names
}

/// Applies a 304's headers to a stored response's (RFC 9111 §3.2): each field in the 304
/// replaces the stored field of the same name, except `Content-Length` and hop-by-hop fields.
pub(crate) fn update_headers(stored: &mut HeaderMap, not_modified: &HeaderMap) {
    let skip = hop_by_hop(not_modified);
    let mut replaced: Vec<HeaderName> = Vec::new();
    for (name, value) in not_modified {
        if name == http::header::CONTENT_LENGTH || skip.contains(name) {
            continue;
        }
        if !replaced.contains(name) {
            stored.remove(name);
            replaced.push(name.clone());
        }
        stored.append(name.clone(), value.clone());
    }
}

/// The URIs a successful unsafe request invalidates (RFC 9111 §4.4): its target, and the
/// `Location` and `Content-Location` of the response when they are on the same origin.
/// Returned as path-and-query strings.
#[must_use]
pub(crate) fn invalidated(target: &Uri, host: Option<&str>, response: &HeaderMap) -> Vec<String> {
    let mut out = vec![path_and_query(target)];
    for name in [LOCATION, CONTENT_LOCATION] {
        let Some(value) = response
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
        else {
            continue;
        };
        let resolved = if value.contains("://") {
            // Absolute: only the same origin.
            let Ok(uri) = value.parse::<Uri>() else {
                continue;
            };
            let same_origin = uri
                .authority()
                .is_some_and(|a| host.is_some_and(|h| h.eq_ignore_ascii_case(a.as_str())));
            if !same_origin {
                continue;
            }
            path_and_query(&uri)
        } else if value.starts_with('/') {
            value.to_owned()
        } else {
            // A relative reference: resolve against the target's directory.
            let base = target.path();
            format!("{}{value}", &base[..base.rfind('/').map_or(0, |i| i + 1)])
        };
        if !out.contains(&resolved) {
            out.push(resolved);
        }
    }
    out
}

/// A URI's path and query, `/` when empty.
#[must_use]
pub(crate) fn path_and_query(uri: &Uri) -> String {
    uri.path_and_query()
        .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned())
}

/// True for methods a cache must invalidate on (anything but GET, HEAD, OPTIONS, TRACE).
#[must_use]
pub(crate) fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
            .collect()
    }

    fn check(
        req: &[(&'static str, &'static str)],
        status: u16,
        resp: &[(&'static str, &'static str)],
    ) -> Result<(), NotStorable> {
        let (req, resp) = (h(req), h(resp));
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        storable(
            &Method::GET,
            &req,
            &CacheControl::parse_request(&req),
            status,
            &resp,
            &CacheControl::response(&resp),
            &Rules::default(),
        )
    }

    #[test]
    fn what_a_shared_cache_stores() {
        assert_eq!(check(&[], 200, &[("cache-control", "max-age=60")]), Ok(()));
        assert_eq!(
            check(&[], 200, &[("etag", "\"a\"")]),
            Ok(()),
            "validators alone: stored, revalidated"
        );
        assert_eq!(check(&[], 200, &[]), Err(NotStorable::Useless));
        assert_eq!(
            check(&[], 201, &[("etag", "\"a\"")]),
            Err(NotStorable::Useless),
            "not cacheable by default"
        );
        assert_eq!(
            check(&[], 201, &[("cache-control", "max-age=60")]),
            Ok(()),
            "explicit freshness makes any final status storable"
        );
        assert_eq!(
            check(&[], 200, &[("cache-control", "max-age=60, no-store")]),
            Err(NotStorable::NoStore)
        );
        assert_eq!(
            check(
                &[("cache-control", "no-store")],
                200,
                &[("cache-control", "max-age=60")]
            ),
            Err(NotStorable::NoStore)
        );
        assert_eq!(
            check(&[], 200, &[("cache-control", "max-age=60, private")]),
            Err(NotStorable::Private)
        );
        assert_eq!(
            check(&[], 200, &[("cache-control", "max-age=60"), ("vary", "*")]),
            Err(NotStorable::VaryAny)
        );
        assert_eq!(
            check(&[], 206, &[("cache-control", "max-age=60")]),
            Err(NotStorable::Status)
        );
        assert_eq!(
            check(
                &[],
                200,
                &[("cache-control", "max-age=60"), ("set-cookie", "a=b")]
            ),
            Err(NotStorable::SetCookie)
        );
    }

    #[test]
    fn authorization_needs_explicit_permission() {
        let auth = [("authorization", "Bearer x")];
        assert_eq!(
            check(&auth, 200, &[("cache-control", "max-age=60")]),
            Err(NotStorable::Authorization)
        );
        assert_eq!(
            check(&auth, 200, &[("cache-control", "max-age=60, public")]),
            Ok(())
        );
        assert_eq!(
            check(&auth, 200, &[("cache-control", "s-maxage=60")]),
            Ok(())
        );
        assert_eq!(
            check(
                &auth,
                200,
                &[("cache-control", "max-age=60, must-revalidate")]
            ),
            Ok(())
        );
    }

    #[test]
    fn a_304_updates_stored_headers_but_not_content_length() {
        let mut stored = h(&[
            ("content-length", "5"),
            ("cache-control", "max-age=1"),
            ("x-a", "1"),
        ]);
        update_headers(
            &mut stored,
            &h(&[
                ("cache-control", "max-age=60"),
                ("content-length", "0"),
                ("x-b", "2"),
                ("connection", "x-a"),
            ]),
        );
        assert_eq!(
            stored.get("cache-control").map(HeaderValue::as_bytes),
            Some(&b"max-age=60"[..])
        );
        assert_eq!(
            stored.get("content-length").map(HeaderValue::as_bytes),
            Some(&b"5"[..])
        );
        assert_eq!(
            stored.get("x-b").map(HeaderValue::as_bytes),
            Some(&b"2"[..])
        );
    }

    #[test]
    fn unsafe_methods_invalidate_target_and_same_origin_locations() {
        let target: Uri = "/meals?page=1".parse().unwrap_or_default();
        let resp = h(&[
            ("location", "/meals/7"),
            ("content-location", "http://other.example/x"),
        ]);
        assert_eq!(
            invalidated(&target, Some("api.example"), &resp),
            vec!["/meals?page=1".to_owned(), "/meals/7".to_owned()]
        );
        let resp = h(&[("content-location", "http://api.example/c")]);
        assert_eq!(
            invalidated(&target, Some("api.example"), &resp),
            vec!["/meals?page=1".to_owned(), "/c".to_owned()]
        );
        let resp = h(&[("location", "rel")]);
        assert_eq!(
            invalidated(&"/a/b".parse().unwrap_or_default(), None, &resp),
            vec!["/a/b".to_owned(), "/a/rel".to_owned()]
        );
    }
}
