//! The storage format of a cached response: every Vary-variant of one URL in one cache entry.
//!
//! A hit must not pay for parsing what was parsed when the response was stored. The memory
//! backend keeps values decoded and clones them on every hit, so a [`StoredResponse`] holds its
//! head as it is served (a [`HeaderMap`] over shared [`Bytes`]) and its `Cache-Control`
//! already parsed, and [`Variants`] shares its list behind an [`Arc`]: a hit's clone is one
//! reference count. Remote backends store the same fields as before, `(name, value)` pairs;
//! decoding builds the prepared form once per read.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::policy::{self, CacheControl, Timing, freshness, vary};

/// The most variants kept per URL; the oldest goes first.
const MAX_VARIANTS: usize = 16;

/// Headers added to a stored response's on the way out: `Age` and `Cache-Status` by the
/// cache, `Content-Length` by axum when the handler's response had none.
const ADDED_WHEN_SERVED: usize = 3;

/// A response as stored: status, headers (repeats kept, hop-by-hop removed), body, the request
/// header values its `Vary` selected it by, and when it was fetched.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "Wire")]
pub(crate) struct StoredResponse {
    status: StatusCode,
    headers: HeaderMap,
    /// The effective directives of `headers` for a shared cache ([`CacheControl::response`]).
    cache_control: CacheControl,
    /// [`freshness::initial_age`] of `headers` and `timing`.
    initial_age: u64,
    pub(crate) body: Bytes,
    pub(crate) selecting: Vec<(String, Option<String>)>,
    timing: Timing,
}

impl StoredResponse {
    pub(crate) fn new(
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
        request: &HeaderMap,
        timing: Timing,
    ) -> Self {
        let selecting = match policy::Vary::of(headers) {
            policy::Vary::Headers(names) => vary::selecting_values(request, &names),
            policy::Vary::Any => Vec::new(),
        };
        Self::prepared(status, end_to_end(headers), body, selecting, timing)
    }

    fn prepared(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        selecting: Vec<(String, Option<String>)>,
        timing: Timing,
    ) -> Self {
        Self {
            status,
            cache_control: CacheControl::response(&headers),
            initial_age: freshness::initial_age(&headers, timing),
            headers,
            body,
            selecting,
            timing,
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// A copy of the headers to serve, with room for the ones serving adds. A clone of
    /// [`headers`](Self::headers) would have none: its entry list is exactly as long as the
    /// original's, so each added header would reallocate it, and past the table's load the
    /// table is rebuilt as well.
    pub(crate) fn served_headers(&self) -> HeaderMap {
        let mut served = HeaderMap::with_capacity(self.headers.len() + ADDED_WHEN_SERVED);
        for (name, value) in &self.headers {
            served.append(name.clone(), value.clone());
        }
        served
    }

    /// The current age (RFC 9111 §4.2.3) at `now`, in seconds.
    pub(crate) fn age(&self, now: u64) -> u64 {
        freshness::age_at(self.initial_age, self.timing, now)
    }

    pub(crate) fn cache_control(&self) -> &CacheControl {
        &self.cache_control
    }

    pub(crate) fn timing(&self) -> Timing {
        self.timing
    }

    /// This response as a 304 revalidated it: the 304's headers applied (RFC 9111 §3.2) and
    /// the age and freshness clocks started again at `timing`.
    pub(crate) fn revalidated(&self, not_modified: &HeaderMap, timing: Timing) -> Self {
        let mut headers = self.headers.clone();
        policy::update_headers(&mut headers, not_modified);
        Self::prepared(
            self.status,
            end_to_end(&headers),
            self.body.clone(),
            self.selecting.clone(),
            timing,
        )
    }
}

/// `headers` without the hop-by-hop ones, which are never stored.
///
/// The values are copied: one that hyper parsed shares the connection's read buffer, which a
/// stored entry would otherwise keep alive for as long as it is cached.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let skip = policy::hop_by_hop(headers);
    let mut kept = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if !skip.contains(name)
            && let Ok(value) = HeaderValue::from_bytes(value.as_bytes())
        {
            kept.append(name.clone(), value);
        }
    }
    kept
}

/// The stored fields as written to a remote backend, unchanged from when a stored response
/// held its headers as `(String, Bytes)` pairs: entries written by earlier versions still
/// decode, and theirs by this one.
#[derive(Deserialize)]
#[serde(rename = "StoredResponse")]
struct Wire {
    status: u16,
    headers: Vec<(String, Bytes)>,
    body: Bytes,
    selecting: Vec<(String, Option<String>)>,
    timing: Timing,
}

