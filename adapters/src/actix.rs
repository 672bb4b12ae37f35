//! The actix-web shell: [`HttpCacheLayer`] as actix-web middleware, `App::new().wrap(layer)`.
//!
//! Requests and responses are converted between actix-web's `http` 0.2 types and the `http` 1.x
//! types of the policy and engine, which make every decision, exactly as for tower.

use std::cell::RefCell;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpResponse};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::body::CacheBody;
use crate::engine::{Engine, Origin, Refresh};
use crate::layer::HttpCacheLayer;

/// ```
/// use actix_web::{App, HttpResponse, web};
/// use cache_adapters::HttpCacheLayer;
///
/// let app = App::new()
///     .wrap(HttpCacheLayer::new(cache_core::Cache::memory()))
///     .route("/foods", web::get().to(|| async {
///         HttpResponse::Ok().insert_header(("cache-control", "max-age=60")).body("oats")
///     }));
/// ```
impl<S, B> Transform<S, ServiceRequest> for HttpCacheLayer
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Transform = ActixHttpCache<S>;
    type InitError = ();
    type Future = Ready<Result<ActixHttpCache<S>, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        // One state for every worker's middleware: misses coalesce across workers.
        ready(Ok(ActixHttpCache {
            service: Rc::new(service),
            engine: Arc::clone(&self.engine),
        }))
    }
}

/// The caching middleware [`HttpCacheLayer`] wraps around an actix-web service.
#[derive(Debug)]
pub struct ActixHttpCache<S> {
    service: Rc<S>,
    engine: Arc<Engine>,
}

impl<S, B> Service<ServiceRequest> for ActixHttpCache<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<ServiceResponse<BoxBody>, Error>>>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let engine = Arc::clone(&self.engine);
        Box::pin(async move {
            let head = to_http(&request);
            let slot = Rc::new(RefCell::new(Slot {
                request: Some(request),
                sent: None,
            }));
            let origin = ActixOrigin {
                service,
                slot: Rc::clone(&slot),
            };
            let response = engine.handle(head, origin).await?;
            let http_request = {
                let mut slot = slot.borrow_mut();
                match (slot.sent.take(), slot.request.take()) {
                    (Some(sent), _) => sent,
                    (None, Some(request)) => request.into_parts().0,
                    (None, None) => {
                        return Err(actix_web::error::ErrorInternalServerError("request lost"));
                    }
                }
            };
            Ok(ServiceResponse::new(http_request, to_actix(response)))
        })
    }
}

/// The client's request, shared by the middleware and the origin: before the origin sends it,
/// then the `HttpRequest` the inner service hands back, which the middleware's response needs.
/// actix-web requires a request to have a single owner while it is routed, so nothing keeps a
/// copy in between.
struct Slot {
    request: Option<ServiceRequest>,
    sent: Option<actix_web::HttpRequest>,
}

/// The wrapped actix-web service as the engine's origin: it sends the client's request at most
/// once, for a miss, a validation, or a background refresh.
struct ActixOrigin<S> {
    service: Rc<S>,
    slot: Rc<RefCell<Slot>>,
}

impl<S, B> Origin<()> for ActixOrigin<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Body = FromActix<B>;
    type Error = Error;

    async fn send(
        &mut self,
        head: http::Request<()>,
    ) -> Result<http::Response<FromActix<B>>, Error> {
        let request = {
            let mut slot = self.slot.borrow_mut();
            let mut request = slot.request.take().ok_or_else(|| {
                actix_web::error::ErrorInternalServerError("the request was already sent")
            })?;
            // The engine's headers are the client's plus any validators it added.
            let headers = request.headers_mut();
            headers.clear();
            for (name, value) in head.headers() {
                if let (Ok(name), Ok(value)) = (
                    actix_web::http::header::HeaderName::from_bytes(name.as_str().as_bytes()),
                    actix_web::http::header::HeaderValue::from_bytes(value.as_bytes()),
                ) {
                    headers.append(name, value);
                }
            }
            request
        };
        let (http_request, response) = self.service.call(request).await?.into_parts();
        self.slot.borrow_mut().sent = Some(http_request);
        let status = http::StatusCode::from_u16(response.status().as_u16())
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let mut headers = http::HeaderMap::with_capacity(response.headers().len());
        for (name, value) in response.headers() {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_str().as_bytes()),
                http::HeaderValue::from_bytes(value.as_bytes()),
            ) {
                headers.append(name, value);
            }
        }
        let mut out = http::Response::new(FromActix {
            body: Box::pin(response.into_body()),
        });
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }

    /// No background refresh under actix-web: the stale response takes the client's request
    /// with it, and an actix-web request cannot be rebuilt or shared while routed. Within the
    /// `stale-while-revalidate` window the stale response is served; after it, the request
    /// revalidates in the foreground.
    fn spawn_refresh(self, _engine: Arc<Engine>, _refresh: Refresh<()>) {}
}

/// The head of an actix-web request in `http` 1.x types; the body stays with the request.
fn to_http(request: &ServiceRequest) -> http::Request<()> {
    let mut head = http::Request::new(());
    *head.method_mut() =
        http::Method::from_bytes(request.method().as_str().as_bytes()).unwrap_or(http::Method::GET);
    *head.uri_mut() = request.uri().to_string().parse().unwrap_or_default();
    let headers = head.headers_mut();
    for (name, value) in request.headers() {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    head
}

/// The engine's answer as an actix-web response.
fn to_actix<B>(response: http::Response<CacheBody<FromActix<B>>>) -> HttpResponse<BoxBody>
where
    B: MessageBody + 'static,
{
    let (parts, body) = response.into_parts();
    let status = actix_web::http::StatusCode::from_u16(parts.status.as_u16())
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = HttpResponse::with_body(status, ToActix { body }).map_into_boxed_body();
    let headers = out.headers_mut();
    for (name, value) in &parts.headers {
        if let (Ok(name), Ok(value)) = (
            actix_web::http::header::HeaderName::from_bytes(name.as_str().as_bytes()),
            actix_web::http::header::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    out
}

/// An actix-web body as an `http_body::Body`.
pub(crate) struct FromActix<B> {
    body: Pin<Box<B>>,
}

impl<B: MessageBody> Body for FromActix<B> {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.body.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.body.size() {
            BodySize::None => SizeHint::with_exact(0),
            BodySize::Sized(n) => SizeHint::with_exact(n),
            BodySize::Stream => SizeHint::default(),
        }
    }
}

/// The engine's body as an actix-web `MessageBody`.
struct ToActix<B: Body> {
    body: CacheBody<B>,
}

impl<B> MessageBody for ToActix<B>
where
    B: Body<Data = Bytes, Error = Box<dyn std::error::Error>> + Unpin,
{
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        let hint = self.body.size_hint();
        match hint.exact() {
            Some(0) => BodySize::Sized(0),
            Some(n) => BodySize::Sized(n),
            None => BodySize::Stream,
        }
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        loop {
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
