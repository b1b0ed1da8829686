//! How one connection is opened: the connection string's `sslmode` and
//! `sslrootcert`, read the way libpq reads them, become a rustls connector.
//!
//! tokio-postgres knows only `disable`, `prefer` and `require`, and rejects
//! options it does not know, so this module takes `sslmode` and
//! `sslrootcert` out of the string, hands the driver the rest (with the
//! `sslmode` it understands) and decides itself what to verify:
//!
//! | `sslmode`     | TLS                           | server certificate checked          |
//! |---------------|-------------------------------|-------------------------------------|
//! | `disable`     | never                         | -                                   |
//! | `allow`, `prefer` (default) | when the server offers it | no                      |
//! | `require`     | always                        | no; chain only when `sslrootcert` is given (as libpq) |
//! | `verify-ca`   | always                        | chain to a trusted root             |
//! | `verify-full` | always                        | chain, and the host name it was reached by |
//!
//! Trusted roots are the PEM certificates of `sslrootcert=<file>`, or the
//! system's store (`/etc/ssl/certs`; also `sslrootcert=system`, as libpq 16).
//! `sslrootcert` and the `verify-*` modes need the URL form
//! (`postgres://...`); the `key=value` form is passed to the driver as is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use diesel::result::ConnectionError;
use diesel::ConnectionResult;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use percent_encoding::percent_decode_str;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::StartupError;

/// What a connection string asks of TLS (`sslmode`, as libpq names the
/// modes; see the table above).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, unverified (`allow` is served so).
    Prefer,
    /// TLS, unverified.
    Require,
    /// TLS, the certificate's chain verified.
    VerifyCa,
    /// TLS, the chain and the host name verified.
    VerifyFull,
}

/// The modes [`SslMode`] reads, for error messages.
pub const SSL_MODES: &str = "disable, allow, prefer, require, verify-ca or verify-full";

impl std::str::FromStr for SslMode {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "disable" => Ok(Self::Disable),
            // `allow` (plain first, TLS if the server insists) is served as
            // `prefer`: stricter, and tokio-postgres has no plain-first mode.
            "allow" | "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            other => Err(format!("sslmode={other}: expected {SSL_MODES}")),
        }
    }
}

impl SslMode {
    /// The mode's name in a connection string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// The mode tokio-postgres is given: whether to ask for TLS at all.
    fn for_driver(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require | Self::VerifyCa | Self::VerifyFull => "require",
        }
    }
}

/// Where trusted root certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Roots {
    System,
    File(PathBuf),
}

/// The TLS options taken out of a connection string, and what is left.
#[derive(Debug, PartialEq, Eq)]
struct TlsOptions {
    /// The connection string for tokio-postgres.
    driver_url: String,
    mode: SslMode,
    /// `sslrootcert`, when given.
    roots: Option<Roots>,
}

impl TlsOptions {
    fn from_url(url: &str) -> Result<Self, StartupError> {
        let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
        if !is_url {
            return Self::from_key_value(url);
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut mode = SslMode::Prefer;
        let mut roots = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode_str(value).decode_utf8_lossy();
            match &*percent_decode_str(key).decode_utf8_lossy() {
                "sslmode" => mode = value.parse().map_err(StartupError::InvalidUrl)?,
                "sslrootcert" if value == "system" => roots = Some(Roots::System),
                "sslrootcert" => roots = Some(Roots::File(PathBuf::from(&*value))),
                _ => kept.push(pair),
            }
        }
        let driver_mode = format!("sslmode={}", mode.for_driver());
        kept.push(&driver_mode);
        Ok(Self {
            driver_url: format!("{base}?{}", kept.join("&")),
            mode,
            roots,
        })
    }

    /// `host=... sslmode=...`: the driver parses it; only its three modes.
    fn from_key_value(dsn: &str) -> Result<Self, StartupError> {
        let config: tokio_postgres::Config = dsn
            .parse()
            .map_err(|err| StartupError::InvalidUrl(format!("{err}")))?;
        let mode = match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => SslMode::Disable,
            tokio_postgres::config::SslMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        };
        Ok(Self {
            driver_url: dsn.to_owned(),
            mode,
            roots: None,
        })
    }
}

