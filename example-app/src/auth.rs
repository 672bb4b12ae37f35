//! Accounts and access: argon2 password hashes, short-lived HS256 JWT access tokens naming
//! their session, the refresh tokens and sessions of [`crate::sessions`], the `/auth/*` routes,
//! and the [`AuthUser`] extractor every other user route takes (it refuses the access tokens of
//! a revoked session, checked in memory).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use axum::extract::{FromRequestParts, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::ratelimit::ClientIp;
use crate::sessions::{self, Refreshed, SessionRecord, SessionView};
use crate::users::{self, NewUser, User};

/// Signs and checks access tokens.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// What an access token says.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
    /// The session (32 hex digits) whose logout revokes this token.
    #[serde(default)]
    pub sid: String,
}

impl JwtKeys {
    /// Keys from the shared secret; tokens live `ttl`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let keys = calories_app::auth::JwtKeys::new("a-secret", Duration::from_secs(60));
    /// let token = keys.issue(42, 7).unwrap();
    /// assert_eq!(keys.verify(&token).unwrap(), (42, 7));
    /// ```
    #[must_use]
    pub fn new(secret: &str, ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is exact: a token is refused the second it expires.
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            ttl,
        }
    }

    /// A token for `user_id`, valid for the configured time.
    ///
    /// # Errors
    /// Signing failed (it does not, for HS256 with any secret).
    pub fn issue(&self, user_id: i64, session: u128) -> Result<String, ApiError> {
        let iat = unix_now();
        let claims = Claims {
            sub: user_id.to_string(),
            iat,
            exp: iat + self.ttl.as_secs(),
            sid: format!("{session:032x}"),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)
    }

    /// The user id and session a token names, if its signature and expiry hold.
    ///
    /// # Errors
    /// 401 `token_expired` or `invalid_token`.
    pub fn verify(&self, token: &str) -> Result<(i64, u128), ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|err| match err.kind() {
                JwtErrorKind::ExpiredSignature => ApiError::unauthorized(
                    "token_expired",
                    "the access token has expired: log in again",
                ),
                _ => ApiError::unauthorized("invalid_token", "the access token is not valid"),
            })?;
        let invalid = || ApiError::unauthorized("invalid_token", "the access token is not valid");
        let user = data.claims.sub.parse().map_err(|_| invalid())?;
        let session = crate::sessions::sid_number(&data.claims.sid).ok_or_else(invalid)?;
        Ok((user, session))
    }

    /// How long tokens live.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The signed-in user, from a valid `Authorization: Bearer <token>` header of a live session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthUser {
    /// The user's id.
    pub id: i64,
    /// The session the token belongs to.
    pub session: u128,
}

/// The user of `token`: its signature and expiry checked, and its session not revoked (a map
/// lookup in this replica's copy of the revocation list: no round trip).
///
/// # Errors
/// 401 `token_expired`, `invalid_token` or `session_revoked`.
pub fn authenticate(state: &AppState, token: &str) -> Result<AuthUser, ApiError> {
    let (id, session) = state.jwt.verify(token)?;
    if state.sessions.is_revoked(session) {
        return Err(ApiError::unauthorized(
            "session_revoked",
            "this session was logged out: log in again",
        ));
    }
    Ok(AuthUser { id, session })
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // The rate limiter already checked this request's token: its signature is not checked twice.
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(*user);
        }
        let token = bearer_token(parts).ok_or_else(|| {
            ApiError::unauthorized(
                "unauthorized",
                "this route needs an `Authorization: Bearer <token>` header; get a token from POST /auth/login",
            )
        })?;
        authenticate(state, token)
    }
}

/// The bearer token in a request's `Authorization` header, if there is one.
#[must_use]
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The bound on concurrent password hashing: argon2id takes 19 MiB and a core for each hash
/// (slow on purpose), so without a bound N parallel logins take N x 19 MiB (60 of them: 1.1 GiB,
/// an OOM kill in a 512 MiB pod). A hash waits up to [`PasswordHashing::wait`] for one of the
/// permits, then the request is answered 503 `busy` with `Retry-After`.
///
/// Hashes run on as many dedicated threads as there are permits, not on tokio's blocking pool:
/// the allocator keeps each thread's freed 19 MiB for reuse, so hashes spread over the pool's
/// many threads would keep 19 MiB on each (measured: +136 MiB for 8 hashes, 2 at a time).
#[derive(Debug, Clone)]
pub struct PasswordHashing {
    permits: Arc<Semaphore>,
    jobs: std::sync::mpsc::Sender<HashJob>,
    wait: Duration,
}

