//! `#[cache_result]` observed from outside: loader calls counted on memory and on Redis.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

use cache_test_support as support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_core::{Cache, cache_result, key};
use serde::{Deserialize, Serialize};
use support::{Fixture, eventually};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    user_id: i64,
    days: u32,
    avg_kcal: u32,
}

/// A failure the loader reports; `Clone` so that waiting callers can share it.
#[derive(Debug, Clone, PartialEq)]
pub enum AppError {
    NotFound,
}

/// Stands in for the database: counts its queries.
#[derive(Debug, Clone, Default)]
pub struct Db {
    queries: Arc<AtomicUsize>,
}

impl Db {
    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }

    fn query(&self) {
        self.queries.fetch_add(1, Ordering::SeqCst);
    }
}

#[cache_result(expire = 1800, key_prefix = "user_stats", skip(db), cache = cache)]
async fn user_stats(cache: &Cache, db: &Db, user_id: i64, days: u32) -> Result<Stats, AppError> {
    db.query();
    if user_id < 0 {
        return Err(AppError::NotFound);
    }
    Ok(Stats {
        user_id,
        days,
        avg_kcal: 2000 + days,
    })
}

#[cache_result(expire = 60, skip(db), cache = cache)]
async fn find_meal(cache: &Cache, db: &Db, id: i64) -> Option<String> {
    db.query();
    (id % 2 == 0).then(|| format!("meal {id}"))
}

#[cache_result(expire = 60, skip(db), cache = cache, cache_none)]
async fn find_meal_remembering_absence(cache: &Cache, db: &Db, id: i64) -> Option<String> {
    db.query();
    (id % 2 == 0).then(|| format!("meal {id}"))
}

/// Expires in one second: the shortest `expire` allows.
#[cache_result(expire = 1, skip(db), cache = cache)]
async fn short_lived(cache: &Cache, db: &Db, id: i64) -> u64 {
    db.query();
    u64::try_from(id).unwrap_or(0)
}

/// Fails while `down` is set, as a database would.
#[cache_result(expire = 1, stale = 600, key_prefix = "daily_total", skip(db, down), cache = cache)]
async fn daily_total(
    cache: &Cache,
    db: &Db,
    down: &std::sync::atomic::AtomicBool,
    user: i64,
) -> Result<u64, AppError> {
    db.query();
    if down.load(Ordering::SeqCst) {
        return Err(AppError::NotFound);
    }
    Ok(u64::try_from(db.queries()).unwrap_or(0) * 100 + user.unsigned_abs())
}

#[cache_result(expire = 60, key = "{user}", skip(db), cache = cache)]
async fn by_template(cache: &Cache, db: &Db, user: &str, _ignored_for_key: u8) -> String {
    db.query();
    user.to_owned()
}

mod reports {
    pub mod daily {
        use super::super::{Cache, Db, cache_result};
        #[cache_result(expire = 60, skip(db), cache = cache)]
        pub async fn stats(cache: &Cache, db: &Db, id: i64) -> String {
            db.query();
            format!("daily {id}")
        }
    }
    pub mod weekly {
        use super::super::{Cache, Db, cache_result};
        #[cache_result(expire = 60, skip(db), cache = cache)]
        pub async fn stats(cache: &Cache, db: &Db, id: i64) -> String {
            db.query();
            format!("weekly {id}")
        }
    }
}

/// A service whose methods are cached; `self` is not part of the key.
#[derive(Debug)]
pub struct MealService {
    cache: Cache,
    db: Db,
    label: &'static str,
}

impl MealService {
    #[cache_result(expire = 60, cache = self.cache)]
    pub async fn total(&self, user_id: i64) -> u32 {
        self.db.query();
        u32::try_from(user_id).unwrap_or(0) * 10
    }

    #[cache_result(expire = 60, cache = self.cache, key = "{self.label}:{user_id}")]
    pub async fn labelled(&self, user_id: i64) -> String {
        self.db.query();
        format!("{}:{user_id}", self.label)
    }
}

