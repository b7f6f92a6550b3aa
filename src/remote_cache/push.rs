//! Writing the remote cache: every layer blob (skipped when the repository has it), then the
//! empty config and each record's envelope, and last each record's manifest under its tag. The
//! registry accepts a record only once every blob it lists is there, so an interrupted writer
//! leaves blobs without records, never a record without its blob; and writers of the same
//! layers write the same bytes (see [`super::record`]).

use std::path::Path;

use super::record::{self, CacheRecord};
use super::CacheError;
use crate::attest::SigningKey;
use crate::digest::Sha256Digest;
use crate::image::media;
use crate::registry::{run_parallel, BlobPush, Client, RegistryError, Repository};

/// One layer to share: its record and where its blob is.
#[derive(Clone, Debug)]
pub struct LayerToPush<'a> {
    pub record: CacheRecord,
    pub path: &'a Path,
}

/// What [`push`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CachePushReport {
    /// Layer blobs sent, and found in the repository already.
    pub uploaded: usize,
    pub existed: usize,
    /// Bytes of the layer blobs sent.
    pub uploaded_bytes: u64,
    /// Records written.
    pub records: usize,
}

/// Pushes `layers` and their records (signed with `key` when given) to `repo`, `threads` blobs
/// at a time.
pub fn push(
    client: &Client,
    repo: &Repository,
    layers: &[LayerToPush<'_>],
    key: Option<&SigningKey>,
    threads: usize,
) -> Result<CachePushReport, CacheError> {
    let cache = repo.to_string();
    let registry_err = |e: RegistryError| CacheError::Push {
        cache: cache.clone(),
        source: Box::new(e),
    };
    let outcomes = run_parallel(layers.to_vec(), threads, |layer| {
        let r = &layer.record;
        let mut file = fs_err::File::open(layer.path).map_err(|e| CacheError::ReadLayer {
            digest: r.digest,
            path: layer.path.to_path_buf(),
            source: e,
        })?;
        let pushed = client
            .put_blob(repo, &r.digest, r.size, &mut file)
            .map_err(registry_err)?;
        Ok::<_, CacheError>((pushed, r.size))
    })?;
    let mut report = CachePushReport::default();
    for (pushed, size) in outcomes {
        match pushed {
            BlobPush::Uploaded => {
                report.uploaded += 1;
                report.uploaded_bytes += size;
            }
            BlobPush::Existed => report.existed += 1,
        }
    }
    let put_small = |bytes: &[u8]| {
        let digest = Sha256Digest::of(bytes);
        client
            .put_blob(repo, &digest, bytes.len() as u64, &mut &bytes[..])
            .map(|_| digest)
            .map_err(registry_err)
    };
    put_small(media::EMPTY_JSON)?;
    for layer in layers {
        let r = &layer.record;
        let envelope = r.envelope(key);
        let digest = put_small(&envelope)?;
        let manifest = r.manifest(&digest, envelope.len() as u64);
        client
            .put_manifest(repo, &record::tag(&r.key), media::OCI_MANIFEST, &manifest)
            .map_err(registry_err)?;
        report.records += 1;
    }
    Ok(report)
}
