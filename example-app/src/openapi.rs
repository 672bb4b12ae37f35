//! The OpenAPI document served at `GET /openapi.json`, generated from the handlers' annotations.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{auth, error, foods, health, meals, stats, telemetry, users};

/// The API's description.
///
/// ```
/// use utoipa::OpenApi;
/// let doc = calories_app::ApiDoc::openapi();
/// assert!(doc.paths.paths.contains_key("/meals/daily"));
/// ```
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "calories-app", description = "A calories tracker on cache-core: meals with photos, the day, stats, foods."),
    paths(
        auth::register, auth::login,
        users::me, users::update_me,
        meals::create, meals::upload, meals::list, meals::get_one, meals::photo, meals::delete, meals::daily,
        stats::stats, foods::search,
        health::live, health::ready, health::health, telemetry::metrics, openapi_json,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
