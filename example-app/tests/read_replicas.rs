//! Read replicas (`DATABASE_READ_URL`) on a real MariaDB primary and replica, replicating over
//! GTID on 127.0.0.1: reads land on the replica, a user reads their own write (and the day
//! cached after it) while the replica's SQL thread is stopped, and a dead replica falls back to
//! the primary with a warning and a metric, and is used again once it is back.
//!
//! (`tests/replicas.rs` is about two *app* replicas sharing one database.)
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use axum::http::StatusCode;
use calories_app::cached;
use calories_app::meals::DailySummary;
use chrono::Utc;
use serde_json::json;
use support::TestApp;
use support::mariadb::{MariaDb, Role};

/// Everything the app logs in this test binary, as text.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        tracing_subscriber::fmt()
            .with_env_filter("warn,calories_app=info")
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .init();
    });
}

fn log_lines_with(text: &str) -> usize {
    String::from_utf8_lossy(&LOGS.lock().unwrap())
        .lines()
        .filter(|line| line.contains(text))
        .count()
}

/// A primary, its replica, and the app reading from the replica.
struct Replicated {
    primary: MariaDb,
    replica: MariaDb,
    app: TestApp,
}

impl Replicated {
    async fn start(read_your_writes: Duration) -> Self {
        capture_logs();
        let primary = MariaDb::start_as(Role::Primary);
        let replica = MariaDb::start_replica_of(&primary);
        let url = primary.create_database("calories");
        let read_url = replica.url("calories");
        let app = TestApp::start_on(url, |config| {
            config.database_read_url = Some(read_url);
            config.read_your_writes = read_your_writes;
        })
        .await;
        // The migrations and the food table, replicated.
        replica.wait_caught_up(&primary);
        Self {
            primary,
            replica,
            app,
        }
    }

    /// A user written straight into the primary, not through the app (so no read-your-writes
    /// marker routes their reads), and an access token for them.
    fn user_on_primary(&self, email: &str) -> (String, i64) {
        let id: i64 = self
            .primary
            .execute(&format!(
                "INSERT INTO calories.users (email, password_hash, created_at) \
                 VALUES ('{email}', 'x', 0); SELECT LAST_INSERT_ID();"
            ))
            .trim()
            .parse()
            .unwrap();
        (self.app.state.jwt.issue(id, 1).unwrap(), id)
    }

    /// A meal written straight into the primary, eaten now.
    fn meal_on_primary(&self, user: i64, name: &str) {
        self.primary.execute(&format!(
            "INSERT INTO calories.meals (user_id, eaten_at, name, calories, protein_g, fat_g, \
             carbs_g, created_at) VALUES ({user}, {now}, '{name}', 300, 0, 0, 0, {now})",
            now = Utc::now().timestamp()
        ));
    }

