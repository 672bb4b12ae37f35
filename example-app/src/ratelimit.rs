//! Rate limiting per signed-in user, per client IP before login, and for `POST /auth/login` and
//! `/auth/register` per client IP and per target email whatever token the request carries:
//! shared by every replica through Redis when `CACHE_URL` names one (any form: single, TLS,
//! cluster), in-process otherwise. Over a limit, `429` with `Retry-After`.
//!
//! In-process limiting is governor's GCRA (a burst of the limit, refilled evenly over the
//! minute). Across replicas it is a fixed one-minute window per client in Redis (`INCR` and
//! `PEXPIRE` in one Lua script, one round trip); no crate does that over a `redis` connection,
//! hence the dozen lines here. Each key holds its client in a hash tag (`{ip:..}`), so on a
//! cluster a client's key lives on one master whatever prefix is added later.
//!
//! A Redis that fails or is slow does not let everything through: the request is counted by
//! the in-process limiter instead (per replica, so N replicas allow up to N times the limit
//! while Redis is down), and Redis is not asked again for five seconds; then one request asks
//! it while the others stay in process, so an outage costs one request one 250 ms budget per
//! five seconds, not every request in flight.
//!
//! IPv6 clients are counted per /64: one host usually holds a whole /64, and counting each of
//! its 2^64 addresses apart would give it as many budgets.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::app::AppState;
use crate::auth::{AuthUser, authenticate, bearer_token};
use crate::error::ApiError;
use crate::redis_conn::SharedRedis;

/// The window of the shared limiter.
const WINDOW: Duration = Duration::from_secs(60);

/// The longest a Redis check may take before the in-process limiter decides instead.
const REDIS_BUDGET: Duration = Duration::from_millis(250);

/// After a failed or slow Redis check, how long the in-process limiter decides alone.
const REDIS_COOL_DOWN: Duration = Duration::from_secs(5);

const WINDOW_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
";

/// Who a request counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Client {
    /// A signed-in user.
    User(i64),
    /// A client without a valid token, by IP (IPv6 by /64: see [`client_ip`]).
    Ip(IpAddr),
    /// No address known (an in-process call): one shared bucket.
    Unknown,
    /// A login or registration attempt from this IP (or /64), whatever token it carries.
    AuthIp(IpAddr),
    /// A login or registration attempt from an unknown address.
    AuthUnknown,
    /// A login or registration attempt for this (lower-cased) email, from anywhere.
    AuthEmail(String),
    /// A photo upload by this user.
    Upload(i64),
}

impl Client {
    /// The Redis key: the client in a hash tag, so that it names one slot on a cluster.
    fn key(&self) -> String {
        match self {
            Self::User(id) => format!("calories:ratelimit:{{user:{id}}}"),
            Self::Ip(ip) => format!("calories:ratelimit:{{ip:{ip}}}"),
            Self::Unknown => "calories:ratelimit:{ip:unknown}".to_owned(),
            Self::AuthIp(ip) => format!("calories:ratelimit:{{auth-ip:{ip}}}"),
            Self::AuthUnknown => "calories:ratelimit:{auth-ip:unknown}".to_owned(),
            // Emails may hold `{`, `}` and glob characters: hex keeps the key one plain token.
            Self::Upload(id) => format!("calories:ratelimit:{{upload:{id}}}"),
            Self::AuthEmail(email) => {
                let hex: String = email.bytes().map(|b| format!("{b:02x}")).collect();
                format!("calories:ratelimit:{{auth-email:{hex}}}")
            }
        }
    }
}

/// Requests a minute for each kind of client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Per signed-in user.
    pub per_user: u32,
    /// Per client IP without a token.
    pub per_ip: u32,
    /// Login and registration attempts per client IP, and per target email.
    pub per_auth: u32,
    /// Photo uploads per user.
    pub per_upload: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_user: 300,
            per_ip: 60,
            per_auth: 10,
            per_upload: 10,
        }
    }
}

/// The limiter: in-process or shared through Redis.
#[derive(Clone)]
pub struct RateLimiter {
    store: Store,
    /// Decides alone without Redis, and for a Redis that failed.
    local: Local,
    limits: Limits,
}

#[derive(Clone)]
enum Store {
    Local,
    Redis {
        conn: SharedRedis,
        script: Arc<redis::Script>,
        /// Until when (ms since `started`) Redis is not asked: set after a failure, so an
        /// outage costs one budget per cool-down, not one per request.
        skip_until: Arc<AtomicU64>,
        started: Instant,
    },
}

