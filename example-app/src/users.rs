//! Accounts: the `users` table, `GET /users/me` (cached ten minutes) and `PATCH /users/me`
//! (name, daily goal, time zone), which invalidates everything derived from the profile.

use std::time::Duration;

use axum::extract::State;
use cache_core::Expiry;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::{AuthUser, PasswordHashing, RegisterRequest, hash_password};
use crate::cached::Stale;
use crate::db::{Database, is_unique_violation};
use crate::error::ApiError;
use crate::extract::Json;
use crate::{cached, validate};

/// How long `GET /users/me` stays cached.
pub const PROFILE_TTL: Duration = Duration::from_secs(600);

/// How long past its TTL a profile is still served when the database fails or is slower than
/// [`PROFILE_SOFT_TIMEOUT`]; a `PATCH` deletes it, so this never hides a user's own change.
pub const PROFILE_STALE: Duration = Duration::from_secs(3600);

/// With a stale profile at hand, a database slower than this is not waited for.
pub const PROFILE_SOFT_TIMEOUT: Duration = Duration::from_secs(2);

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// The id.
    pub id: i64,
    /// Lower-cased email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Daily calorie goal.
    pub daily_goal: i64,
    /// IANA time zone; "today" and days are counted in it.
    pub time_zone: String,
    /// When the account was made.
    pub created_at: DateTime<Utc>,
}

impl User {
    /// The user's time zone (stored values were checked, so UTC only for a corrupted row).
    #[must_use]
    pub fn tz(&self) -> Tz {
        self.time_zone.parse().unwrap_or(Tz::UTC)
    }

    /// Today's date where the user is.
    #[must_use]
    pub fn today(&self) -> chrono::NaiveDate {
        Utc::now().with_timezone(&self.tz()).date_naive()
    }
}

/// A checked registration.
#[derive(Debug)]
pub struct NewUser {
    email: String,
    password: String,
    name: String,
    daily_goal: i64,
    time_zone: Tz,
}

impl NewUser {
    /// Checks every field of a registration.
    ///
    /// # Errors
    /// 422 naming the first bad field.
    pub fn validate(body: RegisterRequest) -> Result<Self, ApiError> {
        let email = validate::text("email", &body.email, 3, 254)?.to_lowercase();
        let valid_email = email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        }) && !email.chars().any(char::is_whitespace);
        if !valid_email {
            return Err(ApiError::validation(
                "email must look like name@example.com",
            ));
        }
        let password_len = body.password.chars().count();
        if !(8..=128).contains(&password_len) {
            return Err(ApiError::validation(format!(
                "password must be 8 to 128 characters long (got {password_len})"
            )));
        }
        Ok(Self {
            email,
            password: body.password,
            name: validate::text("name", body.name.as_deref().unwrap_or(""), 0, 100)?,
            daily_goal: validate::int_in(
                "daily_goal",
                body.daily_goal.unwrap_or(2000),
                500..=10_000,
            )?,
            time_zone: validate::time_zone(body.time_zone.as_deref().unwrap_or("UTC"))?,
        })
    }
}

/// Stores a new account.
///
/// # Errors
/// 409 when the email is taken.
pub async fn insert(
    db: &Database,
    hashing: &PasswordHashing,
    new: NewUser,
) -> Result<User, ApiError> {
    let hash = hash_password(hashing, new.password).await?;
    let now = Utc::now();
    let sql = db.insert_sql(
        "INSERT INTO users (email, password_hash, name, daily_goal, time_zone, created_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    );
    let insert = sqlx::query(&sql)
        .bind(&new.email)
        .bind(hash)
        .bind(&new.name)
        .bind(new.daily_goal)
        .bind(new.time_zone.name())
        .bind(now.timestamp());
    let id = match db.insert_returning_id(&db.pool, insert).await {
        Err(err) if is_unique_violation(&err) => {
            return Err(ApiError::conflict(
                "an account with this email already exists",
            ));
        }
        other => other?,
    };
    Ok(User {
        id,
        email: new.email,
        name: new.name,
        daily_goal: new.daily_goal,
        time_zone: new.time_zone.name().to_owned(),
        created_at: DateTime::from_timestamp(now.timestamp(), 0).unwrap_or_default(),
    })
}

/// The id and password hash for an email, from the primary: a login follows a registration
/// at once, and no user id is known yet to route by.
///
/// # Errors
/// A database failure.
pub async fn credentials(db: &Database, email: &str) -> Result<Option<(i64, String)>, ApiError> {
    let row = sqlx::query("SELECT id, password_hash FROM users WHERE email = ?")
        .bind(email)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row
        .map(|r| Ok::<_, sqlx::Error>((r.try_get("id")?, r.try_get("password_hash")?)))
        .transpose()?)
}

