//! The access log as an operator's log pipeline (Promtail, Loki) sees it: the real binary in
//! production mode writes one JSON object per line, with the request id it echoes, the matched
//! route, status, latency and the user id, and never a password, token or email; and every field
//! the logs dashboard's LogQL reads is in those lines.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::app_process::{AppProcess, http};

const SECRET: &str = "logs-test-secret-logs-test-secret-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_one_json_line_with_its_id_route_status_latency_and_user() {
    let dir = tempfile::tempdir().unwrap();
    let app = AppProcess::start(
        dir.path(),
        &[
            ("APP_ENV", "production"),
            ("JWT_SECRET", SECRET),
            ("RUST_LOG", "info"),
            ("PHOTO_DIR", dir.path().join("photos").to_str().unwrap()),
        ],
    )
    .await;
    let email = "Secret.Person@example.com";
    let password = "correct horse battery staple";
    let register = http(
        app.addr,
        "POST",
        "/auth/register",
        &[("X-Request-Id", "drill-register-1")],
        Some(&json!({"email": email, "password": password})),
    )
    .await;
    assert_eq!(register.status, 201, "{:?}", register.body);
    assert_eq!(register.header("x-request-id"), Some("drill-register-1"));
    let token = register.body["access_token"].as_str().unwrap().to_owned();
    let user_id = register.body["user"]["id"].as_i64().unwrap();
    let bearer = format!("Bearer {token}");

    let meal = http(
        app.addr,
        "POST",
        "/meals",
        &[("Authorization", &bearer), ("X-Request-Id", "drill-meal-1")],
        Some(&json!({"name": "Porridge", "calories": 420})),
    )
    .await;
    assert_eq!(meal.status, 201);
    let meal_id = meal.body["id"].as_i64().unwrap();
    let one = http(
        app.addr,
        "GET",
        &format!("/meals/{meal_id}?note={email}"),
        &[("Authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(one.status, 200);
    // No id given: one is made and echoed. An id that could forge a log line is replaced.
    let generated = one.header("x-request-id").unwrap().to_owned();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    let hostile = http(
        app.addr,
        "GET",
        "/meals/999999",
        &[
            ("Authorization", &bearer),
            ("X-Request-Id", "x\"}{\"level\":\"ERROR"),
        ],
        None,
    )
    .await;
    assert_eq!(hostile.status, 404);
    let replaced = hostile.header("x-request-id").unwrap().to_owned();
    assert_ne!(replaced, "x\"}{\"level\":\"ERROR");
    let login_failed = http(
        app.addr,
        "POST",
        "/auth/login",
        &[("X-Request-Id", "drill-login-bad")],
        Some(&json!({"email": email, "password": "wrong password here"})),
    )
    .await;
    assert_eq!(login_failed.status, 401);

    let lines = app.lines_until(Duration::from_secs(10), |l| l.contains("drill-login-bad"));
    let records: Vec<Value> = lines
        .iter()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object ({e}): {l}"))
        })
        .collect();
    let by_id = |id: &str| {
        records
            .iter()
            .find(|r| r["request_id"] == id)
            .unwrap_or_else(|| panic!("no log line with request_id {id}:\n{}", lines.join("\n")))
            .clone()
    };
    for record in &records {
        for field in ["timestamp", "level", "message"] {
            assert!(record[field].is_string(), "no {field} in {record}");
        }
    }
    let reg = by_id("drill-register-1");
    assert_eq!(
        (&reg["route"], &reg["status"], &reg["method"], &reg["level"]),
        (
            &json!("/auth/register"),
            &json!(201),
            &json!("POST"),
            &json!("INFO")
        )
    );
    assert!(reg["latency_ms"].as_f64().unwrap() > 0.0, "{reg}");
    assert_eq!(by_id("drill-meal-1")["user_id"], user_id);
    let get = by_id(&generated);
    assert_eq!(
        (&get["route"], &get["user_id"]),
        (&json!("/meals/{id}"), &json!(user_id))
    );
    assert_eq!(by_id(&replaced)["status"], 404);
    let bad = by_id("drill-login-bad");
    assert_eq!(bad["status"], 401);
    assert!(
        bad.get("user_id").is_none(),
        "no user on a failed login: {bad}"
    );

    // Loki cannot run here (no package ships it), so its dashboard's queries are checked against
    // the real lines instead: every field they read ({{.field}}, `| json | field ...`) is there.
    let dashboard = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../k8s-example/monitoring/grafana/dashboards/calories-logs.json"),
    )
    .unwrap();
    let mut fields: Vec<String> = dashboard
        .split("{{.")
        .skip(1)
        .filter_map(|rest| rest.split_once("}}").map(|(field, _)| field.to_owned()))
        .collect();
    fields.extend(dashboard.split("| json | ").skip(1).filter_map(|rest| {
        rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .filter(|w| !w.is_empty() && *w != "line_format")
            .map(str::to_owned)
    }));
    assert!(
        fields.len() >= 5,
        "fields read by the logs dashboard: {fields:?}"
    );
    let meal_line = by_id("drill-meal-1");
    for field in &fields {
        assert!(
            meal_line.get(field).is_some(),
            "the logs dashboard reads {field:?}, which the log line lacks: {meal_line}"
        );
    }

    let all = lines.join("\n").to_lowercase();
    for secret in [
        password,
        "wrong password here",
        &token.to_lowercase(),
        &email.to_lowercase(),
        SECRET,
    ] {
        assert!(!all.contains(secret), "the log holds {secret:?}:\n{all}");
    }
}
