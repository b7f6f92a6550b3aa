//! `FetchError`: every variant names the input (the recipe's name for it) and where it came
//! from, so the message alone says which line of which recipe to look at.

use std::io;
use std::path::PathBuf;

use crate::digest::Sha256Digest;
use crate::store::StoreError;

pub type Result<T, E = FetchError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "digest mismatch for input `{input}` from {url}: expected {expected}, got {actual}; \
         the download was cut short, the file changed upstream, or the pin is wrong"
    )]
    DigestMismatch {
        input: String,
        url: String,
        expected: Sha256Digest,
        actual: Sha256Digest,
    },

    #[error("mirror file {path} for input `{input}` has digest {actual}, expected {expected}")]
    MirrorMismatch {
        input: String,
        path: PathBuf,
        expected: Sha256Digest,
        actual: Sha256Digest,
    },

    #[error(
        "input `{input}` ({expected}, from {url}) is not in the cache and downloads are off \
         (--offline)"
    )]
    Offline {
        input: String,
        url: String,
        expected: Sha256Digest,
    },

    #[error(
        "cannot resolve input `{input}` from {url} while offline: pinning needs to download it"
    )]
    ResolveOffline { input: String, url: String },

    #[error("unsupported URL `{url}` for input `{input}`: expected http://, https:// or file://")]
    UnsupportedUrl { input: String, url: String },

    #[error("failed to fetch input `{input}` from {url}: the server answered HTTP {status}")]
    Http {
        input: String,
        url: String,
        status: u16,
    },

    #[error("failed to fetch input `{input}` from {url}")]
    Connect {
        input: String,
        url: String,
        #[source]
        source: Box<crate::http::HttpError>,
    },

    #[error("failed to read the download of input `{input}` from {url}")]
    Body {
        input: String,
        url: String,
        #[source]
        source: io::Error,
    },

    #[error(
        "download of input `{input}` from {url} delivered {received} bytes where {declared} were \
         announced (Content-Length): the connection broke or the server is faulty"
    )]
    LengthMismatch {
        input: String,
        url: String,
        declared: u64,
        received: u64,
    },

    #[error(
        "download of input `{input}` from {url} broke off after {received} bytes, before the \
         end of its chunked body: the connection broke or the server is faulty; nothing was \
         stored"
    )]
    CutShort {
        input: String,
        url: String,
        received: u64,
    },

    #[error(
        "input `{input}` from {url} changed between two downloads ({first}, then {second}): \
         the server sent no Content-Length, so kiln downloads such a file twice to catch a \
         broken connection; retry, or use a URL that serves a fixed file"
    )]
    Unstable {
        input: String,
        url: String,
        first: Sha256Digest,
        second: Sha256Digest,
    },

    #[error("failed to fetch input `{input}`: more than {limit} redirects starting at {url}")]
    TooManyRedirects {
        input: String,
        url: String,
        limit: u32,
    },

    #[error(
        "refusing redirect for input `{input}` from {from} to {to}: an https download must not \
         continue over plain http"
    )]
    Downgrade {
        input: String,
        from: String,
        to: String,
    },

    #[error("invalid redirect for input `{input}` from {url} to `{location}`")]
    BadRedirect {
        input: String,
        url: String,
        location: String,
    },

    #[error(
        "download of input `{input}` from {url} is larger than {limit}{}; \
         nothing was stored",
        announced.map(|n| format!(": the server announced {n} bytes (Content-Length)")).unwrap_or_default()
    )]
    TooLarge {
        input: String,
        url: String,
        limit: super::SizeLimit,
        /// The Content-Length that was refused before the first byte, if that is how.
        announced: Option<u64>,
    },

    #[error("input `{input}` at {path} is a {kind}, not a regular file; only regular files can be inputs")]
    NotRegularFile {
        input: String,
        path: PathBuf,
        kind: &'static str,
    },

    #[error("failed to read input `{input}` from {path}")]
    File {
        input: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("failed to store input `{input}` in the cache")]
    Store {
        input: String,
        #[source]
        source: Box<StoreError>,
    },
}

impl FetchError {
    /// What the user can do about it, when kiln knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::DigestMismatch { .. } => Some(
                "re-pin with `kiln lock --update` only if you trust the new content".to_string(),
            ),
            Self::Offline { .. } => Some(
                "run `kiln fetch` with network access first, or pass `--mirror DIR` with a \
                 directory holding the file named by its digest"
                    .to_string(),
            ),
            _ => None,
        }
    }

    /// Whether trying the same download again may succeed: the connection failed or broke, or
    /// the server said it is overloaded. A wrong digest is never transient.
    pub fn is_transient(&self) -> bool {
        match self {
            // Trust does not change between tries; a connection may.
            FetchError::Connect { source, .. } => {
                matches!(**source, crate::http::HttpError::Transport { .. })
            }
            FetchError::Body { .. }
            | FetchError::LengthMismatch { .. }
            | FetchError::CutShort { .. } => true,
            FetchError::Http { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}
