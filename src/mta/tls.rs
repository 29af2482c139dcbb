//! The server side of TLS for `posta mta` (STARTTLS on SMTP, STLS and POP3S): certificate
//! chains and keys from PEM files, rustls with ring only.
//!
//! mailserver2 answers for mailserver1 while it holds the VIP, so clients that verify
//! mailserver1's name must get mailserver1's certificate there. Like Dovecot's `local` and
//! `local_name` blocks, the certificate is chosen per connection: by the local address (a
//! connection to the VIP gets the VIP's certificate, SNI or not) and by SNI (a name the VIP's
//! certificate covers gets it on any address). Everything else gets this host's own.
//! SIGHUP reloads the files; broken new files keep the old certificates (Postfix and Dovecot
//! keep running on their old ones too when a reload fails).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// Why certificates could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate {path}: {source}")]
    ReadCert {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("no certificate in {0}")]
    NoCert(PathBuf),
    #[error("cannot parse the first certificate in {0}")]
    BadCert(PathBuf),
    #[error("{0}")]
    KeyFile(String),
    #[error("cannot read private key {path}: {source}")]
    ReadKey {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("certificate {cert} and key {key} do not work together: {source}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("TLS setup: {0}")]
    Setup(rustls::Error),
}

/// A certificate chain (PEM, leaf first) and its private key (PEM, owner-only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Which certificates to present: this host's own, and optionally mailserver1's for
/// connections to the VIP (`address`) or naming it by SNI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identities {
    pub own: CertFiles,
    pub vip: Option<VipIdentity>,
}

/// mailserver1's certificate, presented while this host answers for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipIdentity {
    pub files: CertFiles,
    /// Connections whose local address is this one get the certificate whatever their SNI.
    pub address: Option<IpAddr>,
}

/// The loaded certificates, replaced whole by [`Tls::reload`]; sessions hold the acceptor
/// they started with.
pub struct Tls {
    files: Identities,
    current: RwLock<Arc<Acceptors>>,
}

struct Acceptors {
    /// For any address: SNI picks the VIP's certificate when it names one of its names.
    by_sni: TlsAcceptor,
    /// For connections to the VIP address.
    vip: Option<(IpAddr, TlsAcceptor)>,
}

impl Tls {
    /// Loads every certificate and key; fails on the first broken file.
    pub fn load(files: Identities) -> Result<Tls, TlsError> {
        let current = build(&files)?;
        Ok(Tls {
            files,
            current: RwLock::new(Arc::new(current)),
        })
    }

    /// Reads the files again; on error the certificates in use stay.
    pub fn reload(&self) -> Result<(), TlsError> {
        let new = build(&self.files)?;
        if let Ok(mut c) = self.current.write() {
            *c = Arc::new(new);
        }
        Ok(())
    }

    /// The acceptor for a connection whose local address is `local`.
    pub fn acceptor(&self, local: IpAddr) -> TlsAcceptor {
        let current = match self.current.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        match &current.vip {
            Some((vip, a)) if *vip == local.to_canonical() => a.clone(),
            _ => current.by_sni.clone(),
        }
    }
}

fn build(files: &Identities) -> Result<Acceptors, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let own = Arc::new(certified(&files.own, &provider)?);
    let vip = match &files.vip {
        Some(v) => {
            let key = Arc::new(certified(&v.files, &provider)?);
            let names = dns_names(&key, &v.files.cert)?;
            Some((v, key, names))
        }
        None => None,
    };
    let by_sni = Resolver {
        own: Arc::clone(&own),
        vip: vip.as_ref().map(|(_, k, n)| (n.clone(), Arc::clone(k))),
    };
    let by_sni = acceptor(&provider, by_sni)?;
    let vip = match vip {
        Some((v, key, _)) => match v.address {
            Some(addr) => {
                let fixed = Resolver {
                    own: key,
                    vip: None,
                };
                Some((addr.to_canonical(), acceptor(&provider, fixed)?))
            }
            None => None,
        },
        None => None,
    };
    Ok(Acceptors { by_sni, vip })
}

fn acceptor(provider: &Arc<CryptoProvider>, resolver: Resolver) -> Result<TlsAcceptor, TlsError> {
    let config = rustls::ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn certified(files: &CertFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let (cert, key) = (&files.cert, &files.key);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|source| TlsError::ReadCert {
            path: cert.clone(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCert(cert.clone()));
    }
    crate::secret::check_permissions(key).map_err(|e| TlsError::KeyFile(e.to_string()))?;
    let der = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::ReadKey {
        path: key.clone(),
        source,
    })?;
    CertifiedKey::from_der(chain, der, provider).map_err(|source| TlsError::Mismatch {
        cert: cert.clone(),
        key: key.clone(),
        source,
    })
}

/// The DNS names the leaf covers (subjectAltName), lowercase; `*.` wildcards kept.
fn dns_names(key: &CertifiedKey, path: &Path) -> Result<Vec<String>, TlsError> {
    let bad = || TlsError::BadCert(path.to_path_buf());
    let leaf = key.cert.first().ok_or_else(bad)?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|_| bad())?;
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return Ok(Vec::new());
    };
    Ok(san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .collect())
}

/// Does `name` (an SNI host name) match a certificate name, `*.` covering one label
/// (RFC 6125 §6.4.3)?
fn covers(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(rest) => name
            .split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => pattern == name,
    }
}

#[derive(Debug)]
struct Resolver {
    own: Arc<CertifiedKey>,
    vip: Option<(Vec<String>, Arc<CertifiedKey>)>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let (Some(sni), Some((names, key))) = (hello.server_name(), &self.vip) {
            let sni = sni.to_ascii_lowercase();
            if names.iter().any(|p| covers(p, &sni)) {
                return Some(Arc::clone(key));
            }
        }
        Some(Arc::clone(&self.own))
    }
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(covers("mailserver1.example.org", "mailserver1.example.org"));
        assert!(covers("*.example.org", "mailserver1.example.org"));
        assert!(!covers("*.example.org", "a.b.example.org"));
        assert!(!covers("*.example.org", "example.org"));
        assert!(!covers(
            "mailserver1.example.org",
            "mailserver2.example.org"
        ));
    }
}
