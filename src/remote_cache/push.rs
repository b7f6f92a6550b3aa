//! Writing the remote cache: every layer blob (skipped when the repository has it), then the
//! empty config and each record's envelope, and last each record's manifest under its tag. The
//! registry accepts a record only once every blob it lists is there, so an interrupted writer
//! leaves blobs without records, never a record without its blob; and writers of the same
//! layers write the same bytes (see [`super::record`]).

use std::path::Path;
use std::time::Duration;

use super::record::{self, CacheRecord};
use super::CacheError;
use crate::attest::SigningKey;
use crate::digest::Sha256Digest;
use crate::media;
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
        let pushed = with_retries(|| {
            let mut file = fs_err::File::open(layer.path)?;
            Ok(client.put_blob(repo, &r.digest, r.size, &mut file)?)
        })
        .map_err(|e| match e {
            Retried::Registry(e) => registry_err(e),
            Retried::Io(e) => CacheError::ReadLayer {
                digest: r.digest,
                path: layer.path.to_path_buf(),
                source: e,
            },
        })?;
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
    let retried_err = |e: Retried| match e {
        Retried::Registry(e) => registry_err(e),
        Retried::Io(_) => unreachable!("no file is read"),
    };
    let put_small = |bytes: &[u8]| {
        let digest = Sha256Digest::of(bytes);
        with_retries(|| Ok(client.put_blob(repo, &digest, bytes.len() as u64, &mut &bytes[..])?))
            .map(|_| digest)
            .map_err(retried_err)
    };
    put_small(media::EMPTY_JSON)?;
    for layer in layers {
        let r = &layer.record;
        let envelope = r.envelope(key);
        let digest = put_small(&envelope)?;
        let manifest = r.manifest(&digest, envelope.len() as u64);
        let tag = record::tag(&r.key);
        with_retries(|| {
            match client.put_manifest(repo, &tag, media::OCI_MANIFEST, &manifest) {
                Ok(_) => Ok(()),
                // Another writer of the same record got there: the record is in place.
                Err(_)
                    if client.resolve_tag(repo, &tag).ok() == Some(Sha256Digest::of(&manifest)) =>
                {
                    Ok(())
                }
                Err(e) => Err(e.into()),
            }
        })
        .map_err(retried_err)?;
        report.records += 1;
    }
    Ok(report)
}

/// What a retried step failed with.
enum Retried {
    Registry(RegistryError),
    Io(std::io::Error),
}

impl From<RegistryError> for Retried {
    fn from(e: RegistryError) -> Self {
        Retried::Registry(e)
    }
}

impl From<std::io::Error> for Retried {
    fn from(e: std::io::Error) -> Self {
        Retried::Io(e)
    }
}

/// How often a push step is tried.
const ATTEMPTS: u32 = 4;

/// Runs `step` until it succeeds, at most [`ATTEMPTS`] times, waiting longer each time. Several
/// writers pushing the same blob into one repository race inside the registry: distribution
/// rewrites the repository's link to the blob on every commit, and a request that reads the
/// link meanwhile fails (`DIGEST_INVALID`, `BLOB_UNKNOWN`); the same request a moment later
/// succeeds, since every writer writes the same bytes. A refusal (see [`refused`]) is not tried
/// again.
fn with_retries<T>(mut step: impl FnMut() -> Result<T, Retried>) -> Result<T, Retried> {
    let mut attempt = 1;
    loop {
        match step() {
            Ok(v) => return Ok(v),
            Err(Retried::Registry(e)) if attempt < ATTEMPTS && !refused(&e) => {
                std::thread::sleep(Duration::from_millis(50 << attempt));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether the registry refused the request for good: no or wrong credentials, not allowed, a
/// read-only registry (405). The same request a moment later gets the same answer.
fn refused(e: &RegistryError) -> bool {
    matches!(
        e,
        RegistryError::Unauthorized { .. }
            | RegistryError::Token { .. }
            | RegistryError::PlainHttpRefused { .. }
            | RegistryError::Status {
                status: 401 | 403 | 405,
                ..
            }
    )
}