type HashJob = Box<dyn FnOnce() + Send>;

impl PasswordHashing {
    /// At most `permits` hashes at once (at least one), each on its own thread; a request waits
    /// up to `wait` for one. The threads end when the last clone is dropped.
    #[must_use]
    pub fn new(permits: usize, wait: Duration) -> Self {
        let permits = permits.max(1);
        let (jobs, queue) = std::sync::mpsc::channel::<HashJob>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for _ in 0..permits {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || {
                loop {
                    // The lock is held only while waiting for a job, not while running it.
                    let job = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
        }
        Self {
            permits: Arc::new(Semaphore::new(permits)),
            jobs,
            wait,
        }
    }

    /// How long a hash waits for a permit before its request is refused.
    #[must_use]
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// Runs `work` on a hashing thread once a permit is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        // Closed never happens (the semaphore is never closed); a timeout is the busy answer.
        let Ok(Ok(permit)) =
            tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await
        else {
            metrics::counter!("password_hashing_busy_total").increment(1);
            return Err(ApiError::busy(Duration::from_secs(1)));
        };
        let (done, result) = tokio::sync::oneshot::channel();
        let job: HashJob = Box::new(move || {
            let _ = done.send(work());
            drop(permit);
        });
        self.jobs
            .send(job)
            .map_err(|_| ApiError::internal(anyhow::anyhow!("the hashing threads are gone")))?;
        result
            .await
            .map_err(|_| ApiError::internal(anyhow::anyhow!("a hashing thread panicked")))
    }
}

/// Hashes a password with argon2id and a random salt, within `hashing`'s bound.
///
/// # Errors
/// 503 `busy` when every permit stays taken; hashing failed (an internal error).
pub async fn hash_password(
    hashing: &PasswordHashing,
    password: String,
) -> Result<String, ApiError> {
    hashing
        .run(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| ApiError::internal(anyhow::anyhow!("argon2: {e}")))
        })
        .await?
}

/// Whether `password` matches `hash`, within `hashing`'s bound.
async fn verify_password(
    hashing: &PasswordHashing,
    password: String,
    hash: String,
) -> Result<bool, ApiError> {
    hashing
        .run(move || {
            PasswordHash::new(&hash).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
}

/// A hash of no one's password, checked when the email is unknown so that a login's timing does
/// not tell which emails are registered.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$5c0zOT4cJgGg9EM2vTIa2Hs7+tR+h9cL0xA7cXq4i0A";

/// The body of `POST /auth/register`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Login name; stored lower-cased.
    #[schema(format = "email", min_length = 3, max_length = 254)]
    pub email: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    /// Display name, up to 100 characters.
    #[serde(default)]
    #[schema(max_length = 100)]
    pub name: Option<String>,
    /// Daily calorie goal, 500 to 10,000; default 2,000.
    #[serde(default)]
    #[schema(minimum = 500, maximum = 10000)]
    pub daily_goal: Option<i64>,
    /// IANA time zone such as `Europe/Berlin`; default `UTC`.
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// The body of `POST /auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The email registered with.
    pub email: String,
    /// The password.
    pub password: String,
}

/// An access token and the refresh token of its session.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The JWT to send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque; exchange it at `POST /auth/refresh` for a new pair. Each one works once.
    pub refresh_token: String,
    /// Seconds the refresh token (and the session) lasts unused.
    pub refresh_expires_in: u64,
    /// The session's id, as `GET /auth/sessions` lists it.
    pub session_id: String,
}

/// A new account and its first token.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterResponse {
    /// The account.
    pub user: User,
    /// A token, as from login.
    #[serde(flatten)]
    pub token: TokenResponse,
}

/// The body of `POST /auth/refresh`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from login, register or the last refresh.
    #[schema(max_length = 300)]
    pub refresh_token: String,
}

