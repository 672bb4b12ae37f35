//! Rate limiting per signed-in user, and per client IP before login: shared by every replica
//! through Redis when `CACHE_URL` names one, in-process otherwise. Over the limit, `429` with
//! `Retry-After`.
//!
//! In-process limiting is governor's GCRA (a burst of the limit, refilled evenly over the
//! minute). Across replicas it is a fixed one-minute window per client in Redis (`INCR` and
//! `PEXPIRE` in one Lua script, one round trip); no crate does that over a `redis` connection,
//! hence the dozen lines here. A Redis that fails or is slow lets the request through: a limiter
//! must not take the service down with it; after a failure Redis is not asked again for five
//! seconds, so an outage costs one 250 ms budget per five seconds, not one per request.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use redis::aio::ConnectionManager;

use crate::app::AppState;
use crate::auth::{AuthUser, bearer_token};
use crate::error::ApiError;

/// The window of the shared limiter.
const WINDOW: Duration = Duration::from_secs(60);

/// The longest a Redis check may take before the request goes through unchecked.
const REDIS_BUDGET: Duration = Duration::from_millis(250);

/// After a failed or slow Redis check, how long requests go through without asking Redis.
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
    /// A client without a valid token, by IP.
    Ip(IpAddr),
    /// No address known (an in-process call): one shared bucket.
    Unknown,
}

impl Client {
    fn key(&self) -> String {
        match self {
            Self::User(id) => format!("calories:ratelimit:user:{id}"),
            Self::Ip(ip) => format!("calories:ratelimit:ip:{ip}"),
            Self::Unknown => "calories:ratelimit:ip:unknown".to_owned(),
        }
    }
}

/// The limiter: in-process or shared through Redis.
#[derive(Clone)]
pub struct RateLimiter {
    store: Store,
    per_user: u32,
    per_ip: u32,
}

#[derive(Clone)]
enum Store {
    Local {
        users: Arc<DefaultKeyedRateLimiter<Client>>,
        anonymous: Arc<DefaultKeyedRateLimiter<Client>>,
        clock: DefaultClock,
    },
    Redis {
        conn: ConnectionManager,
        script: Arc<redis::Script>,
        /// Until when (ms since `started`) Redis is not asked: set after a failure, so an
        /// outage costs one budget per cool-down, not one per request.
        skip_until: Arc<AtomicU64>,
        started: Instant,
    },
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let store = match self.store {
            Store::Local { .. } => "in-process",
            Store::Redis { .. } => "redis",
        };
        f.debug_struct("RateLimiter")
            .field("store", &store)
            .field("per_user", &self.per_user)
            .field("per_ip", &self.per_ip)
            .finish()
    }
}

impl RateLimiter {
    /// An in-process limiter: `per_user` and `per_ip` requests a minute.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let limiter = calories_app::RateLimiter::local(300, 60);
    /// assert!(limiter.is_local());
    /// # }
    /// ```
    #[must_use]
    pub fn local(per_user: u32, per_ip: u32) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        let users = Arc::new(DefaultKeyedRateLimiter::keyed(quota(per_user)));
        let anonymous = Arc::new(DefaultKeyedRateLimiter::keyed(quota(per_ip)));
        // Forget clients idle for a full window, so the maps do not grow without bound.
        let (weak_users, weak_anonymous) = (Arc::downgrade(&users), Arc::downgrade(&anonymous));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(WINDOW);
            loop {
                tick.tick().await;
                let (Some(users), Some(anonymous)) =
                    (weak_users.upgrade(), weak_anonymous.upgrade())
                else {
                    break;
                };
                users.retain_recent();
                anonymous.retain_recent();
            }
        });
        Self {
            store: Store::Local {
                users,
                anonymous,
                clock: DefaultClock::default(),
            },
            per_user,
            per_ip,
        }
    }

    /// A limiter shared by every replica on the Redis at `url`.
    ///
    /// # Errors
    /// A malformed URL or a Redis that does not answer.
    pub async fn redis(url: &str, per_user: u32, per_ip: u32) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let conn = tokio::time::timeout(Duration::from_secs(5), client.get_connection_manager())
            .await
            .map_err(|_| anyhow::anyhow!("Redis did not answer within 5 s"))??;
        Ok(Self {
            store: Store::Redis {
                conn,
                script: Arc::new(redis::Script::new(WINDOW_SCRIPT)),
                skip_until: Arc::new(AtomicU64::new(0)),
                started: Instant::now(),
            },
            per_user,
            per_ip,
        })
    }

    /// Whether this limiter counts in-process only.
    #[must_use]
    pub fn is_local(&self) -> bool {
        matches!(self.store, Store::Local { .. })
    }

    /// Counts one request of `client`; `Err(wait)` when over the limit.
    pub async fn check(&self, client: &Client) -> Result<(), Duration> {
        let limit = match client {
            Client::User(_) => self.per_user,
            _ => self.per_ip,
        };
        match &self.store {
            Store::Local {
                users,
                anonymous,
                clock,
            } => {
                let limiter = if matches!(client, Client::User(_)) {
                    users
                } else {
                    anonymous
                };
                limiter
                    .check_key(client)
                    .map_err(|not_until| not_until.wait_time_from(clock.now()))
            }
            Store::Redis {
                conn,
                script,
                skip_until,
                started,
            } => {
                let now = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                if now < skip_until.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let give_up = || {
                    let pause = u64::try_from(REDIS_COOL_DOWN.as_millis()).unwrap_or(0);
                    skip_until.store(now.saturating_add(pause), Ordering::Relaxed);
                };
                let mut conn = conn.clone();
                let window_ms = u64::try_from(WINDOW.as_millis()).unwrap_or(60_000);
                let mut invocation = script.key(client.key());
                invocation.arg(window_ms);
                let call = invocation.invoke_async::<(u64, i64)>(&mut conn);
                match tokio::time::timeout(REDIS_BUDGET, call).await {
                    Ok(Ok((count, ttl_ms))) if count > u64::from(limit) => Err(
                        Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(1000).max(1)),
                    ),
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(err)) => {
                        give_up();
                        tracing::warn!(error = %err, "rate limiter: Redis failed; not limiting for {REDIS_COOL_DOWN:?}");
                        Ok(())
                    }
                    Err(_) => {
                        give_up();
                        tracing::warn!(
                            "rate limiter: Redis too slow; not limiting for {REDIS_COOL_DOWN:?}"
                        );
                        Ok(())
                    }
                }
            }
        }
    }
}

/// The middleware: counts the request against its user or IP, or answers 429.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let client = client_of(&state, &parts);
    if let Err(wait) = state.limiter.check(&client).await {
        metrics::counter!("http_rate_limited_total").increment(1);
        return ApiError::rate_limited(wait).into_response();
    }
    if let Client::User(id) = client {
        // Verified here; the `AuthUser` extractor reuses it rather than checking the token again.
        parts.extensions.insert(AuthUser { id });
    }
    next.run(Request::from_parts(parts, body)).await
}

fn client_of(state: &AppState, parts: &Parts) -> Client {
    if let Some(id) = bearer_token(parts).and_then(|t| state.jwt.verify(t).ok()) {
        return Client::User(id);
    }
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
            return Client::Ip(ip);
        }
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(Client::Unknown, |info| Client::Ip(info.0.ip()))
}
