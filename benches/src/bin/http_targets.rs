//! The HTTP server `benches/http.sh` loads with `wrk`: one handler returning fixed bytes, served
//! bare and behind cache-adapters' `HttpCacheLayer`.
//!
//! ```text
//! http_targets 127.0.0.1:PORT
//! ```
//!
//! - `GET /static`: the handler itself, the ceiling of this server on this machine.
//! - `GET /cached`: the same handler behind `HttpCacheLayer` on a `cache_core::Cache`:
//!   `CACHE_URL` unset is the memory cache, `redis://127.0.0.1:PORT/0` Redis. After the first
//!   request every answer is a hit, which is what the load measures.
//!
//! The body is a page of the example app's food search (`GET /foods?per_page=16`: 16 foods,
//! 1,443 bytes of JSON) with `Cache-Control: public, max-age=300`, as the app sends it.

use std::error::Error;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use cache_adapters::HttpCacheLayer;
use cache_core::Cache;
use serde::Serialize;

/// The first 16 foods of `example-app/data/foods.csv` by name: name, kcal, protein, fat, carbs.
const FOODS: [(&str, i64, f64, f64, f64); 16] = [
    ("Alfredo sauce", 170, 2.0, 15.5, 5.0),
    ("Almond butter", 614, 21.0, 55.5, 18.8),
    ("Almond milk unsweetened", 15, 0.6, 1.1, 0.6),
    ("Almonds", 579, 21.2, 49.9, 21.6),
    ("American cheese slices", 330, 18.0, 26.0, 5.0),
    ("Apple juice", 46, 0.1, 0.1, 11.3),
    ("Apple pie", 237, 1.9, 11.0, 34.0),
    ("Apple raw", 52, 0.3, 0.2, 13.8),
    ("Applesauce unsweetened", 42, 0.2, 0.1, 11.3),
    ("Apricot raw", 48, 1.4, 0.4, 11.1),
    ("Asparagus raw", 20, 2.2, 0.1, 3.9),
    ("Avocado raw", 160, 2.0, 14.7, 8.5),
    ("Bacon pan-fried", 541, 37.0, 41.8, 1.4),
    ("Bagel plain", 257, 10.0, 1.7, 50.5),
    ("Baked beans canned", 94, 4.8, 0.4, 21.1),
    ("Balsamic vinegar", 88, 0.5, 0.0, 17.0),
];

/// A food as the app's `/foods` answers it.
#[derive(Serialize)]
struct Food {
    id: usize,
    name: &'static str,
    kcal: i64,
    protein_g: f64,
    fat_g: f64,
    carbs_g: f64,
}

/// One page of the app's `/foods` answer.
#[derive(Serialize)]
struct FoodPage {
    items: Vec<Food>,
    page: i64,
    per_page: usize,
    total: i64,
}

fn food_page() -> Result<Bytes, serde_json::Error> {
    let items = FOODS
        .iter()
        .enumerate()
        .map(|(i, &(name, kcal, protein_g, fat_g, carbs_g))| Food {
            id: i + 1,
            name,
            kcal,
            protein_g,
            fat_g,
            carbs_g,
        })
        .collect();
    let page = FoodPage {
        items,
        page: 1,
        per_page: FOODS.len(),
        total: 374,
    };
    serde_json::to_vec(&page).map(Bytes::from)
}

/// The one handler: fixed bytes, cacheable by a shared cache for 5 minutes.
async fn fixed(State(body): State<Bytes>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .ok_or("usage: http_targets 127.0.0.1:PORT (CACHE_URL=redis://.. for Redis)")?
        .parse()?;
    if !addr.ip().is_loopback() {
        return Err(format!("{addr}: the load targets listen on loopback only").into());
    }
    // CACHE_LOCAL_CAPACITY (entries) puts a local tier in front of Redis, as calories-app does.
    let cache = match (
        std::env::var("CACHE_URL")
            .ok()
            .filter(|url| !url.is_empty()),
        std::env::var("CACHE_LOCAL_CAPACITY")
            .ok()
            .and_then(|n| n.parse::<u64>().ok()),
    ) {
        (Some(url), Some(capacity)) if capacity > 0 => {
            Cache::builder()
                .url(url)
                .local_tier(capacity, std::time::Duration::from_secs(300))
                .build()
                .await?
        }
        _ => Cache::from_env().await?,
    };
    let body = food_page()?;
    let cached = Router::new()
        .route("/cached", get(fixed))
        .layer(HttpCacheLayer::new(cache.clone()));
    let app = Router::new()
        .route("/static", get(fixed))
        .merge(cached)
        .with_state(body.clone());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    // http.sh waits for this line.
    println!(
        "http_targets on http://{} (cache: {}, body: {} bytes)",
        listener.local_addr()?,
        cache.backend_name(),
        body.len()
    );
    axum::serve(listener, app).await?;
    Ok(())
}
