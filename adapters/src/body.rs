//! [`CacheBody`]: the body of every response that passes through the cache.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// A response body: stored bytes served from the cache, or the origin's body streaming
    /// through (after any prefix the cache read while deciding whether to store it).
    pub struct CacheBody<B: Body> {
        // A stored body, apart from `prefix`: every hit sends one, and an empty `VecDeque`
        // does not allocate.
        whole: Option<Bytes>,
        prefix: VecDeque<Bytes>,
        #[pin]
        rest: Option<B>,
        error: Option<B::Error>,
    }
}

impl<B: Body> std::fmt::Debug for CacheBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheBody")
            .field("buffered", &self.buffered())
            .field("streaming", &self.rest.is_some())
            .finish()
    }
}

impl<B: Body> CacheBody<B> {
    /// Bytes the cache holds.
    pub(crate) fn full(bytes: Bytes) -> Self {
        Self {
            whole: (!bytes.is_empty()).then_some(bytes),
            prefix: VecDeque::new(),
            rest: None,
            error: None,
        }
    }

    /// No body (HEAD, 304).
    pub(crate) fn empty() -> Self {
        Self {
            whole: None,
            prefix: VecDeque::new(),
            rest: None,
            error: None,
        }
    }

    /// The origin's body, after `prefix` already read from it.
    pub(crate) fn streaming(prefix: VecDeque<Bytes>, rest: B) -> Self {
        Self {
            whole: None,
            prefix,
            rest: Some(rest),
            error: None,
        }
    }

    /// What the origin sent before its body failed, then the failure.
    pub(crate) fn failed(prefix: VecDeque<Bytes>, error: B::Error) -> Self {
        Self {
            whole: None,
            prefix,
            rest: None,
            error: Some(error),
        }
    }

    /// The bytes held, not yet sent.
    fn buffered(&self) -> usize {
        self.whole.as_ref().map_or(0, Bytes::len)
            + self.prefix.iter().map(Bytes::len).sum::<usize>()
    }
}

impl<B> Body for CacheBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        if let Some(chunk) = this.whole.take().or_else(|| this.prefix.pop_front()) {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if let Some(error) = this.error.take() {
            return Poll::Ready(Some(Err(error)));
        }
        match this.rest.as_pin_mut() {
            Some(rest) => rest.poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.whole.is_none()
            && self.prefix.is_empty()
            && self.error.is_none()
            && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let buffered = self.buffered() as u64;
        match &self.rest {
            None => SizeHint::with_exact(buffered),
            Some(rest) => {
                let hint = rest.size_hint();
                let mut total = SizeHint::new();
                total.set_lower(hint.lower() + buffered);
                if let Some(upper) = hint.upper() {
                    total.set_upper(upper + buffered);
                }
                total
            }
        }
    }
}
