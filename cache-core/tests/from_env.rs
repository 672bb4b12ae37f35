//! `Cache::from_env` reads `CACHE_URL`. Each case runs in a child process of this test binary
//! with its own environment, since the environment is process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use cache_test_support as support;

use std::process::Command;

use cache_core::Cache;
use support::RedisServer;

const EXPECT: &str = "FROM_ENV_EXPECT";

/// In the child: build from the environment and check the outcome named by `FROM_ENV_EXPECT`.
async fn child(expect: &str) {
    match (Cache::from_env().await, expect) {
        (Ok(cache), "memory" | "redis") => assert_eq!(cache.backend_name(), expect),
        (Err(err), "config") => assert!(err.is_config(), "{err}"),
        (Err(err), "connect") => assert!(
            err.to_string().contains("cannot connect to Redis at"),
            "{err}"
        ),
        (outcome, _) => panic!("expected {expect}, got {outcome:?}"),
    }
}

#[tokio::test]
async fn from_env_follows_cache_url() {
    if let Ok(expect) = std::env::var(EXPECT) {
        return child(&expect).await;
    }
    let server = RedisServer::start();
    let live = server.url();
    let dead = format!("redis://127.0.0.1:{}/0", support::free_port());
    let cases = [
        (None, "memory"),
        (Some(""), "memory"),
        (Some("memory://"), "memory"),
        (Some(live.as_str()), "redis"),
        (Some("redis//nope"), "config"),
        (Some(dead.as_str()), "connect"),
    ];
    for (url, expect) in cases {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "from_env_follows_cache_url",
            "--test-threads",
            "1",
        ])
        .env(EXPECT, expect);
        match url {
            Some(url) => cmd.env("CACHE_URL", url),
            None => cmd.env_remove("CACHE_URL"),
        };
        let output = cmd.output().unwrap();
        assert!(
            output.status.success(),
            "CACHE_URL={url:?}: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}