#[derive(Clone)]
struct Local {
    users: Arc<DefaultKeyedRateLimiter<Client>>,
    anonymous: Arc<DefaultKeyedRateLimiter<Client>>,
    auth: Arc<DefaultKeyedRateLimiter<Client>>,
    uploads: Arc<DefaultKeyedRateLimiter<Client>>,
    clock: DefaultClock,
}

impl Local {
    fn new(limits: Limits) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        let users = Arc::new(DefaultKeyedRateLimiter::keyed(quota(limits.per_user)));
        let anonymous = Arc::new(DefaultKeyedRateLimiter::keyed(quota(limits.per_ip)));
        let auth = Arc::new(DefaultKeyedRateLimiter::keyed(quota(limits.per_auth)));
        let uploads = Arc::new(DefaultKeyedRateLimiter::keyed(quota(limits.per_upload)));
        // Forget clients idle for a full window, so the maps do not grow without bound.
        let weak = [&users, &anonymous, &auth, &uploads].map(Arc::downgrade);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(WINDOW);
            loop {
                tick.tick().await;
                for limiter in &weak {
                    match limiter.upgrade() {
                        Some(limiter) => limiter.retain_recent(),
                        None => return,
                    }
                }
            }
        });
        Self {
            users,
            anonymous,
            auth,
            uploads,
            clock: DefaultClock::default(),
        }
    }

    fn check(&self, client: &Client) -> Result<(), Duration> {
        let limiter = match client {
            Client::User(_) => &self.users,
            Client::Ip(_) | Client::Unknown => &self.anonymous,
            Client::Upload(_) => &self.uploads,
            Client::AuthIp(_) | Client::AuthUnknown | Client::AuthEmail(_) => &self.auth,
        };
        limiter
            .check_key(client)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let store = match self.store {
            Store::Local => "in-process",
            Store::Redis { .. } => "redis",
        };
        f.debug_struct("RateLimiter")
            .field("store", &store)
            .field("limits", &self.limits)
            .finish()
    }
}

impl RateLimiter {
    /// An in-process limiter.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let limiter = calories_app::RateLimiter::local(Default::default());
    /// assert!(limiter.is_local());
    /// # }
    /// ```
    #[must_use]
    pub fn local(limits: Limits) -> Self {
        Self {
            store: Store::Local,
            local: Local::new(limits),
            limits,
        }
    }

    /// A limiter shared by every replica through `conn`, with the in-process one as fallback.
    #[must_use]
    pub fn redis(conn: SharedRedis, limits: Limits) -> Self {
        Self {
            store: Store::Redis {
                conn,
                script: Arc::new(redis::Script::new(WINDOW_SCRIPT)),
                skip_until: Arc::new(AtomicU64::new(0)),
                started: Instant::now(),
            },
            local: Local::new(limits),
            limits,
        }
    }

    /// Whether this limiter counts in-process only.
    #[must_use]
    pub fn is_local(&self) -> bool {
        matches!(self.store, Store::Local)
    }

