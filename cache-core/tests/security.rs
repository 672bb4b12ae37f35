//! Credentials and transport: Redis ACL users, TLS to a server a private CA vouches for, and a
//! password that never shows in an error, a `Debug` or a log line.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

/// Not in `support`, which other crates' tests share without rcgen.
#[cfg(feature = "tls")]
use cache_test_support as support;
use cache_test_support::pki;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_core::{Cache, ErrorKind};
use support::{FaultProxy, Mode, RedisServer};

const MINUTE: Duration = Duration::from_secs(60);
const PASSWORD: &str = "s3cret-Pa55w0rd";

/// An ACL user `app` with `PASSWORD`, allowed every command on the keys `cache:*` only.
fn add_acl_user(server: &RedisServer) {
    let () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg("on")
        .arg(format!(">{PASSWORD}"))
        .arg("~cache:*")
        .arg("+@all")
        .query(&mut server.connection())
        .unwrap();
}

fn user_url(port: u16, password: &str) -> String {
    format!("redis://app:{password}@127.0.0.1:{port}/0")
}

/// Display and Debug of `value` both lack every one of `secrets`.
fn assert_hidden(what: &str, display: &str, debug: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !display.contains(secret),
            "{what} shows {secret:?}: {display}"
        );
        assert!(
            !debug.contains(secret),
            "{what} Debug shows {secret:?}: {debug}"
        );
    }
}

#[tokio::test]
async fn an_acl_user_works_within_its_key_pattern_and_is_refused_outside_it() {
    let server = RedisServer::start();
    add_acl_user(&server);
    let url = user_url(server.port(), PASSWORD);
    let cache = Cache::connect(&url).await.unwrap();
    cache.set("meal", &7_u32, MINUTE).await.unwrap();
    assert_eq!(cache.get::<u32>("meal").await.unwrap(), Some(7));
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut server.connection())
        .unwrap();
    assert!(
        clients.contains("user=app"),
        "the cache is logged in as app"
    );
    assert_hidden("a connected cache", "", &format!("{cache:?}"), &[PASSWORD]);

    // Namespace `other` lies outside `~cache:*`: Redis refuses, which is not an outage.
    let other = Cache::builder()
        .url(&url)
        .namespace("other")
        .circuit_breaker(1, MINUTE)
        .build()
        .await
        .unwrap();
    let err = other.set("meal", &7_u32, MINUTE).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Rejected, "{err}");
    assert!(
        err.to_string().to_lowercase().contains("no permissions"),
        "{err}"
    );
    assert!(
        !other.is_circuit_open(),
        "a refusal does not open the breaker"
    );
    assert_hidden(
        "a refusal",
        &err.to_string(),
        &format!("{err:?}"),
        &[PASSWORD],
    );
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_config_error_that_never_shows_a_password() {
    let server = RedisServer::start();
    add_acl_user(&server);
    for (url, wrong) in [
        (user_url(server.port(), "wr0ng-Pa55w0rd"), "wr0ng-Pa55w0rd"),
        (
            format!("redis://nobody:n0b0dy-Pa55@127.0.0.1:{}/0", server.port()),
            "n0b0dy-Pa55",
        ),
    ] {
        let builder = Cache::builder().url(&url);
        assert_hidden("a builder", "", &format!("{builder:?}"), &[wrong]);
        let err = builder.build().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        let message = err.to_string();
        assert!(message.contains("refused the credentials"), "{message}");
        assert!(
            message.contains(&format!(":***@127.0.0.1:{}", server.port())),
            "names the server, password masked: {message}"
        );
        assert_hidden(
            "the error",
            &message,
            &format!("{err:?}"),
            &[wrong, PASSWORD],
        );
    }
}

/// A `MakeWriter` that keeps every log line in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Self;
    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

