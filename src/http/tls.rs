//! The daemon's own HTTPS listener: a rustls server whose certificate and key are read from
//! files and re-read on SIGHUP without dropping a connection (a bad new pair keeps the old one).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// The current certificate, swappable while serving.
pub struct ReloadableCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for ReloadableCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableCert")
            .field("cert_file", &self.cert_file)
            .finish_non_exhaustive()
    }
}

/// Why the HTTPS certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {}", .path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a usable PEM file", .path.display())]
    BadPem {
        path: PathBuf,
        #[source]
        source: pem::Error,
    },
    #[error("{} holds no PEM certificate", .0.display())]
    NoCertificate(PathBuf),
    #[error("{} holds no private key", .0.display())]
    NoKey(PathBuf),
    #[error("{} holds a private key that cannot be used", .path.display())]
    BadKey {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("cannot set up TLS")]
    Rustls(#[from] rustls::Error),
}

fn load(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, CertError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| CertError::Unreadable {
            path: path.to_owned(),
            source,
        })
    };
    let bad_pem = |path: &Path, source| CertError::BadPem {
        path: path.to_owned(),
        source,
    };
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&read(cert_file)?)
        .collect::<Result<_, _>>()
        .map_err(|e| bad_pem(cert_file, e))?;
    if certs.is_empty() {
        return Err(CertError::NoCertificate(cert_file.to_owned()));
    }
    let key = match PrivateKeyDer::from_pem_slice(&read(key_file)?) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => return Err(CertError::NoKey(key_file.to_owned())),
        Err(e) => return Err(bad_pem(key_file, e)),
    };
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| CertError::BadKey {
            path: key_file.to_owned(),
            source,
        })?;
    Ok(CertifiedKey::new(certs, key))
}

impl ReloadableCert {
    pub fn open(cert_file: &Path, key_file: &Path) -> Result<Arc<Self>, CertError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let first = load(cert_file, key_file, &provider)?;
        Ok(Arc::new(Self {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(first)),
        }))
    }

    /// Re-reads the files; on a problem the current certificate stays and the problem is returned.
    pub fn reload(&self) -> Result<(), CertError> {
        let fresh = load(&self.cert_file, &self.key_file, &self.provider)?;
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(fresh);
        }
        Ok(())
    }

    /// A rustls server configuration that always presents the current certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, CertError> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}
