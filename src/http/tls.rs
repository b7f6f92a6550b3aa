//! TLS trust, one configuration for every https connection kiln makes: the system's CA bundle
//! (what `curl`, skopeo and podman trust on this machine), not a bundle compiled into kiln.
//!
//! The roots are, as OpenSSL reads them: the bundle `$SSL_CERT_FILE` names, or else the first
//! of the distributions' usual bundles that exists; plus every certificate found in the
//! directories listed in `$SSL_CERT_DIR` (colon-separated). So a private or corporate CA is
//! added the same way for url inputs, Debian repositories and registries. Only when the user
//! passes `--tls-verify=false` (registries) is any certificate accepted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::error::{HttpError, Result};
use super::TlsVerify;

/// Where distributions keep their CA bundle; `$SSL_CERT_FILE` replaces them.
const BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn client_config(verify: TlsVerify) -> Result<Arc<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(HttpError::Tls)?;
    let config = match verify {
        TlsVerify::Roots => builder
            .with_root_certificates(roots_from_env()?)
            .with_no_client_auth(),
        TlsVerify::Off => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// The trusted roots from `$SSL_CERT_FILE`, `$SSL_CERT_DIR` and the system bundles.
fn roots_from_env() -> Result<RootCertStore> {
    let dirs: Vec<PathBuf> = env_path("SSL_CERT_DIR")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    roots(env_path("SSL_CERT_FILE"), &dirs)
}

/// The roots in `file` (or, without one, in the first system bundle that exists) and in every
/// regular file of `dirs`. A named file that cannot be read is an error; in the directories,
/// files that hold no certificate are skipped (OpenSSL's hashed directories hold other
/// things), and a single malformed root must not disable all the others.
pub fn roots(file: Option<PathBuf>, dirs: &[PathBuf]) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match file {
        Some(path) => add_pem_file(&mut store, &path)?,
        // No bundle at all leaves the store empty: https then fails with "unknown issuer",
        // while loopback http registries keep working.
        None => {
            if let Some(path) = BUNDLES.iter().map(Path::new).find(|p| p.is_file()) {
                add_pem_file(&mut store, path)?;
            }
        }
    }
    for dir in dirs {
        let Ok(entries) = fs_err::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for path in files {
            let _ = add_pem_file(&mut store, &path);
        }
    }
    Ok(store)
}

fn add_pem_file(store: &mut RootCertStore, path: &Path) -> Result<()> {
    let certificates = |source| HttpError::Certificates {
        path: path.to_path_buf(),
        source,
    };
    for cert in CertificateDer::pem_file_iter(path).map_err(certificates)? {
        let _ = store.add(cert.map_err(certificates)?);
    }
    Ok(())
}

/// `--tls-verify=false`: the user said they accept an unauthenticated server.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_configs_build() {
        client_config(TlsVerify::Roots).unwrap();
        client_config(TlsVerify::Off).unwrap();
    }

    #[test]
    fn roots_come_from_the_named_file_and_the_directories() {
        let dir = tempfile::tempdir().unwrap();
        let ca = crate::testing::tls::TestCa::new(dir.path());
        let certs = dir.path().join("certs");
        fs_err::create_dir(&certs).unwrap();
        fs_err::write(certs.join("README"), "not a certificate").unwrap();
        fs_err::copy(&ca.ca_pem, certs.join("ca.pem")).unwrap();
        let empty = dir.path().join("empty.pem");
        fs_err::write(&empty, "").unwrap();
        assert_eq!(roots(Some(ca.ca_pem.clone()), &[]).unwrap().len(), 1);
        assert_eq!(roots(Some(empty.clone()), &[]).unwrap().len(), 0);
        assert_eq!(roots(Some(empty), &[certs]).unwrap().len(), 1);
        let missing = dir.path().join("missing.pem");
        let err = roots(Some(missing.clone()), &[]).unwrap_err();
        assert!(
            matches!(&err, HttpError::Certificates { path, .. } if *path == missing),
            "{err:?}"
        );
    }
}
