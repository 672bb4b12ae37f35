//! Building a Redis client from a URL (TLS with a private CA included) and saying clearly why
//! a connection could not be made: an untrusted certificate, refused credentials, no answer.

use crate::error::{Error, ErrorKind, Result};

/// A client for `url`; with `tls_roots` (PEM), a `rediss://` client that trusts those CAs
/// instead of the system's.
pub(crate) fn client(url: &str, tls_roots: Option<&[u8]>) -> Result<redis::Client> {
    let address = crate::url::redact(url);
    let invalid =
        |e| Error::config(format!("CACHE_URL {address:?} is not a valid Redis URL")).with_source(e);
    let Some(pem) = tls_roots else {
        return redis::Client::open(url).map_err(invalid);
    };
    tls_client(url, &address, pem, invalid)
}

#[cfg(feature = "tls")]
fn tls_client(
    url: &str,
    address: &str,
    pem: &[u8],
    invalid: impl Fn(redis::RedisError) -> Error,
) -> Result<redis::Client> {
    let info = redis::IntoConnectionInfo::into_connection_info(url).map_err(&invalid)?;
    if !matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
        return Err(Error::config(format!(
            "TLS root certificates are set but CACHE_URL {address:?} is not rediss://; \
             use rediss:// so that they are used"
        )));
    }
    use rustls::pki_types::pem::PemObject as _;

    // An empty trust store would fail every handshake later with a vaguer message: say it now.
    let parsed: std::result::Result<Vec<_>, _> =
        rustls::pki_types::CertificateDer::pem_slice_iter(pem).collect();
    match parsed {
        Ok(certificates) if !certificates.is_empty() => {}
        Ok(_) => {
            return Err(Error::config(
                "the TLS root certificates contain no PEM certificate \
                 (\"-----BEGIN CERTIFICATE-----\" ...)",
            ));
        }
        Err(e) => {
            return Err(
                Error::config("the TLS root certificates are not valid PEM certificates")
                    .with_source(e),
            );
        }
    }
    client_trusting(info, pem)
}

/// A TLS client for `info` that trusts the CAs in `pem` (already checked to hold
/// certificates) instead of the system's.
#[cfg(feature = "tls")]
pub(crate) fn client_trusting(info: redis::ConnectionInfo, pem: &[u8]) -> Result<redis::Client> {
    let certificates = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.to_vec()),
    };
    redis::Client::build_with_tls(info, certificates).map_err(|e| {
        Error::config("the TLS root certificates are not valid PEM certificates").with_source(e)
    })
}

// Only the cluster backend calls it without `tls` (to say TLS needs the feature).
#[cfg(all(not(feature = "tls"), feature = "cluster"))]
pub(crate) fn client_trusting(_info: redis::ConnectionInfo, _pem: &[u8]) -> Result<redis::Client> {
    Err(Error::config(
        "TLS root certificates need cache-core's \"tls\" feature",
    ))
}

#[cfg(not(feature = "tls"))]
fn tls_client(
    _url: &str,
    _address: &str,
    _pem: &[u8],
    _invalid: impl Fn(redis::RedisError) -> Error,
) -> Result<redis::Client> {
    Err(Error::config(
        "TLS root certificates need cache-core's \"tls\" feature",
    ))
}

/// True when the TLS handshake failed on the server's certificate.
#[cfg(feature = "tls")]
pub(crate) fn untrusted_certificate(err: &redis::RedisError) -> bool {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(mut current) = cause {
        // RedisError hands out its cause as an Arc, whose own `source` skips the cause.
        if let Some(shared) = current.downcast_ref::<Shared>() {
            current = &**shared;
        }
        // tokio-rustls reports a failed handshake as an io::Error wrapping rustls's error.
        let tls = current.downcast_ref::<rustls::Error>().or_else(|| {
            current
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(tls) = tls {
            return matches!(tls, rustls::Error::InvalidCertificate(_));
        }
        cause = current.source();
    }
    false
}

#[cfg(not(feature = "tls"))]
pub(crate) fn untrusted_certificate(_err: &redis::RedisError) -> bool {
    false
}

/// True when the server refused the connection's user or password.
pub(crate) fn refused_credentials(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
}

/// The error of a failed connection: refused credentials are a configuration problem, anything
/// else a server that cannot be reached.
pub(crate) fn connect_error(address: &str, e: redis::RedisError) -> Error {
    let err = if refused_credentials(&e) {
        Error::config(format!(
            "Redis at {address} refused the credentials: check the user and password in CACHE_URL \
             (and that the ACL user is enabled)"
        ))
    } else if untrusted_certificate(&e) {
        Error::new(
            ErrorKind::Connect,
            format!(
                "Redis at {address} presented a TLS certificate that is not trusted: if a private \
                 CA signed it, trust that CA with CacheBuilder::tls_root_certificates"
            ),
        )
    } else {
        Error::new(
            ErrorKind::Connect,
            format!("cannot connect to Redis at {address}: is redis-server running and reachable?"),
        )
    };
    // RedisError's Display never includes the connection password.
    err.with_source(e)
}
