//! `HttpError`: what the shared client can fail at before a response exists (trust set-up,
//! connection, TLS). An untrusted certificate is its own variant, with a hint naming the
//! variables that add a CA, because it is the failure a corporate or private CA produces.

use std::path::PathBuf;

pub type Result<T, E = HttpError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("failed to read the trusted certificates in {path}")]
    Certificates {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },

    #[error("the TLS certificate of {host} is not trusted: {reason}")]
    UntrustedCertificate { host: String, reason: String },

    #[error("failed to connect to {url}: the server answered in plain http, not TLS")]
    PlainHttpServer { url: String },

    #[error("failed to connect to {url}")]
    Transport {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl HttpError {
    /// Where kiln looks for trusted CAs, for an untrusted certificate.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::UntrustedCertificate { .. } => Some(
                "kiln trusts the system's CA bundle, or the bundle $SSL_CERT_FILE names, and the \
                 certificates in the directories of $SSL_CERT_DIR; add your CA there (e.g. \
                 SSL_CERT_FILE=/path/ca.pem)"
                    .to_string(),
            ),
            Self::PlainHttpServer { .. } => Some(
                "the server speaks plain http: give a url input or a Debian repository an \
                 http:// URL; a registry without TLS takes --tls-verify=false (a loopback \
                 registry is asked over http without it)"
                    .to_string(),
            ),
            _ => None,
        }
    }

    pub(super) fn from_ureq(url: &str, e: ureq::Error) -> Self {
        if let Some(reason) = certificate_failure(&e) {
            let host = url::Url::parse(url)
                .ok()
                .and_then(|u| {
                    u.host_str()
                        .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(443)))
                })
                .unwrap_or_else(|| url.to_string());
            return HttpError::UntrustedCertificate { host, reason };
        }
        if answered_plain_http(&e) {
            return HttpError::PlainHttpServer {
                url: url.to_string(),
            };
        }
        HttpError::Transport {
            url: url.to_string(),
            source: Box::new(e),
        }
    }
}

/// Whether the TLS handshake got a plain-http answer (its first bytes are no TLS record).
fn answered_plain_http(err: &ureq::Error) -> bool {
    matches!(
        rustls_error(err),
        Some(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType
        ))
    )
}

/// The certificate error rustls raised, directly or wrapped in an `io::Error` by the TLS
/// stream, described.
fn certificate_failure(err: &ureq::Error) -> Option<String> {
    match rustls_error(err) {
        Some(e @ rustls::Error::InvalidCertificate(_)) => Some(e.to_string()),
        _ => None,
    }
}

/// The rustls error under `err`: ureq's own, or wrapped in an `io::Error` by the TLS stream.
fn rustls_error(err: &ureq::Error) -> Option<&rustls::Error> {
    match err {
        ureq::Error::Rustls(e) => Some(e),
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    }
}
