//! Test support for calories-app: the app on either stack, driven in-process through its router.
//!
//! - `Stack::SqliteMemory`: a SQLite file in a temp dir and the memory cache (what `cargo run` uses);
//! - `Stack::MariaDbRedis`: a fresh database on one MariaDB server per test binary, and a
//!   `redis-server` per test, both real, on 127.0.0.1 (`scripts/test.sh` installs them).
//!
//! `both_stacks!(name, ..)` turns each `async fn name(stack: Stack)` into two tests,
//! `name::sqlite_memory` and `name::mariadb_redis`, from one body.
#![allow(
    dead_code,
    unused_macros,
    unused_imports,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

pub mod app_process;
pub mod mariadb;
pub use cache_test_support as redis_support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use calories_app::{AppState, Config, router};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub use redis_support::RedisServer;

/// Which database and cache an app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    SqliteMemory,
    MariaDbRedis,
}

/// Two `#[tokio::test]`s per listed `async fn name(stack: Stack)`: one per stack.
macro_rules! both_stacks {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_memory() {
                super::$name($crate::support::Stack::SqliteMemory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mariadb_redis() {
                super::$name($crate::support::Stack::MariaDbRedis).await;
            }
        }
    )*};
}

static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// One running app (its router, in-process) with the servers and folders it uses.
pub struct TestApp {
    pub stack: Stack,
    pub state: AppState,
    router: Router,
    pub config: Config,
    redis: Option<std::sync::Arc<RedisServer>>,
    _dir: std::sync::Arc<tempfile::TempDir>,
}

/// A response, buffered.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error code of a `{"error": {"code": ..}}` body, checking the shape on the way.
    pub fn error_code(&self) -> String {
        let body = self.json();
        assert!(
            body["error"]["message"].is_string(),
            "no error message in {body}"
        );
        body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {body}"))
            .to_owned()
    }
}

impl TestApp {
    /// The app on `stack` with test settings (generous rate limits).
    pub async fn start(stack: Stack) -> Self {
        Self::start_with(stack, |_| {}).await
    }

