//! The storage format of a cached response: every Vary-variant of one URL in one cache entry.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};

use crate::policy::{self, Timing, vary};

/// The most variants kept per URL; the oldest goes first.
const MAX_VARIANTS: usize = 16;

/// A response as stored: status, headers (repeats kept, hop-by-hop removed), body, the request
/// header values its `Vary` selected it by, and when it was fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredResponse {
    pub(crate) status: u16,
    headers: Vec<(String, Bytes)>,
    pub(crate) body: Bytes,
    pub(crate) selecting: Vec<(String, Option<String>)>,
    pub(crate) timing: Timing,
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
        let mut stored = Self {
            status: status.as_u16(),
            headers: Vec::new(),
            body,
            selecting,
            timing,
        };
        stored.set_headers(headers);
        stored
    }

    pub(crate) fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK)
    }

    pub(crate) fn headers(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_maybe_shared(value.clone()),
            ) {
                map.append(name, value);
            }
        }
        map
    }

    pub(crate) fn set_headers(&mut self, headers: &HeaderMap) {
        let skip = policy::hop_by_hop(headers);
        self.headers = headers
            .iter()
            .filter(|(name, _)| !skip.contains(name))
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    Bytes::copy_from_slice(value.as_bytes()),
                )
            })
            .collect();
    }
}

/// All stored variants of one URL, newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Variants(pub(crate) Vec<StoredResponse>);

impl Variants {
    /// The index of the newest variant whose Vary values the request matches.
    pub(crate) fn select(&self, request: &HeaderMap) -> Option<usize> {
        self.0
            .iter()
            .position(|stored| vary::matches(&stored.selecting, request))
    }

    /// Puts `stored` first, replacing the variant with the same Vary values.
    pub(crate) fn insert(&mut self, stored: StoredResponse) {
        self.0.retain(|old| old.selecting != stored.selecting);
        self.0.insert(0, stored);
        self.0.truncate(MAX_VARIANTS);
    }
}