impl From<Wire> for StoredResponse {
    fn from(wire: Wire) -> Self {
        let mut headers = HeaderMap::with_capacity(wire.headers.len());
        for (name, value) in wire.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_maybe_shared(value),
            ) {
                headers.append(name, value);
            }
        }
        Self::prepared(
            StatusCode::from_u16(wire.status).unwrap_or(StatusCode::OK),
            headers,
            wire.body,
            wire.selecting,
            wire.timing,
        )
    }
}

impl Serialize for StoredResponse {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut wire = serializer.serialize_struct("StoredResponse", 5)?;
        wire.serialize_field("status", &self.status.as_u16())?;
        wire.serialize_field("headers", &WireHeaders(&self.headers))?;
        wire.serialize_field("body", &self.body)?;
        wire.serialize_field("selecting", &self.selecting)?;
        wire.serialize_field("timing", &self.timing)?;
        wire.end()
    }
}

/// A header map written as the `(String, Bytes)` pairs of [`Wire`].
struct WireHeaders<'a>(&'a HeaderMap);

impl Serialize for WireHeaders<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for (name, value) in self.0 {
            seq.serialize_element(&(name.as_str(), WireBytes(value.as_bytes())))?;
        }
        seq.end()
    }
}

/// Bytes written as [`Bytes`] writes them.
struct WireBytes<'a>(&'a [u8]);

impl Serialize for WireBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// All stored variants of one URL, newest first; shared, so that a memory hit copies a
/// pointer rather than the responses.
#[derive(Debug, Clone, Default)]
pub(crate) struct Variants(Arc<Vec<StoredResponse>>);

impl Variants {
    /// The index of the newest variant whose Vary values the request matches.
    pub(crate) fn select(&self, request: &HeaderMap) -> Option<usize> {
        self.0
            .iter()
            .position(|stored| vary::matches(&stored.selecting, request))
    }

    pub(crate) fn get(&self, index: usize) -> &StoredResponse {
        &self.0[index]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, StoredResponse> {
        self.0.iter()
    }

    /// Puts `stored` first, replacing the variant with the same Vary values.
    pub(crate) fn insert(&mut self, stored: StoredResponse) {
        let list = Arc::make_mut(&mut self.0);
        list.retain(|old| old.selecting != stored.selecting);
        list.insert(0, stored);
        list.truncate(MAX_VARIANTS);
    }
}

impl Serialize for Variants {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // A newtype, as the derive wrote it when the list was not shared.
        serializer.serialize_newtype_struct("Variants", &*self.0)
    }
}

impl<'de> Deserialize<'de> for Variants {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename = "Variants")]
        struct Wire(Vec<StoredResponse>);
        Wire::deserialize(deserializer).map(|Wire(list)| Self(Arc::new(list)))
    }
}

#[cfg(test)]
mod tests {
    use cache_core::codec::{Bincode, Codec, Json};

    use super::*;

    /// The stored format as it was written before the prepared form (derived serde over
    /// `headers: Vec<(String, Bytes)>` and `status: u16`).
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Old {
        status: u16,
        headers: Vec<(String, Bytes)>,
        body: Bytes,
        selecting: Vec<(String, Option<String>)>,
        timing: Timing,
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct OldVariants(Vec<Old>);

    fn old() -> OldVariants {
        OldVariants(vec![Old {
            status: 200,
            headers: vec![
                (
                    "cache-control".to_owned(),
                    Bytes::from_static(b"max-age=60"),
                ),
                ("x-repeat".to_owned(), Bytes::from_static(b"1")),
                ("x-repeat".to_owned(), Bytes::from_static(b"2")),
            ],
            body: Bytes::from_static(b"oats"),
            selecting: vec![("accept".to_owned(), Some("text/plain".to_owned()))],
            timing: Timing {
                request_time: 1_700_000_000,
                response_time: 1_700_000_001,
            },
        }])
    }

    fn check(stored: &Variants) {
        let first = stored.get(0);
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(first.cache_control().max_age.get(), Some(60));
        let repeats: Vec<&[u8]> = first
            .headers()
            .get_all("x-repeat")
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        assert_eq!(repeats, [&b"1"[..], b"2"]);
        assert_eq!(first.body, "oats");
    }

    /// Entries written before the prepared form decode as they did, and are written back
    /// byte for byte as they were, with both codecs the cache offers.
    fn unchanged<C: Codec>() -> Result<(), cache_core::Error> {
        let mut bytes = Vec::new();
        C::encode(&old(), &mut bytes)?;
        let stored: Variants = C::decode(&bytes)?;
        check(&stored);
        let mut again = Vec::new();
        C::encode(&stored, &mut again)?;
        assert_eq!(again, bytes, "written exactly as before");
        assert_eq!(C::decode::<OldVariants>(&again)?, old());
        Ok(())
    }

    #[test]
    fn the_stored_format_is_unchanged() -> Result<(), cache_core::Error> {
        unchanged::<Bincode>()?;
        unchanged::<Json>()
    }
}