fn ip_text(from: ClientIp) -> String {
    from.0
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

fn pair(
    state: &AppState,
    record: &SessionRecord,
    refresh: String,
) -> Result<TokenResponse, ApiError> {
    let session = sessions::sid_number(&record.id)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a session id is not hex")))?;
    Ok(TokenResponse {
        access_token: state.jwt.issue(record.user_id, session)?,
        token_type: "Bearer",
        expires_in: state.jwt.ttl().as_secs(),
        refresh_token: refresh,
        refresh_expires_in: state.sessions.refresh_ttl().as_secs(),
        session_id: record.id.clone(),
    })
}

async fn new_session(
    state: &AppState,
    user: i64,
    from: ClientIp,
    headers: &HeaderMap,
) -> Result<TokenResponse, ApiError> {
    let (record, refresh) = state
        .sessions
        .create(user, &user_agent(headers), &ip_text(from))
        .await?;
    pair(state, &record, refresh)
}

/// Creates an account, and its first session.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = RegisterResponse), (status = 409, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody),
              (status = 503, body = crate::error::ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    from: ClientIp,
    headers: HeaderMap,
    Json(body): Json<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    state.limiter.check_auth(from, &body.email).await?;
    let new = NewUser::validate(body)?;
    let user = users::insert(&state.db, &state.hashing, new).await?;
    // The account may not have reached a read replica when its first request comes.
    state.db.wrote(user.id).await;
    let token = new_session(&state, user.id, from, &headers).await?;
    Ok((StatusCode::CREATED, Json(RegisterResponse { user, token })))
}

/// Exchanges an email and password for a new session: an access token and a refresh token.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    from: ClientIp,
    headers: HeaderMap,
    Json(body): Json<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let email = body.email.trim().to_lowercase();
    state.limiter.check_auth(from, &email).await?;
    let found = users::credentials(&state.db, &email).await?;
    let (id, hash) = match found {
        Some((id, hash)) => (Some(id), hash),
        None => (None, DECOY_HASH.to_owned()),
    };
    let matches = verify_password(&state.hashing, body.password, hash).await?;
    match id {
        Some(id) if matches => Ok(Json(new_session(&state, id, from, &headers).await?)),
        _ => Err(ApiError::unauthorized(
            "invalid_credentials",
            "the email or the password is wrong",
        )),
    }
}

/// Exchanges a refresh token for a new access token and a new refresh token (rotation). An
/// old refresh token presented again ends its whole session: someone copied it.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::error::ErrorBody),
              (status = 503, description = "The session store (Redis) is down: retry", body = crate::error::ErrorBody)))]
pub async fn refresh(
    State(state): State<AppState>,
    from: ClientIp,
    Json(body): Json<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    match state
        .sessions
        .refresh(&body.refresh_token, &ip_text(from))
        .await?
    {
        Refreshed::Rotated(record, token) => Ok(Json(pair(&state, &record, token)?)),
        Refreshed::Reused => Err(ApiError::unauthorized(
            "refresh_token_reused",
            "this refresh token was already used, so it may have been copied: its session is \
             now ended everywhere; log in again",
        )),
        Refreshed::Invalid => Err(ApiError::unauthorized(
            "invalid_refresh_token",
            "the refresh token is not valid or its session ended: log in again",
        )),
    }
}

/// Ends this session: its refresh token stops working at once, its access tokens within about
/// a second on every replica.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = crate::error::ErrorBody),
              (status = 503, body = crate::error::ErrorBody)))]
pub async fn logout(State(state): State<AppState>, user: AuthUser) -> Result<StatusCode, ApiError> {
    state
        .sessions
        .end(user.id, &[format!("{:032x}", user.session)])
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of the user, this one included.
#[utoipa::path(post, path = "/auth/logout-all", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = crate::error::ErrorBody),
              (status = 503, body = crate::error::ErrorBody)))]
pub async fn logout_all(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<StatusCode, ApiError> {
    let ids: Vec<String> = state
        .sessions
        .list(user.id)
        .await?
        .into_iter()
        .map(|r| r.id)
        .chain(std::iter::once(format!("{:032x}", user.session)))
        .collect();
    state.sessions.end(user.id, &ids).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The user's sessions, most recently used first.
#[utoipa::path(get, path = "/auth/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = [SessionView]), (status = 401, body = crate::error::ErrorBody),
              (status = 503, body = crate::error::ErrorBody)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let current = format!("{:032x}", user.session);
    let views = state
        .sessions
        .list(user.id)
        .await?
        .into_iter()
        .map(|r| SessionView {
            current: r.id == current,
            id: r.id,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            user_agent: r.user_agent,
            ip: r.ip,
        })
        .collect();
    Ok(Json(views))
}

/// Ends one of the user's sessions (a lost phone).
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path, description = "The session's id (32 hex digits)")),
    responses((status = 204), (status = 401, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub async fn delete_session(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = id.to_ascii_lowercase();
    if sessions::sid_number(&id).is_none() || id.len() != 32 {
        return Err(ApiError::not_found(format!(
            "no session {:?}; ids are 32 hex digits, as GET /auth/sessions lists them",
            crate::validate::truncate(&id, 40)
        )));
    }
    match state.sessions.end(user.id, &[id]).await? {
        0 => Err(ApiError::not_found("no such session")),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}
