//! Writing to the cache: one origin request per key for concurrent misses, storing what the
//! policy allows and the body limit fits, and invalidating after unsafe methods.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cache_core::flight::Flight;
use cache_core::{Key, Ttl};
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Method, Request, Response};
use http_body::Body;
use http_body_util::BodyExt;

use super::lookup::host_of;
use super::{Engine, Found, Origin, Reply, now};
use crate::body::CacheBody;
use crate::policy::{self, CacheControl, Timing};
use crate::stored::{StoredResponse, Variants};

impl Engine {
    /// POST, PUT, PATCH, DELETE and other unsafe methods: forward, then invalidate (§4.4).
    pub(super) async fn unsafe_method<B, O: Origin<B>>(
        &self,
        request: Request<B>,
        mut origin: O,
    ) -> Reply<O, B> {
        let target = request.uri().clone();
        let host = host_of(request.uri(), request.headers()).map(Cow::into_owned);
        let user = self.user(&request);
        let response = origin.send(request).await?;
        let status = response.status();
        if status.is_success() || status.is_redirection() {
            for path in policy::invalidated(&target, host.as_deref(), response.headers()) {
                // The shared entry, and this user's own when keys are per user.
                let users = [None, user.as_deref()];
                for user in users.iter().take(if user.is_some() { 2 } else { 1 }) {
                    let key = self.key_for(host.as_deref(), &path, *user);
                    if let Err(err) = self.cache.delete(&key).await {
                        tracing::debug!(error = %err, "could not invalidate a cached response");
                    }
                }
            }
        }
        Ok(self.passthrough(response, "fwd=bypass"))
    }

    /// Nothing stored matches: one request to the origin per key, shared when storable.
    pub(super) async fn miss<B, O>(
        &self,
        request: Request<B>,
        mut origin: O,
        found: Found,
    ) -> Reply<O, B>
    where
        B: 'static,
        O: Origin<B>,
    {
        // RFC 9211: nothing stored for the URL, or nothing for this request's Vary values.
        let fwd = if found.variants.is_empty() {
            "fwd=uri-miss"
        } else {
            "fwd=vary-miss"
        };
        let flight_key = found.key.as_str().to_owned();
        let leader = match self.misses.join(&flight_key) {
            Flight::Leader(leader) => Some(leader),
            Flight::Follower(follower) => {
                if let Some(Some(stored)) = follower.wait().await
                    && policy::vary::matches(&stored.selecting, request.headers())
                {
                    let age = stored.age(now());
                    let lifetime = self.lifetime(&stored);
                    return Ok(self.serve(
                        request.method(),
                        request.headers(),
                        &stored,
                        age,
                        lifetime,
                        "hit; detail=collapsed",
                    ));
                }
                None
            }
        };
        let method = request.method().clone();
        let headers = request.headers().clone();
        let sent = now();
        let response = origin.send(request).await?;
        let (reply, stored) = self
            .store_or_pass(&method, &headers, response, sent, found, fwd)
            .await;
        if let Some(leader) = leader {
            leader.publish(stored);
        }
        Ok(reply)
    }

