//! `GET /stats?days=7|30`: averages, per-day totals and streaks over the last days, cached with
//! `#[cache_result(expire = 1800, key_prefix = "user_stats")]` and dropped by every meal write.

use std::collections::BTreeMap;

use axum::extract::State;
use cache_core::cache_result;
use chrono::{DateTime, NaiveDate};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::meals::{Totals, day_bounds};
use crate::users;

/// `GET /stats` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// 7 or 30; default 7.
    pub days: Option<u32>,
}

/// One day in the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DayTotals {
    /// The day, in the user's time zone.
    pub date: NaiveDate,
    /// Meals logged.
    pub meals: u32,
    /// Their sums.
    pub totals: Totals,
}

/// The statistics of a window of days ending today.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    /// The window's length.
    pub days: u32,
    /// Its first day.
    pub from: NaiveDate,
    /// Its last day: today, in the user's time zone.
    pub to: NaiveDate,
    /// The user's daily goal, kcal.
    pub daily_goal: i64,
    /// Every day of the window, oldest first, with zeros for days without meals.
    pub per_day: Vec<DayTotals>,
    /// Days with at least one meal.
    pub logged_days: u32,
    /// Averages over the logged days (zeros when none).
    pub average: Totals,
    /// Logged days at or under the goal.
    pub days_within_goal: u32,
    /// Consecutive logged days up to today (up to yesterday when today has no meal yet).
    pub current_streak: u32,
    /// The longest run of consecutive logged days in the window.
    pub longest_streak: u32,
}

/// The user's statistics.
#[utoipa::path(get, path = "/stats", tag = "stats", security(("bearer" = [])), params(StatsQuery),
    responses((status = 200, body = Stats), (status = 422, body = crate::error::ErrorBody)))]
pub async fn stats(
    State(state): State<AppState>,
    user: AuthUser,
    Query(query): Query<StatsQuery>,
) -> Result<Json<Stats>, ApiError> {
    let days = query.days.unwrap_or(7);
    if days != 7 && days != 30 {
        return Err(ApiError::validation(format!(
            "days must be 7 or 30 (got {days})"
        )));
    }
    let today = users::profile(&state, user.id).await?.today();
    Ok(Json(user_stats(&state, user.id, days, today).await?))
}

/// The statistics of `user_id` over `days` days up to `today`, cached half an hour under
/// `user_stats:{user_id}:{days}:{today}`, tagged `user:{user_id}` and `stats:{user_id}`;
/// [`crate::cached::forget_meal_day`] invalidates them. For an
/// hour past that, they are still served when the database fails (`stale = 3600`).
#[cache_result(
    expire = 1800,
    stale = 3600,
    key_prefix = "user_stats",
    tags = ["user:{user_id}", "stats:{user_id}"],
    cache = state.cache
)]
pub async fn user_stats(
    state: &AppState,
    user_id: i64,
    days: u32,
    today: NaiveDate,
) -> Result<Stats, ApiError> {
    let user = users::profile(state, user_id).await?;
    let tz = user.tz();
    let from = today - chrono::Duration::days(i64::from(days) - 1);
    let (start, _) = day_bounds(tz, from);
    let (_, end) = day_bounds(tz, today);
    // Routed when the load runs: a user who just wrote reads (and caches) the primary's.
    let rows = state
        .db
        .read(Some(user_id), |pool| async move {
            sqlx::query(
                "SELECT eaten_at, calories, protein_g, fat_g, carbs_g FROM meals \
                 WHERE user_id = ? AND eaten_at >= ? AND eaten_at < ?",
            )
            .bind(user_id)
            .bind(start)
            .bind(end)
            .fetch_all(&pool)
            .await
        })
        .await?;
    let mut by_day: BTreeMap<NaiveDate, DayTotals> = from
        .iter_days()
        .take(days as usize)
        .map(|date| {
            (
                date,
                DayTotals {
                    date,
                    meals: 0,
                    totals: Totals::default(),
                },
            )
        })
        .collect();
    for row in &rows {
        let at: i64 = row.try_get("eaten_at")?;
        let Some(date) = DateTime::from_timestamp(at, 0).map(|t| t.with_timezone(&tz).date_naive())
        else {
            continue;
        };
        if let Some(day) = by_day.get_mut(&date) {
            day.meals += 1;
            day.totals.calories += row.try_get::<i64, _>("calories")?;
            day.totals.protein_g += row.try_get::<f64, _>("protein_g")?;
            day.totals.fat_g += row.try_get::<f64, _>("fat_g")?;
            day.totals.carbs_g += row.try_get::<f64, _>("carbs_g")?;
        }
    }
    let per_day: Vec<DayTotals> = by_day.into_values().collect();
    Ok(summarise(days, from, today, user.daily_goal, per_day))
}

fn summarise(
    days: u32,
    from: NaiveDate,
    to: NaiveDate,
    goal: i64,
    per_day: Vec<DayTotals>,
) -> Stats {
    let logged: Vec<&DayTotals> = per_day.iter().filter(|d| d.meals > 0).collect();
    let logged_days = u32::try_from(logged.len()).unwrap_or(u32::MAX);
    let mut average = Totals::default();
    if logged_days > 0 {
        let n = f64::from(logged_days);
        let sum = |f: fn(&Totals) -> f64| logged.iter().map(|d| f(&d.totals)).sum::<f64>() / n;
        average = Totals {
            calories: logged.iter().map(|d| d.totals.calories).sum::<i64>()
                / i64::from(logged_days),
            protein_g: round1(sum(|t| t.protein_g)),
            fat_g: round1(sum(|t| t.fat_g)),
            carbs_g: round1(sum(|t| t.carbs_g)),
        };
    }
    let mut longest = 0;
    let mut run = 0;
    for day in &per_day {
        run = if day.meals > 0 { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let mut from_end = per_day.iter().rev().peekable();
    if from_end.peek().is_some_and(|today| today.meals == 0) {
        from_end.next();
    }
    let current = from_end.take_while(|d| d.meals > 0).count();
    Stats {
        days,
        from,
        to,
        daily_goal: goal,
        days_within_goal: u32::try_from(
            logged.iter().filter(|d| d.totals.calories <= goal).count(),
        )
        .unwrap_or(0),
        per_day,
        logged_days,
        average,
        current_streak: u32::try_from(current).unwrap_or(0),
        longest_streak: longest,
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: u32, meals: u32, calories: i64) -> DayTotals {
        DayTotals {
            date: NaiveDate::from_ymd_opt(2026, 11, n).unwrap(),
            meals,
            totals: Totals {
                calories,
                ..Totals::default()
            },
        }
    }

    #[test]
    fn streaks_count_back_from_today_or_yesterday() {
        let from = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let to = NaiveDate::from_ymd_opt(2026, 11, 7).unwrap();
        let week = vec![
            day(1, 1, 1800),
            day(2, 2, 2500),
            day(3, 1, 1900),
            day(4, 0, 0),
            day(5, 1, 2000),
            day(6, 3, 2100),
            day(7, 0, 0),
        ];
        let s = summarise(7, from, to, 2000, week);
        assert_eq!((s.current_streak, s.longest_streak), (2, 3));
        assert_eq!((s.logged_days, s.days_within_goal), (5, 3));
        assert_eq!(s.average.calories, (1800 + 2500 + 1900 + 2000 + 2100) / 5);
    }
}
