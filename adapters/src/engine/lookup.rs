//! Finding what is stored for a request: its key (host, path and query, and the per-user
//! part) and the variants stored under it.

use std::borrow::Cow;

use cache_core::Key;
use http::header::HOST;
use http::{HeaderMap, Request, request};

use super::Engine;
use crate::stored::Variants;

impl Engine {
    /// The per-user part of the key, when keys are per user.
    pub(super) fn user<B>(&self, request: &Request<B>) -> Option<String> {
        // The key function sees a copy of the head, made only when there is one to call.
        let user = self.config.user.as_ref()?;
        user(&parts_of(request))
    }

    pub(super) fn key<B>(&self, request: &Request<B>, user: Option<&str>) -> Key {
        let uri = request.uri();
        let host = host_of(uri, request.headers());
        let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
        self.key_for(host.as_deref(), path_and_query, user)
    }

    pub(super) fn key_for(
        &self,
        host: Option<&str>,
        path_and_query: &str,
        user: Option<&str>,
    ) -> Key {
        let key = cache_core::key!("http", host.unwrap_or("-"), path_and_query);
        match user {
            Some(user) => key.part(user),
            None => key,
        }
    }

    pub(super) async fn load(&self, key: &Key) -> Variants {
        match self.cache.get::<Variants>(key).await {
            Ok(found) => found.unwrap_or_default(),
            Err(err) => {
                tracing::debug!(error = %err, "cache unavailable: forwarding to the origin");
                Variants::default()
            }
        }
    }
}

/// A snapshot of a request's head for the per-user key function.
fn parts_of<B>(request: &Request<B>) -> request::Parts {
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = request.method().clone();
    parts.uri = request.uri().clone();
    parts.version = request.version();
    parts.headers = request.headers().clone();
    parts
}

/// The request's host, lower case; copied only when it is not already.
pub(super) fn host_of<'a>(uri: &'a http::Uri, headers: &'a HeaderMap) -> Option<Cow<'a, str>> {
    let host = match uri.authority() {
        Some(authority) => authority.as_str(),
        None => headers.get(HOST)?.to_str().ok()?,
    };
    Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    })
}
