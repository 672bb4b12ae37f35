//! Test support for the workspace's tests: real servers on loopback (`redis-server`, a Redis
//! Cluster), started and stopped by the tests, a fault-injecting proxy ([`FaultProxy`]) to put
//! between a client and a server, run-time certificates ([`pki`]), and
//! [`on_every_backend!`], which runs one test body on memory, Redis, Redis behind a local tier
//! and Redis Cluster.
//!
//! A crate of its own, never published, rather than a `tests/support` folder the other crates
//! reach into with `#[path]`: a published crate may not include files outside its folder. Test
//! code: a failed setup is a panic that names what failed.
#![allow(
    missing_docs,
    missing_debug_implementations,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::len_without_is_empty,
    clippy::new_without_default
)]

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_core::{Cache, CacheBuilder};

pub mod cluster;
pub mod pki;
pub mod proxy;

pub use cluster::RedisCluster;
pub use proxy::{FaultProxy, Mode};

/// A `redis-server` on 127.0.0.1 in a temporary directory, killed when dropped.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    tls: Option<Tls>,
}

/// A TLS port and the files the server reads its certificate from.
#[derive(Clone)]
struct Tls {
    port: u16,
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Starts a server that also speaks TLS on a second port ([`tls_url`](Self::tls_url)),
    /// with the certificate, key and CA certificate in these PEM files; clients need no
    /// certificate. The plain port stays open, for looking behind the client's back.
    pub fn start_tls(cert: &Path, key: &Path, ca: &Path) -> Self {
        Self::start_with(Some(Tls {
            port: 0,
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            ca: ca.to_path_buf(),
        }))
    }

    fn start_with(tls: Option<Tls>) -> Self {
        // Another test may take the free port between our probe and the server's bind: retry.
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir for redis-server");
            let mut server = Self {
                port: free_port(),
                dir,
                child: None,
                tls: tls.clone().map(|tls| Tls {
                    port: free_port(),
                    ..tls
                }),
            };
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start after 5 attempts");
    }

    fn spawn(&mut self) -> bool {
        let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
        let log = self.dir.path().join("redis.log");
        let child = Command::new(&binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .args(self.tls.iter().flat_map(|tls| {
                [
                    "--tls-port".into(),
                    tls.port.to_string().into(),
                    "--tls-cert-file".into(),
                    tls.cert.clone().into_os_string(),
                    "--tls-key-file".into(),
                    tls.key.clone().into_os_string(),
                    "--tls-ca-cert-file".into(),
                    tls.ca.clone().into_os_string(),
                    "--tls-auth-clients".into(),
                    "no".into(),
                ]
            }))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {binary:?} ({e}): install redis-server (scripts/test.sh does it with apt-get)")
            });
        self.child = Some(child);
        self.wait_until_ready()
    }

    fn wait_until_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(Ok(Some(_exited))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return false;
            }
            if self.ping() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    fn ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
            return false;
        };
        redis::cmd("PING").query::<String>(&mut conn).is_ok()
    }

    /// `redis://127.0.0.1:PORT/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rediss://127.0.0.1:TLS_PORT/0`, for a server started with [`start_tls`](Self::start_tls).
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}/0", self.tls_port())
    }

    /// The TLS port, for a server started with [`start_tls`](Self::start_tls).
    pub fn tls_port(&self) -> u16 {
        self.tls
            .as_ref()
            .expect("a server started with start_tls")
            .port
    }

    /// Where it keeps its files and log.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Kills the server; connections to it break at once.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: it persists nothing).
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.spawn(),
            "redis-server did not restart on port {}",
            self.port
        );
    }

    /// A plain connection, for looking behind the cache's back.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .expect("connect to the test redis-server")
    }

    /// `INFO commandstats` as (command, calls) pairs.
    pub fn command_calls(&self) -> Vec<(String, u64)> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.connection())
            .unwrap();
        info.lines()
            .filter_map(|line| {
                let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))?
                    .parse()
                    .ok()?;
                Some((name.to_owned(), calls))
            })
            .collect()
    }

    /// How many times `command` has run since the server started.
    pub fn calls(&self, command: &str) -> u64 {
        self.command_calls()
            .into_iter()
            .find(|(name, _)| name == command)
            .map_or(0, |(_, calls)| calls)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    listener.local_addr().expect("local addr").port()
}