#[test]
fn no_log_line_shows_the_password_through_an_outage_and_a_recovery() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    // Thread-local: only this test's events, all on this thread's runtime.
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let server = RedisServer::start();
        add_acl_user(&server);
        let proxy = FaultProxy::start(server.port()).await;
        let wrong = Cache::connect(&user_url(proxy.port(), "wr0ng-Pa55w0rd")).await;
        assert!(wrong.is_err());
        let cache = Cache::builder()
            .url(user_url(proxy.port(), PASSWORD))
            .operation_timeout(Duration::from_millis(100))
            .circuit_breaker(2, Duration::from_millis(100))
            .warn_interval(Duration::ZERO)
            .build()
            .await
            .unwrap();
        cache.set("meal", &1_u8, MINUTE).await.unwrap();
        proxy.set_mode(Mode::Blackhole);
        for _ in 0..3 {
            let _: u8 = cache
                .get_or_insert_with("meal", MINUTE, || async { 2 })
                .await;
        }
        assert!(cache.is_circuit_open());
        proxy.set_mode(Mode::Pass);
        let back = support::eventually(Duration::from_secs(5), || async {
            cache.get::<u8>("meal").await.ok() == Some(Some(1))
        })
        .await;
        assert!(back);
    });
    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("circuit breaker open") && logs.contains("circuit breaker closed"),
        "the capture saw the outage and the recovery:\n{logs}"
    );
    assert!(
        !logs.contains(PASSWORD),
        "a log line shows the password:\n{logs}"
    );
    assert!(!logs.contains("wr0ng-Pa55w0rd"), "{logs}");
}

/// Redis over TLS, with certificates made by the test: a CA, and a server certificate for
/// 127.0.0.1 signed by it.
#[cfg(feature = "tls")]
mod tls {
    use super::*;
    use crate::pki::Pki;
    use crate::pki::ca;

    struct Tls {
        _pki: Pki,
        server: RedisServer,
        ca_pem: String,
    }

    /// A redis-server with TLS on a second port, its certificate signed by a fresh CA.
    fn tls_server() -> Tls {
        let pki = Pki::new();
        let server = RedisServer::start_tls(&pki.cert(), &pki.key(), &pki.ca());
        Tls {
            ca_pem: pki.ca_pem.clone(),
            _pki: pki,
            server,
        }
    }

    #[tokio::test]
    async fn rediss_with_a_private_ca_and_an_acl_user() {
        let pki = tls_server();
        add_acl_user(&pki.server);
        let url = format!(
            "rediss://app:{PASSWORD}@127.0.0.1:{}/0",
            pki.server.tls_port()
        );
        let builder = Cache::builder()
            .url(&url)
            .tls_root_certificates(pki.ca_pem.clone());
        assert_hidden("a TLS builder", "", &format!("{builder:?}"), &[PASSWORD]);
        let cache = builder.build().await.unwrap();
        cache.set("meal", &7_u32, MINUTE).await.unwrap();
        assert_eq!(cache.get::<u32>("meal").await.unwrap(), Some(7));
        // Behind the cache's back, on the plain port: the value is there.
        let raw: Vec<u8> = redis::cmd("GET")
            .arg("cache:meal")
            .query(&mut pki.server.connection())
            .unwrap();
        assert!(!raw.is_empty());
        // And the TLS port speaks nothing but TLS: a plain client gets nowhere.
        let plain = Cache::builder()
            .url(user_url(pki.server.tls_port(), PASSWORD))
            .connect_timeout(Duration::from_millis(500))
            .build()
            .await;
        assert!(plain.is_err(), "plain RESP on the TLS port");
    }

    #[tokio::test]
    async fn rediss_refuses_a_server_certificate_it_has_no_reason_to_trust() {
        let pki = tls_server();
        add_acl_user(&pki.server);
        let url = format!(
            "rediss://app:{PASSWORD}@127.0.0.1:{}/0",
            pki.server.tls_port()
        );
        let (_, _, stranger_pem) = ca("another CA");
        for builder in [
            // The system's roots: a private CA is not among them.
            Cache::builder().url(&url),
            Cache::builder()
                .url(&url)
                .tls_root_certificates(stranger_pem),
        ] {
            let err = builder.build().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
            assert!(
                err.to_string()
                    .contains("TLS certificate that is not trusted")
                    && err.to_string().contains("tls_root_certificates"),
                "says why, and what to do: {err}"
            );
            assert_hidden(
                "the error",
                &err.to_string(),
                &format!("{err:?}"),
                &[PASSWORD],
            );
        }
    }

    #[tokio::test]
    async fn tls_roots_on_a_plain_url_or_invalid_pem_are_config_errors() {
        let err = Cache::builder()
            .url("redis://127.0.0.1:1/0")
            .tls_root_certificates("-----BEGIN CERTIFICATE-----")
            .build()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(err.to_string().contains("not rediss://"), "{err}");
        let err = Cache::builder()
            .url("rediss://127.0.0.1:1/0")
            .tls_root_certificates("not a certificate")
            .build()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    }
}