/// Generic over the repository; the key does not depend on the generic type.
#[cache_result(expire = 60, skip(repo), cache = cache)]
async fn generic_count<R: AsRef<Db> + Sync>(cache: &Cache, repo: &R, id: i64) -> i64 {
    repo.as_ref().query();
    id * 2
}

impl AsRef<Db> for Db {
    fn as_ref(&self) -> &Db {
        self
    }
}

support::on_every_backend!(
    hits_after_the_first_call,
    err_is_never_cached,
    none_is_cached_only_when_asked,
    values_expire,
    same_function_name_in_two_modules_never_shares_keys,
    methods_on_self,
    generic_functions,
    template_keys_and_escaping,
    invalidate_one_user_after_a_write,
    concurrent_calls_run_the_body_once,
    stale_serves_the_last_ok_when_the_body_fails,
    tags_name_arguments_and_invalidate_on_every_call,
    lock_runs_the_body_once_across_replicas,
);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Range {
    days: u32,
}

#[cache_result(expire = 600, key = "{user_id}:{range.days}", tags = ["user:{user_id}", "stats:{range.days}", "all"], cache = cache)]
async fn tagged_stats(cache: &Cache, db: &Db, user_id: i64, range: Range) -> u32 {
    db.query();
    2000 + range.days
}

#[cache_result(expire = 600, lock = true, skip(db), cache = cache)]
async fn locked_report(cache: &Cache, db: &Db, user_id: i64) -> u32 {
    db.query();
    tokio::time::sleep(Duration::from_millis(100)).await; // the query
    u32::try_from(user_id).unwrap_or(0)
}

async fn hits_after_the_first_call(fx: &Fixture) {
    let (cache, db) = (fx.cache().await, Db::default());
    let first = user_stats(&cache, &db, 42, 7).await.unwrap();
    let second = user_stats(&cache, &db, 42, 7).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(db.queries(), 1, "second call is a hit");
    user_stats(&cache, &db, 42, 30).await.unwrap();
    user_stats(&cache, &db, 43, 7).await.unwrap();
    assert_eq!(db.queries(), 3, "other arguments, other entries");
    let stored: Option<Stats> = cache.get("user_stats:42:7").await.unwrap();
    assert_eq!(
        stored,
        Some(first),
        "documented key format: {{key_prefix}}:{{part}}:{{part}}"
    );
}

async fn err_is_never_cached(fx: &Fixture) {
    let (cache, db) = (fx.cache().await, Db::default());
    assert_eq!(
        user_stats(&cache, &db, -1, 7).await,
        Err(AppError::NotFound)
    );
    assert_eq!(
        user_stats(&cache, &db, -1, 7).await,
        Err(AppError::NotFound)
    );
    assert_eq!(db.queries(), 2);
}

async fn none_is_cached_only_when_asked(fx: &Fixture) {
    let (cache, db) = (fx.cache().await, Db::default());
    assert_eq!(find_meal(&cache, &db, 1).await, None);
    assert_eq!(find_meal(&cache, &db, 1).await, None);
    assert_eq!(db.queries(), 2, "None is not cached by default");
    assert_eq!(find_meal(&cache, &db, 2).await.as_deref(), Some("meal 2"));
    assert_eq!(find_meal(&cache, &db, 2).await.as_deref(), Some("meal 2"));
    assert_eq!(db.queries(), 3, "Some is");

    let db = Db::default();
    assert_eq!(find_meal_remembering_absence(&cache, &db, 1).await, None);
    assert_eq!(find_meal_remembering_absence(&cache, &db, 1).await, None);
    assert_eq!(db.queries(), 1, "with cache_none, None is cached too");
}

