//! The restore drill: `scripts/db-backup.sh` and `scripts/db-restore.sh` against real MariaDB
//! servers. A database seeded through the app is backed up, its server destroyed, the dump
//! restored into a fresh server, and the tables (row counts and `CHECKSUM TABLE`) and the app's
//! answers (`/meals/daily`, `/stats`) compared; bad dump files and a full backup volume are
//! refused before anything is touched.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use axum::http::StatusCode;
use serde_json::json;
use support::mariadb::MariaDb;
use support::{Stack, TestApp};

/// Seeded by `calories-app seed`'s own code: the figure the operations guide quotes.
const SEED_USERS: u64 = 10_000;
const SEED_MEALS_PER_USER: u32 = 10;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(name)
}

fn run(mut cmd: Command) -> Output {
    let output = cmd.output().expect("the script runs");
    eprintln!(
        "--- {cmd:?}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn backup(url: &str, dir: &Path) -> Output {
    let mut cmd = Command::new(script("db-backup.sh"));
    cmd.arg(dir).env("DATABASE_URL", url);
    run(cmd)
}

fn restore(url: &str, file: &Path, replace: bool) -> Output {
    let mut cmd = Command::new(script("db-restore.sh"));
    if replace {
        cmd.arg("--replace");
    }
    cmd.arg(file).env("DATABASE_URL", url);
    run(cmd)
}

/// Each table of `db` with its row count and `CHECKSUM TABLE` value.
fn tables(server: &MariaDb, db: &str) -> Vec<(String, u64, String)> {
    let names = server.execute(&format!(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = '{db}' ORDER BY table_name"
    ));
    names
        .lines()
        .map(|table| {
            let count = server
                .execute(&format!("SELECT COUNT(*) FROM `{db}`.`{table}`"))
                .trim()
                .parse()
                .unwrap();
            let checksum = server.execute(&format!("CHECKSUM TABLE `{db}`.`{table}`"));
            let checksum = checksum.split('\t').nth(1).unwrap().trim().to_owned();
            (table.to_owned(), count, checksum)
        })
        .collect()
}

fn dumps(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "gz"))
        .collect();
    files.sort();
    files
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_into_a_fresh_server_with_the_same_tables_and_answers() {
    // --- Seed: a user through the HTTP API, then the seed command's 10,000 users.
    let before = MariaDb::start();
    let url = before.create_database("calories");
    let app = TestApp::start_with(Stack::MariaDbRedis, |c| c.database_url = url.clone()).await;
    let (token, _id) = app.register("drill@example.com").await;
    for (name, calories) in [("Porridge", 420), ("Lentil soup", 380), ("Pasta", 760)] {
        app.add_meal(
            &token,
            json!({"name": name, "calories": calories, "protein_g": 20.0, "fat_g": 10.0, "carbs_g": 50.0}),
        )
        .await;
    }
    let seeded = calories_app::seed::run(&app.state.db, SEED_USERS, SEED_MEALS_PER_USER, false)
        .await
        .unwrap();
    let daily = app.get("/meals/daily", Some(&token)).await;
    let stats = app.get("/stats?days=7", Some(&token)).await;
    assert_eq!(daily.status, StatusCode::OK);
    assert_eq!(stats.status, StatusCode::OK);
    assert_eq!(daily.json()["totals"]["calories"], 1560);
    let original = tables(&before, "calories");
    let rows: u64 = original.iter().map(|t| t.1).sum();
    assert!(
        original
            .iter()
            .any(|(t, n, _)| t == "users" && *n == SEED_USERS + 1),
        "{original:?}"
    );

    // --- Back up.
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = backup(&url, dir.path());
    let backup_secs = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "db-backup.sh failed: {}",
        stderr(&out)
    );
    let files = dumps(dir.path());
    assert_eq!(files.len(), 1, "one dump: {files:?}");
    let dump = files[0].clone();
    let sha = PathBuf::from(format!("{}.sha256", dump.display()));
    assert!(sha.is_file(), "no checksum beside {}", dump.display());
    let size = std::fs::metadata(&dump).unwrap().len();

    // --- Bad files are refused before the database is touched: tried against the live database
    // with --replace, the one case where a good file would overwrite it.
    let bad = tempfile::tempdir().unwrap();
    let copy = |name: &str, bytes: &[u8], checksum: bool| {
        let path = bad.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        if checksum {
            std::fs::copy(&sha, format!("{}.sha256", path.display())).unwrap();
        }
        path
    };
    let good = std::fs::read(&dump).unwrap();
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let truncated = &good[..good.len() * 2 / 3];
    // A truncated file with a checksum that matches it: the gzip stream itself is cut.
    let cut = copy("cut.sql.gz", truncated, false);
    let cut_sum = Command::new("sha256sum").arg(&cut).output().unwrap();
    std::fs::write(format!("{}.sha256", cut.display()), &cut_sum.stdout).unwrap();
    let cases = [
        (bad.path().join("missing.sql.gz"), "does not exist"),
        (
            copy("flipped.sql.gz", &flipped, true),
            "does not match its checksum",
        ),
        (
            copy("truncated.sql.gz", truncated, true),
            "does not match its checksum",
        ),
        (copy("unsummed.sql.gz", &good, false), "has no"),
        (cut, "not a whole gzip stream"),
    ];
    for (file, why) in &cases {
        let out = restore(&url, file, true);
        assert!(!out.status.success(), "{} was restored", file.display());
        let err = stderr(&out);
        assert!(
            err.contains("REFUSED, the database was not touched") && err.contains(why),
            "{}: {err}",
            file.display()
        );
    }
    assert_eq!(
        tables(&before, "calories"),
        original,
        "a refused restore changed the database"
    );
    // And a good file into a database with tables, without --replace.
    let out = restore(&url, &dump, false);
    assert!(!out.status.success() && stderr(&out).contains("--replace"));

    // --- Destroy: the server and its data directory are gone.
    drop(app);
    drop(before);

    // --- Restore into a fresh server.
    let after = MariaDb::start();
    let url = after.create_database("calories");
    let started = Instant::now();
    let out = restore(&url, &dump, false);
    let restore_secs = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "db-restore.sh failed: {}",
        stderr(&out)
    );
    assert_eq!(
        tables(&after, "calories"),
        original,
        "row counts and checksums"
    );

    // --- The app on the restored database (and a cold cache) answers as before.
    let app = TestApp::start_with(Stack::MariaDbRedis, |c| c.database_url = url.clone()).await;
    let daily_after = app.get("/meals/daily", Some(&token)).await;
    let stats_after = app.get("/stats?days=7", Some(&token)).await;
    assert_eq!(daily_after.status, StatusCode::OK);
    assert_eq!(daily_after.json(), daily.json());
    assert_eq!(stats_after.json(), stats.json());

    eprintln!(
        "restore drill: {} seeded users ({} meals) + 1 through the API; {rows} rows in {} tables; \
         dump {size} bytes; backup {backup_secs:.1} s, restore {restore_secs:.1} s",
        seeded.users,
        seeded.meals,
        original.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_into_a_full_volume_fails_and_leaves_no_file() {
    let server = MariaDb::start();
    let url = server.create_database("calories");
    let app = TestApp::start_with(Stack::MariaDbRedis, |c| c.database_url = url.clone()).await;
    calories_app::seed::run(&app.state.db, 2_000, 10, false)
        .await
        .unwrap();
    // A 64 KiB volume, mounted in a private mount namespace (no root needed: a user namespace
    // maps the caller to root there); the listing after the run shows what was left behind.
    let volume = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--map-root-user", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o size=64k tmpfs "$1" || exit 99; "$2" "$1"; status=$?; echo "left: $(ls -A "$1")"; exit $status"#)
        .arg("sh")
        .arg(volume.path())
        .arg(script("db-backup.sh"))
        .env("DATABASE_URL", &url);
    let out = run(cmd);
    assert_ne!(
        out.status.code(),
        Some(99),
        "could not mount a small tmpfs in a user namespace: {}",
        stderr(&out)
    );
    assert!(
        !out.status.success(),
        "a backup into a full volume succeeded"
    );
    assert!(
        stderr(&out).contains("FAILED") && stderr(&out).contains("No space left on device"),
        "{}",
        stderr(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let left = stdout
        .lines()
        .find_map(|l| l.strip_prefix("left:"))
        .unwrap();
    assert_eq!(left.trim(), "", "files left on the full volume: {left}");
}
