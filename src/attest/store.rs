//! Reading and writing cosign attachment tags (`sha256-<hex>.sig`, `.att`) where the image
//! lives: an OCI image layout or a registry repository.
//!
//! Cosign's layout is "a tag next to the image", so the rule is the same for both transports
//! and for anything that copies images (`kiln copy`, `skopeo copy` of the tags): the tag name
//! alone says which image the attachments are about (see [`attachment_tag`]).
//!
//! - In a layout the tag is an entry of the layout's index whose
//!   `org.opencontainers.image.ref.name` is the tag name; it lives in the side index, not in
//!   `index.json` (see [`crate::image::layout`]), so the layout still opens in skopeo and
//!   podman without a tag. Updating replaces that entry. Blobs are written first and
//!   `index.json` last (atomically, through a rename), so a reader sees the old attachments
//!   or the new ones, never a manifest with missing blobs. An `flock` on the layout directory
//!   serializes concurrent `kiln sign` runs on one layout, so no signature is lost to a race.
//!   The entry also carries `artifactType` (the config media type, as OCI 1.1 defines it for
//!   image manifests), so kiln does not count it as an image.
//! - In a registry the tag is a manifest tag in the image's repository. Layer and config blobs
//!   are pushed before the manifest. Two writers appending at the same moment can lose one
//!   signature (the registry has no compare-and-swap on tags); cosign has the same caveat.
//!
//! Appending keeps the layers already there (signatures by other keys, cosign's own layers
//! with their annotations) and never adds an identical layer twice.

use std::io::Read as _;

use super::cosign::{
    attachment_tag, AttachmentKind, Blob, CosignError, Descriptor, SignatureManifest,
};
use super::NewLayer;
use crate::digest::Sha256Digest;
use crate::image::layout::{descriptor, digest_of, ref_name};
use crate::image::{ImageError, Layout};
use crate::media::{self, ALL_MANIFEST_TYPES, OCI_CONFIG, OCI_MANIFEST};
use crate::registry::{Client, PulledManifest, RegistryError, Repository};

/// The largest attachment layer kiln reads, and so writes (an SBOM in a DSSE envelope can be
/// large; 64 MiB holds the SBOM of a full distribution image many times over).
pub const MAX_ATTACHMENT_BLOB: u64 = 64 * 1024 * 1024;
/// The most layers kiln reads from one attachment tag, and their largest total size: a
/// hostile tag cannot make `verify` download without bound.
pub const MAX_ATTACHMENT_LAYERS: usize = 1000;
pub const MAX_ATTACHMENT_TOTAL: u64 = 256 * 1024 * 1024;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("failed to read or write the attachments in layout {location}")]
    Layout {
        location: String,
        #[source]
        source: ImageError,
    },
    #[error("failed to lock layout {location} for updating its index")]
    Lock {
        location: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read or write the attachments in {location}")]
    Registry {
        location: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error(
        "refused attachment tag `{tag}` in {location}: {layers} layers of {total} bytes, more \
         than the limit of {MAX_ATTACHMENT_LAYERS} layers and {MAX_ATTACHMENT_TOTAL} bytes"
    )]
    TooManyLayers {
        location: String,
        tag: String,
        layers: usize,
        total: u64,
    },
    #[error("failed to read the attachment manifest `{tag}` in {location}")]
    Manifest {
        location: String,
        tag: String,
        #[source]
        source: CosignError,
    },
    #[error(
        "refused attachment layer {digest} in {location}: {size} bytes, more than the \
         {MAX_ATTACHMENT_BLOB}-byte limit kiln reads"
    )]
    TooLarge {
        location: String,
        digest: Sha256Digest,
        size: u64,
    },
}

/// Where an image and its attachment tags live.
pub enum AttachmentStore<'a> {
    /// An OCI image layout directory.
    Layout(Layout),
    /// A repository in a registry.
    Registry {
        client: &'a Client,
        repository: Repository,
    },
}

/// An attachment image as stored: its tag, and every layer with its blob.
#[derive(Debug, Clone)]
pub struct StoredAttachment {
    pub tag: String,
    /// Each layer's descriptor and blob bytes, in manifest order. Blob bytes were verified
    /// against their digest on the way in.
    pub layers: Vec<(Descriptor, Vec<u8>)>,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub tag: String,
    /// The attachment manifest the tag now points at.
    pub manifest_digest: Sha256Digest,
    /// Layers added by this call (identical layers already present are not added again).
    pub added: usize,
    /// Layers in the manifest now.
    pub total: usize,
}

