//! Every class of bad input gets a 4xx with a JSON `{"error": {"code", "message"}}` body and
//! changes nothing in the database or the photo folder, on both stacks.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Resp, Stack, TestApp, images, multipart};

both_stacks!(
    malformed_bodies_are_refused_and_change_nothing,
    bad_numbers_dates_and_time_zones_are_refused_and_change_nothing,
    bad_queries_and_paths_are_refused,
    bad_uploads_are_refused_and_leave_no_file,
    bad_or_expired_tokens_are_401,
    sql_looking_input_is_data_not_sql,
);

/// The parts of a multipart form: name, file name for files, content.
type Form<'a> = Vec<(&'a str, Option<&'a str>, &'a [u8])>;

/// Asserts a 4xx with the error shape and, when given, the code.
fn refused(resp: &Resp, status: StatusCode, code: &str, what: &str) {
    assert_eq!(
        resp.status,
        status,
        "{what}: {}",
        String::from_utf8_lossy(&resp.body)
    );
    assert_eq!(resp.error_code(), code, "{what}");
    assert!(
        resp.header("content-type")
            .unwrap()
            .starts_with("application/json"),
        "{what}"
    );
}

async fn malformed_bodies_are_refused_and_change_nothing(stack: Stack) {
    let app = TestApp::start(stack).await;
    let (token, _) = app.register("body@example.com").await;
    app.add_meal(&token, json!({"name": "Kept", "calories": 100}))
        .await;
    let before = app.snapshot().await;
    let t = Some(token.as_str());
    let json_type = Some("application/json");
    let cases: Vec<(&str, Option<&str>, String, StatusCode, &str)> = vec![
        (
            "/meals",
            json_type,
            "{\"name\": \"Oats\", \"calories\": ".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "/meals",
            json_type,
            "not json at all".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "/meals",
            json_type,
            "".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "/meals",
            json_type,
            json!({"name": "Oats", "calories": "many"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "/meals",
            json_type,
            json!({"name": 5, "calories": 100}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "/meals",
            json_type,
            json!({"calories": 100}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "/meals",
            json_type,
            json!({"name": "Oats"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "/meals",
            json_type,
            json!({"name": "Oats", "calories": 1, "owner": 2}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "/meals",
            json_type,
            json!([1, 2, 3]).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "/meals",
            json_type,
            "{\"name\": \"Oats\", \"calories\": 1e999}".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "/meals",
            json_type,
            json!({"name": "Oats", "calories": 99_999_999_999_999_999_u64}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "/meals",
            json_type,
            "{\"name\": \"Oats\", \"calories\": 100000000000000000000}".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "/meals",
            Some("text/plain"),
            json!({"name": "Oats", "calories": 1}).to_string(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "/meals",
            None,
            json!({"name": "Oats", "calories": 1}).to_string(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "/meals",
            json_type,
            json!({"name": "x".repeat(100_000), "calories": 1}).to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "/auth/register",
            json_type,
            json!({"email": "a@b.co"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "/auth/register",
            json_type,
            "{\"email\":".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "/auth/login",
            json_type,
            json!({"email": ["a"], "password": "x"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "/auth/login",
            Some("application/x-www-form-urlencoded"),
            "email=a&password=b".into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
    ];
    for (uri, content_type, body, status, code) in cases {
        let what = format!(
            "POST {uri} {content_type:?} {}",
            body.chars().take(60).collect::<String>()
        );
        let resp = app.call(Method::POST, uri, t, content_type, body).await;
        refused(&resp, status, code, &what);
    }
    let patch = app
        .call(
            Method::PATCH,
            "/users/me",
            t,
            Some("application/json"),
            "{\"name\": \"Pat\",",
        )
        .await;
    refused(
        &patch,
        StatusCode::BAD_REQUEST,
        "invalid_json",
        "PATCH with broken JSON",
    );
    let unknown = app
        .patch("/users/me", t, json!({"email": "new@example.com"}))
        .await;
    refused(
        &unknown,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
        "PATCH of a field that cannot change",
    );
    refused(
        &app.call(Method::PUT, "/meals", t, None, "").await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "PUT /meals",
    );
    refused(
        &app.get("/no/such/route", t).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "unknown route",
    );
    assert_eq!(
        app.snapshot().await,
        before,
        "bad bodies changed the database"
    );
}

async fn bad_numbers_dates_and_time_zones_are_refused_and_change_nothing(stack: Stack) {
    let app = TestApp::start(stack).await;
    let (token, _) = app.register("numbers@example.com").await;
    let before = app.snapshot().await;
    let t = Some(token.as_str());
    let tomorrow_plus = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    let bad_meals: Vec<Value> = vec![
        json!({"name": "Oats", "calories": -1}),
        json!({"name": "Oats", "calories": 10_001}),
        json!({"name": "Oats", "calories": 100, "protein_g": -0.5}),
        json!({"name": "Oats", "calories": 100, "fat_g": 1e9}),
        json!({"name": "Oats", "calories": 100, "carbs_g": 1001}),
        json!({"name": "", "calories": 100}),
        json!({"name": "   ", "calories": 100}),
        json!({"name": "x".repeat(201), "calories": 100}),
        json!({"name": "bell\u{7}", "calories": 100}),
        json!({"name": "Oats", "calories": 100, "eaten_at": "yesterday"}),
        json!({"name": "Oats", "calories": 100, "eaten_at": "2026-13-45T10:00:00Z"}),
        json!({"name": "Oats", "calories": 100, "eaten_at": "2026-02-30T10:00:00Z"}),
        json!({"name": "Oats", "calories": 100, "eaten_at": "2026-01-01"}),
        json!({"name": "Oats", "calories": 100, "eaten_at": "1999-12-31T23:59:59Z"}),
        json!({"name": "Oats", "calories": 100, "eaten_at": tomorrow_plus}),
    ];
    for meal in bad_meals {
        refused(
            &app.post("/meals", t, meal.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            &meal.to_string(),
        );
    }
    let bad_users: Vec<Value> = vec![
        json!({"email": "not-an-email", "password": "correct horse battery"}),
        json!({"email": "a@b", "password": "correct horse battery"}),
        json!({"email": "two words@example.com", "password": "correct horse battery"}),
        json!({"email": "ok@example.com", "password": "short"}),
        json!({"email": "ok@example.com", "password": "p".repeat(129)}),
        json!({"email": "ok@example.com", "password": "correct horse battery", "time_zone": "Mars/Olympus_Mons"}),
        json!({"email": "ok@example.com", "password": "correct horse battery", "time_zone": ""}),
        json!({"email": "ok@example.com", "password": "correct horse battery", "daily_goal": 0}),
        json!({"email": "ok@example.com", "password": "correct horse battery", "daily_goal": 1_000_000}),
        json!({"email": "ok@example.com", "password": "correct horse battery", "name": "n".repeat(101)}),
    ];
    for user in bad_users {
        refused(
            &app.post("/auth/register", None, user.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            &user.to_string(),
        );
    }
    for patch in [
        json!({"time_zone": "Europe/Atlantis"}),
        json!({"daily_goal": -2000}),
        json!({"name": "\u{0}"}),
    ] {
        refused(
            &app.patch("/users/me", t, patch.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            &patch.to_string(),
        );
    }
    assert_eq!(
        app.snapshot().await,
        before,
        "bad values changed the database"
    );
    assert_eq!(app.get("/users/me", t).await.json()["time_zone"], "UTC");
}

async fn bad_queries_and_paths_are_refused(stack: Stack) {
    let app = TestApp::start(stack).await;
    let (token, _) = app.register("query@example.com").await;
    let t = Some(token.as_str());
    let cases = [
        (
            "/meals/daily?date=2026-02-30",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "/meals/daily?date=tomorrow",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "/meals/daily?date=1850-01-01",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "/meals/daily?day=2026-01-01",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/stats?days=14",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        ("/stats?days=-7", StatusCode::BAD_REQUEST, "invalid_query"),
        (
            "/stats?days=seven",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/meals?page=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "/meals?page=-3",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "/meals?page=99999999999",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "/meals?page=99999999999999999999999",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/meals?per_page=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "/meals?per_page=ten",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        ("/meals/abc", StatusCode::BAD_REQUEST, "invalid_path"),
        (
            "/meals/1%20OR%201=1",
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            "/meals/99999999999999999999999",
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        ("/meals/-1", StatusCode::NOT_FOUND, "not_found"),
        ("/meals/0/photo", StatusCode::NOT_FOUND, "not_found"),
        (
            "/foods?page=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "/foods?q=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        ("/foods?limit=5", StatusCode::BAD_REQUEST, "invalid_query"),
    ];
    for (uri, status, code) in cases {
        refused(&app.get(uri, t).await, status, code, uri);
    }
    refused(
        &app.delete("/meals/abc", t).await,
        StatusCode::BAD_REQUEST,
        "invalid_path",
        "DELETE /meals/abc",
    );
}

async fn bad_uploads_are_refused_and_leave_no_file(stack: Stack) {
    let app = TestApp::start(stack).await;
    let (token, _) = app.register("upload@example.com").await;
    let before = app.snapshot().await;
    let t = Some(token.as_str());
    let oversize = {
        let mut png = images::PNG.to_vec();
        png.resize(5 * 1024 * 1024 + 1, 0);
        png
    };
    let text: &[u8] = b"just some text, not an image";
    let cases: Vec<(Form<'_>, StatusCode, &str)> = vec![
        (
            vec![
                ("name", None, b"Cake"),
                ("calories", None, b"400"),
                ("photo", Some("cake.gif"), images::GIF),
            ],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            vec![
                ("name", None, b"Cake"),
                ("calories", None, b"400"),
                ("photo", Some("cake.jpg"), text),
            ],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            vec![
                ("name", None, b"Cake"),
                ("calories", None, b"400"),
                ("photo", Some("empty.png"), b""),
            ],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            vec![
                ("name", None, b"Cake"),
                ("calories", None, b"400"),
                ("photo", Some("big.png"), &oversize),
            ],
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            vec![("name", None, b"Cake"), ("calories", None, b"400")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            vec![
                ("name", None, b"Cake"),
                ("photo", Some("c.png"), images::PNG),
            ],
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            vec![
                ("name", None, b"Cake"),
                ("calories", None, b"lots"),
                ("photo", Some("c.png"), images::PNG),
            ],
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            vec![
                ("name", None, b"Cake"),
                ("calories", None, b"-5"),
                ("photo", Some("c.png"), images::PNG),
            ],
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            vec![
                ("name", None, b""),
                ("calories", None, b"5"),
                ("photo", Some("c.png"), images::PNG),
            ],
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            vec![
                ("name", None, b"Cake"),
                ("calories", None, b"5"),
                ("eaten_at", None, b"noon"),
                ("photo", Some("c.png"), images::PNG),
            ],
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            vec![
                ("name", None, b"Cake"),
                ("calories", None, b"5"),
                ("user_id", None, b"1"),
                ("photo", Some("c.png"), images::PNG),
            ],
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ];
    for (parts, status, code) in cases {
        let names: Vec<&str> = parts.iter().map(|p| p.0).collect();
        let (content_type, body) = multipart(&parts);
        let resp = app
            .call(Method::POST, "/meals/upload", t, Some(&content_type), body)
            .await;
        refused(&resp, status, code, &format!("upload with {names:?}"));
    }
    let json_instead = app
        .post("/meals/upload", t, json!({"name": "Cake", "calories": 1}))
        .await;
    assert!(
        json_instead.status.is_client_error(),
        "{}",
        json_instead.status
    );
    json_instead.error_code();
    let (_, body) = multipart(&[("photo", Some("c.png"), images::PNG)]);
    let no_boundary = app
        .call(
            Method::POST,
            "/meals/upload",
            t,
            Some("multipart/form-data"),
            body,
        )
        .await;
    assert!(no_boundary.status.is_client_error());
    no_boundary.error_code();
    let truncated = app
        .call(
            Method::POST,
            "/meals/upload",
            t,
            Some("multipart/form-data; boundary=xyz"),
            "--xyz\r\nContent-Disposition: form-data; name=\"photo\"\r\n\r\nPNG",
        )
        .await;
    assert!(truncated.status.is_client_error());
    truncated.error_code();
    let huge_body = vec![b'a'; 7 * 1024 * 1024];
    let (content_type, _) = multipart(&[]);
    let too_big = app
        .call(
            Method::POST,
            "/meals/upload",
            t,
            Some(&content_type),
            huge_body,
        )
        .await;
    refused(
        &too_big,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "a 7 MiB body",
    );
    assert_eq!(
        app.snapshot().await,
        before,
        "bad uploads changed the database or left a file"
    );
}

async fn bad_or_expired_tokens_are_401(stack: Stack) {
    let app = TestApp::start(stack).await;
    let (token, id) = app.register("tokens@example.com").await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sign = |secret: &str, exp: u64| {
        let claims = json!({"sub": id.to_string(), "iat": now - 7200, "exp": exp});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let expired = sign(&app.config.jwt_secret, now - 1);
    let forged = sign("someone-elses-secret-someone-elses", now + 3600);
    let mut tampered = token.clone();
    tampered.insert(tampered.len() / 2, 'x');
    let none_alg = format!(
        "{}.{}.",
        b64("{\"alg\":\"none\"}"),
        b64(&format!("{{\"sub\":\"{id}\",\"exp\":{}}}", now + 3600))
    );
    for (what, header) in [
        ("no header", None),
        ("empty bearer", Some("Bearer ".to_owned())),
        ("basic scheme", Some(format!("Basic {token}"))),
        ("garbage", Some("Bearer not.a.jwt".to_owned())),
        ("forged", Some(format!("Bearer {forged}"))),
        ("tampered", Some(format!("Bearer {tampered}"))),
        ("alg none", Some(format!("Bearer {none_alg}"))),
    ] {
        let mut request = axum::http::Request::get("/meals/daily");
        if let Some(header) = header {
            request = request.header("authorization", header);
        }
        let resp = app
            .send(request.body(axum::body::Body::empty()).unwrap())
            .await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{what}");
        assert!(
            ["unauthorized", "invalid_token"].contains(&resp.error_code().as_str()),
            "{what}"
        );
    }
    let resp = app.get("/users/me", Some(&expired)).await;
    refused(
        &resp,
        StatusCode::UNAUTHORIZED,
        "token_expired",
        "expired token",
    );
    let before = app.snapshot().await;
    let write = app
        .post(
            "/meals",
            Some(&forged),
            json!({"name": "Oats", "calories": 100}),
        )
        .await;
    refused(
        &write,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "write with a forged token",
    );
    assert_eq!(app.snapshot().await, before);
    assert_eq!(
        app.get("/users/me", Some(&token)).await.status,
        StatusCode::OK,
        "the real token still works"
    );
}

fn b64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

async fn sql_looking_input_is_data_not_sql(stack: Stack) {
    let app = TestApp::start(stack).await;
    let hostile = "Robert'); DROP TABLE meals; -- \" OR 1=1 /*";
    let (token, _) = app
        .register_with(
            json!({"email": "bobby@example.com", "password": "' OR '1'='1' --", "name": hostile}),
        )
        .await;
    let meal = app
        .add_meal(&token, json!({"name": hostile, "calories": 100}))
        .await;
    assert_eq!(meal["name"], hostile);
    assert_eq!(
        app.get(&format!("/meals/{}", meal["id"]), Some(&token))
            .await
            .json()["name"],
        hostile
    );
    assert_eq!(
        app.get("/users/me", Some(&token)).await.json()["name"],
        hostile
    );
    let login = app
        .post(
            "/auth/login",
            None,
            json!({"email": "bobby@example.com' --", "password": "x"}),
        )
        .await;
    refused(
        &login,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "SQL in the email",
    );
    let login = app
        .post(
            "/auth/login",
            None,
            json!({"email": "bobby@example.com", "password": "' OR '1'='1' --"}),
        )
        .await;
    assert_eq!(
        login.status,
        StatusCode::OK,
        "the odd password is just a password"
    );
    let snapshot = app.snapshot().await;
    assert_eq!((snapshot.users, snapshot.meals), (1, 1), "tables intact");
}
