//! Meals: create (JSON or multipart with a photo), list a page, read, delete, the photo, and the
//! day view `GET /meals/daily`, cached per user and day with the typed API.
//!
//! Every query filters on the signed-in user, so another user's meal is a 404 like a meal that
//! does not exist.

use std::time::Duration;

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cache_core::Expiry;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::cached::Stale;
use crate::db::Database;
use crate::db::is_unique_violation;
use crate::error::ApiError;
use crate::extract::{Json, Multipart, Path, Query};
use crate::idempotency::{self, IdempotencyKey, Idempotent};
use crate::ratelimit::Client;
use crate::users::{self, User};
use crate::{cached, photos, validate};

/// How long a day view stays cached.
pub const DAILY_TTL: Duration = Duration::from_secs(3600);

/// How long past its TTL a day view is still served when the database fails or is slower than
/// [`DAILY_SOFT_TIMEOUT`]. Writes delete the entry, so this never hides a user's own write.
pub const DAILY_STALE: Duration = Duration::from_secs(3600);

/// With a stale day at hand, a database slower than this is not waited for.
pub const DAILY_SOFT_TIMEOUT: Duration = Duration::from_secs(2);

/// The largest page `GET /meals` returns; larger `per_page` values are capped to it.
pub const MAX_PER_PAGE: i64 = 100;

/// A meal as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Meal {
    /// The id.
    pub id: i64,
    /// When it was eaten (UTC).
    pub eaten_at: DateTime<Utc>,
    /// What it was.
    pub name: String,
    /// Energy, kcal.
    pub calories: i64,
    /// Protein, grams.
    pub protein_g: f64,
    /// Fat, grams.
    pub fat_g: f64,
    /// Carbohydrates, grams.
    pub carbs_g: f64,
    /// `/meals/{id}/photo` when the meal has a photo.
    pub photo_url: Option<String>,
}

const MEAL_COLUMNS: &str = "id, eaten_at, name, calories, protein_g, fat_g, carbs_g, photo";

impl Meal {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let id: i64 = row.try_get("id")?;
        let photo: Option<String> = row.try_get("photo")?;
        Ok(Self {
            id,
            eaten_at: DateTime::from_timestamp(row.try_get("eaten_at")?, 0).unwrap_or_default(),
            name: row.try_get("name")?,
            calories: row.try_get("calories")?,
            protein_g: row.try_get("protein_g")?,
            fat_g: row.try_get("fat_g")?,
            carbs_g: row.try_get("carbs_g")?,
            photo_url: photo.map(|_| format!("/meals/{id}/photo")),
        })
    }
}

/// The body of `POST /meals` (and the text fields of `POST /meals/upload`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMeal {
    /// What it was: 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Energy, 0 to 10,000 kcal.
    #[schema(minimum = 0, maximum = 10000)]
    pub calories: i64,
    /// Protein, 0 to 1,000 g; default 0.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000)]
    pub protein_g: Option<f64>,
    /// Fat, 0 to 1,000 g; default 0.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000)]
    pub fat_g: Option<f64>,
    /// Carbohydrates, 0 to 1,000 g; default 0.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000)]
    pub carbs_g: Option<f64>,
    /// RFC 3339 time such as `2026-11-26T12:30:00+01:00`; default now. From 2000 to one day ahead.
    #[serde(default)]
    pub eaten_at: Option<String>,
}

/// A checked [`NewMeal`].
#[derive(Debug)]
struct ValidMeal {
    name: String,
    calories: i64,
    protein_g: f64,
    fat_g: f64,
    carbs_g: f64,
    eaten_at: DateTime<Utc>,
}

impl NewMeal {
    /// The fields as sent, then `extra` (an upload's photo type and size), for
    /// [`Idempotent::new`].
    fn fingerprint_fields(&self, extra: &[&str]) -> Vec<Option<String>> {
        let number = |v: Option<f64>| v.map(|v| v.to_string());
        let mut fields = vec![
            Some(self.name.clone()),
            Some(self.calories.to_string()),
            number(self.protein_g),
            number(self.fat_g),
            number(self.carbs_g),
            self.eaten_at.clone(),
        ];
        fields.extend(extra.iter().map(|e| Some((*e).to_owned())));
        fields
    }

