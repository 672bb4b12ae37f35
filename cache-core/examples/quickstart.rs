//! The library in one screen: read-through, invalidation by pattern, and the failure policy.
//!
//! ```text
//! cargo run -p cache-core --example quickstart                                   # memory
//! CACHE_URL=redis://127.0.0.1:6379/0 cargo run -p cache-core --example quickstart  # Redis
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_core::{Cache, key};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DailyMeals {
    date: String,
    meals: Vec<(String, u32)>,
    total_kcal: u32,
}

/// Stands in for the database: slow, and counts how often it is asked.
async fn load_daily_meals(user_id: i64, date: &str, queries: &AtomicUsize) -> DailyMeals {
    queries.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let meals = vec![
        ("oats".to_owned(), 389),
        (
            "lentil soup".to_owned(),
            520 + u32::try_from(user_id % 7).unwrap_or(0),
        ),
    ];
    DailyMeals {
        date: date.to_owned(),
        total_kcal: meals.iter().map(|(_, kcal)| kcal).sum(),
        meals,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();

    let cache = Cache::from_env().await?;
    println!(
        "cache: {} backend, namespace {:?}",
        cache.backend_name(),
        cache.namespace()
    );

    let queries = Arc::new(AtomicUsize::new(0));
    let user_id = 42_i64;
    let date = "2024-05-01";
    let k = key!("daily_meals", user_id, date);
    cache.delete(&k).await?; // start cold, even on a Redis that ran this before

    // 100 concurrent requests for the same cold key: one database query.
    let started = Instant::now();
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let (cache, queries, k) = (cache.clone(), Arc::clone(&queries), k.clone());
            tokio::spawn(async move {
                cache
                    .get_or_insert_with(&k, Duration::from_secs(3600), || async move {
                        load_daily_meals(user_id, date, &queries).await
                    })
                    .await
            })
        })
        .collect();
    let mut last = None;
    for request in requests {
        last = Some(request.await?);
    }
    println!(
        "100 concurrent cold reads: {} database query, {:?}; {} kcal on {}",
        queries.load(Ordering::SeqCst),
        started.elapsed(),
        last.as_ref().map_or(0, |d| d.total_kcal),
        last.as_ref().map_or("?", |d| d.date.as_str()),
    );

    let started = Instant::now();
    for _ in 0..1_000 {
        cache
            .get_or_insert_with(&k, Duration::from_secs(3600), || {
                load_daily_meals(user_id, date, &queries)
            })
            .await;
    }
    println!(
        "1,000 warm reads: {} database queries in total, {:?}",
        queries.load(Ordering::SeqCst),
        started.elapsed()
    );

    // A write invalidates every cached day of this user, and only this user.
    cache
        .set(
            key!("daily_meals", 71, date),
            &last,
            Duration::from_secs(60),
        )
        .await?;
    let removed = cache
        .delete_pattern(key!("daily_meals", user_id).prefix_pattern())
        .await?;
    println!(
        "meal logged: invalidated {removed} cached day(s) of user {user_id}; user 71 keeps theirs: {}",
        cache
            .get::<Option<DailyMeals>>(key!("daily_meals", 71, date))
            .await?
            .is_some()
    );

    // Hostile input cannot reach other users' keys.
    let hostile = "4*";
    let removed = cache
        .delete_pattern(key!("daily_meals", hostile).prefix_pattern())
        .await?;
    println!("delete_pattern for user {hostile:?}: {removed} removed (the '*' is escaped)");
    Ok(())
}
