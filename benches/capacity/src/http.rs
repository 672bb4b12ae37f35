//! The HTTP client of the run: one keep-alive pool per target, a request id on every request,
//! and a reply that is never an error (a transport failure is status 0 with its message).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The longest a request may take before it counts as failed (status 0).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A keep-alive HTTP/1.1 client of one `http://127.0.0.1:PORT` target.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    inner: HyperClient<HttpConnector, Full<Bytes>>,
    base: String,
}

/// What a request got back.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// The status; 0 when no response came (connection failure, timeout).
    pub(crate) status: u16,
    /// The body (empty on a transport failure).
    pub(crate) body: Bytes,
    /// `Retry-After`, in seconds, when the response had one.
    pub(crate) retry_after: Option<u64>,
}

impl Reply {
    /// Whether the status is 2xx.
    #[must_use]
    pub(crate) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON, if it is JSON.
    #[must_use]
    pub(crate) fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// One request: method, path and query, the bearer token, a body with its content type.
#[derive(Debug, Clone)]
pub(crate) struct Call<'a> {
    /// `GET`, `POST`, ...
    pub(crate) method: &'static str,
    /// Path and query, from `/`.
    pub(crate) path: &'a str,
    /// The access token, if any.
    pub(crate) token: Option<&'a str>,
    /// The body and its content type, if any.
    pub(crate) body: Option<(&'static str, Bytes)>,
    /// Sent as `X-Request-Id`; the app logs and echoes it.
    pub(crate) request_id: &'a str,
}

impl Client {
    /// A client of `base` (`http://127.0.0.1:PORT`) with a pool of `max_idle` kept connections.
    #[must_use]
    pub(crate) fn new(base: impl Into<String>, max_idle: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let inner = HyperClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(max_idle)
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            inner,
            base: base.into(),
        }
    }

    /// Sends `call`, waiting at most [`REQUEST_TIMEOUT`] for the whole response.
    pub(crate) async fn send(&self, call: Call<'_>) -> Reply {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.send_inner(call)).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(err)) => failed(err),
            Err(_) => failed(format!("no response within {REQUEST_TIMEOUT:?}")),
        }
    }

    async fn send_inner(&self, call: Call<'_>) -> Result<Reply, String> {
        let mut builder = Request::builder()
            .method(call.method)
            .uri(format!("{}{}", self.base, call.path))
            .header("x-request-id", call.request_id);
        if let Some(token) = call.token {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| "the token is not a valid header value".to_owned())?;
            builder = builder.header(AUTHORIZATION, value);
        }
        let body = match call.body {
            Some((content_type, bytes)) => {
                builder = builder.header(CONTENT_TYPE, content_type);
                Full::new(bytes)
            }
            None => Full::new(Bytes::new()),
        };
        let request = builder.body(body).map_err(|e| e.to_string())?;
        let response = self
            .inner
            .request(request)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Reply {
            status,
            body,
            retry_after,
        })
    }

    /// `GET path` without a token: the status, 0 when nothing answered.
    pub(crate) async fn status_of(&self, path: &str) -> u16 {
        self.get_plain(path).await.status
    }

    /// `GET path` without a token.
    pub(crate) async fn get_plain(&self, path: &str) -> Reply {
        self.send(Call {
            method: "GET",
            path,
            token: None,
            body: None,
            request_id: "capacity-probe",
        })
        .await
    }
}

/// No response: status 0. (Why is not kept: the phase's figures count these, and nginx's and
/// the replicas' logs tell the cause.)
fn failed(_error: impl Into<String>) -> Reply {
    Reply {
        status: 0,
        body: Bytes::new(),
        retry_after: None,
    }
}