async fn stale_serves_the_last_ok_when_the_body_fails(fx: &Fixture) {
    let (cache, db) = (fx.cache().await, Db::default());
    let down = std::sync::atomic::AtomicBool::new(false);
    let first = daily_total(&cache, &db, &down, 7).await.unwrap();
    let key = key!("daily_total", 7_i64);
    let expired = eventually(Duration::from_secs(5), || async {
        cache.get::<u64>(&key).await.unwrap().is_none()
    })
    .await;
    assert!(expired, "after `expire = 1` the value is no longer fresh");
    down.store(true, Ordering::SeqCst);
    assert_eq!(
        daily_total(&cache, &db, &down, 7).await,
        Ok(first),
        "the stale Ok, not the error"
    );
    assert_eq!(db.queries(), 2, "the body did run, and failed");
    down.store(false, Ordering::SeqCst);
    let fresh = daily_total(&cache, &db, &down, 7).await.unwrap();
    assert_ne!(fresh, first, "a working body replaces the stale value");
}

async fn values_expire(fx: &Fixture) {
    let (cache, db) = (fx.cache().await, Db::default());
    assert_eq!(short_lived(&cache, &db, 5).await, 5);
    assert_eq!(short_lived(&cache, &db, 5).await, 5);
    assert_eq!(db.queries(), 1);
    let reloaded = eventually(Duration::from_secs(5), || async {
        short_lived(&cache, &db, 5).await;
        db.queries() == 2
    })
    .await;
    assert!(reloaded, "after `expire = 1` second the body runs again");
}

async fn same_function_name_in_two_modules_never_shares_keys(fx: &Fixture) {
    let (cache, db) = (fx.cache().await, Db::default());
    assert_eq!(reports::daily::stats(&cache, &db, 1).await, "daily 1");
    assert_eq!(reports::weekly::stats(&cache, &db, 1).await, "weekly 1");
    assert_eq!(db.queries(), 2);
    let daily: Option<String> = cache
        .get(format!(
            "{}::stats:1",
            module_path!().to_owned() + "::reports::daily"
        ))
        .await
        .unwrap();
    assert_eq!(
        daily.as_deref(),
        Some("daily 1"),
        "default prefix: module path and function name"
    );
}

async fn methods_on_self(fx: &Fixture) {
    let cache = fx.cache().await;
    let a = MealService {
        cache: cache.clone(),
        db: Db::default(),
        label: "a",
    };
    let b = MealService {
        cache: cache.clone(),
        db: Db::default(),
        label: "b",
    };
    assert_eq!(a.total(4).await, 40);
    assert_eq!(b.total(4).await, 40);
    assert_eq!(
        a.db.queries() + b.db.queries(),
        1,
        "self is not in the key: b hits a's entry"
    );
    assert_eq!(a.labelled(4).await, "a:4");
    assert_eq!(
        b.labelled(4).await,
        "b:4",
        "self.label is, when the key names it"
    );
    assert_eq!(a.labelled(4).await, "a:4");
    assert_eq!(a.db.queries() + b.db.queries(), 3);
}

async fn generic_functions(fx: &Fixture) {
    let (cache, db) = (fx.cache().await, Db::default());
    assert_eq!(generic_count(&cache, &db, 21).await, 42);
    assert_eq!(generic_count(&cache, &db, 21).await, 42);
    assert_eq!(db.queries(), 1);
}

async fn template_keys_and_escaping(fx: &Fixture) {
    let (cache, db) = (fx.cache().await, Db::default());
    assert_eq!(by_template(&cache, &db, "7*", 1).await, "7*");
    assert_eq!(
        by_template(&cache, &db, "7*", 2).await,
        "7*",
        "only {{user}} is in the key"
    );
    assert_eq!(by_template(&cache, &db, "71", 1).await, "71");
    assert_eq!(db.queries(), 2);
    let prefix = format!("{}::by_template", module_path!());
    let removed = cache
        .delete_pattern(key!("x", "7*").prefix_pattern().replacen('x', &prefix, 1))
        .await
        .unwrap();
    assert_eq!(
        removed, 0,
        "the escaped `7*` key has no `:` after the user part"
    );
    let removed = cache
        .delete_pattern(format!("{prefix}:{}", key!("7*")))
        .await
        .unwrap();
    assert_eq!(removed, 1, "user 7*'s entry only, not 71's");
    assert_eq!(by_template(&cache, &db, "71", 1).await, "71");
    assert_eq!(db.queries(), 2, "71 still cached");
}

