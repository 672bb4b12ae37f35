//! Sessions: one record per signed-in device (created, last used, user agent, IP) with the hash
//! of its opaque, rotating refresh token, kept in Redis when `CACHE_URL` (or `RATE_LIMIT_URL`)
//! names one and in process memory otherwise; and the list of revoked sessions that every
//! replica holds in memory, so that checking an access token against it costs no round trip.
//!
//! A refresh token is `{user}.{session}.{secret}`; only the SHA-256 of the secret is stored.
//! Each refresh replaces the secret (rotation). Presenting a secret that was already rotated
//! out means the token was copied: the whole session (the family) is deleted and revoked.
//!
//! Revocation reaches access tokens through their `sid` claim: a revoked session id goes into a
//! sorted set in Redis (scored by when its last access token expires), and each replica reloads
//! that set once a second in the background. A logout therefore takes effect on every replica
//! within about a second, and on the replica that served it at once. With Redis down the last
//! loaded list stays in force, access tokens keep working until they expire, and refresh,
//! login and logout answer 503 until Redis is back; no session is lost (they live in Redis).
//!
//! Every key of one user holds `{u:ID}` as a hash tag, so the rotation script's keys share a
//! slot on a Redis Cluster.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::redis_conn::SharedRedis;

/// How often each replica reloads the revocation list from Redis.
pub const REVOCATION_POLL: Duration = Duration::from_secs(1);

/// The longest a Redis call of the session store may take.
const REDIS_BUDGET: Duration = Duration::from_millis(500);

const REVOKED_KEY: &str = "calories:sessions:revoked";

/// Rotates a refresh token: `rotated` with the new record, `reused` (family deleted),
/// `invalid` or `missing`.
const ROTATE_SCRIPT: &str = r"
local raw = redis.call('GET', KEYS[1])
if not raw then return {'missing'} end
local record = cjson.decode(raw)
if record.refresh_hash == ARGV[1] then
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  record.refresh_hash = ARGV[2]
  record.last_used_at = tonumber(ARGV[4])
  record.ip = ARGV[5]
  local encoded = cjson.encode(record)
  redis.call('SET', KEYS[1], encoded, 'PX', ARGV[3])
  return {'rotated', encoded}
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('SREM', KEYS[3], ARGV[6])
  return {'reused'}
end
return {'invalid'}
";

/// One signed-in device, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The session id, 32 hex digits.
    pub id: String,
    /// Its user.
    pub user_id: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last login or refresh.
    pub last_used_at: i64,
    /// The `User-Agent` at login, cut to 200 characters.
    pub user_agent: String,
    /// The client address at the last login or refresh.
    pub ip: String,
    /// SHA-256 (hex) of the current refresh secret.
    pub refresh_hash: String,
}

/// A session as `GET /auth/sessions` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionView {
    /// The session id (for `DELETE /auth/sessions/{id}`).
    pub id: String,
    /// When it was created, Unix seconds.
    pub created_at: i64,
    /// When it was last used to log in or refresh, Unix seconds.
    pub last_used_at: i64,
    /// The browser or app that created it.
    pub user_agent: String,
    /// The client address at the last login or refresh.
    pub ip: String,
    /// Whether this is the session of the token that asked.
    pub current: bool,
}

/// What a refresh found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// The token was current: here is the session, with its new refresh token.
    Rotated(SessionRecord, String),
    /// The token was an old one of a live session: the session is now deleted and revoked.
    Reused,
    /// No such session, or a secret it never had.
    Invalid,
}

#[derive(Debug, Default)]
struct MemoryStore {
    sessions: HashMap<(i64, String), SessionRecord>,
    used: HashMap<(i64, String), HashSet<String>>,
}

#[derive(Debug, Clone)]
enum Store {
    Memory(Arc<Mutex<MemoryStore>>),
    Redis(SharedRedis),
}