/// The user `id`, read from `pool`.
async fn fetch(pool: &AnyPool, id: i64) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, email, name, daily_goal, time_zone, created_at FROM users WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(User {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            name: row.try_get("name")?,
            daily_goal: row.try_get("daily_goal")?,
            time_zone: row.try_get("time_zone")?,
            created_at: DateTime::from_timestamp(row.try_get("created_at")?, 0).unwrap_or_default(),
        })
    })
    .transpose()
}

fn gone() -> ApiError {
    ApiError::unauthorized(
        "invalid_token",
        "the account of this token no longer exists",
    )
}

/// The user's profile, through the cache (ten minutes; deleted by `PATCH /users/me`, window
/// included). For [`PROFILE_STALE`] past its ten minutes it is still served when the database
/// fails: every cached day and stat needs the profile (its time zone, its goal), and they must
/// keep answering through a database outage.
///
/// # Errors
/// 401 when the account is gone; a database failure.
pub async fn profile(state: &AppState, id: i64) -> Result<User, ApiError> {
    let expiry = Expiry::new(PROFILE_TTL)
        .stale(PROFILE_STALE)
        .soft_timeout(PROFILE_SOFT_TIMEOUT);
    state
        .cache
        .get_or_try_insert_with(cached::profile(id), expiry, || async move {
            // Routed when the load runs: a user who just wrote reads (and caches) the primary's.
            state
                .db
                .read(Some(id), |pool| async move { fetch(&pool, id).await })
                .await?
                .ok_or_else(gone)
        })
        .await
}

/// The signed-in user's profile.
#[utoipa::path(get, path = "/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = crate::error::ErrorBody)))]
pub async fn me(State(state): State<AppState>, user: AuthUser) -> Result<Json<User>, ApiError> {
    Ok(Json(profile(&state, user.id).await?))
}

/// The body of `PATCH /users/me`: any of the three fields.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    /// Display name, up to 100 characters.
    #[schema(max_length = 100)]
    pub name: Option<String>,
    /// Daily calorie goal, 500 to 10,000.
    #[schema(minimum = 500, maximum = 10000)]
    pub daily_goal: Option<i64>,
    /// IANA time zone.
    pub time_zone: Option<String>,
}

/// Changes the name, daily goal or time zone.
#[utoipa::path(patch, path = "/users/me", tag = "users", security(("bearer" = [])),
    request_body = ProfileUpdate,
    responses((status = 200, body = User), (status = 422, body = crate::error::ErrorBody)))]
pub async fn update_me(
    State(state): State<AppState>,
    user: AuthUser,
    Json(update): Json<ProfileUpdate>,
) -> Result<Json<User>, ApiError> {
    let name = update
        .name
        .as_deref()
        .map(|n| validate::text("name", n, 0, 100))
        .transpose()?;
    let goal = update
        .daily_goal
        .map(|g| validate::int_in("daily_goal", g, 500..=10_000))
        .transpose()?;
    let tz = update
        .time_zone
        .as_deref()
        .map(validate::time_zone)
        .transpose()?;
    // One statement: each column keeps its stored value unless the request names it, so two
    // concurrent PATCHes of different fields both land (a read-modify-write would lose one).
    let tz = tz.map(|tz| tz.name().to_owned());
    // The goal and the time zone shape every day and every stat: all of them go stale.
    cached::write(&state, user.id, Stale::User, move |mut conn| async move {
        sqlx::query(
            "UPDATE users SET name = COALESCE(?, name), daily_goal = COALESCE(?, daily_goal), \
             time_zone = COALESCE(?, time_zone) WHERE id = ?",
        )
        .bind(name)
        .bind(goal)
        .bind(tz)
        .bind(user.id)
        .execute(&mut *conn)
        .await?;
        Ok(())
    })
    .await?;
    // Read from the database, not through the cache: a read-through here could join (or
    // finish after) the load of a concurrent PATCH that began before this one's UPDATE, and
    // store that older profile after this PATCH's invalidation (the cache-aside race; a test
    // of two concurrent PATCHes caught it). The next GET fills the cache.
    // The primary: this request's own UPDATE may not have reached a replica.
    Ok(Json(
        fetch(&state.db.pool, user.id).await?.ok_or_else(gone)?,
    ))
}
