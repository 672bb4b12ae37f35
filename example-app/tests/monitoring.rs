//! The monitoring kit against the real programs: Prometheus (with the committed `alerts.yml`),
//! Alertmanager (with the committed `alertmanager.yml`), redis_exporter and mysqld_exporter, all
//! from the Debian packages, scraping a real `calories-app` on MariaDB and Redis that the test
//! drives with traffic. Killing Redis must make the cache alerts fire (read from Prometheus'
//! `/api/v1/alerts`) and reach Alertmanager's webhook; restarting it must resolve them. Then every
//! PromQL query of every committed dashboard runs against that Prometheus and must return data.
//! Last, `scripts/db-backup.sh` into a full volume must make `DatabaseBackupFailed` fire through
//! the Pushgateway, and a good backup must resolve it.
//!
//! Everything listens on 127.0.0.1 on ports chosen at run time, in temp dirs, and is killed on
//! `Drop`. The drill's copies of the configs differ from the committed ones only where a drill
//! must: 1 s scrape and evaluation intervals, 2 s `for:` durations, loopback addresses.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::RedisServer;
use support::app_process::{AppProcess, http};
use support::redis_support::free_port;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../k8s-example/monitoring")
}

/// A program of the monitoring stack, its output in a log file; killed on `Drop`.
struct Program {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Program {
    fn start(name: &'static str, dir: &Path, cmd: &mut Command) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {name} ({e}): scripts/test.sh installs it with apt-get")
            });
        Self { name, child, log }
    }

    /// The end of its output, for a failure message.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- {}:\n{}",
            self.name,
            lines[lines.len().saturating_sub(20)..].join("\n")
        )
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn addr(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Polls `check` every 250 ms until it returns `Some`, or panics after `limit` with `what`.
async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Prometheus' alerts: name -> state (`pending` or `firing`).
async fn alerts(prometheus: u16) -> BTreeMap<String, String> {
    let resp = http(addr(prometheus), "GET", "/api/v1/alerts", &[], None).await;
    assert_eq!(resp.status, 200, "{:?}", resp.body);
    resp.body["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["labels"]["alertname"].as_str().unwrap().to_owned(),
                a["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn query(prometheus: u16, promql: &str) -> Value {
    let path = format!("/api/v1/query?query={}", encode(promql));
    http(addr(prometheus), "GET", &path, &[], None).await.body
}

/// The webhook Alertmanager notifies: every JSON body it receives, kept.
async fn webhook(listener: tokio::net::TcpListener, bodies: Arc<Mutex<Vec<Value>>>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let bodies = bodies.clone();
        tokio::spawn(async move {
            let mut raw = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                let Ok(n) = stream.read(&mut buf).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                raw.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&raw).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        if let Ok(json) = serde_json::from_str(body) {
                            bodies.lock().await.push(json);
                        }
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                            .await;
                        return;
                    }
                }
            }
        });
    }
}