/// The session store and this replica's copy of the revocation list.
#[derive(Debug, Clone)]
pub struct Sessions {
    store: Store,
    /// Revoked session id -> until when (Unix seconds) it matters.
    revoked: Arc<RwLock<HashMap<u128, i64>>>,
    refresh_ttl: Duration,
    access_ttl: Duration,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn sha256_hex(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh secret: two v4 UUIDs, 244 random bits.
fn new_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn unavailable(err: impl std::fmt::Display) -> ApiError {
    let mut api = ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "sessions_unavailable",
        "the session store (Redis) is unavailable; your access token keeps working until it \
         expires: retry shortly",
    );
    api = api.with_retry_after(Duration::from_secs(5));
    tracing::warn!(error = %err, "session store failed");
    api
}

fn session_key(user: i64, id: &str) -> String {
    format!("calories:session:{{u:{user}}}:{id}")
}

fn used_key(user: i64, id: &str) -> String {
    format!("calories:session:{{u:{user}}}:{id}:used")
}

fn index_key(user: i64) -> String {
    format!("calories:sessions:{{u:{user}}}")
}

/// The parts of a refresh token: user, session id, secret.
///
/// ```
/// use calories_app::sessions::parse_refresh_token;
/// let (user, sid, secret) = parse_refresh_token("7.0123456789abcdef0123456789abcdef.s3cret").unwrap();
/// assert_eq!((user, sid, secret), (7, "0123456789abcdef0123456789abcdef", "s3cret"));
/// assert!(parse_refresh_token("junk").is_none());
/// ```
#[must_use]
pub fn parse_refresh_token(token: &str) -> Option<(i64, &str, &str)> {
    let mut parts = token.trim().splitn(3, '.');
    let user = parts.next()?.parse().ok()?;
    let sid = parts.next()?;
    let secret = parts.next()?;
    let valid_sid = sid.len() == 32 && sid.bytes().all(|b| b.is_ascii_hexdigit());
    (valid_sid && !secret.is_empty() && secret.len() <= 128).then_some((user, sid, secret))
}

/// A session id as the number an access token's `sid` carries.
#[must_use]
pub fn sid_number(sid: &str) -> Option<u128> {
    u128::from_str_radix(sid, 16).ok()
}

impl Sessions {
    /// Sessions in this process only (the memory cache).
    #[must_use]
    pub fn memory(refresh_ttl: Duration, access_ttl: Duration) -> Self {
        Self {
            store: Store::Memory(Arc::default()),
            revoked: Arc::default(),
            refresh_ttl,
            access_ttl,
        }
    }

