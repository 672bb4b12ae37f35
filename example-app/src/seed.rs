//! `calories-app seed --users 10000 --meals-per-user 30`: a realistic data set, written in
//! batched multi-row inserts (500 users, 1,000 meals a statement, one transaction per batch).
//!
//! Seeded users are `user00000001@seed.example` and up, all with the password
//! [`SEED_PASSWORD`] (hashed once: argon2 is slow on purpose, and 10,000 hashes would take
//! minutes). Running it again adds users after the existing ones.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sqlx::{QueryBuilder, Row};

use crate::auth::{PasswordHashing, hash_password};
use crate::db::Database;

/// The password of every seeded user.
pub const SEED_PASSWORD: &str = "seed-password";

const USERS_PER_BATCH: u64 = 500;
const MEALS_PER_STATEMENT: usize = 1000;

const TIME_ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Australia/Sydney",
];

/// A kind of meal: name, kcal range, and the shares of its energy from protein, fat and carbs.
type MealKind = (&'static str, (i64, i64), f64, f64, f64);

const MEALS: &[MealKind] = &[
    ("Oatmeal with berries", (250, 450), 0.15, 0.20, 0.65),
    ("Scrambled eggs and toast", (300, 550), 0.25, 0.45, 0.30),
    ("Greek yogurt with honey", (180, 320), 0.30, 0.20, 0.50),
    ("Chicken salad", (350, 600), 0.35, 0.40, 0.25),
    ("Spaghetti bolognese", (550, 900), 0.20, 0.30, 0.50),
    ("Salmon with rice", (500, 800), 0.30, 0.30, 0.40),
    ("Veggie burrito", (450, 750), 0.15, 0.30, 0.55),
    ("Turkey sandwich", (350, 550), 0.25, 0.30, 0.45),
    ("Apple", (70, 110), 0.02, 0.03, 0.95),
    ("Protein shake", (150, 300), 0.60, 0.15, 0.25),
    ("Beef stir fry", (450, 750), 0.30, 0.35, 0.35),
    ("Lentil soup", (250, 400), 0.25, 0.15, 0.60),
    ("Pizza slices", (500, 1000), 0.15, 0.40, 0.45),
    ("Mixed nuts", (150, 300), 0.12, 0.75, 0.13),
    ("Sushi platter", (400, 700), 0.20, 0.15, 0.65),
];

/// What a seed run wrote.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    /// Users added.
    pub users: u64,
    /// Meals added.
    pub meals: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// Adds `users` users with `meals_per_user` meals each, spread over their last 30 days.
///
/// # Errors
/// A database failure (the current batch is rolled back; earlier batches stay).
pub async fn run(
    db: &Database,
    users: u64,
    meals_per_user: u32,
    progress: bool,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let existing: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email LIKE '%@seed.example'")
            .fetch_one(&db.pool)
            .await?;
    let first = u64::try_from(existing).unwrap_or(0) + 1;
    let hashing = PasswordHashing::new(1, Duration::from_secs(60));
    let hash = hash_password(&hashing, SEED_PASSWORD.to_owned())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let bar = if progress {
        ProgressBar::new(users)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} users  {per_sec}  eta {eta}")
            .context("progress bar template")?,
    );
    let mut rng = SmallRng::seed_from_u64(first);
    let now = Utc::now().timestamp();
    let mut meals_written = 0;
    let mut next = first;
    while next < first + users {
        let last = (next + USERS_PER_BATCH).min(first + users) - 1;
        let mut tx = db.pool.begin().await?;
        let mut insert = QueryBuilder::new(
            "INSERT INTO users (email, password_hash, name, daily_goal, time_zone, created_at) ",
        );
        insert.push_values(next..=last, |mut row, n| {
            row.push_bind(seed_email(n))
                .push_bind(hash.clone())
                .push_bind(format!("Seed User {n}"))
                .push_bind(rng.random_range(16..=30_i64) * 100)
                .push_bind(TIME_ZONES[rng.random_range(0..TIME_ZONES.len())])
                .push_bind(now - 40 * 86_400);
        });
        insert.build().execute(&mut *tx).await?;
        let ids: Vec<i64> =
            sqlx::query("SELECT id FROM users WHERE email >= ? AND email <= ? ORDER BY email")
                .bind(seed_email(next))
                .bind(seed_email(last))
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| row.try_get("id"))
                .collect::<Result<_, _>>()?;
        let meals: Vec<(i64, i64, usize, i64)> = ids
            .iter()
            .flat_map(|&user| (0..meals_per_user).map(move |i| (user, i)))
            .map(|(user, i)| {
                // Spread over the last 30 days, at meal-ish hours.
                let day = i64::from(i) * 30 / i64::from(meals_per_user.max(1));
                let at = now - day * 86_400 - rng.random_range(0..12 * 3600);
                let kind = rng.random_range(0..MEALS.len());
                let (lo, hi) = MEALS[kind].1;
                (user, at, kind, rng.random_range(lo..=hi))
            })
            .collect();
        for chunk in meals.chunks(MEALS_PER_STATEMENT) {
            let mut insert = QueryBuilder::new(
                "INSERT INTO meals (user_id, eaten_at, name, calories, protein_g, fat_g, carbs_g, photo, photo_type, created_at) ",
            );
            insert.push_values(chunk, |mut row, &(user, at, kind, kcal)| {
                let (name, _, protein, fat, carbs) = MEALS[kind];
                let grams = |share: f64, per_gram: f64| {
                    ((kcal as f64) * share / per_gram * 10.0).round() / 10.0
                };
                row.push_bind(user)
                    .push_bind(at)
                    .push_bind(name)
                    .push_bind(kcal)
                    .push_bind(grams(protein, 4.0))
                    .push_bind(grams(fat, 9.0))
                    .push_bind(grams(carbs, 4.0))
                    .push_bind(None::<String>)
                    .push_bind(None::<String>)
                    .push_bind(at);
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        meals_written += meals.len() as u64;
        bar.inc(last + 1 - next);
        next = last + 1;
    }
    bar.finish_and_clear();
    Ok(Report {
        users,
        meals: meals_written,
        elapsed: started.elapsed(),
    })
}

fn seed_email(n: u64) -> String {
    format!("user{n:08}@seed.example")
}
