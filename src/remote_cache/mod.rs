//! A layer cache shared through any OCI registry (`kiln build --cache-to` / `--cache-from`).
//!
//! One record per layer cache key (see [`record`]): the key comes from the build plan and
//! nowhere else, the record names the layer blob by digest and diff_id, and the blob lives in
//! the same repository. A writer pushes every blob first and each record last; a reader looks a
//! key up, checks the record (its type, its key, its encoder, and with trusted keys its
//! signature), pulls the blob into the store verified by digest and by diff_id, and uses it. A
//! reader never fails because of the cache: every problem is a miss for the caller to report.

mod pull;
mod push;
pub(crate) mod record;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub(crate) use pull::{lookup, CacheSource, RemoteHit};
pub(crate) use push::CachePushReport;
pub use push::{push, LayerToPush};
pub use record::CacheRecord;
pub(crate) use record::{Expected, RecordError};

use crate::digest::Sha256Digest;
use crate::image::ImageError;
use crate::registry::RegistryError;

/// Why a remote cache was not used for a layer (or at all).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The first request failed: the cache is down, refuses us, or is not a registry.
    #[error("failed to read the record {tag} from {cache}")]
    Unreachable {
        cache: String,
        tag: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("failed to read the record {tag} from {cache}")]
    Read {
        cache: String,
        tag: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("refused the record {tag} from {cache}: {reason}")]
    NotARecord {
        cache: String,
        tag: String,
        reason: String,
    },
    #[error("refused the record {tag} from {cache}")]
    Record {
        cache: String,
        tag: String,
        #[source]
        source: RecordError,
    },
    #[error("failed to pull layer {digest} (record {tag}) from {cache}")]
    Pull {
        cache: String,
        tag: String,
        digest: Sha256Digest,
        #[source]
        source: Box<ImageError>,
    },
    #[error("failed to push to the cache {cache}")]
    Push {
        cache: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("failed to read layer {digest} from {} to push it", path.display())]
    ReadLayer {
        digest: Sha256Digest,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl CacheError {
    /// Whether the cache as a whole is unusable (every later lookup would fail the same way).
    pub(crate) fn is_unreachable(&self) -> bool {
        matches!(self, CacheError::Unreachable { .. })
    }
}
