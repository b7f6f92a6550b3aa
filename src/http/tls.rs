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

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

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

/// The TLS part of the agent's configuration: ring, and the roots below (or no verification).
pub(crate) fn ureq_config(verify: TlsVerify) -> Result<ureq::tls::TlsConfig> {
    let builder = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(provider());
    let builder = match verify {
        TlsVerify::Roots => {
            let certs: Vec<ureq::tls::Certificate<'static>> = roots_from_env()?
                .iter()
                .map(|der| ureq::tls::Certificate::from_der(der).to_owned())
                .collect();
            builder.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)))
        }
        TlsVerify::Off => builder.disable_verification(true),
    };
    Ok(builder.build())
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// The trusted roots from `$SSL_CERT_FILE`, `$SSL_CERT_DIR` and the system bundles.
fn roots_from_env() -> Result<Vec<CertificateDer<'static>>> {
    let dirs: Vec<PathBuf> = env_path("SSL_CERT_DIR")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    roots(env_path("SSL_CERT_FILE"), &dirs)
}

/// The roots in `file` (or, without one, in the first system bundle that exists) and in every
/// regular file of `dirs`. A named file that cannot be read is an error; in the directories,
/// files that hold no certificate are skipped (OpenSSL's hashed directories hold other
/// things). A malformed root is dropped when the store is made, without disabling the others.
pub fn roots(file: Option<PathBuf>, dirs: &[PathBuf]) -> Result<Vec<CertificateDer<'static>>> {
    let mut store = Vec::new();
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

fn add_pem_file(store: &mut Vec<CertificateDer<'static>>, path: &Path) -> Result<()> {
    let certificates = |source| HttpError::Certificates {
        path: path.to_path_buf(),
        source,
    };
    for cert in CertificateDer::pem_file_iter(path).map_err(certificates)? {
        store.push(cert.map_err(certificates)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_configs_build() {
        ureq_config(TlsVerify::Roots).unwrap();
        ureq_config(TlsVerify::Off).unwrap();
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