/// The seed's upload case: a write invalidates one user's cached stats, and only theirs.
async fn invalidate_one_user_after_a_write(fx: &Fixture) {
    let (cache, db) = (fx.cache().await, Db::default());
    for days in [7, 30] {
        user_stats(&cache, &db, 42, days).await.unwrap();
        user_stats(&cache, &db, 421, days).await.unwrap();
    }
    assert_eq!(db.queries(), 4);
    let removed = cache
        .delete_pattern(key!("user_stats", 42_i64).prefix_pattern())
        .await
        .unwrap();
    assert_eq!(removed, 2);
    user_stats(&cache, &db, 42, 7).await.unwrap();
    user_stats(&cache, &db, 421, 7).await.unwrap();
    assert_eq!(db.queries(), 5, "42 reloads, 421 is still cached");
}

async fn concurrent_calls_run_the_body_once(fx: &Fixture) {
    let (cache, db) = (fx.cache().await, Db::default());
    let calls: Vec<_> = (0..200)
        .map(|_| {
            let (cache, db) = (cache.clone(), db.clone());
            tokio::spawn(async move { user_stats(&cache, &db, 9, 7).await })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap().is_ok());
    }
    assert_eq!(
        db.queries(),
        1,
        "stampede protection comes with the read-through"
    );
}

/// Without `cache = ..` the process-wide cache is used; this is the only test in this binary
/// that touches it.
#[cache_result(expire = 60, skip(db))]
async fn on_the_global_cache(db: &Db, id: u8) -> u8 {
    db.query();
    id
}

#[tokio::test]
async fn functions_without_cache_use_the_global_one() {
    let db = Db::default();
    assert_eq!(on_the_global_cache(&db, 3).await, 3);
    assert_eq!(on_the_global_cache(&db, 3).await, 3);
    assert_eq!(db.queries(), 1);
    let stored: Option<u8> = cache_core::global()
        .get(format!("{}::on_the_global_cache:3", module_path!()))
        .await
        .unwrap();
    assert_eq!(stored, Some(3));
}

async fn tags_name_arguments_and_invalidate_on_every_call(fx: &Fixture) {
    let (cache, db) = (fx.cache().await, Db::default());
    let week = || Range { days: 7 };
    tagged_stats(&cache, &db, 42, week()).await;
    tagged_stats(&cache, &db, 7, week()).await;
    tagged_stats(&cache, &db, 42, Range { days: 30 }).await;
    assert_eq!(db.queries(), 3);
    tagged_stats(&cache, &db, 42, week()).await;
    assert_eq!(db.queries(), 3, "hits");

    cache.invalidate_tag("user:42").await.unwrap();
    tagged_stats(&cache, &db, 42, week()).await;
    tagged_stats(&cache, &db, 42, Range { days: 30 }).await;
    tagged_stats(&cache, &db, 7, week()).await;
    assert_eq!(
        db.queries(),
        5,
        "user 42's two entries reloaded, user 7's kept"
    );

    cache.invalidate_tag("stats:30").await.unwrap();
    tagged_stats(&cache, &db, 42, Range { days: 30 }).await;
    tagged_stats(&cache, &db, 42, week()).await;
    assert_eq!(db.queries(), 6);

    cache.invalidate_tag("all").await.unwrap();
    tagged_stats(&cache, &db, 7, week()).await;
    assert_eq!(db.queries(), 7);
}

async fn lock_runs_the_body_once_across_replicas(fx: &Fixture) {
    let db = Db::default();
    let mut calls = Vec::new();
    for _ in 0..3 {
        // A replica each: its own cache on the same backend (on memory, three independent
        // caches do not share values, so one suffices there).
        let cache = if fx.is_redis() {
            fx.cache().await
        } else {
            Cache::memory()
        };
        for _ in 0..20 {
            let (cache, db) = (cache.clone(), db.clone());
            calls.push(tokio::spawn(
                async move { locked_report(&cache, &db, 9).await },
            ));
        }
        if !fx.is_redis() {
            break;
        }
    }
    for call in calls {
        assert_eq!(call.await.unwrap(), 9);
    }
    assert_eq!(db.queries(), 1);
}
