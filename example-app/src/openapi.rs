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
        auth::register, auth::login, auth::refresh, auth::logout, auth::logout_all,
        auth::list_sessions, auth::delete_session,
        users::me, users::update_me,
        meals::create, meals::upload, meals::list, meals::get_one, meals::photo, meals::delete, meals::daily,
        stats::stats, foods::search,
        health::live, health::ready, health::health, telemetry::metrics, openapi_json,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail)),
    modifiers(&BearerAuth, &CommonErrors),
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

/// Documents, on every operation, the error answers any request can get whatever the route:
/// a body or query that does not parse (400), a missing or bad token (401, on routes that take
/// one), an unknown method (405), a body too large (413), a wrong content type (415), a value
/// out of range (422), the rate limit (429), a bug (500), a database outage (503). Each has the
/// JSON error body; the routes' own annotations keep their specific ones.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        const ALWAYS: [(&str, &str); 9] = [
            (
                "408",
                "The request took longer than REQUEST_TIMEOUT_SECONDS, body included",
            ),
            (
                "400",
                "The request could not be read (syntax, types, missing parts)",
            ),
            ("405", "The route does not accept this method"),
            ("413", "The body is too large"),
            ("415", "The content type is not the one this route reads"),
            ("422", "A value is out of range or invalid"),
            (
                "429",
                "Rate limited: retry after the seconds in Retry-After",
            ),
            ("500", "A failure of the server, logged"),
            ("503", "The database is unavailable; retry shortly"),
        ];
        let error = || {
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let needs_token = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let unauthorized = ("401", "No valid `Authorization: Bearer` token");
                let codes = ALWAYS.iter().chain(needs_token.then_some(&unauthorized));
                for (code, description) in codes {
                    operation
                        .responses
                        .responses
                        .entry((*code).to_owned())
                        .or_insert_with(|| {
                            ResponseBuilder::new()
                                .description(*description)
                                .content("application/json", error())
                                .build()
                                .into()
                        });
                }
            }
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
