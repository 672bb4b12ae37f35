//! The database pool on a real MariaDB: one ping per query (sqlx's on release), not two, and a
//! connection the server closed while it sat idle is replaced before a query can fail on it.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use calories_app::db::{Database, PING_IDLE_AFTER};
use sqlx::Row;

/// `SELECT 1` on the pool; the id MariaDB gave the connection that ran it.
async fn connection_id(db: &Database) -> u64 {
    let row = sqlx::query("SELECT CAST(CONNECTION_ID() AS SIGNED)")
        .fetch_one(&db.pool)
        .await
        .expect("the query runs");
    u64::try_from(row.get::<i64, _>(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_pool_sends_one_ping_per_query_not_two() {
    let server = support::mariadb::shared();
    let url = server.create_database("pool_pings");
    // One connection: every query below runs on it, and it can count its own pings.
    let db = Database::connect(&url, 1).await.unwrap();
    let pings = || async {
        let row = sqlx::query("SHOW SESSION STATUS LIKE 'Com_admin_commands'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        row.get::<String, _>(1).parse::<u64>().unwrap()
    };
    let before = pings().await;
    let queries = 20;
    for _ in 0..queries {
        sqlx::query("SELECT 1").fetch_one(&db.pool).await.unwrap();
    }
    let after = pings().await;
    // Each query's connection went back to the pool once (a ping on release), and the status
    // query's own. sqlx's default, a ping before each acquire too, sends twice as many.
    let sent = after - before;
    assert!(
        sent <= queries + 1,
        "{sent} pings for {queries} queries on a warm pool: the pool pings on acquire"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_closed_while_idle_is_replaced_not_failed() {
    let server = support::mariadb::shared();
    let url = server.create_database("pool_killed");
    let db = Database::connect(&url, 1).await.unwrap();
    let first = connection_id(&db).await;
    // What a server restart or `wait_timeout` does to a pooled connection.
    server.execute(&format!("KILL CONNECTION {first}"));
    // The condition is time itself: the connection must have been idle that long.
    tokio::time::sleep(PING_IDLE_AFTER + std::time::Duration::from_millis(100)).await;
    let second = connection_id(&db).await;
    assert_ne!(first, second, "the query ran on a new connection");
}