/// `url` as tokio-postgres reads it: without `sslrootcert`, and with the
/// `sslmode` it knows. For parsing the connection string itself (host,
/// port, database) without loading any certificate.
pub(crate) fn driver_url(url: &str) -> Result<String, StartupError> {
    TlsOptions::from_url(url).map(|options| options.driver_url)
}

/// Opens connections to one database as its connection string says,
/// TLS included. Cheap to clone (the TLS configuration is shared).
#[derive(Clone)]
pub(crate) struct Connector {
    driver_url: String,
    /// `None`: plain TCP (`sslmode=disable`).
    tls: Option<MakeRustlsConnect>,
}

impl Connector {
    /// Reads the connection string, and the root certificates it names.
    /// Fails, saying why, on an unknown `sslmode`, an unreadable
    /// `sslrootcert` or (for `verify-*`) no trusted root at all.
    pub(crate) fn from_url(url: &str) -> Result<Self, StartupError> {
        let options = TlsOptions::from_url(url)?;
        let tls = client_config(options.mode, options.roots.as_ref())?.map(MakeRustlsConnect::new);
        Ok(Self {
            driver_url: options.driver_url,
            tls,
        })
    }

    /// The connection string as tokio-postgres reads it.
    pub(crate) fn driver_url(&self) -> &str {
        &self.driver_url
    }

    /// Opens one connection (no time limit of its own).
    pub(crate) async fn open(&self) -> ConnectionResult<AsyncPgConnection> {
        let Some(tls) = &self.tls else {
            return AsyncPgConnection::establish(&self.driver_url).await;
        };
        let (client, connection) = tokio_postgres::connect(&self.driver_url, tls.clone())
            .await
            .map_err(|err| ConnectionError::BadConnection(describe(&err)))?;
        AsyncPgConnection::try_from_client_and_connection(client, connection).await
    }
}

/// The driver's error with its cause: "error performing TLS handshake"
/// alone does not say that the certificate was the problem.
fn describe(err: &tokio_postgres::Error) -> String {
    match std::error::Error::source(err) {
        Some(cause) => format!("{err}: {cause}"),
        None => err.to_string(),
    }
}

/// The rustls configuration for `mode`, or `None` for no TLS.
fn client_config(
    mode: SslMode,
    roots: Option<&Roots>,
) -> Result<Option<ClientConfig>, StartupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, roots) {
        (SslMode::Disable, _) => return Ok(None),
        (SslMode::Prefer, _) | (SslMode::Require, None) => {
            Arc::new(ChainVerifier::any_certificate(&provider))
        }
        (SslMode::Require, Some(roots)) => {
            Arc::new(ChainVerifier::chain_only(load_roots(roots)?, &provider))
        }
        (SslMode::VerifyCa, roots) => {
            let roots = load_roots(roots.unwrap_or(&Roots::System))?;
            Arc::new(ChainVerifier::chain_only(roots, &provider))
        }
        (SslMode::VerifyFull, roots) => {
            let roots = load_roots(roots.unwrap_or(&Roots::System))?;
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|err| {
                    StartupError::Tls(format!("building the certificate verifier: {err}"))
                })?
        }
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| StartupError::Tls(format!("TLS versions: {err}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(config))
}

/// The trusted roots: a PEM file's certificates, or the system's.
fn load_roots(roots: &Roots) -> Result<RootCertStore, StartupError> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            for cert in read_pem_certificates(path)? {
                store.add(cert).map_err(|err| {
                    StartupError::Tls(format!("sslrootcert {}: {err}", path.display()))
                })?;
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
        }
    }
    if store.is_empty() {
        return Err(StartupError::Tls(match roots {
            Roots::File(path) => format!("sslrootcert {} holds no certificate", path.display()),
            Roots::System => "no trusted root certificate in the system store: \
                 name the CA's PEM file with sslrootcert (DB_SSLROOTCERT)"
                .to_owned(),
        }));
    }
    Ok(store)
}

