//! The registry client's error type: every variant names the URL, repository or digest it is
//! about, so that a refused pull or push says exactly what was refused and why.

use std::io;
use std::path::PathBuf;

use crate::digest::Sha256Digest;

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Reference(#[from] crate::reference::ReferenceError),

    #[error("invalid tag or digest `{input}` for {repository}")]
    InvalidManifestRef { repository: String, input: String },

    #[error("failed to {method} {url}")]
    Transport {
        method: &'static str,
        url: String,
        #[source]
        source: Box<crate::http::HttpError>,
    },

    #[error("failed to {method} {url}: the registry answered {status}: {body}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        body: String,
    },

    #[error("failed to read the response body of {url}")]
    Body {
        url: String,
        #[source]
        source: io::Error,
    },

    #[error("failed to authenticate to {host} for {url}: {reason}")]
    Unauthorized {
        host: String,
        url: String,
        reason: String,
    },

    #[error("failed to get a token from {realm}: {reason}")]
    Token { realm: String, reason: String },

    #[error("invalid WWW-Authenticate challenge `{header}` from {url}")]
    InvalidChallenge { url: String, header: String },

    #[error(
        "refused plain http to {host}: only loopback registries or --tls-verify=false may use http"
    )]
    PlainHttpRefused { host: String },

    #[error("refused redirect from {from} to {to}: https to http downgrade")]
    RedirectDowngrade { from: String, to: String },

    #[error("refused {url}: more than {max} redirects")]
    TooManyRedirects { url: String, max: u32 },

    #[error("invalid Location `{location}` in the answer to {url}")]
    InvalidLocation { url: String, location: String },

    #[error(
        "refused to follow a redirect of {method} {url}: the request body cannot be sent again"
    )]
    RedirectWithBody { method: &'static str, url: String },

    #[error("refused {what} from {url}: its content has digest {actual}, expected {expected}")]
    DigestMismatch {
        what: &'static str,
        url: String,
        expected: Sha256Digest,
        actual: Sha256Digest,
    },

    #[error("refused {url}: invalid Docker-Content-Digest header `{value}`")]
    InvalidDigestHeader { url: String, value: String },

    #[error("refused blob {digest} from {url}: {actual} bytes, expected {expected}")]
    SizeMismatch {
        digest: Sha256Digest,
        url: String,
        expected: u64,
        actual: u64,
    },

    #[error("refused {what} from {url}: larger than the limit of {limit} bytes")]
    TooLarge {
        what: &'static str,
        url: String,
        limit: u64,
    },

    #[error("refused manifest {reference} from {url}: its mediaType `{media_type}` disagrees with Content-Type `{content_type}`")]
    MediaTypeMismatch {
        reference: String,
        url: String,
        media_type: String,
        content_type: String,
    },

    #[error("refused manifest {reference} from {url}: Docker schema 1 manifests are not supported (signed, unverifiable layer list); pull a schema 2 or OCI image")]
    Schema1 { reference: String, url: String },

    #[error("refused manifest {reference} from {url}: media type `{media_type}` is not one of the accepted types {accepted:?}")]
    UnacceptedMediaType {
        reference: String,
        url: String,
        media_type: String,
        accepted: Vec<String>,
    },

    #[error("refused manifest {reference} from {url}: the manifest has no media type (no mediaType field and no Content-Type)")]
    NoMediaType { reference: String, url: String },

    #[error("refused index {digest}: it lists itself")]
    SelfReferencingIndex { digest: Sha256Digest },

    #[error("refused {what} {reference} from {url}: invalid JSON")]
    InvalidJson {
        what: &'static str,
        reference: String,
        url: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("refused index {index}: its entry {child} for the platform is again an index")]
    NestedIndex {
        index: Sha256Digest,
        child: Sha256Digest,
    },

    #[error("no manifest for platform {platform} in index {digest}")]
    NoMatchingPlatform {
        digest: Sha256Digest,
        platform: String,
    },

    #[error("failed to push to {repository}: the registry stored {what} as {returned}, but its local digest is {local}")]
    PushDigestMismatch {
        repository: String,
        what: &'static str,
        local: Sha256Digest,
        returned: String,
    },

    #[error("failed to push blob {expected} to {repository}: the bytes read locally have digest {actual} ({size} bytes)")]
    LocalDigestMismatch {
        repository: String,
        expected: Sha256Digest,
        actual: Sha256Digest,
        size: u64,
    },

    #[error("failed to read blob {digest} to push it to {repository}")]
    ReadLocal {
        repository: String,
        digest: Sha256Digest,
        #[source]
        source: io::Error,
    },

    #[error("failed to write blob {digest} from {url}")]
    Sink {
        digest: Sha256Digest,
        url: String,
        #[source]
        source: io::Error,
    },

    #[error("failed to read the auth file {path}")]
    AuthFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("failed to parse the auth file {path}")]
    AuthFileJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("invalid credentials for {host} in the auth file {path}: {reason}")]
    AuthFileEntry {
        path: PathBuf,
        host: String,
        reason: &'static str,
    },

    #[error("failed to set up the registry client")]
    Http(#[from] crate::http::HttpError),

    #[error("failed to serialize the referrers index for {subject}")]
    Serialize {
        subject: Sha256Digest,
        #[source]
        source: serde_json::Error,
    },
}
