//! `GET /foods?q=..&page=..`: search in the food table the app ships. Public and the same for
//! everyone, so it is served through cache-adapters' HTTP layer with `Cache-Control: public` and
//! an `ETag`; the layer answers repeats (and `If-None-Match`) without reaching this handler.

use std::hash::{Hash, Hasher};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::Query;
use crate::validate;

/// How long clients and shared caches may reuse a search answer, seconds.
pub const FOODS_MAX_AGE: u32 = 300;

/// `GET /foods` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FoodQuery {
    /// Words to look for at the start of a word of the name (`chick` finds "Grilled chicken
    /// breast"); up to 100 characters. Empty or absent: every food.
    pub q: Option<String>,
    /// From 1; default 1.
    pub page: Option<i64>,
    /// 1 to 100 (larger values are capped); default 20.
    pub per_page: Option<i64>,
}

/// A checked [`FoodQuery`], with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidFoodQuery {
    /// Lower-cased search text.
    pub q: String,
    /// From 1.
    pub page: i64,
    /// 1 to 100.
    pub per_page: i64,
}

impl FoodQuery {
    /// Checks every parameter and fills in the defaults.
    ///
    /// # Errors
    /// 422 naming the first bad parameter.
    pub fn validate(&self) -> Result<ValidFoodQuery, ApiError> {
        Ok(ValidFoodQuery {
            q: validate::text("q", self.q.as_deref().unwrap_or(""), 0, 100)?.to_lowercase(),
            page: validate::int_in("page", self.page.unwrap_or(1), 1..=100_000)?,
            per_page: validate::int_in("per_page", self.per_page.unwrap_or(20), 1..=i64::MAX)?
                .min(100),
        })
    }
}

impl ValidFoodQuery {
    /// The one URI of every spelling of this query: parameters in one order, defaults spelt
    /// out, the text lower-cased and percent-encoded the same way.
    ///
    /// ```
    /// use calories_app::foods::FoodQuery;
    /// let query = FoodQuery { q: Some("Egg Salad".into()), page: None, per_page: Some(500) };
    /// assert_eq!(query.validate().unwrap().canonical_uri(), "/foods?q=egg%20salad&page=1&per_page=100");
    /// ```
    #[must_use]
    pub fn canonical_uri(&self) -> String {
        let q: String = self
            .q
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        format!("/foods?q={q}&page={}&per_page={}", self.page, self.per_page)
    }
}

/// In front of the HTTP cache: a `/foods` request's URI becomes its query's canonical form
/// ([`ValidFoodQuery::canonical_uri`]), and a bad query is refused here. The cache keys on the
/// URI, so junk parameters, reordering or case cannot make a new entry: the entries are bounded
/// by the distinct valid searches.
pub async fn canonical_query(mut request: Request, next: Next) -> Response {
    let query = match axum::extract::Query::<FoodQuery>::try_from_uri(request.uri()) {
        Ok(axum::extract::Query(query)) => query,
        Err(rejection) => return ApiError::from(rejection).into_response(),
    };
    let canonical = match query.validate() {
        Ok(valid) => valid.canonical_uri(),
        Err(err) => return err.into_response(),
    };
    match canonical.parse::<Uri>() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(err) => return ApiError::internal(err).into_response(),
    }
    next.run(request).await
}

/// A food, per 100 g.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Food {
    /// The id.
    pub id: i64,
    /// The name.
    pub name: String,
    /// kcal per 100 g.
    pub kcal: i64,
    /// Protein, g per 100 g.
    pub protein_g: f64,
    /// Fat, g per 100 g.
    pub fat_g: f64,
    /// Carbohydrates, g per 100 g.
    pub carbs_g: f64,
}

/// One page of search results.
#[derive(Debug, Serialize, ToSchema)]
pub struct FoodPage {
    /// The foods on this page, by name.
    pub items: Vec<Food>,
    /// This page, from 1.
    pub page: i64,
    /// The page size used.
    pub per_page: i64,
    /// Matches in all.
    pub total: i64,
}

/// Searches the food table.
#[utoipa::path(get, path = "/foods", tag = "foods", params(FoodQuery),
    responses((status = 200, body = FoodPage, headers(("etag" = String), ("cache-control" = String))),
              (status = 304, description = "Not modified (If-None-Match matched)"),
              (status = 422, body = crate::error::ErrorBody)))]
pub async fn search(
    State(state): State<AppState>,
    Query(query): Query<FoodQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let ValidFoodQuery { q, page, per_page } = query.validate()?;
    let escaped: String = q
        .chars()
        .flat_map(|c| match c {
            '!' | '%' | '_' => vec!['!', c],
            c => vec![c],
        })
        .collect();
    let (starts, word_starts) = (format!("{escaped}%"), format!("% {escaped}%"));
    const FILTER: &str = "WHERE name_lower LIKE ? ESCAPE '!' OR name_lower LIKE ? ESCAPE '!'";
    // The same for everyone and never written by users: the replica when there is one.
    let (starts, word_starts) = (&starts, &word_starts);
    let (total, rows) = state
        .db
        .read(None, |pool| async move {
            let total: i64 =
                sqlx::query_scalar(&format!("SELECT COUNT(*) FROM foods {FILTER}"))
                    .bind(starts)
                    .bind(word_starts)
                    .fetch_one(&pool)
                    .await?;
            let rows = sqlx::query(&format!(
                "SELECT id, name, kcal, protein_g, fat_g, carbs_g FROM foods {FILTER} ORDER BY name_lower LIMIT ? OFFSET ?"
            ))
            .bind(starts)
            .bind(word_starts)
            .bind(per_page)
            .bind((page - 1) * per_page)
            .fetch_all(&pool)
            .await?;
            Ok((total, rows))
        })
        .await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(Food {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                kcal: r.try_get("kcal")?,
                protein_g: r.try_get("protein_g")?,
                fat_g: r.try_get("fat_g")?,
                carbs_g: r.try_get("carbs_g")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let body = serde_json::to_vec(&FoodPage {
        items,
        page,
        per_page,
        total,
    })
    .map_err(ApiError::internal)?;
    let etag = etag_of(&body);
    let cache_control = format!("public, max-age={FOODS_MAX_AGE}");
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim().trim_start_matches("W/") == etag || tag.trim() == "*");
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, "application/json")], body).into_response()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    if let Ok(value) = HeaderValue::from_str(&cache_control) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    Ok(response)
}

/// A strong validator of the body. `DefaultHasher` is fixed within one build, and replicas run
/// the same build; across a rolling upgrade a mismatch only costs one full response.
fn etag_of(body: &[u8]) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    format!("\"{:016x}\"", hasher.finish())
}
