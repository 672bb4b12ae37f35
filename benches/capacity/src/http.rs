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

/// How many times a request that is safe to repeat is sent again (see [`Client::send`]).
pub(crate) const RESENDS: u32 = 2;

/// A keep-alive HTTP/1.1 client of one `http://127.0.0.1:PORT` target.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    inner: HyperClient<HttpConnector, Full<Bytes>>,
    /// For resends: no kept-alive connections, so a resend never lands on another connection
    /// that an old nginx worker is closing.
    fresh: HyperClient<HttpConnector, Full<Bytes>>,
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
    /// Whether it was sent more than once (see [`Client::send`]).
    pub(crate) retried: bool,
    /// The replica that answered, from nginx's `X-Upstream` header.
    pub(crate) upstream: Option<String>,
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
    /// Sent as `Idempotency-Key` (the meal writes): the app answers a repeat with the meal the
    /// first copy logged, so the request may be sent again.
    pub(crate) idempotency_key: Option<&'a str>,
    /// Whether sending it twice does what sending it once does, for a method that does not
    /// say so (`PATCH /users/me` sets values).
    pub(crate) repeatable: bool,
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
            .build(connector.clone());
        let fresh = HyperClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Self {
            inner,
            fresh,
            base: base.into(),
        }
    }

    /// Sends `call`, waiting at most [`REQUEST_TIMEOUT`] for the whole response.
    ///
    /// A request that is safe to repeat (GET, DELETE, one with an `Idempotency-Key`, one marked
    /// [`Call::repeatable`]) is sent again, on a new connection, up to [`RESENDS`] times, when
    /// it got no response
    /// because its connection closed or reset under it (on a kept-alive connection: nginx's
    /// old workers close theirs on a reload), or a 502 (the replica died with it in flight):
    /// that is what the key is for, and what user agents do for idempotent requests (RFC 9110,
    /// 9.2.2). Any other request never is, and nothing is resent after a timeout.
    pub(crate) async fn send(&self, call: Call<'_>) -> Reply {
        let repeatable = matches!(call.method, "GET" | "DELETE" | "HEAD" | "PUT")
            || call.idempotency_key.is_some()
            || call.repeatable;
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        let mut resends = 0;
        loop {
            let retried = resends > 0;
            let can_resend = repeatable && resends < RESENDS;
            let client = if retried { &self.fresh } else { &self.inner };
            match tokio::time::timeout_at(deadline, self.send_inner(client, call.clone())).await {
                Ok(Ok(reply)) if reply.status == 502 && can_resend => resends += 1,
                Ok(Ok(reply)) => return Reply { retried, ..reply },
                Ok(Err(Failure::Transport)) if can_resend => resends += 1,
                Ok(Err(_)) | Err(_) => return failed(retried),
            }
        }
    }

    async fn send_inner(
        &self,
        client: &HyperClient<HttpConnector, Full<Bytes>>,
        call: Call<'_>,
    ) -> Result<Reply, Failure> {
        let mut builder = Request::builder()
            .method(call.method)
            .uri(format!("{}{}", self.base, call.path))
            .header("x-request-id", call.request_id);
        if let Some(key) = call.idempotency_key {
            builder = builder.header("idempotency-key", key);
        }
        if let Some(token) = call.token {
            let value =
                HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| Failure::Other)?;
            builder = builder.header(AUTHORIZATION, value);
        }
        let body = match call.body {
            Some((content_type, bytes)) => {
                builder = builder.header(CONTENT_TYPE, content_type);
                Full::new(bytes)
            }
            None => Full::new(Bytes::new()),
        };
        let request = builder.body(body).map_err(|_| Failure::Other)?;
        let response = client
            .request(request)
            .await
            .map_err(|_| Failure::Transport)?;
        let status = response.status().as_u16();
        let upstream = response
            .headers()
            .get("x-upstream")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|_| Failure::Other)?
            .to_bytes();
        Ok(Reply {
            status,
            body,
            retry_after,
            retried: false,
            upstream,
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
            idempotency_key: None,
            repeatable: false,
        })
        .await
    }
}

/// Why no response came.
#[derive(Debug)]
enum Failure {
    /// The connection failed before a response came: closed, reset, refused.
    Transport,
    /// Anything else: a request that cannot be built, a body cut short.
    Other,
}

/// No response: status 0. (Why is not kept: the phase's figures count these, and nginx's and
/// the replicas' logs tell the cause.)
fn failed(retried: bool) -> Reply {
    Reply {
        status: 0,
        body: Bytes::new(),
        retry_after: None,
        retried,
        upstream: None,
    }
}
