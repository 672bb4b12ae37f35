//! actix-web handlers with `#[get]` written above or below `#[cache_result]`.
use actix_web::{App, get, web};
use cache_core::{Cache, cache_result};

#[get("/stats/{user_id}")]
#[cache_result(expire = 60, cache = cache.get_ref())]
async fn above(cache: web::Data<Cache>, user_id: web::Path<i64>) -> web::Json<Vec<i64>> {
    web::Json(vec![*user_id])
}

#[cache_result(expire = 60, cache = cache.get_ref())]
#[get("/totals/{user_id}")]
async fn below(cache: web::Data<Cache>, user_id: web::Path<i64>) -> web::Json<i64> {
    web::Json(user_id.into_inner())
}

fn main() {
    let _app = App::new().app_data(web::Data::new(Cache::memory())).service(above).service(below);
}
