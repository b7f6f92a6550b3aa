//! Reading the remote cache: look a key's record up, check it, and bring the layer blob it
//! names into the store, verified by digest (while it streams) and by diff_id (decompressed
//! and hashed before it is committed), exactly as a base image's layers are.

use std::io::BufReader;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::record::{self, Expected, MAX_ENVELOPE_BYTES};
use super::CacheError;
use crate::attest::VerifyingKey;
use crate::image::remote::{uncompressed_digest, RegistryBlobs};
use crate::image::ImageError;
use crate::media;
use crate::registry::{Client, Reference, RegistryError, Repository};
use crate::store::Store;

/// A repository used as a cache, and the keys whose signatures make a record trusted (none:
/// every record is used, verified by digest and diff_id only).
#[derive(Clone, Debug)]
pub struct CacheSource {
    pub repository: Repository,
    pub trust: Vec<VerifyingKey>,
    /// Set once a lookup found the cache unreachable, in every clone of this source: a build of
    /// several images (one per platform) does not ask it again for the next image.
    unreachable: Arc<AtomicBool>,
}

impl CacheSource {
    pub fn new(repository: Repository, trust: Vec<VerifyingKey>) -> Self {
        CacheSource {
            repository,
            trust,
            unreachable: Arc::default(),
        }
    }

    /// Whether a lookup found this cache unreachable ([`CacheError::is_unreachable`]).
    pub fn is_unreachable(&self) -> bool {
        self.unreachable.load(Ordering::Relaxed)
    }

    pub fn set_unreachable(&self) {
        self.unreachable.store(true, Ordering::Relaxed);
    }
}

/// A layer found in a remote cache and now in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteHit {
    /// The cache it came from, `HOST/REPO`.
    pub cache: String,
    pub record: record::CacheRecord,
    /// The trusted key that signed the record, by key id.
    pub signed_by: Option<String>,
    /// The blob in the store.
    pub path: PathBuf,
}

/// The layer `want.key` built, from `source`: `None` when it has no record for the key.
pub fn lookup(
    client: &Arc<Client>,
    store: &Store,
    source: &CacheSource,
    want: Expected<'_>,
) -> Result<Option<RemoteHit>, CacheError> {
    let repo = &source.repository;
    let cache = repo.to_string();
    let tag = record::tag(want.key);
    // Asked for every type kiln reads, so that whatever the tag holds (an image, an index)
    // comes back as it is and is refused as not a record; asked for OCI manifests only,
    // distribution converts a Docker schema 2 image to schema 1, which reads as a lie.
    let manifest = match client.get_manifest(repo, &tag, media::ALL_MANIFEST_TYPES) {
        Ok(m) => m,
        Err(RegistryError::Status { status: 404, .. }) => return Ok(None),
        // The cache cannot be reached or refuses us: every later lookup would fail the same.
        Err(
            e @ (RegistryError::Transport { .. }
            | RegistryError::Unauthorized { .. }
            | RegistryError::Token { .. }
            | RegistryError::PlainHttpRefused { .. }),
        ) => {
            return Err(CacheError::Unreachable {
                cache,
                tag,
                source: Box::new(e),
            })
        }
        Err(e) => {
            return Err(CacheError::Read {
                cache,
                tag,
                source: Box::new(e),
            })
        }
    };
    let not_a_record = |reason: &str| CacheError::NotARecord {
        cache: cache.clone(),
        tag: tag.clone(),
        reason: reason.to_string(),
    };
    let (envelope_digest, envelope_size) = record::envelope_in(&manifest.bytes)
        .ok_or_else(|| not_a_record("its manifest lists no record envelope"))?;
    if envelope_size > MAX_ENVELOPE_BYTES {
        return Err(not_a_record("its envelope is larger than 64 KiB"));
    }
    let mut envelope = Vec::new();
    client
        .get_blob(repo, &envelope_digest, Some(envelope_size), &mut envelope)
        .map_err(|e| CacheError::Read {
            cache: cache.clone(),
            tag: tag.clone(),
            source: Box::new(e),
        })?;
    let opened = record::open(want, &envelope, &source.trust).map_err(|e| CacheError::Record {
        cache: cache.clone(),
        tag: tag.clone(),
        source: e,
    })?;
    let r = &opened.record;
    let pull_err = |e: ImageError| CacheError::Pull {
        cache: cache.clone(),
        tag: tag.clone(),
        digest: r.digest,
        source: Box::new(e),
    };
    let blobs = RegistryBlobs {
        reference: Reference::new(repo.clone(), None, None)
            .expect("a reference without tag or digest is valid"),
        store: store.clone(),
        client: client.clone(),
        offline: false,
    };
    let path = blobs
        .ensure_blob(&r.digest, Some(r.size), Some(&r.diff_id.to_string()))
        .map_err(pull_err)?;
    // A blob the store had already was checked against its own digest only: its diff_id is
    // known when a build or pull recorded it, else hashed now.
    if store.diff_id_record(&r.digest).as_ref() != Some(&r.diff_id) {
        let file = fs_err::File::open(&path).map_err(|e| pull_err(e.into()))?;
        let actual = uncompressed_digest(BufReader::new(file), &r.digest).map_err(pull_err)?;
        if actual != r.diff_id {
            return Err(pull_err(ImageError::DiffIdMismatch(Box::new(
                crate::image::DiffIdMismatch {
                    reference: format!("{cache} (record {tag})"),
                    digest: r.digest,
                    expected: r.diff_id.to_string(),
                    actual,
                },
            ))));
        }
        store.record_diff_id(&r.digest, &r.diff_id);
    }
    Ok(Some(RemoteHit {
        cache,
        record: opened.record,
        signed_by: opened.signed_by,
        path,
    }))
}