/// `(alertname, status)` pairs Alertmanager has sent to the webhook so far.
async fn notified(bodies: &Mutex<Vec<Value>>) -> BTreeSet<(String, String)> {
    bodies
        .lock()
        .await
        .iter()
        .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
        .map(|a| {
            (
                a["labels"]["alertname"].as_str().unwrap_or("").to_owned(),
                a["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Requests a user makes, over and over, until `stop`: reads that go through the cache, writes
/// that invalidate it, and anonymous searches beyond the per-IP limit (so that 429s are seen).
async fn traffic(app: std::net::SocketAddr, replica: std::net::SocketAddr, stop: Arc<AtomicBool>) {
    let register = http(
        app,
        "POST",
        "/auth/register",
        &[],
        Some(&json!({"email": "drill@example.com", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(register.status, 201, "{:?}", register.body);
    let bearer = format!("Bearer {}", register.body["access_token"].as_str().unwrap());
    let auth = [("Authorization", bearer.as_str())];
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        if round % 10 == 1 {
            let meal = json!({"name": format!("Meal {round}"), "calories": 300});
            http(app, "POST", "/meals", &auth, Some(&meal)).await;
        }
        for node in [app, replica] {
            http(node, "GET", "/meals/daily", &auth, None).await;
            http(node, "GET", "/stats?days=7", &auth, None).await;
            http(node, "GET", "/meals", &auth, None).await;
            http(node, "GET", "/foods?q=chi", &[], None).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The password the drill gives the `exporter` ACL user.
const EXPORTER_PASSWORD: &str = "exporter-test-password";

/// Creates the `exporter` user with the rules of the deploy files (which must agree), as a
/// Redis started from them has it.
fn add_exporter_user(redis: &RedisServer) {
    let compose = exporter_rules(include_str!("../docker-compose.yml"));
    let k8s = exporter_rules(include_str!("../../k8s-example/base/redis/redis.yaml"));
    assert_eq!(
        compose, k8s,
        "compose and Kubernetes give the exporter different rules"
    );
    let mut setuser = redis::cmd("ACL");
    setuser
        .arg("SETUSER")
        .arg("exporter")
        .arg("on")
        .arg(format!(">{EXPORTER_PASSWORD}"));
    for rule in compose.split_whitespace() {
        setuser.arg(rule);
    }
    setuser.query::<()>(&mut redis.connection()).unwrap();
}

/// The rules the `exporter_rules=..` lines of a deploy file add up to.
fn exporter_rules(file: &str) -> String {
    let words: Vec<&str> = file
        .lines()
        .filter_map(|l| l.trim().strip_prefix("exporter_rules="))
        .flat_map(|r| r.trim_matches(|c| c == '\'' || c == '"').split_whitespace())
        .filter(|w| !w.ends_with("exporter_rules"))
        .collect();
    assert!(words.len() > 5, "no exporter_rules lines");
    words.join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_redis_fires_the_cache_alerts_and_every_dashboard_query_returns_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // --- The service: MariaDB, Redis (with maxmemory, as in production), the real binary.
    let database = support::mariadb::shared()
        .create_database(&format!("calories_monitoring_{}", std::process::id()));
    let mut redis = RedisServer::start();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("64mb")
        .query::<()>(&mut redis.connection())
        .unwrap();
    // redis_exporter logs in as the deploy files' `exporter` ACL user (their default user is off).
    add_exporter_user(&redis);
    let app_dir = d.join("app");
    std::fs::create_dir(&app_dir).unwrap();
    // Two replicas with a local tier, so that one's writes reach the other as invalidations.
    let redis_url = redis.url();
    let settings = [
        ("DATABASE_URL", database.as_str()),
        ("CACHE_URL", redis_url.as_str()),
        ("CACHE_LOCAL_CAPACITY", "1000"),
        ("RATE_LIMIT_PER_MINUTE", "100000"),
        ("RATE_LIMIT_ANON_PER_MINUTE", "60"),
        ("RUST_LOG", "error"),
    ];
    let app = AppProcess::start(&app_dir, &settings).await;
    let replica = AppProcess::start(&app_dir, &settings).await;

    // --- The exporters.
    let redis_exporter_port = free_port();
    let _redis_exporter = Program::start(
        "redis_exporter",
        d,
        Command::new("prometheus-redis-exporter")
            .arg(format!("-redis.addr=redis://127.0.0.1:{}", redis.port()))
            .arg("-redis.user=exporter")
            .arg(format!("-redis.password={EXPORTER_PASSWORD}"))
            .arg(format!(
                "-web.listen-address=127.0.0.1:{redis_exporter_port}"
            )),
    );
    let mysqld_exporter_port = free_port();
    let mariadb_port = support::mariadb::shared().port();
    let _mysqld_exporter = Program::start(
        "mysqld_exporter",
        d,
        Command::new("prometheus-mysqld-exporter")
            .env(
                "DATA_SOURCE_NAME",
                format!("app:app@(127.0.0.1:{mariadb_port})/"),
            )
            .arg(format!(
                "--web.listen-address=127.0.0.1:{mysqld_exporter_port}"
            )),
    );

    // --- Alertmanager with the committed routing, notifying a webhook of this test.
    let hook = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_port = hook.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(webhook(hook, bodies.clone()));
    let am_config = std::fs::read_to_string(monitoring_dir().join("prometheus/alertmanager.yml"))
        .unwrap()
        .replace(
            "http://alert-receiver.invalid:8080",
            &format!("http://127.0.0.1:{hook_port}"),
        )
        .replace("group_wait: 30s", "group_wait: 1s")
        .replace("group_interval: 5m", "group_interval: 1s");
    assert!(am_config.contains(&format!("127.0.0.1:{hook_port}/page")));
    std::fs::write(d.join("alertmanager.yml"), am_config).unwrap();
    let am_port = free_port();
    let _alertmanager = Program::start(
        "alertmanager",
        d,
        Command::new("prometheus-alertmanager")
            .arg(format!(
                "--config.file={}",
                d.join("alertmanager.yml").display()
            ))
            .arg(format!(
                "--storage.path={}",
                d.join("alertmanager").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address="),
    );

    // --- The Pushgateway the backup script reports to.
    let pushgateway_port = free_port();
    let _pushgateway = Program::start(
        "pushgateway",
        d,
        Command::new("prometheus-pushgateway")
            .arg(format!("--web.listen-address=127.0.0.1:{pushgateway_port}"))
            .arg(format!(
                "--persistence.file={}",
                d.join("pushgateway.data").display()
            )),
    );

    // --- Prometheus with the committed rules, `for:` shortened to 2 s.
    let rules: String = std::fs::read_to_string(monitoring_dir().join("prometheus/alerts.yml"))
        .unwrap()
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("for: ") {
                format!("{}for: 2s", &l[..l.len() - l.trim_start().len()])
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(d.join("alerts.yml"), rules).unwrap();
    // JSON is YAML: the config is built as a value, no YAML library needed.
    let config = json!({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [d.join("alerts.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [format!("127.0.0.1:{am_port}")]}]}]},
        "scrape_configs": [
            {"job_name": "calories-app", "static_configs": [{"targets": [app.addr.to_string(), replica.addr.to_string()]}]},
            {"job_name": "redis", "static_configs": [{"targets": [format!("127.0.0.1:{redis_exporter_port}")]}]},
            {"job_name": "mysql", "static_configs": [{"targets": [format!("127.0.0.1:{mysqld_exporter_port}")]}]},
            {"job_name": "pushgateway", "honor_labels": true, "static_configs": [{"targets": [format!("127.0.0.1:{pushgateway_port}")]}]},
        ],
    });
    std::fs::write(d.join("prometheus.yml"), config.to_string()).unwrap();
    let prom_port = free_port();
    let prometheus = Program::start(
        "prometheus",
        d,
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                d.join("prometheus.yml").display()
            ))
            .arg(format!("--storage.tsdb.path={}", d.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}")),
    );

    for (name, port) in [
        ("prometheus", prom_port),
        ("alertmanager", am_port),
        ("redis_exporter", redis_exporter_port),
        ("mysqld_exporter", mysqld_exporter_port),
        ("pushgateway", pushgateway_port),
    ] {
        wait_for(
            Duration::from_secs(60),
            &format!("{name} listening on {port}"),
            || async { support::redis_support::listening(port).then_some(()) },
        )
        .await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let driver = tokio::spawn(traffic(app.addr, replica.addr, stop.clone()));
    let started = Instant::now();

    // --- Every target up, no cache alert.
    wait_for(Duration::from_secs(60), "all five targets up", || async {
        let resp = http(addr(prom_port), "GET", "/api/v1/targets", &[], None).await;
        let targets = resp.body["data"]["activeTargets"].as_array()?.clone();
        (targets.len() == 5 && targets.iter().all(|t| t["health"] == "up")).then_some(())
    })
    .await;
    // The exporter's scrapes so far ran as the `exporter` user without one denied command.
    let denied: Vec<redis::Value> = redis::cmd("ACL")
        .arg("LOG")
        .query(&mut redis.connection())
        .unwrap();
    assert!(
        denied.is_empty(),
        "the exporter user was denied: {denied:?}"
    );
    let before = alerts(prom_port).await;
    for name in ["RedisDown", "CacheCircuitBreakerOpen"] {
        assert!(
            !before.contains_key(name),
            "{name} before the drill: {before:?}"
        );
    }

    // --- Kill Redis: the cache alerts go pending, then firing, and reach the pager.
    redis.stop();
    let killed = Instant::now();
    let mut seen = BTreeSet::new();
    let deadline = killed + Duration::from_secs(60);
    loop {
        let now = alerts(prom_port).await;
        seen.extend(now.clone());
        if now.get("RedisDown").map(String::as_str) == Some("firing")
            && now.get("CacheCircuitBreakerOpen").map(String::as_str) == Some("firing")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "RedisDown and CacheCircuitBreakerOpen not both firing 60 s after Redis died: {now:?}\n{}",
            prometheus.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let fired_after = killed.elapsed();
    assert!(
        seen.contains(&("RedisDown".to_owned(), "pending".to_owned())),
        "RedisDown went through pending: {seen:?}"
    );
    wait_for(
        Duration::from_secs(30),
        "Alertmanager notifies RedisDown",
        || async {
            notified(&bodies)
                .await
                .contains(&("RedisDown".to_owned(), "firing".to_owned()))
                .then_some(())
        },
    )
    .await;
    let am_alerts = http(addr(am_port), "GET", "/api/v2/alerts", &[], None).await;
    assert!(
        am_alerts
            .body
            .to_string()
            .contains("CacheCircuitBreakerOpen"),
        "Alertmanager holds the breaker alert too: {}",
        am_alerts.body
    );

    // --- Restart Redis: both resolve, and the pager hears it.
    redis.restart();
    add_exporter_user(&redis);
    let restarted = Instant::now();
    wait_for(
        Duration::from_secs(90),
        "RedisDown and CacheCircuitBreakerOpen resolved",
        || async {
            let now = alerts(prom_port).await;
            (!now.contains_key("RedisDown") && !now.contains_key("CacheCircuitBreakerOpen"))
                .then_some(())
        },
    )
    .await;
    let resolved_after = restarted.elapsed();
    wait_for(
        Duration::from_secs(30),
        "Alertmanager sends RedisDown resolved",
        || async {
            notified(&bodies)
                .await
                .contains(&("RedisDown".to_owned(), "resolved".to_owned()))
                .then_some(())
        },
    )
    .await;

    // --- Every dashboard query on the real Prometheus. Loki panels cannot run here (Loki is
    // not packaged for Debian): they are counted apart.
    let emitted = [
        "../cache-core/src/metrics.rs",
        "src/telemetry.rs",
        "src/ratelimit.rs",
    ]
    .map(|f| std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(f)).unwrap())
    .join("\n");
    let mut checked = Vec::new();
    let mut failures = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(monitoring_dir().join("grafana/dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for path in &paths {
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (mut panels, mut queries, mut loki, mut fallbacks) = (0, 0, 0, 0);
        for panel in dashboard["panels"].as_array().unwrap() {
            panels += 1;
            let targets = panel["targets"].as_array().unwrap();
            assert!(
                !targets.is_empty(),
                "{name}: panel {} has no query",
                panel["title"]
            );
            for target in targets {
                if panel["datasource"]["type"] == "loki" {
                    loki += 1;
                    continue;
                }
                assert_eq!(
                    panel["datasource"]["uid"], "prometheus",
                    "{name}: {}",
                    panel["title"]
                );
                let expr = target["expr"]
                    .as_str()
                    .unwrap()
                    .replace("$__rate_interval", "1m");
                let result = query(prom_port, &expr).await;
                queries += 1;
                let rows = result["data"]["result"].as_array().map_or(0, Vec::len);
                // A zero fallback hides a misspelt metric: its name must be one the code emits.
                if let Some((real, _)) = expr.split_once(" or on () vector(0)") {
                    fallbacks += 1;
                    let metric = real
                        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                        .find(|w| w.contains('_') && !matches!(*w, "__rate_interval"))
                        .unwrap();
                    assert!(
                        emitted.contains(&format!("\"{metric}\"")),
                        "{name}: {}: {metric} is emitted nowhere in the code",
                        panel["title"]
                    );
                }
                if result["status"] != "success" || rows == 0 {
                    failures.push(format!("{name}: {}: {expr}: {result}", panel["title"]));
                }
            }
        }
        checked.push(format!(
            "{name}: {panels} panels, {queries} PromQL queries returned data ({fallbacks} through a zero fallback), {loki} LogQL queries not run"
        ));
    }
    assert!(
        failures.is_empty(),
        "dashboard queries without data:\n{}",
        failures.join("\n")
    );

    // --- A backup into a full volume (in a private mount namespace) fails, pushes its
    // failure, and DatabaseBackupFailed fires; a good backup resolves it.
    let pushgateway = format!("http://127.0.0.1:{pushgateway_port}");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/db-backup.sh");
    let volume = d.join("full-volume");
    std::fs::create_dir(&volume).unwrap();
    let full = Command::new("unshare")
        .args(["--mount", "--map-root-user", "sh", "-c"])
        // Filled to the last byte first: the drill's database is small enough to fit 64 KiB.
        .arg(r#"mount -t tmpfs -o size=64k tmpfs "$1" || exit 99; cat /dev/zero >"$1/filler" 2>/dev/null; exec "$2" "$1""#)
        .arg("sh")
        .arg(&volume)
        .arg(&script)
        .env("DATABASE_URL", &database)
        .env("BACKUP_PUSHGATEWAY_URL", &pushgateway)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&full.stderr);
    assert_ne!(
        full.status.code(),
        Some(99),
        "no tmpfs in a user namespace: {said}"
    );
    assert!(
        !full.status.success() && said.contains("No space left"),
        "{said}"
    );
    wait_for(
        Duration::from_secs(60),
        "DatabaseBackupFailed firing",
        || async {
            (alerts(prom_port)
                .await
                .get("DatabaseBackupFailed")
                .map(String::as_str)
                == Some("firing"))
            .then_some(())
        },
    )
    .await;
    let good = Command::new(&script)
        .arg(d)
        .env("DATABASE_URL", &database)
        .env("BACKUP_PUSHGATEWAY_URL", &pushgateway)
        .output()
        .unwrap();
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    wait_for(
        Duration::from_secs(60),
        "DatabaseBackupFailed and ...Missing resolved",
        || async {
            let now = alerts(prom_port).await;
            (!now.contains_key("DatabaseBackupFailed")
                && !now.contains_key("DatabaseBackupMissing"))
            .then_some(())
        },
    )
    .await;

    stop.store(true, Ordering::Relaxed);
    driver.await.unwrap();
    eprintln!(
        "monitoring drill: alerts firing {:.1} s after Redis died, resolved {:.1} s after it came back; states seen {seen:?}; whole drill {:.1} s\n{}",
        fired_after.as_secs_f64(),
        resolved_after.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        checked.join("\n")
    );
    drop(prometheus);
}
