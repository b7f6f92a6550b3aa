//! Reading images from `docker://` registries into the store.
//!
//! Why through the store: a recipe base pinned by digest must build `--offline` the second
//! time, and the store is already the one place where verified bytes live by digest. So every
//! manifest (the index too), the config and every layer is fetched into the store, verified by
//! the registry client while it streams and again by the store's commit, and read back from
//! there; a pull by digest that finds everything in the store never touches the network.
//! A tag always needs the registry (tags move), so a tag reference is refused `--offline`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest};

use super::layout::digest_of;
use super::layout::read_json_blob;
use super::source::{parse, BlobSource, OpenedImage};
use super::{ImageError, ImageRef, Result};
use crate::digest::{HashingReader, Sha256Digest};
use crate::layer::decompress;
use crate::media;
use crate::platform::Platform;
use crate::registry::{
    self, AuthFiles, Client, ClientOptions, Progress, PulledManifest, Reference, RegistryError,
    Repository,
};
use crate::store::{Store, StoreError};

/// How registries are reached: what skopeo's `--tls-verify` and `--authfile` say.
#[derive(Clone, Debug)]
pub struct RegistryOptions {
    /// `false` accepts any certificate and allows plain http to any host (loopback registries
    /// may use plain http either way).
    pub tls_verify: bool,
    /// Consulted before the default auth files.
    pub auth_file: Option<PathBuf>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            tls_verify: true,
            auth_file: None,
        }
    }
}

impl RegistryOptions {
    /// `--authfile` first, then the default search order.
    pub fn auth_files(&self) -> AuthFiles {
        let mut files = AuthFiles::from_env();
        if let Some(f) = &self.auth_file {
            files.0.insert(0, f.clone());
        }
        files
    }
}

/// Everything that opening or writing an image may need beyond its reference: the store
/// (registry blobs are cached there; archives are extracted beside it), the registry client,
/// and whether the network is allowed.
pub struct Transports {
    pub store: Store,
    pub offline: bool,
    pub client: Arc<Client>,
    /// How many blobs move at once.
    pub threads: usize,
    /// Whether opening a registry image also looks up its referrers and signature tags (what
    /// `copy` and `inspect` carry and show; a build needs only the image itself, and skipping
    /// them lets a build whose base is cached run without touching the network).
    pub with_attached: bool,
}

impl Transports {
    pub fn new(
        store: Store,
        offline: bool,
        registry: &RegistryOptions,
        progress: Option<Box<dyn Progress + Send + Sync>>,
    ) -> Result<Self> {
        let client = Client::new(ClientOptions {
            tls_verify: registry.tls_verify,
            auth_files: registry.auth_files(),
            progress,
            ..ClientOptions::default()
        })?;
        Ok(Self {
            store,
            offline,
            client: Arc::new(client),
            threads: registry::DEFAULT_PARALLELISM,
            with_attached: true,
        })
    }

    /// The default store (`$XDG_CACHE_HOME/kiln`), online, default registry options.
    pub fn from_env() -> Result<Self> {
        let root = Store::default_root().ok_or(ImageError::NoCacheDir)?;
        Self::new(
            Store::open(&root)?,
            false,
            &RegistryOptions::default(),
            None,
        )
    }

    /// A private directory beside the store for extracting archives and staging output.
    pub fn scratch(&self) -> Result<tempfile::TempDir> {
        Ok(self.store.scratch("kiln-image-")?)
    }
}

/// The registry side of an opened image: where its blobs come from when the store lacks them.
pub struct RegistryBlobs {
    pub reference: Reference,
    pub(crate) store: Store,
    pub(crate) client: Arc<Client>,
    pub(crate) offline: bool,
}

impl std::fmt::Debug for RegistryBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryBlobs")
            .field("reference", &self.reference.to_string())
            .field("store", &self.store.root())
            .field("offline", &self.offline)
            .finish()
    }
}

impl RegistryBlobs {
    fn repo(&self) -> &Repository {
        self.reference.repository()
    }

    fn offline_error(&self, what: &'static str, digest: &Sha256Digest) -> ImageError {
        ImageError::Offline {
            reference: self.reference.to_string(),
            what,
            digest: digest.to_string(),
        }
    }