impl AttachmentStore<'_> {
    /// For messages: the layout path or `HOST/REPO`.
    pub fn location(&self) -> String {
        match self {
            Self::Layout(layout) => layout.root().display().to_string(),
            Self::Registry { repository, .. } => repository.to_string(),
        }
    }

    fn layout_err(&self, source: ImageError) -> StoreError {
        StoreError::Layout {
            location: self.location(),
            source,
        }
    }

    fn registry_err(&self, source: RegistryError) -> StoreError {
        StoreError::Registry {
            location: self.location(),
            source: Box::new(source),
        }
    }

    /// Whether manifest `digest` (the image to sign) is present.
    pub fn has_manifest(&self, digest: &Sha256Digest) -> Result<bool> {
        match self {
            Self::Layout(layout) => Ok(layout.has_blob(digest)),
            Self::Registry { client, repository } => {
                match client.get_manifest(repository, &digest.to_string(), &[]) {
                    Ok(_) => Ok(true),
                    Err(RegistryError::Status { status: 404, .. }) => Ok(false),
                    Err(e) => Err(self.registry_err(e)),
                }
            }
        }
    }

    /// The manifest or index `digest` (the image a verification is about), with its media
    /// type: as the registry states it, or from the layout's blob.
    pub fn manifest(&self, digest: &Sha256Digest) -> Result<PulledManifest> {
        match self {
            Self::Layout(layout) => {
                let bytes = layout.read_blob(digest).map_err(|e| self.layout_err(e))?;
                let document = crate::image::source::parse(&bytes, &format!("manifest {digest}"))
                    .map_err(|e| self.layout_err(e))?;
                Ok(PulledManifest {
                    media_type: media::of_manifest(&document),
                    bytes,
                    digest: *digest,
                })
            }
            Self::Registry { client, repository } => client
                .get_manifest(repository, &digest.to_string(), ALL_MANIFEST_TYPES)
                .map_err(|e| self.registry_err(e)),
        }
    }

    /// The manifest bytes tagged `tag`, or `None` when there is no such tag.
    fn get_tagged(&self, tag: &str) -> Result<Option<(Sha256Digest, Vec<u8>)>> {
        match self {
            Self::Layout(layout) => {
                let index = layout.read_index().map_err(|e| self.layout_err(e))?;
                let Some(entry) = index.manifests().iter().find(|d| ref_name(d) == Some(tag))
                else {
                    return Ok(None);
                };
                let digest = digest_of(entry).map_err(|e| self.layout_err(e))?;
                let bytes = layout.read_blob(&digest).map_err(|e| self.layout_err(e))?;
                Ok(Some((digest, bytes)))
            }
            Self::Registry { client, repository } => {
                let accept = [OCI_MANIFEST, media::DOCKER_MANIFEST];
                match client.get_manifest(repository, tag, &accept) {
                    Ok(pulled) => Ok(Some((pulled.digest, pulled.bytes))),
                    Err(RegistryError::Status { status: 404, .. }) => Ok(None),
                    Err(e) => Err(self.registry_err(e)),
                }
            }
        }
    }

    fn get_layer_blob(&self, layer: &Descriptor) -> Result<Vec<u8>> {
        if layer.size > MAX_ATTACHMENT_BLOB {
            return Err(StoreError::TooLarge {
                location: self.location(),
                digest: layer.digest,
                size: layer.size,
            });
        }
        let mut bytes = Vec::with_capacity(layer.size as usize);
        match self {
            Self::Layout(layout) => {
                let mut reader = layout
                    .open_blob(&layer.digest, Some(layer.size))
                    .map_err(|e| self.layout_err(e))?;
                reader
                    .read_to_end(&mut bytes)
                    .map_err(|e| self.layout_err(ImageError::Io(e)))?;
            }
            Self::Registry { client, repository } => {
                client
                    .get_blob(repository, &layer.digest, Some(layer.size), &mut bytes)
                    .map_err(|e| self.registry_err(e))?;
            }
        }
        Ok(bytes)
    }

    fn put_blob(&self, blob: &Blob) -> Result<()> {
        match self {
            Self::Layout(layout) => {
                layout
                    .put_blob(&blob.bytes)
                    .map_err(|e| self.layout_err(e))?;
            }
            Self::Registry { client, repository } => {
                client
                    .put_blob(
                        repository,
                        &blob.digest,
                        blob.bytes.len() as u64,
                        &mut blob.bytes.as_slice(),
                    )
                    .map_err(|e| self.registry_err(e))?;
            }
        }
        Ok(())
    }

    /// Points `tag` at `manifest` (whose blobs are already stored).
    fn put_tagged(&self, tag: &str, manifest: &Blob) -> Result<()> {
        match self {
            Self::Layout(layout) => {
                layout
                    .put_blob(&manifest.bytes)
                    .map_err(|e| self.layout_err(e))?;
                let mut entry =
                    descriptor(OCI_MANIFEST, &manifest.digest, manifest.bytes.len() as u64);
                entry.set_artifact_type(Some(OCI_CONFIG.into()));
                entry.set_annotations(Some(
                    [(media::ANNOTATION_REF_NAME.to_string(), tag.to_string())]
                        .into_iter()
                        .collect(),
                ));
                let index = layout.read_index().map_err(|e| self.layout_err(e))?;
                let mut manifests = index.manifests().clone();
                match manifests.iter().position(|d| ref_name(d) == Some(tag)) {
                    Some(at) => manifests[at] = entry,
                    None => manifests.push(entry),
                }
                layout
                    .write_index(manifests)
                    .map_err(|e| self.layout_err(e))?;
            }
            Self::Registry { client, repository } => {
                client
                    .put_manifest(repository, tag, OCI_MANIFEST, &manifest.bytes)
                    .map_err(|e| self.registry_err(e))?;
            }
        }
        Ok(())
    }

    /// Holds the layout's lock (none for a registry) for a read-modify-write of the index.
    fn lock(&self) -> Result<Option<fs_err::File>> {
        let Self::Layout(layout) = self else {
            return Ok(None);
        };
        let lock_err = |source| StoreError::Lock {
            location: self.location(),
            source,
        };
        let dir = fs_err::File::open(layout.root()).map_err(lock_err)?;
        rustix::fs::flock(&dir, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| lock_err(e.into()))?;
        Ok(Some(dir))
    }

    /// Reads the `kind` attachments of `subject` with every layer blob, or `None` when the
    /// tag does not exist.
    pub fn read(
        &self,
        subject: &Sha256Digest,
        kind: AttachmentKind,
    ) -> Result<Option<StoredAttachment>> {
        let tag = attachment_tag(subject, kind);
        let Some((_, bytes)) = self.get_tagged(&tag)? else {
            return Ok(None);
        };
        let manifest = SignatureManifest::parse(&bytes).map_err(|source| StoreError::Manifest {
            location: self.location(),
            tag: tag.clone(),
            source,
        })?;
        let total = manifest
            .layers
            .iter()
            .fold(0u64, |sum, l| sum.saturating_add(l.size));
        if manifest.layers.len() > MAX_ATTACHMENT_LAYERS || total > MAX_ATTACHMENT_TOTAL {
            return Err(StoreError::TooManyLayers {
                location: self.location(),
                tag,
                layers: manifest.layers.len(),
                total,
            });
        }
        let layers = manifest
            .layers
            .iter()
            .map(|layer| Ok((layer.clone(), self.get_layer_blob(layer)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(StoredAttachment { tag, layers }))
    }

    /// Adds `layers` to the `kind` attachments of `subject`, creating the tag when it does not
    /// exist and keeping every layer already there.
    pub fn append(
        &self,
        subject: &Sha256Digest,
        kind: AttachmentKind,
        layers: Vec<NewLayer>,
    ) -> Result<Appended> {
        // Never write a layer that `read` would refuse.
        if let Some(big) = layers
            .iter()
            .find(|l| l.blob.bytes.len() as u64 > MAX_ATTACHMENT_BLOB)
        {
            return Err(StoreError::TooLarge {
                location: self.location(),
                digest: big.blob.digest,
                size: big.blob.bytes.len() as u64,
            });
        }
        let _lock = self.lock()?;
        let tag = attachment_tag(subject, kind);
        let mut manifest = match self.get_tagged(&tag)? {
            Some((_, bytes)) => {
                SignatureManifest::parse(&bytes).map_err(|source| StoreError::Manifest {
                    location: self.location(),
                    tag: tag.clone(),
                    source,
                })?
            }
            None => SignatureManifest::new(),
        };
        let added = layers
            .into_iter()
            .filter(|layer| manifest.append(layer.clone()))
            .count();
        let image = manifest.build();
        for blob in image.new_layers.iter().chain([&image.config]) {
            self.put_blob(blob)?;
        }
        self.put_tagged(&tag, &image.manifest)?;
        Ok(Appended {
            tag,
            manifest_digest: image.manifest.digest,
            added,
            total: manifest.layers.len(),
        })
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