    fn validate(self) -> Result<ValidMeal, ApiError> {
        let grams = |field, value: Option<f64>| {
            validate::number_in(field, value.unwrap_or(0.0), 0.0..=1000.0)
        };
        let eaten_at = match self.eaten_at.as_deref().map(str::trim) {
            None | Some("") => Utc::now(),
            Some(raw) => DateTime::parse_from_rfc3339(raw)
                .map_err(|_| {
                    ApiError::validation(format!(
                        "eaten_at {:?} must be an RFC 3339 time such as 2026-11-26T12:30:00+01:00",
                        validate::truncate(raw, 40)
                    ))
                })?
                .with_timezone(&Utc),
        };
        let earliest = Utc
            .with_ymd_and_hms(validate::MIN_YEAR, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        if eaten_at < earliest || eaten_at > Utc::now() + chrono::Duration::days(1) {
            return Err(ApiError::validation(format!(
                "eaten_at must be between {} and one day from now",
                earliest.date_naive()
            )));
        }
        Ok(ValidMeal {
            name: validate::text("name", &self.name, 1, 200)?,
            calories: validate::int_in("calories", self.calories, 0..=10_000)?,
            protein_g: grams("protein_g", self.protein_g)?,
            fat_g: grams("fat_g", self.fat_g)?,
            carbs_g: grams("carbs_g", self.carbs_g)?,
            eaten_at,
        })
    }
}

/// Logs a meal. With an `Idempotency-Key`, a repeat of the request returns the meal the first
/// one logged (see [`crate::idempotency`]).
#[utoipa::path(post, path = "/meals", tag = "meals", security(("bearer" = [])), request_body = NewMeal,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: a repeat with the same key returns the meal the first one logged, with `Idempotent-Replayed: true`. 1 to 64 characters from A-Z a-z 0-9 - _ . : (a UUID fits)",
        pattern = r#"^"?[A-Za-z0-9._:-]{1,64}"?$"#)),
    responses((status = 201, body = Meal),
              (status = 422, description = "Invalid fields, or an Idempotency-Key used before with a different request", body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    key: Option<IdempotencyKey>,
    Json(body): Json<NewMeal>,
) -> Result<Response, ApiError> {
    // No lookup before the INSERT: a repeat finds the key taken by the unique index, and only
    // then reads the meal that took it, so the first copy costs no extra query.
    let idempotent = key.map(|key| Idempotent::new(key, &body.fingerprint_fields(&[])));
    let meal = body.validate()?;
    let profile = users::profile(&state, user.id).await?;
    let day = meal.eaten_at.with_timezone(&profile.tz()).date_naive();
    let db = state.db.clone();
    let logged = cached::write(
        &state,
        user.id,
        Stale::MealDay(day),
        move |mut conn| async move {
            let inserted =
                insert_row(&db, &mut conn, &profile, meal, None, idempotent.as_ref()).await;
            settle(&mut conn, user.id, idempotent.as_ref(), inserted).await
        },
    )
    .await?;
    Ok(logged.into_response())
}

/// A meal logged, or found logged by an earlier copy of the request.
#[derive(Debug)]
struct Logged {
    meal: Meal,
    replayed: bool,
}

impl Logged {
    fn replayed(meal: Meal) -> Self {
        Self {
            meal,
            replayed: true,
        }
    }
}

impl IntoResponse for Logged {
    /// 201 with the meal, as the first answer was; `Idempotent-Replayed: true` on a replay.
    fn into_response(self) -> Response {
        let mut response = (StatusCode::CREATED, Json(self.meal)).into_response();
        if self.replayed {
            response.headers_mut().insert(
                idempotency::REPLAYED_HEADER,
                header::HeaderValue::from_static("true"),
            );
        }
        response
    }
}

/// The meal an earlier request with `idempotent`'s key logged, if any.
///
/// # Errors
/// 422 `idempotency_key_reused` when that request was a different one; a database error.
async fn replay(
    conn: &mut sqlx::AnyConnection,
    user: i64,
    idempotent: &Idempotent,
) -> Result<Option<Meal>, ApiError> {
    let row = sqlx::query(&format!(
        "SELECT {MEAL_COLUMNS}, request_hash FROM meals WHERE user_id = ? AND idempotency_key = ?"
    ))
    .bind(user)
    .bind(idempotent.key.as_str().to_owned())
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let stored: Option<String> = row.try_get("request_hash")?;
    idempotent.check_replay(stored.as_deref())?;
    Ok(Some(Meal::from_row(&row)?))
}

/// An insert's outcome: the meal, or, when another copy of the request inserted first (the
/// unique index on the key refused this one), the meal that copy logged.
async fn settle(
    conn: &mut sqlx::AnyConnection,
    user: i64,
    idempotent: Option<&Idempotent>,
    inserted: Result<Meal, sqlx::Error>,
) -> Result<Logged, ApiError> {
    match (inserted, idempotent) {
        (Ok(meal), _) => Ok(Logged {
            meal,
            replayed: false,
        }),
        (Err(err), Some(idempotent)) if is_unique_violation(&err) => {
            match replay(conn, user, idempotent).await? {
                Some(meal) => Ok(Logged::replayed(meal)),
                None => Err(err.into()),
            }
        }
        (Err(err), _) => Err(err.into()),
    }
}

/// Logs a meal with a photo: a `multipart/form-data` body with a `photo` file (JPEG, PNG or
/// WebP, at most 5 MiB) and the fields of `POST /meals` as text parts. `Idempotency-Key` as
/// for `POST /meals`.
#[utoipa::path(post, path = "/meals/upload", tag = "meals", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "As for POST /meals",
        pattern = r#"^"?[A-Za-z0-9._:-]{1,64}"?$"#)),
    request_body(content_type = "multipart/form-data", description = "`photo` file plus the fields of POST /meals"),
    responses((status = 201, body = Meal),
              (status = 413, description = "The photo is over 5 MiB, or the user's photo storage quota (PHOTO_QUOTA_BYTES) is spent", body = crate::error::ErrorBody),
              (status = 415, body = crate::error::ErrorBody),
              (status = 422, description = "Invalid fields, or an Idempotency-Key used before with a different request", body = crate::error::ErrorBody),
              (status = 429, description = "Over UPLOADS_PER_MINUTE", body = crate::error::ErrorBody)))]
