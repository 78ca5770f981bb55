//! TLS to PostgreSQL through rustls, with libpq's `sslmode` meanings: `disable`; `prefer` and
//! `require` (encrypted, certificate not checked); `verify-ca` (chain checked against
//! `database.sslrootcert`); `verify-full` (chain and host name checked).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres_rustls::MakeRustlsConnect;

pub use crate::config::SslPolicy;

/// What tokio-postgres must negotiate: verification happens in the TLS connector.
pub fn ssl_mode(policy: SslPolicy) -> SslMode {
    match policy {
        SslPolicy::Disable => SslMode::Disable,
        SslPolicy::Prefer => SslMode::Prefer,
        SslPolicy::Require | SslPolicy::VerifyCa | SslPolicy::VerifyFull => SslMode::Require,
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why the TLS settings for PostgreSQL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("database.sslrootcert is required with sslmode verify-ca or verify-full")]
    RootCertRequired,
    #[error("cannot read {}", .path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a usable PEM certificate file", .path.display())]
    BadPem {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{} holds no PEM certificate", .0.display())]
    NoCertificate(PathBuf),
    #[error("cannot set up TLS")]
    Rustls(#[from] Error),
    #[error("cannot set up certificate verification")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
}

fn roots(path: Option<&Path>) -> Result<RootCertStore, TlsSetupError> {
    let path = path.ok_or(TlsSetupError::RootCertRequired)?;
    let bad_pem = |source: Box<dyn std::error::Error + Send + Sync>| TlsSetupError::BadPem {
        path: path.to_owned(),
        source,
    };
    let pem = std::fs::read(path).map_err(|source| TlsSetupError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| bad_pem(Box::new(e)))?;
        store.add(cert).map_err(|e| bad_pem(Box::new(e)))?;
    }
    if store.is_empty() {
        return Err(TlsSetupError::NoCertificate(path.to_owned()));
    }
    Ok(store)
}

/// Encrypts without checking the certificate (libpq's `require` and `prefer`).
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
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
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
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

/// Checks the chain against the configured CA but not the host name (libpq's `verify-ca`).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(Error::InvalidCertificate(CertificateError::NotValidForName))
            | Err(Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The rustls connector, named for the server being reached. A Unix-socket "host" (a path) is
/// no DNS name; TLS is never used over a Unix socket, so any valid name will do there.
#[derive(Clone)]
pub struct PgTls(MakeRustlsConnect);

impl<S> MakeTlsConnect<S> for PgTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = <MakeRustlsConnect as MakeTlsConnect<S>>::Stream;
    type TlsConnect = <MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect;
    type Error = <MakeRustlsConnect as MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, hostname: &str) -> Result<Self::TlsConnect, Self::Error> {
        let name = if hostname.is_empty() || hostname.starts_with('/') || hostname.starts_with('@')
        {
            "localhost"
        } else {
            hostname
        };
        MakeTlsConnect::<S>::make_tls_connect(&mut self.0, name)
    }
}

/// The TLS connector for `policy` (used for every connection, also when TLS is not wanted:
/// tokio-postgres then never starts it).
pub fn connector(policy: SslPolicy, root_cert: Option<&Path>) -> Result<PgTls, TlsSetupError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match policy {
        SslPolicy::Disable | SslPolicy::Prefer | SslPolicy::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
        SslPolicy::VerifyCa => {
            let verifier =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots(root_cert)?), provider)
                    .build()?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(verifier)))
                .with_no_client_auth()
        }
        SslPolicy::VerifyFull => builder
            .with_root_certificates(roots(root_cert)?)
            .with_no_client_auth(),
    };
    Ok(PgTls(MakeRustlsConnect::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_libpq_mode_is_understood() {
        for (text, mode) in [
            ("disable", SslPolicy::Disable),
            ("require", SslPolicy::Require),
            ("verify-full", SslPolicy::VerifyFull),
        ] {
            assert_eq!(SslPolicy::parse(text), Ok(mode));
        }
        assert!(SslPolicy::parse("allow-anything").is_err());
    }

    #[test]
    fn verifying_modes_need_a_root_certificate() {
        assert!(connector(SslPolicy::VerifyFull, None).is_err());
        assert!(connector(SslPolicy::Require, None).is_ok());
    }
}
