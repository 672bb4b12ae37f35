//! Certificates made at run time for the TLS tests: a private CA, and a server certificate for
//! 127.0.0.1 that it signs, written to a temporary directory.

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A CA and a server certificate for 127.0.0.1 signed by it, as PEM files.
pub struct Pki {
    dir: tempfile::TempDir,
    /// The CA certificate, PEM: what a client must trust.
    pub ca_pem: String,
}

impl Pki {
    /// A fresh CA, and a server certificate for 127.0.0.1 signed by it.
    pub fn new() -> Self {
        let (ca_params, ca_key, ca_pem) = ca("cache-core test CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "redis");
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            // A cluster node also presents it as a client, on the TLS cluster bus.
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &issuer).unwrap();
        let pki = Self {
            dir: tempfile::tempdir().unwrap(),
            ca_pem,
        };
        std::fs::write(pki.cert(), cert.pem()).unwrap();
        std::fs::write(pki.key(), key.serialize_pem()).unwrap();
        std::fs::write(pki.ca(), &pki.ca_pem).unwrap();
        pki
    }

    /// The server certificate's file.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("server.crt")
    }

    /// The server key's file.
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// The CA certificate's file.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }
}

/// A self-signed CA: its parameters, key and certificate (PEM).
pub fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let pem = params.self_signed(&key).unwrap().pem();
    (params, key, pem)
}