pub async fn upload(
    State(state): State<AppState>,
    user: AuthUser,
    key: Option<IdempotencyKey>,
    Multipart(mut form): Multipart,
) -> Result<Response, ApiError> {
    // Before a byte of the body is read: the upload rate, and a quota already spent (unless
    // this may be a repeat of an upload that spent it: then the form decides).
    if let Err(wait) = state.limiter.check(&Client::Upload(user.id)).await {
        return Err(ApiError::rate_limited(wait));
    }
    let quota = state.config.photo_quota_bytes;
    let used = state
        .db
        .primary(|pool| async move { photo_bytes_of(&pool, user.id).await })
        .await?;
    if used >= quota && key.is_none() {
        return Err(quota_exceeded(used, quota));
    }
    let mut meal = NewMeal::default();
    let mut calories = None;
    let mut photo = None;
    while let Some(field) = form.next_field().await? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "photo" => {
                photo = Some(photos::read_upload(field, &state.config.photo_dir).await?);
            }
            "name" => meal.name = field.text().await?,
            "calories" => calories = Some(parse_field::<i64>("calories", &field.text().await?)?),
            "protein_g" => meal.protein_g = Some(parse_field("protein_g", &field.text().await?)?),
            "fat_g" => meal.fat_g = Some(parse_field("fat_g", &field.text().await?)?),
            "carbs_g" => meal.carbs_g = Some(parse_field("carbs_g", &field.text().await?)?),
            "eaten_at" => meal.eaten_at = Some(field.text().await?),
            other => {
                return Err(ApiError::validation(format!(
                    "unknown form field {:?}; expected photo, name, calories, protein_g, fat_g, carbs_g, eaten_at",
                    validate::truncate(other, 40)
                )));
            }
        }
    }
    let photo = photo.ok_or_else(|| ApiError::validation("the form needs a `photo` file part"))?;
    meal.calories =
        calories.ok_or_else(|| ApiError::validation("the form needs a `calories` field"))?;
    let (mime, bytes) = (photo.kind.mime(), photo.bytes);
    let idempotent =
        key.map(|key| Idempotent::new(key, &meal.fingerprint_fields(&[mime, &bytes.to_string()])));
    // `photo` (its temporary file) is dropped, and so removed, on every early return.
    let meal = meal.validate()?;
    if used.saturating_add(bytes) > quota {
        // A repeat of the upload that spent the quota is answered as the first was.
        if let Some(idempotent) = &idempotent
            && let Some(meal) =
                replay(&mut *state.db.pool.acquire().await?, user.id, idempotent).await?
        {
            return Ok(Logged::replayed(meal).into_response());
        }
        return Err(quota_exceeded(used, quota));
    }
    let profile = users::profile(&state, user.id).await?;
    let day = meal.eaten_at.with_timezone(&profile.tz()).date_naive();
    let stored = photos::store(&state.config.photo_dir, photo).await?;
    let (file, db) = (stored.clone(), state.db.clone());
    let written = cached::write(
        &state,
        user.id,
        Stale::MealDay(day),
        move |mut conn| async move {
            let photo = (file.as_str(), mime, bytes);
            let inserted = insert_within_quota(
                &db,
                &mut conn,
                &profile,
                meal,
                photo,
                quota,
                idempotent.as_ref(),
            )
            .await;
            match inserted {
                Ok(meal) => settle(&mut conn, user.id, idempotent.as_ref(), Ok(meal)).await,
                Err(Inserted::Failed(err)) => {
                    settle(&mut conn, user.id, idempotent.as_ref(), Err(err)).await
                }
                // A copy of this request that committed first spent the quota: its meal
                // answers.
                Err(Inserted::OverQuota(used)) => match idempotent.as_ref() {
                    Some(idempotent) => match replay(&mut conn, user.id, idempotent).await? {
                        Some(meal) => Ok(Logged::replayed(meal)),
                        None => Err(quota_exceeded(used, quota)),
                    },
                    None => Err(quota_exceeded(used, quota)),
                },
            }
        },
    )
    .await;
    match written {
        Ok(logged) => {
            if logged.replayed {
                // Another copy of this request stored the photo this meal shows.
                photos::remove(&state.config.photo_dir, &stored).await;
            }
            Ok(logged.into_response())
        }
        Err(err) => {
            // The row is the truth: a photo without one is garbage.
            photos::remove(&state.config.photo_dir, &stored).await;
            Err(err)
        }
    }
}

