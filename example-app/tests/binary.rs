//! The real `calories-app` binary, started as a user would: defaults with no services, the curl
//! session of the README, graceful shutdown on SIGTERM, the healthcheck and seed subcommands,
//! and the production guard on `JWT_SECRET`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_calories-app");

/// A running `calories-app`, with its stdout lines on a channel; killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    lines: mpsc::Receiver<String>,
}

fn command(dir: &Path, addr: SocketAddr) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env("BIND_ADDR", addr.to_string())
        .env_remove("DATABASE_URL")
        .env_remove("CACHE_URL")
        .env_remove("APP_ENV")
        .env_remove("JWT_SECRET")
        .env_remove("PHOTO_DIR")
        .env("RUST_LOG", "info");
    cmd
}

impl Server {
    async fn start(dir: &Path, configure: impl FnOnce(&mut Command)) -> Self {
        let addr: SocketAddr = format!("127.0.0.1:{}", support::redis_support::free_port())
            .parse()
            .unwrap();
        let mut cmd = command(dir, addr);
        configure(&mut cmd);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the binary runs");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let server = Self { child, addr, lines };
        let up = support::eventually(Duration::from_secs(60), || async {
            TcpStream::connect(addr).await.is_ok()
        })
        .await;
        assert!(up, "calories-app did not start listening on {addr}");
        server
    }

    /// Waits for a stdout line containing `needle` and returns it.
    fn wait_for_line(&self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns the status and the JSON body.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    read_response(stream).await
}

async fn read_response(mut stream: TcpStream) -> (u16, Value) {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw);
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn healthcheck(dir: &Path, addr: SocketAddr) -> bool {
    command(dir, addr)
        .arg("healthcheck")
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_services_it_serves_the_readme_session_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), |_| {}).await;
    let addr = server.addr;
    assert!(
        dir.path().join("data/calories.db").is_file(),
        "the SQLite file is created in ./data"
    );

    let (status, _) = http(
        addr,
        "POST",
        "/auth/register",
        None,
        Some(json!({"email": "ann@example.com", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, login) = http(
        addr,
        "POST",
        "/auth/login",
        None,
        Some(json!({"email": "ann@example.com", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(status, 200);
    let token = login["access_token"].as_str().unwrap().to_owned();
    let (status, _) = http(
        addr,
        "POST",
        "/meals",
        Some(&token),
        Some(json!({"name": "Oatmeal", "calories": 350, "protein_g": 12})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, day) = http(addr, "GET", "/meals/daily", Some(&token), None).await;
    assert_eq!(
        (status, day["totals"]["calories"].as_i64()),
        (200, Some(350))
    );
    let (_, ready) = http(addr, "GET", "/health/ready", None, None).await;
    assert_eq!(
        (ready["database"].as_str(), ready["cache_backend"].as_str()),
        (Some("up"), Some("memory"))
    );

    assert!(
        healthcheck(dir.path(), addr),
        "healthcheck passes against a running server"
    );
    let in_production_container = command(dir.path(), addr)
        .env("APP_ENV", "production")
        .arg("healthcheck")
        .status()
        .unwrap();
    assert!(
        in_production_container.success(),
        "the healthcheck needs no JWT_SECRET"
    );
    assert!(server.terminate().success(), "SIGTERM is a clean exit");
    assert!(
        !healthcheck(dir.path(), addr),
        "healthcheck fails when nothing listens"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_request_finish() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), |cmd| {
        cmd.env("RUST_LOG", "info,tower_http=debug");
    })
    .await;
    let body =
        json!({"email": "late@example.com", "password": "correct horse battery"}).to_string();
    let (first, rest) = body.split_at(10);
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /auth/register HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    server.wait_for_line("started processing request");

    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    server.wait_for_line("shutting down");
    stream.write_all(rest.as_bytes()).await.unwrap();
    let (status, created) = read_response(stream).await;
    assert_eq!(
        (status, created["user"]["email"].as_str()),
        (201, Some("late@example.com")),
        "the in-flight request finished"
    );
    assert!(server.child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_a_missing_or_default_jwt_secret_and_logs_json() {
    let dir = tempfile::tempdir().unwrap();
    let sample = include_str!("../env.prod.sample");
    let from_sample = sample
        .lines()
        .find_map(|l| l.strip_prefix("JWT_SECRET="))
        .unwrap();
    for secret in [
        None,
        Some(calories_app::config::DEV_JWT_SECRET),
        Some("too-short"),
        // The template's value, copied unchanged: long enough for the old length rule.
        Some(from_sample),
        // 32 hex digits: 32 characters, but 128 bits.
        Some("9f86d081884c7d659a2feaa0c55ad015"),
    ] {
        let mut cmd = command(dir.path(), "127.0.0.1:9".parse().unwrap());
        cmd.env("APP_ENV", "production");
        if let Some(secret) = secret {
            cmd.env("JWT_SECRET", secret);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{secret:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("JWT_SECRET"),
            "{secret:?}"
        );
    }
    let mut server = Server::start(dir.path(), |cmd| {
        cmd.env("APP_ENV", "production").env(
            "JWT_SECRET",
            "a-long-random-secret-for-this-test-only-0123456789",
        );
    })
    .await;
    let line = server.wait_for_line("listening");
    let log: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
    assert_eq!(log["level"], "INFO");
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_fills_the_database_and_seeded_users_can_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let run_seed = |users: &str| {
        command(dir.path(), "127.0.0.1:9".parse().unwrap())
            .args(["seed", "--users", users, "--meals-per-user", "10"])
            .output()
            .unwrap()
    };
    let out = run_seed("120");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("seeded 120 users and 1200 meals"));
    let out = run_seed("30");
    assert!(out.status.success());

    let server = Server::start(dir.path(), |_| {}).await;
    let (status, login) = http(server.addr, "POST", "/auth/login", None, Some(json!({"email": "user00000150@seed.example", "password": calories_app::seed::SEED_PASSWORD}))).await;
    assert_eq!(
        status, 200,
        "the second run continued after the first's 120 users"
    );
    let token = login["access_token"].as_str().unwrap().to_owned();
    let (_, meals) = http(server.addr, "GET", "/meals", Some(&token), None).await;
    assert_eq!(meals["total"], 10);
    let (status, stats) = http(server.addr, "GET", "/stats?days=30", Some(&token), None).await;
    assert_eq!(status, 200);
    assert!(stats["logged_days"].as_i64().unwrap() > 0);
    let (status, _) = http(server.addr, "POST", "/auth/login", None, Some(json!({"email": "user00000151@seed.example", "password": calories_app::seed::SEED_PASSWORD}))).await;
    assert_eq!(status, 401, "150 users in all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_refuses_a_production_environment_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path(), "127.0.0.1:9".parse().unwrap())
        .env("APP_ENV", "production")
        .env(
            "JWT_SECRET",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        )
        .args(["seed", "--users", "5", "--meals-per-user", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("seed refuses APP_ENV=production"),
        "{stderr}"
    );
    // Refused before connecting: not even the database file was made.
    assert!(!dir.path().join("data/calories.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_in_production_needs_no_jwt_secret_but_serve_does() {
    let dir = tempfile::tempdir().unwrap();
    // The migrate container of docker-compose.yml and k8s-example gets no JWT_SECRET.
    let out = command(dir.path(), "127.0.0.1:9".parse().unwrap())
        .env("APP_ENV", "production")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("data/calories.db").exists());
    let out = command(dir.path(), "127.0.0.1:9".parse().unwrap())
        .env("APP_ENV", "production")
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("JWT_SECRET"));
}
