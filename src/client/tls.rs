//! TLS client setup for probes: rustls with the ring provider only (two
//! providers compiled in make `ClientConfig::builder()` panic), trust from the system store plus an
//! optional private CA file, and handshake errors turned into sentences an operator can act on.

use std::io;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::service::{TlsInfo, TlsPolicy};

/// Why TLS could not even be attempted.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot load CA file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("no trusted CA certificates: the system store is empty and no --ca-file was given")]
    NoRoots,
    #[error("{0:?} is not a valid TLS server name or IP address")]
    BadName(String),
    #[error("cannot build TLS configuration: {0}")]
    Config(String),
}

/// Everything a handshake needs, built once per probe.
#[derive(Clone)]
pub struct TlsSetup {
    pub connector: tokio_rustls::TlsConnector,
    pub name: ServerName<'static>,
    /// False under `insecure`: the report must not claim the chain was verified.
    pub verified: bool,
}

impl TlsSetup {
    pub fn new(policy: &TlsPolicy, name: &str) -> Result<TlsSetup, TlsSetupError> {
        // `try_from` accepts IP addresses too, verified against the certificate's IP SANs.
        let name = ServerName::try_from(name.to_owned())
            .map_err(|_| TlsSetupError::BadName(name.to_owned()))?;
        Ok(TlsSetup {
            connector: tokio_rustls::TlsConnector::from(Arc::new(client_config(policy)?)),
            name,
            verified: !policy.insecure,
        })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls configuration for a policy.
pub fn client_config(policy: &TlsPolicy) -> Result<ClientConfig, TlsSetupError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Config(e.to_string()))?;
    if policy.insecure {
        let mut config = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
            .with_no_client_auth();
        no_resumption(&mut config);
        return Ok(config);
    }
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(system_roots().iter().cloned());
    if let Some(path) = &policy.ca_file {
        add_ca_file(&mut roots, path)?;
    }
    if roots.is_empty() {
        return Err(TlsSetupError::NoRoots);
    }
    let mut config = builder.with_root_certificates(roots).with_no_client_auth();
    no_resumption(&mut config);
    Ok(config)
}

/// A probe never resumes a session, and offering resumption costs a stall: an OpenSSL server
/// (Postfix, Dovecot) sends its TLS 1.3 session tickets in a segment of their own when it first
/// reads, Nagle holds its next reply until that segment is acknowledged, and our delayed ACK
/// waits 40 ms. Without resumption rustls offers no PSK modes, so RFC 8446 §4.6.1 forbids the
/// tickets.
fn no_resumption(config: &mut ClientConfig) {
    config.resumption = rustls::client::Resumption::disabled();
}

/// The system trust store, read once per process: it does not change during a run and reading
/// it parses a few hundred certificates.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!("skipping unreadable system CA certificate: {e}");
        }
        found.certs
    })
}

fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<(), TlsSetupError> {
    let fail = |reason: String| TlsSetupError::CaFile {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("no PEM certificates in it".into()));
    }
    for cert in certs {
        roots.add(cert).map_err(|e| fail(e.to_string()))?;
    }
    Ok(())
}

/// Accepts any certificate. It exists for `--insecure`: an operator checking a server whose
/// certificate is self-signed or already broken still wants the rest of the probe (and the
/// expiry date). Handshake signatures are still checked so the session is at least consistent.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What the handshake established, for the report.
pub fn tls_info(conn: &rustls::ClientConnection, verified: bool) -> TlsInfo {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
        Some(v) => format!("{v:?}"),
        None => "unknown".to_owned(),
    };
    let leaf = conn.peer_certificates().and_then(|c| c.first());
    let parsed = leaf.and_then(|der| x509_parser::parse_x509_certificate(der.as_ref()).ok());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let not_after = parsed
        .as_ref()
        .map(|(_, c)| c.validity().not_after.timestamp());
    TlsInfo {
        version,
        verified,
        cert_days_left: not_after.map(|t| (t - now).div_euclid(86_400)),
        cert_not_after: not_after,
        cert_subject: parsed.as_ref().map(|(_, c)| c.subject().to_string()),
    }
}

/// Turns a failed handshake into what is wrong and what to do about it.
pub fn describe_handshake_error(err: &io::Error, name: &str) -> String {
    let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return match err.kind() {
            io::ErrorKind::UnexpectedEof => {
                "server closed the connection during the TLS handshake".to_owned()
            }
            _ => format!("TLS handshake failed: {err}"),
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(cert) => describe_certificate_error(cert, name),
        rustls::Error::AlertReceived(alert) => {
            format!("server aborted the TLS handshake with alert {alert:?}")
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            format!(
                "server did not answer with TLS ({tls}); is this the right port for the scheme?"
            )
        }
        rustls::Error::PeerIncompatible(p) => {
            format!("no TLS parameters in common with the server: {p:?}")
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

fn describe_certificate_error(err: &CertificateError, name: &str) -> String {
    match err {
        CertificateError::UnknownIssuer => "certificate not trusted (UnknownIssuer): signed by an \
             unknown CA; pass --ca-file to trust a private CA"
            .to_owned(),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("certificate expired ({err})")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!("certificate is not valid yet; check the clocks ({err})")
        }
        CertificateError::NotValidForName => format!("certificate is not valid for name {name}"),
        CertificateError::NotValidForNameContext { presented, .. } => format!(
            "certificate is not valid for name {name} (it names {}); pass the name it was \
             issued for as the TLS server name",
            presented.join(", ")
        ),
        CertificateError::Revoked => "certificate has been revoked".to_owned(),
        CertificateError::BadSignature => "certificate signature is invalid".to_owned(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "certificate is not valid for TLS server authentication (extended key usage)".to_owned()
        }
        CertificateError::BadEncoding => "certificate is malformed (bad DER encoding)".to_owned(),
        other => format!("certificate rejected: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_read_as_sentences() {
        let unknown = describe_certificate_error(&CertificateError::UnknownIssuer, "mx");
        assert!(unknown.contains("--ca-file"), "{unknown}");
        let expired = describe_certificate_error(&CertificateError::Expired, "mx");
        assert!(expired.starts_with("certificate expired"), "{expired}");
        let name = describe_certificate_error(&CertificateError::NotValidForName, "mx.example");
        assert_eq!(name, "certificate is not valid for name mx.example");
    }

    #[test]
    fn handshake_error_from_rustls_inside_io() {
        let e = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert!(describe_handshake_error(&e, "mx").contains("UnknownIssuer"));
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert!(describe_handshake_error(&eof, "mx").contains("closed"));
    }

    #[test]
    fn setup_accepts_ip_addresses_and_refuses_junk() {
        let policy = TlsPolicy {
            insecure: true,
            ..TlsPolicy::default()
        };
        assert!(TlsSetup::new(&policy, "127.0.0.1").is_ok());
        assert!(TlsSetup::new(&policy, "mx.example").is_ok());
        assert!(matches!(
            TlsSetup::new(&policy, "bad name!"),
            Err(TlsSetupError::BadName(_))
        ));
    }

    #[test]
    fn missing_ca_file_names_the_path() {
        let policy = TlsPolicy {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsPolicy::default()
        };
        let err = client_config(&policy)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
