//! What the client gets: a stored response served (with `Age`, as a 304 or a byte range), the
//! origin's response passed through, and this cache's `Cache-Status` entry on either.

use std::collections::VecDeque;

use bytes::Bytes;
use http::header::{AGE, CONTENT_LENGTH, RANGE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;

use super::{Engine, Origin, Reply};
use crate::body::CacheBody;
use crate::policy::conditional;
use crate::stored::StoredResponse;

/// RFC 9211's response header.
const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

impl Engine {
    /// Sends the request on to the origin and passes its response back, unstored.
    pub(super) async fn forward<B, O: Origin<B>>(
        &self,
        request: Request<B>,
        mut origin: O,
        status: &str,
    ) -> Reply<O, B> {
        let response = origin.send(request).await?;
        Ok(self.passthrough(response, status))
    }

    /// A stored response as an answer: with `Age`, `Cache-Status`, and as a 304 when the
    /// client's own validators match.
    pub(super) fn serve<RB: Body>(
        &self,
        method: &Method,
        request: &HeaderMap,
        stored: &StoredResponse,
        age: u64,
        lifetime: u64,
        status: &str,
    ) -> Response<CacheBody<RB>> {
        let headers = stored.headers();
        let not_modified = conditional::is_conditional(request)
            && stored.status().is_success()
            && conditional::not_modified(request, headers);
        let mut response = if not_modified {
            let mut response = Response::new(CacheBody::empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            for name in [
                "cache-control",
                "content-location",
                "date",
                "etag",
                "expires",
                "vary",
                "last-modified",
            ] {
                for value in headers.get_all(name) {
                    response
                        .headers_mut()
                        .append(HeaderName::from_static(name), value.clone());
                }
            }
            response
        } else if let Some((start, end)) = byte_range(request, stored) {
            // A single byte range of a stored complete response (RFC 9110 §14).
            let total = stored.body.len();
            let mut response = Response::new(CacheBody::full(stored.body.slice(start..=end)));
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            *response.headers_mut() = stored.served_headers();
            if let Ok(range) = HeaderValue::from_str(&format!("bytes {start}-{end}/{total}")) {
                response
                    .headers_mut()
                    .insert(http::header::CONTENT_RANGE, range);
            }
            response
                .headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(end - start + 1));
            response
        } else {
            let body = if method == Method::HEAD {
                CacheBody::empty()
            } else {
                CacheBody::full(stored.body.clone())
            };
            let mut response = Response::new(body);
            *response.status_mut() = stored.status();
            *response.headers_mut() = stored.served_headers();
            response
        };
        response.headers_mut().insert(AGE, number(age));
        let ttl = i128::from(lifetime) - i128::from(age);
        self.mark_parts(
            response.headers_mut(),
            &[status, "; ttl=", itoa::Buffer::new().format(ttl)],
        );
        response
    }

    pub(super) fn passthrough<RB: Body>(
        &self,
        response: Response<RB>,
        status: &str,
    ) -> Response<CacheBody<RB>> {
        let mut response = response.map(|body| CacheBody::streaming(VecDeque::new(), body));
        self.mark(response.headers_mut(), status);
        response
    }

    pub(super) fn gateway_timeout<RB: Body>(&self) -> Response<CacheBody<RB>> {
        let mut response = Response::new(CacheBody::empty());
        *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
        self.mark(response.headers_mut(), "fwd=miss; detail=only-if-cached");
        response
    }

    /// Adds this cache's entry to `Cache-Status` (RFC 9211).
    pub(super) fn mark(&self, headers: &mut HeaderMap, status: &str) {
        self.mark_parts(headers, &[status]);
    }

    /// [`mark`](Self::mark) with the status given in pieces: served on every hit, so it is
    /// written once, into a buffer of its exact size, which the header value then owns.
    pub(super) fn mark_parts(&self, headers: &mut HeaderMap, status: &[&str]) {
        let Some(prefix) = &self.status_prefix else {
            return;
        };
        let len = prefix.len() + status.iter().map(|part| part.len()).sum::<usize>();
        let mut text = String::with_capacity(len);
        text.push_str(prefix);
        for part in status {
            text.push_str(part);
        }
        if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(text)) {
            headers.append(CACHE_STATUS, value);
        }
    }
}

/// The one satisfiable byte range a request asks of a stored 200, as inclusive offsets:
/// `bytes=a-b`, `bytes=a-` or `bytes=-n`. Anything else (several ranges, other units, out of
/// bounds) is `None`, and the whole response is served: a cache may ignore Range.
fn byte_range(request: &HeaderMap, stored: &StoredResponse) -> Option<(usize, usize)> {
    if stored.status() != StatusCode::OK || stored.body.is_empty() {
        return None;
    }
    let spec = request
        .get(RANGE)?
        .to_str()
        .ok()?
        .trim()
        .strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let len = stored.body.len();
    let (start, end) = if first.is_empty() {
        let suffix: usize = last.parse().ok()?;
        (len - suffix.min(len), len - 1)
    } else {
        let start: usize = first.parse().ok()?;
        let end = if last.is_empty() {
            len - 1
        } else {
            last.parse::<usize>().ok()?.min(len - 1)
        };
        (start, end)
    };
    (start <= end && end < len).then_some((start, end))
}

/// `n` as a header value. `HeaderValue::from(u64)` writes into a 20-byte buffer, which then
/// takes a second allocation to share; a copy of the digits takes one.
fn number(n: u64) -> HeaderValue {
    let digits = Bytes::copy_from_slice(itoa::Buffer::new().format(n).as_bytes());
    HeaderValue::from_maybe_shared(digits).unwrap_or_else(|_| HeaderValue::from(n))
}