    /// Makes sure blob `digest` is in the store (downloading and verifying it if not) and
    /// returns its path. With `diff_id`, the blob is a layer whose decompressed bytes must hash
    /// to it; that is checked before the blob is committed (SECURITY.md 18).
    pub fn ensure_blob(
        &self,
        digest: &Sha256Digest,
        size: Option<u64>,
        diff_id: Option<&str>,
    ) -> Result<PathBuf> {
        if let Some(path) = self.cached(digest)? {
            return Ok(path);
        }
        if self.offline {
            return Err(self.offline_error("blob", digest));
        }
        let _lock = self.store.lock(digest)?;
        if let Some(b) = self.store.open_verified_locked(&_lock)? {
            return Ok(b.path);
        }
        let mut writer = self.store.writer_for(&format!("{}", self.reference))?;
        self.client
            .get_blob(self.repo(), digest, size, &mut writer)?;
        writer.flush().map_err(|e| StoreError::Write {
            path: writer.temp_path().to_path_buf(),
            source: e,
        })?;
        if let Some(expected) = diff_id {
            let temp = writer.temp_path().to_path_buf();
            let file = fs_err::File::open(&temp)?;
            let actual = uncompressed_digest(file, digest)?;
            if actual.to_string() != expected {
                return Err(ImageError::DiffIdMismatch(Box::new(
                    super::DiffIdMismatch {
                        reference: self.reference.to_string(),
                        digest: *digest,
                        expected: expected.to_string(),
                        actual,
                    },
                )));
            }
        }
        writer.commit(Some(digest))?;
        if let Some(diff_id) = diff_id.and_then(|d| d.parse().ok()) {
            self.store.record_diff_id(digest, &diff_id);
        }
        Ok(self.store.path_unverified(digest))
    }