    /// Sessions in Redis, shared by every replica; starts the revocation list's reload task.
    #[must_use]
    pub fn redis(conn: SharedRedis, refresh_ttl: Duration, access_ttl: Duration) -> Self {
        let sessions = Self {
            store: Store::Redis(conn),
            revoked: Arc::default(),
            refresh_ttl,
            access_ttl,
        };
        let weak = Arc::downgrade(&sessions.revoked);
        let store = sessions.store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REVOCATION_POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(revoked) = weak.upgrade() else { break };
                let Store::Redis(conn) = &store else { break };
                let mut cmd = redis::cmd("ZRANGEBYSCORE");
                cmd.arg(REVOKED_KEY)
                    .arg(now())
                    .arg("+inf")
                    .arg("WITHSCORES");
                match tokio::time::timeout(REDIS_BUDGET, conn.query::<Vec<(String, i64)>>(&cmd))
                    .await
                {
                    Ok(Ok(entries)) => {
                        let fresh: HashMap<u128, i64> = entries
                            .into_iter()
                            .filter_map(|(sid, until)| Some((sid_number(&sid)?, until)))
                            .collect();
                        if let Ok(mut map) = revoked.write() {
                            *map = fresh;
                        }
                    }
                    // Keep the last list: a revoked token stays revoked while Redis is away.
                    Ok(Err(err)) => tracing::debug!(error = %err, "revocation list reload failed"),
                    Err(_) => tracing::debug!("revocation list reload timed out"),
                }
            }
        });
        sessions
    }

    /// Whether session `sid` was revoked: a map lookup, no I/O.
    #[must_use]
    pub fn is_revoked(&self, sid: u128) -> bool {
        self.revoked
            .read()
            .map(|map| map.get(&sid).is_some_and(|until| *until >= now()))
            .unwrap_or(false)
    }

    /// How long refresh tokens (and sessions) live without use.
    #[must_use]
    pub fn refresh_ttl(&self) -> Duration {
        self.refresh_ttl
    }

    /// Creates a session; returns it and its refresh token.
    ///
    /// # Errors
    /// 503 `sessions_unavailable` when Redis fails.
    pub async fn create(
        &self,
        user: i64,
        user_agent: &str,
        ip: &str,
    ) -> Result<(SessionRecord, String), ApiError> {
        let id = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
        let secret = new_secret();
        let record = SessionRecord {
            id: id.clone(),
            user_id: user,
            created_at: now(),
            last_used_at: now(),
            user_agent: user_agent.chars().take(200).collect(),
            ip: ip.to_owned(),
            refresh_hash: sha256_hex(&secret),
        };
        match &self.store {
            Store::Memory(store) => {
                let mut store = store.lock().map_err(|_| unavailable("poisoned"))?;
                store.sessions.insert((user, id.clone()), record.clone());
            }
            Store::Redis(conn) => {
                let json = serde_json::to_string(&record).map_err(ApiError::internal)?;
                let mut set = redis::cmd("SET");
                set.arg(session_key(user, &id))
                    .arg(json)
                    .arg("PX")
                    .arg(millis(self.refresh_ttl));
                self.redis_call::<()>(conn, &set).await?;
                let mut add = redis::cmd("SADD");
                add.arg(index_key(user)).arg(&id);
                self.redis_call::<()>(conn, &add).await?;
            }
        }
        let token = format!("{user}.{id}.{secret}");
        Ok((record, token))
    }

    async fn redis_call<T: redis::FromRedisValue>(
        &self,
        conn: &SharedRedis,
        cmd: &redis::Cmd,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout(REDIS_BUDGET, conn.query::<T>(cmd)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(unavailable(err)),
            Err(_) => Err(unavailable("timed out")),
        }
    }

    /// Rotates `token` (see the module docs).
    ///
    /// # Errors
    /// 503 `sessions_unavailable` when Redis fails.
    pub async fn refresh(&self, token: &str, ip: &str) -> Result<Refreshed, ApiError> {
        let Some((user, sid, secret)) = parse_refresh_token(token) else {
            return Ok(Refreshed::Invalid);
        };
        let presented = sha256_hex(secret);
        let secret = new_secret();
        let next_hash = sha256_hex(&secret);
        let outcome = match &self.store {
            Store::Memory(store) => {
                let mut guard = store.lock().map_err(|_| unavailable("poisoned"))?;
                let store = &mut *guard;
                let key = (user, sid.to_owned());
                let current = store
                    .sessions
                    .get(&key)
                    .map(|r| r.refresh_hash == presented);
                let reused = store.used.get(&key).is_some_and(|u| u.contains(&presented));
                match (current, store.sessions.get_mut(&key)) {
                    (Some(true), Some(record)) => {
                        let old = std::mem::replace(&mut record.refresh_hash, next_hash);
                        record.last_used_at = now();
                        ip.clone_into(&mut record.ip);
                        let record = record.clone();
                        store.used.entry(key).or_default().insert(old);
                        Refreshed::Rotated(record, String::new())
                    }
                    (Some(false), _) if reused => {
                        store.sessions.remove(&key);
                        store.used.remove(&key);
                        Refreshed::Reused
                    }
                    _ => Refreshed::Invalid,
                }
            }
            Store::Redis(conn) => {
                let script = redis::Script::new(ROTATE_SCRIPT);
                let mut invocation = script.key(session_key(user, sid));
                invocation
                    .key(used_key(user, sid))
                    .key(index_key(user))
                    .arg(&presented)
                    .arg(&next_hash)
                    .arg(millis(self.refresh_ttl))
                    .arg(now())
                    .arg(ip)
                    .arg(sid);
                let reply: Vec<String> =
                    match tokio::time::timeout(REDIS_BUDGET, conn.invoke(&invocation)).await {
                        Ok(Ok(reply)) => reply,
                        Ok(Err(err)) => return Err(unavailable(err)),
                        Err(_) => return Err(unavailable("timed out")),
                    };
                match reply.first().map(String::as_str) {
                    Some("rotated") => {
                        let record: SessionRecord = reply
                            .get(1)
                            .and_then(|raw| serde_json::from_str(raw).ok())
                            .ok_or_else(|| {
                                ApiError::internal(anyhow::anyhow!("a session record is corrupt"))
                            })?;
                        Refreshed::Rotated(record, String::new())
                    }
                    Some("reused") => Refreshed::Reused,
                    _ => Refreshed::Invalid,
                }
            }
        };
        Ok(match outcome {
            Refreshed::Rotated(record, _) => {
                let token = format!("{user}.{sid}.{secret}");
                Refreshed::Rotated(record, token)
            }
            Refreshed::Reused => {
                self.revoke(&[sid.to_owned()]).await?;
                Refreshed::Reused
            }
            Refreshed::Invalid => Refreshed::Invalid,
        })
    }

    /// The sessions of `user`.
    ///
    /// # Errors
    /// 503 `sessions_unavailable` when Redis fails.
    pub async fn list(&self, user: i64) -> Result<Vec<SessionRecord>, ApiError> {
        let mut records = match &self.store {
            Store::Memory(store) => {
                let store = store.lock().map_err(|_| unavailable("poisoned"))?;
                store
                    .sessions
                    .values()
                    .filter(|r| r.user_id == user)
                    .cloned()
                    .collect()
            }
            Store::Redis(conn) => {
                let mut members = redis::cmd("SMEMBERS");
                members.arg(index_key(user));
                let ids: Vec<String> = self.redis_call(conn, &members).await?;
                let mut records = Vec::with_capacity(ids.len());
                for id in ids {
                    let mut get = redis::cmd("GET");
                    get.arg(session_key(user, &id));
                    let raw: Option<String> = self.redis_call(conn, &get).await?;
                    match raw.and_then(|raw| serde_json::from_str(&raw).ok()) {
                        Some(record) => records.push(record),
                        None => {
                            // Expired: drop it from the index too.
                            let mut rem = redis::cmd("SREM");
                            rem.arg(index_key(user)).arg(&id);
                            self.redis_call::<()>(conn, &rem).await?;
                        }
                    }
                }
                records
            }
        };
        records.sort_by_key(|r: &SessionRecord| std::cmp::Reverse(r.last_used_at));
        Ok(records)
    }

    /// Deletes and revokes `user`'s sessions `ids` (those that exist); returns how many existed.
    ///
    /// # Errors
    /// 503 `sessions_unavailable` when Redis fails.
    pub async fn end(&self, user: i64, ids: &[String]) -> Result<usize, ApiError> {
        let mut ended = Vec::new();
        match &self.store {
            Store::Memory(store) => {
                let mut store = store.lock().map_err(|_| unavailable("poisoned"))?;
                for id in ids {
                    let key = (user, id.clone());
                    store.used.remove(&key);
                    if store.sessions.remove(&key).is_some() {
                        ended.push(id.clone());
                    }
                }
            }
            Store::Redis(conn) => {
                for id in ids {
                    let mut del = redis::cmd("DEL");
                    del.arg(session_key(user, id)).arg(used_key(user, id));
                    let removed: u64 = self.redis_call(conn, &del).await?;
                    let mut rem = redis::cmd("SREM");
                    rem.arg(index_key(user)).arg(id);
                    self.redis_call::<()>(conn, &rem).await?;
                    if removed > 0 {
                        ended.push(id.clone());
                    }
                }
            }
        }
        self.revoke(&ended).await?;
        Ok(ended.len())
    }

    /// Revokes the access tokens of sessions `ids`: here at once, elsewhere within
    /// [`REVOCATION_POLL`].
    async fn revoke(&self, ids: &[String]) -> Result<(), ApiError> {
        if ids.is_empty() {
            return Ok(());
        }
        // An access token lives at most `access_ttl` (plus a second of rounding).
        let until = now() + i64::try_from(self.access_ttl.as_secs()).unwrap_or(i64::MAX / 2) + 1;
        if let Ok(mut map) = self.revoked.write() {
            for id in ids {
                if let Some(sid) = sid_number(id) {
                    map.insert(sid, until);
                }
            }
            map.retain(|_, until| *until >= now());
        }
        if let Store::Redis(conn) = &self.store {
            let mut add = redis::cmd("ZADD");
            add.arg(REVOKED_KEY);
            for id in ids {
                add.arg(until).arg(id);
            }
            self.redis_call::<()>(conn, &add).await?;
            let mut trim = redis::cmd("ZREMRANGEBYSCORE");
            trim.arg(REVOKED_KEY).arg("-inf").arg(now() - 1);
            self.redis_call::<()>(conn, &trim).await?;
        }
        Ok(())
    }
}