/// Why [`insert_within_quota`] did not insert.
enum Inserted {
    /// The user's photos already take this many bytes.
    OverQuota(u64),
    /// The database said no.
    Failed(sqlx::Error),
}

impl From<sqlx::Error> for Inserted {
    fn from(err: sqlx::Error) -> Self {
        Self::Failed(err)
    }
}

/// Logs a meal with a photo if the user's photos, this one included, stay within `quota`.
///
/// The check and the insert are one transaction that begins by taking the user's row lock (an
/// `UPDATE` that changes nothing: InnoDB still locks the row it matches, SQLite takes its one
/// write lock), so parallel uploads of one user, on any replica, are checked one after the
/// other and cannot together go over the quota; other users' uploads do not wait on MySQL.
async fn insert_within_quota(
    db: &Database,
    conn: &mut sqlx::AnyConnection,
    user: &User,
    meal: ValidMeal,
    photo: (&str, &str, u64),
    quota: u64,
    idempotent: Option<&Idempotent>,
) -> Result<Meal, Inserted> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    sqlx::query("UPDATE users SET id = id WHERE id = ?")
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
    let used = photo_bytes_of(&mut *tx, user.id).await?;
    if used.saturating_add(photo.2) > quota {
        // Dropping `tx` rolls it back.
        return Err(Inserted::OverQuota(used));
    }
    let created = insert_row(db, &mut tx, user, meal, Some(photo), idempotent).await?;
    tx.commit().await?;
    Ok(created)
}

/// The bytes of photos `user` keeps, read through `executor` (the pool or a transaction).
async fn photo_bytes_of<'c, E>(executor: E, user: i64) -> Result<u64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    // MySQL's SUM is a DECIMAL, which sqlx's Any driver does not decode: cast it back.
    let used: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(photo_bytes), 0) AS SIGNED) FROM meals WHERE user_id = ?",
    )
    .bind(user)
    .fetch_one(executor)
    .await?;
    Ok(u64::try_from(used).unwrap_or(0))
}

