//! Asking the origin whether a stored response may still be used: in the foreground, when it
//! must be validated before it is served, and in the background under
//! `stale-while-revalidate`, once per key at a time.

use std::sync::{Arc, PoisonError};

use cache_core::Key;
use http::header::RANGE;
use http::{HeaderMap, Method, Request, StatusCode};

use super::{Engine, Found, Origin, Reply, now};
use crate::policy::{CacheControl, Timing, conditional, freshness};
use crate::stored::Variants;

/// A background revalidation (`stale-while-revalidate`), made from the client's own request,
/// which the stale response already answered.
pub(crate) struct Refresh<B> {
    request: Request<B>,
    client_headers: HeaderMap,
    variants: Variants,
    index: usize,
    key: Key,
}

impl Engine {
    /// The stored response may not be served as it is: ask the origin, with its validators.
    pub(super) async fn validate<B, O>(
        &self,
        mut request: Request<B>,
        mut origin: O,
        found: Found,
        index: usize,
        request_cc: &CacheControl,
        now: u64,
    ) -> Reply<O, B>
    where
        B: 'static,
        O: Origin<B>,
    {
        if request_cc.only_if_cached {
            return Ok(self.gateway_timeout());
        }
        if request.method() == Method::HEAD || request.headers().contains_key(RANGE) {
            return self.forward(request, origin, "fwd=stale").await;
        }
        let stored = found.variants.get(index);
        let stored_cc = stored.cache_control();
        let age = stored.age(now);
        let lifetime = self.lifetime(stored);
        let client_headers = request.headers().clone();
        conditional::add_validators(request.headers_mut(), stored.headers());
        let response = match origin.send(request).await {
            Ok(response) => response,
            // The origin could not be reached: a disconnected cache may serve stale (§4.2.4).
            Err(_) if freshness::stale_if_disconnected(stored_cc, request_cc) => {
                let detail = "hit; fwd=stale; detail=origin-unreachable";
                return Ok(self.serve(
                    &Method::GET,
                    &client_headers,
                    stored,
                    age,
                    lifetime,
                    detail,
                ));
            }
            Err(err) => return Err(err),
        };
        let status = response.status();
        // The 304 answers the validators of this one stored response (§4.3.3), even when it
        // brings a new ETag: update that response with it.
        if status == StatusCode::NOT_MODIFIED {
            // The 304 is a fresh response: the age and freshness clocks start again.
            let timing = Timing {
                request_time: now,
                response_time: super::now(),
            };
            let updated = stored.revalidated(response.headers(), timing);
            let age = updated.age(timing.response_time);
            let lifetime = self.lifetime(&updated);
            let mut variants = found.variants.clone();
            variants.insert(updated.clone());
            self.save(&found.key, &variants).await;
            return Ok(self.serve(
                &Method::GET,
                &client_headers,
                &updated,
                age,
                lifetime,
                "fwd=stale; fwd-status=304",
            ));
        }
        if matches!(status.as_u16(), 500 | 502 | 503 | 504)
            && freshness::stale_if_error(stored_cc, request_cc, age, lifetime)
        {
            let detail = "hit; fwd=stale; detail=origin-error";
            return Ok(self.serve(&Method::GET, &client_headers, stored, age, lifetime, detail));
        }
        let (reply, _) = self
            .store_or_pass(
                &Method::GET,
                &client_headers,
                response,
                now,
                found,
                "fwd=stale",
            )
            .await;
        Ok(reply)
    }

    /// Asks the origin again in the background (once per key at a time) with the client's
    /// request, whose stale answer is already on its way.
    pub(super) fn refresh_in_background<B, O: Origin<B>>(
        self: &Arc<Self>,
        mut request: Request<B>,
        origin: O,
        found: &Found,
        index: usize,
    ) {
        let client_headers = request.headers().clone();
        conditional::add_validators(request.headers_mut(), found.variants.get(index).headers());
        let claimed = self
            .refreshing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(found.key.as_str().to_owned());
        if !claimed {
            return;
        }
        let refresh = Refresh {
            request,
            client_headers,
            variants: found.variants.clone(),
            index,
            key: found.key.clone(),
        };
        origin.spawn_refresh(Arc::clone(self), refresh);
    }

    /// The background half of [`refresh_in_background`](Self::refresh_in_background).
    pub(crate) async fn run_refresh<B, O: Origin<B>>(
        self: Arc<Self>,
        mut origin: O,
        refresh: Refresh<B>,
    ) {
        let Refresh {
            request,
            client_headers,
            variants,
            index,
            key,
        } = refresh;
        let _claim = Claim {
            engine: &self,
            key: key.as_str().to_owned(),
        };
        // A request that read the stale entry just before another refresh stored a new one
        // must not refresh it again.
        let current = self.load(&key).await;
        let still_stale = current
            .select(&client_headers)
            .is_some_and(|i| current.get(i) == variants.get(index));
        if !still_stale {
            return;
        }
        let sent = now();
        let Ok(response) = origin.send(request).await else {
            return;
        };
        if response.status() == StatusCode::NOT_MODIFIED {
            let updated = variants.get(index).revalidated(
                response.headers(),
                Timing {
                    request_time: sent,
                    response_time: now(),
                },
            );
            let mut variants = variants;
            variants.insert(updated);
            self.save(&key, &variants).await;
        } else {
            let found = Found { variants, key };
            let (reply, _) = self
                .store_or_pass(
                    &Method::GET,
                    &client_headers,
                    response,
                    sent,
                    found,
                    "fwd=stale",
                )
                .await;
            drop(reply);
        }
    }
}

/// Releases a background refresh's claim on its key when the refresh ends, however it ends.
struct Claim<'a> {
    engine: &'a Engine,
    key: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.engine
            .refreshing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}
