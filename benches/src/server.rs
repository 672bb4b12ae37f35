//! The Redis the benches measure against: `BENCH_REDIS_URL` (loopback only), or a
//! `redis-server` of their own on 127.0.0.1 in a temporary directory, killed when dropped.

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Redis server on loopback, given or started.
#[derive(Debug)]
pub struct Redis {
    url: String,
    owned: Option<Owned>,
}

#[derive(Debug)]
struct Owned {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// The server at `BENCH_REDIS_URL`, or a new `redis-server` on a free loopback port.
    ///
    /// # Panics
    /// When `BENCH_REDIS_URL` is not a loopback address (the benches flood the server they
    /// are given, which must be one of this machine's), or when no server starts.
    #[must_use]
    pub fn from_env_or_start() -> Self {
        match std::env::var("BENCH_REDIS_URL") {
            Ok(url) if !url.is_empty() => {
                let host = url
                    .strip_prefix("redis://")
                    .and_then(|rest| rest.split([':', '/']).next())
                    .unwrap_or_default();
                assert!(
                    matches!(host, "127.0.0.1" | "localhost"),
                    "BENCH_REDIS_URL {url:?}: the benches only load a server on 127.0.0.1"
                );
                assert!(
                    wait_until_ready(&url, None),
                    "nothing answers PING at BENCH_REDIS_URL {url:?}"
                );
                Self { url, owned: None }
            }
            _ => Self::start(),
        }
    }

    fn start() -> Self {
        for _ in 0..5 {
            let port = free_port();
            let dir = match tempfile::tempdir() {
                Ok(dir) => dir,
                Err(err) => panic!("no temp dir for redis-server: {err}"),
            };
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot run redis-server ({e}): install it (benches/run.sh does)")
                });
            let url = format!("redis://127.0.0.1:{port}/0");
            let mut owned = Owned { child, _dir: dir };
            if wait_until_ready(&url, Some(&mut owned.child)) {
                return Self {
                    url,
                    owned: Some(owned),
                };
            }
            // Another process took the port between our probe and the server's bind.
            let _ = owned.child.kill();
            let _ = owned.child.wait();
        }
        panic!("redis-server did not start after 5 attempts");
    }

    /// `redis://127.0.0.1:PORT/0`
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(owned) = &mut self.owned {
            let _ = owned.child.kill();
            let _ = owned.child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_or(0, |a| a.port())
}

/// Pings until the server answers (10 s at most); false if it does not or the child exits.
fn wait_until_ready(url: &str, mut child: Option<&mut Child>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(Ok(Some(_))) = child.as_mut().map(|c| c.try_wait()) {
            return false;
        }
        let answered = redis::Client::open(url)
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn))
            .is_ok();
        if answered {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