fn quota_exceeded(used: u64, quota: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "storage_quota_exceeded",
        format!(
            "your photos take {used} of your {quota} bytes: delete meals with photos to make room"
        ),
    )
}

/// The body limit of the upload route: the photo's 5 MiB plus room for the other fields.
pub fn upload_body_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(photos::MAX_PHOTO_BYTES + 64 * 1024)
}

fn parse_field<T: std::str::FromStr>(field: &str, raw: &str) -> Result<T, ApiError> {
    raw.trim().parse().map_err(|_| {
        ApiError::validation(format!(
            "{field} {:?} is not a number",
            validate::truncate(raw, 40)
        ))
    })
}

/// The `INSERT` of a meal, with the request's idempotency key when it sent one, on `conn` (a
/// connection or a transaction); the caller invalidates the day (see [`cached::write()`]).
async fn insert_row(
    db: &Database,
    conn: &mut sqlx::AnyConnection,
    user: &User,
    meal: ValidMeal,
    photo: Option<(&str, &str, u64)>,
    idempotent: Option<&Idempotent>,
) -> Result<Meal, sqlx::Error> {
    let sql = db.insert_sql(
        "INSERT INTO meals (user_id, eaten_at, name, calories, protein_g, fat_g, carbs_g, photo, photo_type, photo_bytes, created_at, idempotency_key, request_hash) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    let insert = sqlx::query(&sql)
        .bind(user.id)
        .bind(meal.eaten_at.timestamp())
        .bind(meal.name.clone())
        .bind(meal.calories)
        .bind(meal.protein_g)
        .bind(meal.fat_g)
        .bind(meal.carbs_g)
        .bind(photo.map(|p| p.0.to_owned()))
        .bind(photo.map(|p| p.1.to_owned()))
        .bind(photo.map_or(0, |p| i64::try_from(p.2).unwrap_or(i64::MAX)))
        .bind(Utc::now().timestamp())
        .bind(idempotent.map(|i| i.key.as_str().to_owned()))
        .bind(idempotent.map(|i| i.fingerprint.clone()));
    let id = db.insert_returning_id(conn, insert).await?;
    Ok(Meal {
        id,
        eaten_at: DateTime::from_timestamp(meal.eaten_at.timestamp(), 0).unwrap_or_default(),
        name: meal.name,
        calories: meal.calories,
        protein_g: meal.protein_g,
        fat_g: meal.fat_g,
        carbs_g: meal.carbs_g,
        photo_url: photo.map(|_| format!("/meals/{id}/photo")),
    })
}

/// `GET /meals` query: the page to show.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// From 1; default 1.
    pub page: Option<i64>,
    /// Meals per page, 1 to 100 (larger values are capped to 100); default 20.
    pub per_page: Option<i64>,
}

/// One page of meals, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MealPage {
    /// The meals on this page.
    pub items: Vec<Meal>,
    /// This page's number, from 1.
    pub page: i64,
    /// The page size used.
    pub per_page: i64,
    /// Meals in all.
    pub total: i64,
    /// Pages in all.
    pub total_pages: i64,
}

/// The user's meals, newest first, a page at a time.
#[utoipa::path(get, path = "/meals", tag = "meals", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = MealPage), (status = 422, body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(query): Query<PageQuery>,
) -> Result<Json<MealPage>, ApiError> {
    let page = validate::int_in("page", query.page.unwrap_or(1), 1..=1_000_000)?;
    let per_page =
        validate::int_in("per_page", query.per_page.unwrap_or(20), 1..=i64::MAX)?.min(MAX_PER_PAGE);
    let user_id = user.id;
    let (total, rows) = state
        .db
        .read(Some(user_id), |pool| async move {
            // One pool for both, so the count and the page agree.
            let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM meals WHERE user_id = ?")
                .bind(user_id)
                .fetch_one(&pool)
                .await?;
            let rows = sqlx::query(&format!(
                "SELECT {MEAL_COLUMNS} FROM meals WHERE user_id = ? ORDER BY eaten_at DESC, id DESC LIMIT ? OFFSET ?"
            ))
            .bind(user_id)
            .bind(per_page)
            .bind((page - 1) * per_page)
            .fetch_all(&pool)
            .await?;
            Ok((total, rows))
        })
        .await?;
    Ok(Json(MealPage {
        items: rows.iter().map(Meal::from_row).collect::<Result<_, _>>()?,
        page,
        per_page,
        total,
        total_pages: (total + per_page - 1) / per_page,
    }))
}

