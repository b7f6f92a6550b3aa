//! TLS set-up: the system's trust roots (what `curl`, skopeo and podman trust on this machine),
//! not a bundle compiled into kiln; and, only when the user passes `--tls-verify=false`, a
//! verifier that accepts any certificate.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::error::{RegistryError, Result};

/// Where distributions keep their CA bundle; `$SSL_CERT_FILE` comes first.
const BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn client_config(verify: bool) -> Result<Arc<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(RegistryError::Tls)?;
    let config = if verify {
        builder
            .with_root_certificates(system_roots()?)
            .with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

fn system_roots() -> Result<RootCertStore> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("SSL_CERT_FILE").filter(|p| !p.is_empty()) {
        candidates.push(p.into());
    }
    candidates.extend(BUNDLES.iter().map(PathBuf::from));
    let mut store = RootCertStore::empty();
    // No bundle at all leaves the store empty: https then fails with "unknown issuer", while
    // loopback http registries keep working.
    if let Some(path) = candidates.into_iter().find(|p| p.is_file()) {
        for cert in
            CertificateDer::pem_file_iter(&path).map_err(|e| RegistryError::Certificates {
                path: path.clone(),
                source: e,
            })?
        {
            let cert = cert.map_err(|e| RegistryError::Certificates {
                path: path.clone(),
                source: e,
            })?;
            // A single malformed root must not disable all the others.
            let _ = store.add(cert);
        }
    }
    Ok(store)
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
        client_config(true).unwrap();
        client_config(false).unwrap();
    }
}