fn read_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, StartupError> {
    let unreadable = |err: &dyn std::fmt::Display| {
        StartupError::Tls(format!("sslrootcert {}: {err}", path.display()))
    };
    CertificateDer::pem_file_iter(path)
        .map_err(|err| unreadable(&err))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| unreadable(&err))
}

/// A server certificate check short of `verify-full`: the chain to a
/// trusted root (`verify-ca`), or nothing (`prefer`, `require`: encrypted,
/// as libpq, but open to an active attacker). The handshake's signatures
/// are verified in every case, so the session is with the certificate's
/// key holder.
#[derive(Debug)]
struct ChainVerifier {
    /// `None`: any certificate is accepted.
    roots: Option<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ChainVerifier {
    fn any_certificate(provider: &CryptoProvider) -> Self {
        Self {
            roots: None,
            algorithms: provider.signature_verification_algorithms,
        }
    }

    fn chain_only(roots: RootCertStore, provider: &CryptoProvider) -> Self {
        Self {
            roots: Some(roots),
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for ChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(url: &str) -> TlsOptions {
        TlsOptions::from_url(url).expect("parses")
    }

    #[test]
    fn without_sslmode_tls_is_preferred_as_in_libpq() {
        let parsed = options("postgres://u:p@db:5432/chat");
        assert_eq!(parsed.mode, SslMode::Prefer);
        assert_eq!(
            parsed.driver_url,
            "postgres://u:p@db:5432/chat?sslmode=prefer"
        );
        assert_eq!(parsed.roots, None);
    }

    #[test]
    fn verify_modes_reach_the_driver_as_require_and_other_options_are_kept() {
        let parsed = options(
            "postgresql://u@db/chat?application_name=chat&sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20x.pem&connect_timeout=3",
        );
        assert_eq!(parsed.mode, SslMode::VerifyFull);
        assert_eq!(
            parsed.roots,
            Some(Roots::File(PathBuf::from("/etc/ca x.pem")))
        );
        assert_eq!(
            parsed.driver_url,
            "postgresql://u@db/chat?application_name=chat&connect_timeout=3&sslmode=require"
        );
        assert_eq!(
            options("postgres://db/c?sslmode=verify-ca").mode,
            SslMode::VerifyCa
        );
        assert_eq!(
            options("postgres://db/c?sslrootcert=system").roots,
            Some(Roots::System)
        );
    }

    #[test]
    fn disable_and_allow_map_to_the_drivers_modes() {
        assert_eq!(
            options("postgres://db/c?sslmode=disable").driver_url,
            "postgres://db/c?sslmode=disable"
        );
        assert_eq!(
            options("postgres://db/c?sslmode=allow").mode,
            SslMode::Prefer
        );
    }

    #[test]
    fn an_unknown_sslmode_is_refused_by_name() {
        let err = TlsOptions::from_url("postgres://db/c?sslmode=sometimes").expect_err("refused");
        assert!(err.to_string().contains("sslmode=sometimes"), "{err}");
    }

    #[test]
    fn the_key_value_form_goes_to_the_driver_unchanged() {
        let parsed = options("host=db user=chat sslmode=require");
        assert_eq!(parsed.driver_url, "host=db user=chat sslmode=require");
        assert_eq!(parsed.mode, SslMode::Require);
        assert_eq!(options("host=db").mode, SslMode::Prefer);
    }

    #[test]
    fn a_missing_root_file_is_a_startup_error_naming_it() {
        let err = Connector::from_url(
            "postgres://db/c?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        )
        .err()
        .expect("refused");
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn no_tls_configuration_for_disable() {
        let connector = Connector::from_url("postgres://db/c?sslmode=disable").expect("builds");
        assert!(connector.tls.is_none());
        let connector = Connector::from_url("postgres://db/c").expect("builds");
        assert!(connector.tls.is_some());
    }
}