/// Meal `id` of `user`, read as `for_write` says: from the primary for a write that depends on
/// it, else routed (see [`crate::replica`]).
async fn find(
    state: &AppState,
    user: i64,
    id: i64,
    for_write: bool,
) -> Result<(Meal, Option<(String, String)>), ApiError> {
    let query = |pool: sqlx::AnyPool| async move {
        sqlx::query(&format!(
            "SELECT {MEAL_COLUMNS}, photo_type FROM meals WHERE id = ? AND user_id = ?"
        ))
        .bind(id)
        .bind(user)
        .fetch_optional(&pool)
        .await
    };
    let row = if for_write {
        state.db.primary(query).await?
    } else {
        state.db.read(Some(user), query).await?
    };
    let row = row.ok_or_else(|| ApiError::not_found(format!("meal {id} does not exist")))?;
    let photo: Option<String> = row.try_get("photo")?;
    let photo_type: Option<String> = row.try_get("photo_type")?;
    Ok((Meal::from_row(&row)?, photo.zip(photo_type)))
}

/// One meal.
#[utoipa::path(get, path = "/meals/{id}", tag = "meals", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The meal's id")),
    responses((status = 200, body = Meal), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> Result<Json<Meal>, ApiError> {
    Ok(Json(find(&state, user.id, id, false).await?.0))
}

/// A meal's photo, with its content type.
#[utoipa::path(get, path = "/meals/{id}/photo", tag = "meals", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The meal's id")),
    responses((status = 200, description = "The image", content_type = "image/*"),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn photo(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let (_, photo) = find(&state, user.id, id, false).await?;
    let (file, mime) =
        photo.ok_or_else(|| ApiError::not_found(format!("meal {id} has no photo")))?;
    let bytes = photos::read(&state.config.photo_dir, &file)
        .await
        .ok_or_else(|| ApiError::not_found(format!("the photo of meal {id} is missing")))?;
    Ok((
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "private, max-age=86400".to_owned()),
            // Shown, never sniffed into something else (HTML, script) nor saved under a name
            // the uploader chose.
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (header::CONTENT_DISPOSITION, "inline".to_owned()),
        ],
        Body::from(bytes),
    )
        .into_response())
}