    /// As [`TestApp::start`], with the configuration changed by `tweak`.
    pub async fn start_with(stack: Stack, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            photo_dir: dir.path().join("photos"),
            jwt_secret: "test-secret-test-secret-test-secret".to_owned(),
            rate_limit_per_minute: 10_000,
            rate_limit_anon_per_minute: 10_000,
            rate_limit_auth_per_minute: 10_000,
            uploads_per_minute: 10_000,
            database_max_connections: 5,
            ..Config::default()
        };
        let redis = match stack {
            Stack::SqliteMemory => {
                config.database_url = format!("sqlite://{}/calories.db", dir.path().display());
                None
            }
            Stack::MariaDbRedis => {
                let n = NEXT_DB.fetch_add(1, Ordering::Relaxed);
                let name = format!("calories_{}_{n}", std::process::id());
                config.database_url = mariadb::shared().create_database(&name);
                let redis = RedisServer::start();
                config.cache_url = Some(redis.url());
                Some(std::sync::Arc::new(redis))
            }
        };
        tweak(&mut config);
        let state = AppState::new(config.clone()).await.expect("the app starts");
        Self {
            stack,
            router: router(state.clone()),
            state,
            config,
            redis,
            _dir: std::sync::Arc::new(dir),
        }
    }

    /// The app on the MySQL/MariaDB database at `database_url` (a server the test started, such
    /// as a replication primary) with a fresh Redis, and the test settings changed by `tweak`.
    pub async fn start_on(database_url: String, tweak: impl FnOnce(&mut Config)) -> Self {
        let redis = RedisServer::start();
        let cache_url = redis.url();
        let mut app = Self::start_with(Stack::SqliteMemory, |config| {
            config.database_url = database_url;
            config.cache_url = Some(cache_url);
            tweak(config);
        })
        .await;
        app.stack = Stack::MariaDbRedis;
        app.redis = Some(std::sync::Arc::new(redis));
        app
    }

    /// A second instance on the same database, cache and photo folder: another replica.
    pub async fn replica(&self) -> Self {
        let state = AppState::new(self.config.clone())
            .await
            .expect("the replica starts");
        Self {
            stack: self.stack,
            router: router(state.clone()),
            state,
            config: self.config.clone(),
            redis: self.redis.clone(),
            _dir: self._dir.clone(),
        }
    }

    /// Stops this app's Redis (only while no replica shares it).
    pub fn stop_redis(&mut self) {
        let redis = self.redis.as_mut().expect("this stack has no Redis");
        std::sync::Arc::get_mut(redis)
            .expect("a replica shares this Redis")
            .stop();
    }

    /// Restarts this app's Redis on the same port (only while no replica shares it).
    pub fn restart_redis(&mut self) {
        let redis = self.redis.as_mut().expect("this stack has no Redis");
        std::sync::Arc::get_mut(redis)
            .expect("a replica shares this Redis")
            .restart();
    }

    pub fn redis(&self) -> Option<&RedisServer> {
        self.redis.as_deref()
    }

    pub fn photo_dir(&self) -> PathBuf {
        self.config.photo_dir.clone()
    }

    pub async fn send(&self, request: Request<Body>) -> Resp {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Resp {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> Resp {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        self.send(request.body(body.into()).expect("request")).await
    }

    pub async fn get(&self, uri: &str, token: Option<&str>) -> Resp {
        self.call(Method::GET, uri, token, None, Body::empty())
            .await
    }

    pub async fn post(&self, uri: &str, token: Option<&str>, json: Value) -> Resp {
        self.call(
            Method::POST,
            uri,
            token,
            Some("application/json"),
            json.to_string(),
        )
        .await
    }

    pub async fn patch(&self, uri: &str, token: Option<&str>, json: Value) -> Resp {
        self.call(
            Method::PATCH,
            uri,
            token,
            Some("application/json"),
            json.to_string(),
        )
        .await
    }

    pub async fn delete(&self, uri: &str, token: Option<&str>) -> Resp {
        self.call(Method::DELETE, uri, token, None, Body::empty())
            .await
    }

    /// Registers `email` (password `correct horse battery`) and returns its token and id.
    pub async fn register(&self, email: &str) -> (String, i64) {
        self.register_with(
            serde_json::json!({ "email": email, "password": "correct horse battery" }),
        )
        .await
    }

    pub async fn register_with(&self, body: Value) -> (String, i64) {
        let resp = self.post("/auth/register", None, body).await;
        assert_eq!(
            resp.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&resp.body)
        );
        let json = resp.json();
        (
            json["access_token"].as_str().unwrap().to_owned(),
            json["user"]["id"].as_i64().unwrap(),
        )
    }

    /// Logs a meal and returns its JSON.
    pub async fn add_meal(&self, token: &str, meal: Value) -> Value {
        let resp = self.post("/meals", Some(token), meal).await;
        assert_eq!(
            resp.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&resp.body)
        );
        resp.json()
    }

    /// Rows per table and files in the photo folder: what "changes nothing" is checked against.
    pub async fn snapshot(&self) -> Snapshot {
        let count = |table: &'static str| async move {
            sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&self.state.db.pool)
                .await
                .unwrap()
        };
        let users: Vec<(i64, String, String, i64, String)> =
            sqlx::query_as("SELECT id, email, name, daily_goal, time_zone FROM users ORDER BY id")
                .fetch_all(&self.state.db.pool)
                .await
                .unwrap();
        let photos = std::fs::read_dir(self.photo_dir()).map_or(0, |d| d.count());
        Snapshot {
            users: count("users").await,
            meals: count("meals").await,
            profiles: users,
            photos,
        }
    }
}

/// What the database and photo folder hold.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub users: i64,
    pub meals: i64,
    pub profiles: Vec<(i64, String, String, i64, String)>,
    pub photos: usize,
}

/// A tiny valid image of each accepted kind, and things that are not images.
pub mod images {
    pub const PNG: &[u8] =
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
    pub const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0\xff\xd9";
    pub const WEBP: &[u8] =
        b"RIFF\x1a\0\0\0WEBPVP8L\x0d\0\0\0\x2f\0\0\0\x10\x07\x10\x11\x11\x88\x88\xfe\x07\0";
    pub const GIF: &[u8] = b"GIF89a\x01\0\x01\0\x80\0\0\0\0\0\xff\xff\xff!\xf9\x04\x01\0\0\0\0,\0\0\0\0\x01\0\x01\0\0\x02\x02D\x01\0;";
}

/// A `multipart/form-data` body: `(name, Some(filename), bytes)` for files, `None` for text.
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "calories-test-boundary-7d4a";
    let mut body = Vec::new();
    for (name, filename, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(file) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Polls `check` until it holds or `limit` passes (for effects on another task or process).
pub async fn eventually<F, Fut>(limit: Duration, check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    redis_support::eventually(limit, check).await
}