/// True while something accepts connections on the port.
pub fn listening(port: u16) -> bool {
    TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// The backend a behavioural test runs on.
pub enum Fixture {
    Memory,
    Redis(RedisServer),
    /// Redis with a local tier in front (one replica's view).
    Tiered(RedisServer),
    /// The test binary's shared cluster (see [`Fixture::cluster`]) and this test's namespace.
    Cluster {
        cluster: &'static RedisCluster,
        namespace: String,
    },
}

impl Fixture {
    pub fn memory() -> Self {
        Self::Memory
    }

    pub fn redis() -> Self {
        Self::Redis(RedisServer::start())
    }

    pub fn tiered() -> Self {
        Self::Tiered(RedisServer::start())
    }

    /// The Redis server behind a remote fixture.
    pub fn server(&self) -> Option<&RedisServer> {
        match self {
            Self::Memory => None,
            Self::Redis(server) | Self::Tiered(server) => Some(server),
            Self::Cluster { .. } => None,
        }
    }

    /// The test binary's one Redis Cluster, with a namespace no other test of the binary uses.
    ///
    /// Shared because a cluster takes over 2 s to start (a master waits 2 s after its start
    /// before it declares the cluster ok): one per test would add minutes to the suite. The
    /// tests stay isolated by namespace: [`builder`](Self::builder) and [`cache`](Self::cache)
    /// use this test's own, and a test that sets a namespace itself must pick one no other
    /// test of its binary uses.
    pub fn cluster() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        Self::Cluster {
            cluster: RedisCluster::shared(),
            namespace: format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed)),
        }
    }

    /// A builder pointed at this fixture's backend.
    pub fn builder(&self) -> CacheBuilder {
        match self {
            Self::Memory => Cache::builder(),
            Self::Redis(server) => Cache::builder().url(server.url()),
            Self::Tiered(server) => Cache::builder()
                .url(server.url())
                .local_tier(10_000, Duration::from_secs(60)),
            Self::Cluster { cluster, namespace } => {
                Cache::builder().url(cluster.url()).namespace(namespace)
            }
        }
    }

    /// The URL of this fixture's backend, `None` for memory.
    pub fn url(&self) -> Option<String> {
        match self {
            Self::Memory => None,
            Self::Redis(server) | Self::Tiered(server) => Some(server.url()),
            Self::Cluster { cluster, .. } => Some(cluster.url()),
        }
    }

    /// A cache with the default settings on this fixture's backend.
    pub async fn cache(&self) -> Cache {
        self.builder().build().await.expect("build the cache")
    }

    /// True for a remote backend: a Redis server or a cluster.
    pub fn is_redis(&self) -> bool {
        matches!(
            self,
            Self::Redis(_) | Self::Tiered(_) | Self::Cluster { .. }
        )
    }
}

/// Polls `check` until it holds or `limit` passes; true when it held.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs each named `async fn(&Fixture)` body as four tests, `memory::NAME`, `redis::NAME`,
/// `tiered::NAME` (Redis behind a local tier) and `cluster::NAME`, each on its own backend (a
/// fresh redis-server for every Redis and tiered test, the binary's shared cluster with a
/// namespace of its own for every cluster test). The `actix:` form runs them on actix-web's
/// runtime instead of a multi-threaded tokio one.
#[macro_export]
macro_rules! on_every_backend {
    (actix: $($name:ident),* $(,)?) => {
        $crate::on_every_backend!(@with [actix_web::test] $($name),*);
    };
    ($($name:ident),* $(,)?) => {
        $crate::on_every_backend!(@with [tokio::test(flavor = "multi_thread", worker_threads = 2)] $($name),*);
    };
    (@with [$attr:meta] $($name:ident),*) => {
        mod memory {
            $(
                #[$attr]
                async fn $name() {
                    super::$name(&$crate::Fixture::memory()).await;
                }
            )*
        }
        mod redis {
            $(
                #[$attr]
                async fn $name() {
                    super::$name(&$crate::Fixture::redis()).await;
                }
            )*
        }
        mod tiered {
            $(
                #[$attr]
                async fn $name() {
                    super::$name(&$crate::Fixture::tiered()).await;
                }
            )*
        }
        mod cluster {
            $(
                #[$attr]
                async fn $name() {
                    super::$name(&$crate::Fixture::cluster()).await;
                }
            )*
        }
    };
}
