//! OCI manifests, configs, indexes, layouts, archives and transports.
//!
//! Types are `oci-spec`'s; every blob kiln writes goes through [`json::to_canonical_vec`] so its
//! bytes do not depend on map iteration order.

use std::path::PathBuf;

use crate::digest::Sha256Digest;

pub mod archive;
pub mod copy;
pub mod json;
pub mod layout;
pub mod manifest;
pub mod push;
pub mod referrer;
pub mod remote;
pub mod source;
pub mod write;

pub use crate::reference::{ImageRef, ReferenceError};
pub use copy::copy_image;
pub use layout::Layout;
pub use remote::{RegistryOptions, Transports};
pub use source::{open_image, open_image_with, OpenedImage};

pub type Result<T, E = ImageError> = std::result::Result<T, E>;

#[cfg(test)]
#[test]
fn image_error_stays_small() {
    // Other modules carry `ImageError` inside their own errors; keep it cheap to move.
    assert!(
        std::mem::size_of::<ImageError>() <= 96,
        "{}",
        std::mem::size_of::<ImageError>()
    );
}

/// A layer whose decompressed digest is not the config's diff_id (SECURITY.md 18).
#[derive(Debug)]
pub struct DiffIdMismatch {
    pub reference: String,
    pub digest: Sha256Digest,
    pub expected: String,
    pub actual: Sha256Digest,
}

/// A destination pinned to another digest than the image being written.
#[derive(Debug)]
pub struct DestinationDigest {
    pub destination: String,
    pub pinned: Sha256Digest,
    pub actual: Sha256Digest,
}

impl DestinationDigest {
    /// Refuses to write an image to a destination pinned (`@sha256:`) to another digest.
    pub fn check(
        destination: &dyn std::fmt::Display,
        pinned: Option<&Sha256Digest>,
        actual: &Sha256Digest,
    ) -> Result<()> {
        match pinned {
            Some(pinned) if pinned != actual => {
                Err(ImageError::DestinationDigest(Box::new(Self {
                    destination: destination.to_string(),
                    pinned: *pinned,
                    actual: *actual,
                })))
            }
            _ => Ok(()),
        }
    }
}

impl ImageError {
    /// What the user can do about it, when kiln knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Offline { .. } => {
                Some("run once without --offline (or `kiln fetch`) to fill the cache".to_string())
            }
            Self::OfflineTag { .. } => {
                Some("pin the reference with @sha256:… (`kiln lock` does it)".to_string())
            }
            Self::NoCacheDir => Some("set XDG_CACHE_HOME or HOME, or pass --cache".to_string()),
            Self::Store(e) => e.hint(),
            _ => None,
        }
    }
}

impl From<crate::registry::RegistryError> for ImageError {
    fn from(e: crate::registry::RegistryError) -> Self {
        ImageError::Registry(Box::new(e))
    }
}

impl From<crate::store::StoreError> for ImageError {
    fn from(e: crate::store::StoreError) -> Self {
        ImageError::Store(Box::new(e))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Ref(#[from] ReferenceError),
    #[error("`{}` is not an OCI image layout (no oci-layout or index.json)", path.display())]
    NotALayout { path: PathBuf },
    #[error("blob {digest} is missing from {location}")]
    MissingBlob {
        digest: Sha256Digest,
        location: String,
        #[source]
        source: std::io::Error,
    },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Sha256Digest,
        actual: Sha256Digest,
    },
    #[error("blob {digest} is larger than the {limit}-byte limit for manifests and configs")]
    TooLarge { digest: Sha256Digest, limit: u64 },
    #[error("failed to parse {what} as JSON")]
    BadJson {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("referrer {referrer} is annotated as a statement but has no layer")]
    NoStatementLayer { referrer: Sha256Digest },
    #[error("unsupported digest `{digest}`: kiln handles sha256 digests only")]
    UnsupportedDigest { digest: String },
    #[error("{reference}: {reason}")]
    Select { reference: String, reason: String },
    #[error("{reference}: no manifest for platform {platform}; available: {available}")]
    NoPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("{reference}: unsupported media type `{media_type}`")]
    UnsupportedMediaType {
        reference: String,
        media_type: String,
    },
    #[error("{reference}: the {transport} transport is not supported here yet")]
    UnsupportedTransport {
        reference: String,
        transport: &'static str,
    },
    // Boxed: these are large, and `ImageError` travels inside other modules' errors.
    #[error(transparent)]
    Registry(Box<crate::registry::RegistryError>),
    #[error(transparent)]
    Store(Box<crate::store::StoreError>),
    #[error("{reference}: {what} {digest} is not in the cache and --offline forbids the network")]
    Offline {
        reference: String,
        what: &'static str,
        digest: String,
    },
    #[error("{reference}: a tag needs the network to resolve and --offline was given")]
    OfflineTag { reference: String },
    #[error("failed to read archive {}: entry `{entry}` {reason}", archive.display())]
    UnsafeArchiveEntry {
        archive: PathBuf,
        entry: String,
        reason: &'static str,
    },
    #[error("failed to read archive {}: link `{entry}` -> `{target}` {reason}", archive.display())]
    ArchiveLink {
        archive: PathBuf,
        entry: String,
        target: String,
        reason: &'static str,
    },
    #[error("failed to read archive {}", archive.display())]
    ArchiveTar {
        archive: PathBuf,
        #[source]
        source: Box<crate::layer::read::ReadError>,
    },
    #[error("failed to read archive {}", archive.display())]
    ArchiveDecompress {
        archive: PathBuf,
        #[source]
        source: Box<crate::layer::decompress::DecompressError>,
    },
    #[error("failed to read docker archive {}: {reason}", archive.display())]
    BadDockerArchive { archive: PathBuf, reason: String },
    #[error("{}: layer {} decompresses to {}, but the config's diff_id is {}", .0.reference, .0.digest, .0.actual, .0.expected)]
    DiffIdMismatch(Box<DiffIdMismatch>),
    #[error("failed to write {}: the destination is pinned to {} but the image is {}", .0.destination, .0.pinned, .0.actual)]
    DestinationDigest(Box<DestinationDigest>),
    #[error("failed to decompress layer {digest}")]
    LayerDecompress {
        digest: Sha256Digest,
        #[source]
        source: Box<crate::layer::decompress::DecompressError>,
    },
    #[error("failed to read layer {digest}")]
    LayerRead {
        digest: Sha256Digest,
        #[source]
        source: std::io::Error,
    },
    #[error("no cache directory for registry blobs")]
    NoCacheDir,
    #[error("failed to write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
