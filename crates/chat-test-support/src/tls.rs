//! Certificates for TLS tests: a throwaway certificate authority, made
//! fresh per test, and server certificates it signs.
//!
//! ```no_run
//! use chat_test_support::tls::TestCa;
//!
//! let ca = TestCa::new();
//! let server = ca.server_certificate(&["localhost"]); // PEM cert and key
//! std::fs::write("/tmp/ca.pem", ca.pem()).expect("written");
//! # drop(server);
//! ```

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A certificate authority that exists only in this test.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// A server certificate and its private key, PEM-encoded.
#[derive(Clone, Debug)]
pub struct ServerCertificate {
    /// The certificate (`server.crt`).
    pub cert_pem: String,
    /// Its private key (`server.key`).
    pub key_pem: String,
}

impl TestCa {
    /// A new self-signed CA (an ECDSA P-256 key) with a unique name.
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        // A name of its own: a client that trusts another test's CA must
        // not even find this one's issuer.
        let name = format!("chat test CA {}", uuid::Uuid::new_v4().simple());
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("a CA key");
        let cert = params.self_signed(&key).expect("a self-signed CA");
        Self {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
        }
    }

    /// The CA's certificate, PEM-encoded: what a client trusts.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A server certificate for `names` (host names, or IP addresses as
    /// text), signed by this CA.
    pub fn server_certificate(&self, names: &[&str]) -> ServerCertificate {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("server certificate parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, "chat test server");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("a server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("a server certificate");
        ServerCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}