    /// Counts one request of `client`; `Err(wait)` when over the limit.
    pub async fn check(&self, client: &Client) -> Result<(), Duration> {
        let limit = match client {
            Client::User(_) => self.limits.per_user,
            Client::Ip(_) | Client::Unknown => self.limits.per_ip,
            Client::Upload(_) => self.limits.per_upload,
            Client::AuthIp(_) | Client::AuthUnknown | Client::AuthEmail(_) => self.limits.per_auth,
        };
        let Store::Redis {
            conn,
            script,
            skip_until,
            started,
        } = &self.store
        else {
            return self.local.check(client);
        };
        // +1 so that "now" is never 0, the marker of a Redis in use.
        let now = u64::try_from(started.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1);
        let until = skip_until.load(Ordering::Acquire);
        if now < until {
            return self.local.check(client);
        }
        // The cool-down is over: one request (the one that wins this swap) asks Redis again,
        // and the others stay in process until it has the answer, rather than every request
        // in flight waiting on a Redis that may still be down (half-open, as cache-core's
        // breaker does).
        let probe_for = u64::try_from(REDIS_BUDGET.as_millis()).unwrap_or(0);
        let probing = until != 0;
        if probing
            && skip_until
                .compare_exchange(
                    until,
                    now.saturating_add(probe_for),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_err()
        {
            return self.local.check(client);
        }
        let give_up = || {
            let pause = u64::try_from(REDIS_COOL_DOWN.as_millis()).unwrap_or(0);
            skip_until.store(now.saturating_add(pause), Ordering::Release);
            metrics::counter!("rate_limiter_fallback_total").increment(1);
        };
        let back = || {
            if probing {
                skip_until.store(0, Ordering::Release);
                tracing::info!("rate limiter: Redis answers again; limiting through it");
            }
        };
        let window_ms = u64::try_from(WINDOW.as_millis()).unwrap_or(60_000);
        let mut invocation = script.key(client.key());
        invocation.arg(window_ms);
        let call = conn.invoke::<(u64, i64)>(&invocation);
        match tokio::time::timeout(REDIS_BUDGET, call).await {
            Ok(Ok((count, ttl_ms))) => {
                back();
                if count > u64::from(limit) {
                    Err(Duration::from_millis(
                        u64::try_from(ttl_ms).unwrap_or(1000).max(1),
                    ))
                } else {
                    Ok(())
                }
            }
            Ok(Err(err)) => {
                give_up();
                tracing::warn!(error = %err, "rate limiter: Redis failed; limiting in-process for {REDIS_COOL_DOWN:?}");
                self.local.check(client)
            }
            Err(_) => {
                give_up();
                tracing::warn!(
                    "rate limiter: Redis too slow; limiting in-process for {REDIS_COOL_DOWN:?}"
                );
                self.local.check(client)
            }
        }
    }

    /// Counts a login or registration attempt against the client's address and the target
    /// email; `Err` (429) when either is over [`Limits::per_auth`].
    ///
    /// # Errors
    /// 429 `rate_limited` with `Retry-After`.
    pub async fn check_auth(&self, from: ClientIp, email: &str) -> Result<(), ApiError> {
        let by_ip = match from.0 {
            Some(ip) => Client::AuthIp(ip),
            None => Client::AuthUnknown,
        };
        let by_email = Client::AuthEmail(email.trim().to_lowercase());
        for client in [by_ip, by_email] {
            if let Err(wait) = self.check(&client).await {
                metrics::counter!("http_rate_limited_total").increment(1);
                return Err(ApiError::rate_limited(wait));
            }
        }
        Ok(())
    }
}

/// The middleware: counts the request against its user or IP, or answers 429.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let (client, user) = client_of(&state, &parts);
    if let Err(wait) = state.limiter.check(&client).await {
        metrics::counter!("http_rate_limited_total").increment(1);
        return ApiError::rate_limited(wait).into_response();
    }
    if let Some(user) = user {
        // Verified here; the `AuthUser` extractor reuses it rather than checking the token again.
        parts.extensions.insert(user);
    }
    next.run(Request::from_parts(parts, body)).await
}

fn client_of(state: &AppState, parts: &Parts) -> (Client, Option<AuthUser>) {
    if let Some(user) = bearer_token(parts).and_then(|t| authenticate(state, t).ok()) {
        return (Client::User(user.id), Some(user));
    }
    (
        client_ip(state, parts).map_or(Client::Unknown, Client::Ip),
        None,
    )
}

/// The client's address as the limiter counts it: from `X-Forwarded-For` behind a trusted
/// proxy, else the peer; an IPv4-mapped IPv6 address as IPv4; other IPv6 addresses cut to
/// their /64.
///
/// ```
/// use std::net::IpAddr;
/// use calories_app::ratelimit::bucket_of;
/// let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
/// let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
/// assert_eq!(bucket_of(a), bucket_of(b));
/// assert_ne!(bucket_of(a), bucket_of("2001:db8:1:3::1".parse().unwrap()));
/// assert_eq!(bucket_of("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
/// ```
#[must_use]
pub fn bucket_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// The client's address bucket (see [`bucket_of`]), if known.
#[must_use]
pub fn client_ip(state: &AppState, parts: &Parts) -> Option<IpAddr> {
    if state.config.trust_forwarded_for {
        // The rightmost entry is the one our own proxy added; entries left of it are whatever
        // the client chose to send.
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
            .next_back();
        if let Some(ip) = forwarded {
            return Some(bucket_of(ip));
        }
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| bucket_of(info.0.ip()))
}

/// The extractor for [`client_ip`]: the address bucket a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_ip(state, parts)))
    }
}