    /// Stores a response from the origin when the policy allows and its body fits, and returns
    /// it to the client either way.
    pub(super) async fn store_or_pass<RB>(
        &self,
        method: &Method,
        request_headers: &HeaderMap,
        response: Response<RB>,
        sent: u64,
        found: Found,
        fwd: &str,
    ) -> (Response<CacheBody<RB>>, Option<Arc<StoredResponse>>)
    where
        RB: Body<Data = Bytes> + Unpin,
    {
        let request_cc = CacheControl::parse_request(request_headers);
        let response_cc = CacheControl::response(response.headers());
        let decision = policy::storable(
            method,
            request_headers,
            &request_cc,
            response.status(),
            response.headers(),
            &response_cc,
            &self.config.rules,
        )
        .or_else(|reason| match reason {
            // Keys are per user, and an authenticated request without a user never gets here
            // (`handle` bypasses it): the response is that user's alone.
            policy::NotStorable::Authorization if self.config.user.is_some() => Ok(()),
            other => Err(other),
        })
        .and_then(|()| {
            if self
                .config
                .statuses
                .as_ref()
                .is_some_and(|allowed| !allowed.contains(&response.status()))
            {
                Err(policy::NotStorable::Status)
            } else {
                Ok(())
            }
        });
        if let Err(reason) = decision {
            let detail = format!("{fwd}; detail={}", reason.as_str());
            return (self.passthrough(response, &detail), None);
        }
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.config.max_body as u64) {
            return (
                self.passthrough(response, &format!("{fwd}; detail=too-large")),
                None,
            );
        }
        let (parts, body) = response.into_parts();
        let body = match read_up_to(body, self.config.max_body).await {
            Ok(bytes) => bytes,
            Err(Partial::TooLarge(prefix, rest)) => {
                let mut response = Response::from_parts(parts, CacheBody::streaming(prefix, rest));
                self.mark(response.headers_mut(), &format!("{fwd}; detail=too-large"));
                return (response, None);
            }
            Err(Partial::Failed(prefix, err)) => {
                // The origin broke off mid-body: pass on what arrived and the error, store nothing.
                let mut response = Response::from_parts(parts, CacheBody::failed(prefix, err));
                self.mark(response.headers_mut(), &format!("{fwd}; detail=body-error"));
                return (response, None);
            }
        };
        let stored = StoredResponse::new(
            parts.status,
            &parts.headers,
            body.clone(),
            request_headers,
            Timing {
                request_time: sent,
                response_time: now(),
            },
        );
        let mut variants = found.variants;
        variants.insert(stored.clone());
        self.save(&found.key, &variants).await;
        // The client gets the origin's response as it came: its own Age, its own headers.
        let body = if *method == Method::HEAD {
            CacheBody::empty()
        } else {
            CacheBody::full(body)
        };
        let mut reply = Response::from_parts(parts, body);
        self.mark(reply.headers_mut(), &format!("{fwd}; stored"));
        (reply, Some(Arc::new(stored)))
    }

    /// Stores the variants for as long as any of them may still be served or revalidated.
    pub(super) async fn save(&self, key: &Key, variants: &Variants) {
        let now = now();
        let keep = variants
            .iter()
            .map(|stored| {
                let cc = stored.cache_control();
                let lifetime = self.lifetime(stored);
                let left = lifetime.saturating_sub(stored.age(now));
                let stale = cc
                    .stale_while_revalidate
                    .get()
                    .unwrap_or(0)
                    .max(cc.stale_if_error.get().unwrap_or(0));
                left.saturating_add(stale.max(self.config.retention.as_secs()))
            })
            .max()
            .unwrap_or(0)
            .max(1);
        if let Err(err) = self
            .cache
            .set(key, variants, Ttl::After(Duration::from_secs(keep)))
            .await
        {
            tracing::debug!(error = %err, "could not store a response");
        }
    }
}

enum Partial<B: Body> {
    TooLarge(VecDeque<Bytes>, B),
    Failed(VecDeque<Bytes>, B::Error),
}

/// Reads a whole body of at most `limit` bytes; a larger one comes back as what was read plus
/// the rest, to stream on.
async fn read_up_to<B: Body<Data = Bytes> + Unpin>(
    mut body: B,
    limit: usize,
) -> Result<Bytes, Partial<B>> {
    let mut chunks: VecDeque<Bytes> = VecDeque::new();
    let mut total = 0;
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    total += data.len();
                    chunks.push_back(data);
                    if total > limit {
                        return Err(Partial::TooLarge(chunks, body));
                    }
                }
            }
            Some(Err(err)) => return Err(Partial::Failed(chunks, err)),
        }
    }
    let mut all = BytesMut::with_capacity(total);
    for chunk in chunks {
        all.extend_from_slice(&chunk);
    }
    Ok(all.freeze())
}