    /// The verified store entry for `digest`; a corrupt one is quarantined and reported absent.
    fn cached(&self, digest: &Sha256Digest) -> Result<Option<PathBuf>> {
        match self.store.open_verified(digest) {
            Ok(Some(b)) => Ok(Some(b.path)),
            Ok(None) | Err(StoreError::Corrupt { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A manifest by digest: from the store, else from the registry (verified, then stored).
    pub fn manifest_by_digest(&self, digest: &Sha256Digest) -> Result<PulledManifest> {
        if let Some(path) = self.cached(digest)? {
            let bytes = read_json_blob(fs_err::File::open(&path)?, digest)?;
            return Ok(PulledManifest {
                media_type: sniff_media_type(&bytes),
                bytes,
                digest: *digest,
            });
        }
        if self.offline {
            return Err(self.offline_error("manifest", digest));
        }
        let pulled = self.client.get_manifest(
            self.repo(),
            &digest.to_string(),
            media::ALL_MANIFEST_TYPES,
        )?;
        self.store_manifest(&pulled)?;
        Ok(pulled)
    }

    fn store_manifest(&self, m: &PulledManifest) -> Result<()> {
        if self.cached(&m.digest)?.is_none() {
            self.store
                .insert_reader(Some(&m.digest), &self.reference.to_string(), &m.bytes[..])?;
        }
        Ok(())
    }
}

/// The media type of manifest bytes that were verified when they entered the store: their
/// own `mediaType`, else index or manifest by shape.
fn sniff_media_type(bytes: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    if let Some(mt) = v.get("mediaType").and_then(|m| m.as_str()) {
        return mt.to_string();
    }
    if v.get("manifests").is_some() {
        media::OCI_INDEX.into()
    } else {
        media::OCI_MANIFEST.into()
    }
}

/// The sha256 of a layer's decompressed bytes (its diff_id).
pub(crate) fn uncompressed_digest(
    reader: impl Read + Send,
    digest: &Sha256Digest,
) -> Result<Sha256Digest> {
    let tar = decompress::open_archive(reader, &digest.to_string()).map_err(|e| {
        ImageError::LayerDecompress {
            digest: *digest,
            source: Box::new(e),
        }
    })?;
    let mut hashing = HashingReader::new(tar);
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| ImageError::LayerRead {
        digest: *digest,
        source: e,
    })?;
    Ok(hashing.finish().0)
}

/// The `Reference` of a `docker://` [`ImageRef`].
pub fn registry_reference(r: &ImageRef) -> Result<Reference> {
    match r {
        ImageRef::Docker(reference) => Ok(reference.clone()),
        other => Err(ImageError::UnsupportedTransport {
            reference: other.to_string(),
            transport: other.transport(),
        }),
    }
}

/// Opens a registry image for `platform`: manifests and config now, layers when first read
/// (or all at once with [`OpenedImage::prefetch`]).
pub(crate) fn open_registry(
    reference: &Reference,
    platform: Option<&Platform>,
    ctx: &Transports,
) -> Result<OpenedImage> {
    let blobs = RegistryBlobs {
        reference: reference.clone(),
        store: ctx.store.clone(),
        client: ctx.client.clone(),
        offline: ctx.offline,
    };
    let top = match reference.digest() {
        Some(d) => blobs.manifest_by_digest(d)?,
        None if ctx.offline => {
            return Err(ImageError::OfflineTag {
                reference: reference.to_string(),
            })
        }
        None => {
            let m = ctx.client.get_manifest(
                reference.repository(),
                reference.tag_or_latest(),
                media::ALL_MANIFEST_TYPES,
            )?;
            blobs.store_manifest(&m)?;
            m
        }
    };
    let image = if media::is_index(&top.media_type) {
        let Some(want) = platform else {
            return Err(ImageError::Select {
                reference: reference.to_string(),
                reason: format!("{} is an index and no platform was given", top.digest),
            });
        };
        let entry = registry::select_platform(&top, want)?;
        if entry.digest == top.digest {
            return Err(RegistryError::SelfReferencingIndex { digest: top.digest }.into());
        }
        let child = blobs.manifest_by_digest(&entry.digest)?;
        if !media::is_manifest(&child.media_type) {
            return Err(RegistryError::NestedIndex {
                index: top.digest,
                child: entry.digest,
            }
            .into());
        }
        child
    } else if media::is_manifest(&top.media_type) {
        top.clone()
    } else {
        return Err(ImageError::UnsupportedMediaType {
            reference: reference.to_string(),
            media_type: top.media_type,
        });
    };
    let manifest: ImageManifest = parse(&image.bytes, &format!("manifest {}", image.digest))?;
    let config_digest = digest_of(manifest.config())?;
    let config_path = blobs.ensure_blob(&config_digest, Some(manifest.config().size()), None)?;
    let config_bytes = read_json_blob(fs_err::File::open(&config_path)?, &config_digest)?;
    let config: ImageConfiguration = parse(&config_bytes, &format!("config {config_digest}"))?;
    let (referrers, attachments) = if ctx.offline || !ctx.with_attached {
        (Vec::new(), Vec::new())
    } else {
        attached(&blobs, &image.digest)?
    };
    Ok(OpenedImage {
        reference: reference.to_string(),
        blobs: BlobSource::Registry(blobs),
        tag: reference.tag().map(str::to_string),
        resolved_digest: top.digest,
        manifest_digest: image.digest,
        manifest_bytes: image.bytes,
        manifest_media_type: image.media_type,
        manifest,
        config_bytes,
        config,
        referrers,
        attachments,
        _scratch: None,
    })
}

/// The referrers (OCI 1.1 API or fallback tag) and cosign-style tags of `subject`, with their
/// manifests fetched into the store.
fn attached(
    blobs: &RegistryBlobs,
    subject: &Sha256Digest,
) -> Result<(Vec<Descriptor>, Vec<Descriptor>)> {
    let repo = blobs.repo();
    let mut referrers = Vec::new();
    for d in blobs.client.referrers(repo, subject)? {
        let digest = digest_of(&d)?;
        blobs.manifest_by_digest(&digest)?;
        referrers.push(d);
    }
    let mut attachments = Vec::new();
    for suffix in ["att", "sbom", "sig"] {
        let tag = format!("sha256-{}.{suffix}", subject.hex());
        let m = match blobs
            .client
            .get_manifest(repo, &tag, media::ALL_MANIFEST_TYPES)
        {
            Ok(m) => m,
            Err(RegistryError::Status { status: 404, .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        blobs.store_manifest(&m)?;
        let mut desc = super::layout::descriptor(&m.media_type, &m.digest, m.bytes.len() as u64);
        desc.set_annotations(Some(
            [(media::ANNOTATION_REF_NAME.to_string(), tag)]
                .into_iter()
                .collect(),
        ));
        attachments.push(desc);
    }
    Ok((referrers, attachments))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_of_cached_manifests() {
        for (bytes, want) in [
            (
                r#"{"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#,
                media::DOCKER_MANIFEST,
            ),
            (r#"{"schemaVersion":2,"manifests":[]}"#, media::OCI_INDEX),
            (
                r#"{"schemaVersion":2,"config":{},"layers":[]}"#,
                media::OCI_MANIFEST,
            ),
        ] {
            assert_eq!(sniff_media_type(bytes.as_bytes()), want, "{bytes}");
        }
    }
}