/// Deletes a meal (and its photo).
#[utoipa::path(delete, path = "/meals/{id}", tag = "meals", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The meal's id")),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let (meal, photo) = find(&state, user.id, id, true).await?;
    // Everything that can fail comes before the DELETE: once the row is gone, its day is
    // invalidated whatever happens next.
    let profile = users::profile(&state, user.id).await?;
    let day = meal.eaten_at.with_timezone(&profile.tz()).date_naive();
    let deleted = cached::write(
        &state,
        user.id,
        Stale::MealDay(day),
        move |mut conn| async move {
            let deleted = sqlx::query("DELETE FROM meals WHERE id = ? AND user_id = ?")
                .bind(id)
                .bind(user.id)
                .execute(&mut *conn)
                .await?;
            Ok(deleted.rows_affected())
        },
    )
    .await?;
    if deleted == 0 {
        return Err(ApiError::not_found(format!("meal {id} does not exist")));
    }
    if let Some((file, _)) = photo {
        photos::remove(&state.config.photo_dir, &file).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /meals/daily` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DailyQuery {
    /// `YYYY-MM-DD`; default today in the user's time zone.
    pub date: Option<String>,
}

/// Sums over meals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Totals {
    /// kcal.
    pub calories: i64,
    /// Grams of protein.
    pub protein_g: f64,
    /// Grams of fat.
    pub fat_g: f64,
    /// Grams of carbohydrates.
    pub carbs_g: f64,
}

impl Totals {
    fn add(&mut self, meal: &Meal) {
        self.calories += meal.calories;
        self.protein_g += meal.protein_g;
        self.fat_g += meal.fat_g;
        self.carbs_g += meal.carbs_g;
    }
}

/// One day of a user's meals against their goal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DailySummary {
    /// The day, in the user's time zone.
    pub date: NaiveDate,
    /// The time zone the day is counted in.
    pub time_zone: String,
    /// The meals, in time order.
    pub meals: Vec<Meal>,
    /// Their sums.
    pub totals: Totals,
    /// The user's daily goal, kcal.
    pub daily_goal: i64,
    /// Goal minus eaten (negative when over).
    pub remaining: i64,
}

/// A day's meals and totals against the daily goal, cached per user and day for an hour.
#[utoipa::path(get, path = "/meals/daily", tag = "meals", security(("bearer" = [])), params(DailyQuery),
    responses((status = 200, body = DailySummary), (status = 422, body = crate::error::ErrorBody)))]
pub async fn daily(
    State(state): State<AppState>,
    user: AuthUser,
    Query(query): Query<DailyQuery>,
) -> Result<Json<DailySummary>, ApiError> {
    let profile = users::profile(&state, user.id).await?;
    let date = match query.date.as_deref() {
        Some(raw) => validate::date("date", raw)?,
        None => profile.today(),
    };
    let expiry = daily_expiry(user.id, date);
    let loader = {
        let state = state.clone();
        move || {
            let (state, profile) = (state.clone(), profile.clone());
            async move { load_day(&state, &profile, date).await }
        }
    };
    let summary = state
        .cache
        .get_or_refresh(cached::daily(user.id, date), expiry, loader)
        .await?;
    Ok(Json(summary))
}

/// How `GET /meals/daily` caches one user's day: an hour, an hour's stale window, a soft
/// timeout, refreshed ahead after 80% of its hour (so a day in use never expires under its
/// readers), and tagged with the user and the day (see [`cached::day_tag`]).
#[must_use]
pub fn daily_expiry(user: i64, date: NaiveDate) -> Expiry {
    Expiry::new(DAILY_TTL)
        .stale(DAILY_STALE)
        .soft_timeout(DAILY_SOFT_TIMEOUT)
        .refresh_ahead(0.8)
        .tags([cached::user_tag(user), cached::day_tag(user, date)])
}

async fn load_day(
    state: &AppState,
    user: &User,
    date: NaiveDate,
) -> Result<DailySummary, ApiError> {
    let tz = user.tz();
    let (start, end) = day_bounds(tz, date);
    let user_id = user.id;
    // Routed when the load runs, not when the request came: a load for a user who just wrote
    // reads the primary, so the day it caches holds the write.
    let rows = state
        .db
        .read(Some(user_id), |pool| async move {
            sqlx::query(&format!(
                "SELECT {MEAL_COLUMNS} FROM meals WHERE user_id = ? AND eaten_at >= ? AND eaten_at < ? ORDER BY eaten_at, id"
            ))
            .bind(user_id)
            .bind(start)
            .bind(end)
            .fetch_all(&pool)
            .await
        })
        .await?;
    let meals: Vec<Meal> = rows.iter().map(Meal::from_row).collect::<Result<_, _>>()?;
    let mut totals = Totals::default();
    meals.iter().for_each(|m| totals.add(m));
    Ok(DailySummary {
        date,
        time_zone: tz.name().to_owned(),
        remaining: user.daily_goal - totals.calories,
        daily_goal: user.daily_goal,
        meals,
        totals,
    })
}

/// The first second of `date` in `tz` and of the day after, as Unix seconds.
///
/// A day that starts inside a DST gap (no local midnight) starts at the first instant after it.
///
/// ```
/// use chrono::NaiveDate;
/// let day = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap(); // Europe/Berlin springs forward
/// let (start, end) = calories_app::meals::day_bounds(chrono_tz::Europe::Berlin, day);
/// assert_eq!(end - start, 23 * 3600);
/// ```
#[must_use]
pub fn day_bounds(tz: Tz, date: NaiveDate) -> (i64, i64) {
    let start_of = |d: NaiveDate| {
        let midnight = d.and_hms_opt(0, 0, 0).unwrap_or_default();
        (0..=3)
            .find_map(|hours| {
                tz.from_local_datetime(&(midnight + chrono::Duration::hours(hours)))
                    .earliest()
            })
            .map_or_else(|| midnight.and_utc().timestamp(), |t| t.timestamp())
    };
    let next = date.succ_opt().unwrap_or(date);
    (start_of(date), start_of(next))
}
