//! The documented metrics, read back through a real `metrics` recorder.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use cache_test_support as support;

use std::sync::OnceLock;
use std::time::Duration;

use cache_core::{Cache, metrics as names};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use support::RedisServer;

const MINUTE: Duration = Duration::from_secs(60);

/// One recorder for the process; each test reads only its own namespace's series.
fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("install the recorder");
        snapshotter
    })
}

/// The recorder drains on every snapshot: tests that read it take turns.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The series of one namespace, read once: the debugging recorder drains what it reports.
type Labels = Vec<(String, String)>;

struct Series(Vec<(String, Labels, u64)>);

impl Series {
    fn take(namespace: &str) -> Self {
        let all = snapshotter()
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let labels: Vec<_> = key
                    .key()
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                let value = match value {
                    DebugValue::Counter(n) => n,
                    DebugValue::Gauge(g) => g.into_inner() as u64,
                    DebugValue::Histogram(h) => h.len() as u64,
                };
                (key.key().name().to_owned(), labels, value)
            });
        let ns = ("namespace".to_owned(), namespace.to_owned());
        Self(all.filter(|(_, labels, _)| labels.contains(&ns)).collect())
    }

    /// The sum of the series `name` whose labels include `extra` (a histogram counts samples).
    fn get(&self, name: &str, extra: &[(&str, &str)]) -> u64 {
        self.0
            .iter()
            .filter(|(n, labels, _)| {
                n == name
                    && extra
                        .iter()
                        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(.., value)| value)
            .sum()
    }
}

#[tokio::test]
async fn hits_misses_stale_and_loader_runs_are_counted_on_memory() {
    let _turn = TURN.lock().await;
    snapshotter();
    let cache = Cache::builder().namespace("m1").build().await.unwrap();
    cache.set("k", &1_u8, MINUTE).await.unwrap();
    cache.get::<u8>("k").await.unwrap();
    cache.get::<u8>("absent").await.unwrap();
    cache.get::<String>("k").await.unwrap(); // another type: stale + miss
    cache
        .get_or_insert_with("loaded", MINUTE, || async { 1_u8 })
        .await;
    cache
        .get_or_insert_with("loaded", MINUTE, || async { 1_u8 })
        .await;
    let m = Series::take("m1");
    assert_eq!(m.get(names::HITS, &[("backend", "memory")]), 2);
    assert_eq!(m.get(names::STALE, &[("reason", "other_type")]), 1);
    // absent, other type, and the read-through's miss (its re-check before loading is not counted)
    assert_eq!(m.get(names::MISSES, &[]), 3);
    assert_eq!(m.get(names::LOADER_RUNS, &[]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_timeouts_breaker_and_latency_are_recorded_on_redis() {
    let _turn = TURN.lock().await;
    snapshotter();
    let mut server = RedisServer::start();
    let cache = Cache::builder()
        .url(server.url())
        .namespace("m2")
        .operation_timeout(Duration::from_millis(200))
        .circuit_breaker(2, Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    cache.set("k", &1_u8, MINUTE).await.unwrap();
    let () = redis::cmd("SET")
        .arg("m2:bad")
        .arg("garbage")
        .query(&mut server.connection())
        .unwrap();
    cache.get::<u8>("bad").await.unwrap();

    // A paused server answers nobody: a timeout.
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2_000)
        .arg("ALL")
        .query(&mut server.connection())
        .unwrap();
    assert!(cache.get::<u8>("k").await.unwrap_err().is_timeout());
    server.stop();
    assert!(
        cache.get::<u8>("k").await.is_err(),
        "second failure opens the breaker"
    );
    assert!(cache.get::<u8>("k").await.unwrap_err().is_circuit_open());
    let m = Series::take("m2");
    assert_eq!(
        m.get(
            names::STALE,
            &[("reason", "not an envelope of this version")]
        ),
        1
    );
    assert!(
        m.get(names::OPERATION_SECONDS, &[("op", "set")]) >= 1,
        "latency histogram"
    );
    assert_eq!(m.get(names::TIMEOUTS, &[("op", "get")]), 1);
    assert_eq!(
        m.get(names::ERRORS, &[("op", "get"), ("kind", "timeout")]),
        1
    );
    assert_eq!(
        m.get(names::ERRORS, &[("op", "get"), ("kind", "backend")]),
        1
    );
    assert_eq!(
        m.get(names::ERRORS, &[("op", "get"), ("kind", "circuit_open")]),
        1,
        "the third is skipped"
    );
    assert_eq!(m.get(names::BREAKER_OPEN, &[]), 1);
}
