//! Accounts and access: argon2 password hashes, HS256 JWT access tokens with an expiry, the
//! `POST /auth/register` and `POST /auth/login` routes, and the [`AuthUser`] extractor every
//! other user route takes.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::Json;
use crate::ratelimit::ClientIp;
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
}

impl JwtKeys {
    /// Keys from the shared secret; tokens live `ttl`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let keys = calories_app::auth::JwtKeys::new("a-secret", Duration::from_secs(60));
    /// let token = keys.issue(42).unwrap();
    /// assert_eq!(keys.verify(&token).unwrap(), 42);
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
    pub fn issue(&self, user_id: i64) -> Result<String, ApiError> {
        let iat = unix_now();
        let claims = Claims {
            sub: user_id.to_string(),
            iat,
            exp: iat + self.ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)
    }

    /// The user id a token names, if its signature and expiry hold.
    ///
    /// # Errors
    /// 401 `token_expired` or `invalid_token`.
    pub fn verify(&self, token: &str) -> Result<i64, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|err| match err.kind() {
                JwtErrorKind::ExpiredSignature => ApiError::unauthorized(
                    "token_expired",
                    "the access token has expired: log in again",
                ),
                _ => ApiError::unauthorized("invalid_token", "the access token is not valid"),
            })?;
        data.claims
            .sub
            .parse()
            .map_err(|_| ApiError::unauthorized("invalid_token", "the access token is not valid"))
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

/// The signed-in user, from a valid `Authorization: Bearer <token>` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthUser {
    /// The user's id.
    pub id: i64,
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
        Ok(Self {
            id: state.jwt.verify(token)?,
        })
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
#[derive(Debug, Clone)]
pub struct PasswordHashing {
    permits: Arc<Semaphore>,
    wait: Duration,
}

impl PasswordHashing {
    /// At most `permits` hashes at once (at least one); a request waits up to `wait` for one.
    #[must_use]
    pub fn new(permits: usize, wait: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            wait,
        }
    }

    /// How long a hash waits for a permit before its request is refused.
    #[must_use]
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// Runs `work` on a blocking thread once a permit is free.
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
        tokio::task::spawn_blocking(move || {
            let out = work();
            drop(permit);
            out
        })
        .await
        .map_err(ApiError::internal)
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

/// An access token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The JWT to send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
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

fn token_response(state: &AppState, user_id: i64) -> Result<TokenResponse, ApiError> {
    Ok(TokenResponse {
        access_token: state.jwt.issue(user_id)?,
        token_type: "Bearer",
        expires_in: state.jwt.ttl().as_secs(),
    })
}

/// Creates an account.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = RegisterResponse), (status = 409, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody),
              (status = 503, body = crate::error::ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    from: ClientIp,
    Json(body): Json<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    state.limiter.check_auth(from, &body.email).await?;
    let new = NewUser::validate(body)?;
    let user = users::insert(&state.db, &state.hashing, new).await?;
    let token = token_response(&state, user.id)?;
    Ok((StatusCode::CREATED, Json(RegisterResponse { user, token })))
}

/// Exchanges an email and password for an access token.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    from: ClientIp,
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
        Some(id) if matches => Ok(Json(token_response(&state, id)?)),
        _ => Err(ApiError::unauthorized(
            "invalid_credentials",
            "the email or the password is wrong",
        )),
    }
}