    /// The names of the user's meals, as `GET /meals` (never cached) shows them.
    async fn meal_names(app: &TestApp, token: &str) -> Vec<String> {
        let resp = app.get("/meals", Some(token)).await;
        assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
        resp.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Prepared statements the app ran on `server` (the test's own SQL is never prepared).
    fn app_queries(server: &MariaDb) -> u64 {
        server.status("Com_stmt_execute")
    }
}

/// The value of `db_replica_fallbacks_total{reason="unreachable"}` in `/metrics`.
async fn unreachable_fallbacks(app: &TestApp) -> f64 {
    let metrics = String::from_utf8(app.get("/metrics", None).await.body.to_vec()).unwrap();
    metrics
        .lines()
        .find(|l| {
            l.starts_with("db_replica_fallbacks_total") && l.contains("reason=\"unreachable\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_land_on_the_replica() {
    let db = Replicated::start(Duration::from_secs(5)).await;
    let (token, id) = db.user_on_primary("reader@example.com");
    db.meal_on_primary(id, "Toast");
    db.replica.wait_caught_up(&db.primary);

    let (on_primary, on_replica) = (
        Replicated::app_queries(&db.primary),
        Replicated::app_queries(&db.replica),
    );
    for uri in ["/users/me", "/meals/daily", "/stats", "/foods?q=egg"] {
        let resp = db.app.get(uri, Some(&token)).await;
        assert_eq!(resp.status, StatusCode::OK, "{uri}: {:?}", resp.body);
    }
    assert_eq!(
        Replicated::meal_names(&db.app, &token).await,
        ["Toast"],
        "the replica has what was replicated"
    );
    assert_eq!(
        Replicated::app_queries(&db.primary),
        on_primary,
        "no read reached the primary"
    );
    assert!(
        Replicated::app_queries(&db.replica) >= on_replica + 5,
        "the reads ran on the replica"
    );

    // A row the replica does not have yet is not seen: the answer comes from the replica.
    db.replica.execute("STOP SLAVE SQL_THREAD");
    db.meal_on_primary(id, "Soup");
    assert_eq!(Replicated::meal_names(&db.app, &token).await, ["Toast"]);
    db.replica.execute("START SLAVE SQL_THREAD");
    db.replica.wait_caught_up(&db.primary);
    let mut names = Replicated::meal_names(&db.app, &token).await;
    names.sort();
    assert_eq!(names, ["Soup", "Toast"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_reads_their_own_write_while_the_replica_sql_thread_is_stopped() {
    // A window far longer than the test, so that the test does not depend on its speed.
    let db = Replicated::start(Duration::from_secs(120)).await;
    let (writer, writer_id) = db.user_on_primary("writer@example.com");
    let (other, other_id) = db.user_on_primary("other@example.com");
    db.replica.wait_caught_up(&db.primary);
    let today = Utc::now().date_naive();

    // The writer's empty day is read from the replica and cached.
    let day = db.app.get("/meals/daily", Some(&writer)).await;
    assert_eq!(day.json()["meals"], json!([]));
    assert_eq!(
        db.app.get("/stats", Some(&writer)).await.json()["logged_days"],
        0
    );

    db.replica.execute("STOP SLAVE SQL_THREAD");
    db.app
        .add_meal(&writer, json!({"name": "Curry", "calories": 700}))
        .await;

    // The writer sees the meal at once, in every view, though the replica does not have it.
    let day = db.app.get("/meals/daily", Some(&writer)).await;
    assert_eq!(day.status, StatusCode::OK);
    assert_eq!(day.json()["totals"]["calories"], 700, "{}", day.json());
    assert_eq!(
        db.app.get("/stats", Some(&writer)).await.json()["logged_days"],
        1
    );
    assert_eq!(Replicated::meal_names(&db.app, &writer).await, ["Curry"]);
    let replica_meals = db.replica.execute(&format!(
        "SELECT COUNT(*) FROM calories.meals WHERE user_id = {writer_id}"
    ));
    assert_eq!(
        replica_meals.trim(),
        "0",
        "the replica must lag for this test"
    );

    // The day the cache now holds (what every app replica serves for an hour) has the meal.
    let cached: DailySummary = db
        .app
        .state
        .cache
        .get(cached::daily(writer_id, today))
        .await
        .unwrap()
        .expect("the day was cached");
    assert_eq!(cached.totals.calories, 700);

    // Another app replica, which did not serve the write, routes the writer to the primary
    // too (the marker is in the shared cache).
    let second = db.app.replica().await;
    assert_eq!(Replicated::meal_names(&second, &writer).await, ["Curry"]);

    // Someone who did not write still reads from the (lagging) replica.
    db.meal_on_primary(other_id, "Salad");
    assert_eq!(
        Replicated::meal_names(&db.app, &other).await,
        Vec::<String>::new()
    );

    // While the primary is known to be unreachable, a read routed to it (the writer's, in the
    // read-your-writes window) is refused at once, as it is without a replica; the others'
    // reads still go to the replica.
    db.app
        .state
        .db
        .outage
        .observe::<()>(&Err(sqlx::Error::PoolTimedOut));
    let refused = db.app.get("/meals", Some(&writer)).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.error_code(), "unavailable");
    assert!(refused.header("retry-after").is_some());
    assert_eq!(
        Replicated::meal_names(&db.app, &other).await,
        Vec::<String>::new()
    );
    db.app.state.db.outage.observe(&Ok(()));
    assert_eq!(Replicated::meal_names(&db.app, &writer).await, ["Curry"]);

    db.replica.execute("START SLAVE SQL_THREAD");
    db.replica.wait_caught_up(&db.primary);
    assert_eq!(Replicated::meal_names(&db.app, &other).await, ["Salad"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_replica_falls_back_to_the_primary_and_is_used_again_when_back() {
    let mut db = Replicated::start(Duration::from_secs(5)).await;
    let (token, id) = db.user_on_primary("fallback@example.com");
    db.meal_on_primary(id, "Rice");
    db.replica.wait_caught_up(&db.primary);
    assert_eq!(Replicated::meal_names(&db.app, &token).await, ["Rice"]);

    let warning = "the read replica is unreachable";
    let (fallbacks, warnings) = (
        unreachable_fallbacks(&db.app).await,
        log_lines_with(warning),
    );
    db.replica.stop();
    let reads = 10;
    for _ in 0..reads {
        assert_eq!(Replicated::meal_names(&db.app, &token).await, ["Rice"]);
    }
    let day = db.app.get("/meals/daily", Some(&token)).await;
    assert_eq!(day.status, StatusCode::OK);
    assert_eq!(day.json()["totals"]["calories"], 300);
    assert!(
        unreachable_fallbacks(&db.app).await >= fallbacks + f64::from(reads),
        "every read the primary answered is counted"
    );
    let logged = log_lines_with(warning) - warnings;
    assert!(
        (1..reads).contains(&(logged as u32)),
        "one warning, not one per read: {logged}"
    );

    // Back: once its retry time has passed, reads go to the replica again by themselves.
    db.replica.restart();
    let before = Replicated::app_queries(&db.replica);
    let back = support::eventually(Duration::from_secs(30), || async {
        Replicated::meal_names(&db.app, &token).await == ["Rice"]
            && Replicated::app_queries(&db.replica) > before
    })
    .await;
    assert!(back, "reads did not return to the replica");
    assert_eq!(log_lines_with("the read replica answers again"), 1);
}
