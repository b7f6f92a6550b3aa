//! Opening an image from a local transport: choose the manifest (by digest, tag, or the only
//! image), follow an index to the wanted platform, and read the config — every byte verified.

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use super::layout::digest_of;
use super::{media, ImageError, ImageRef, Layout, Result};
use crate::digest::Sha256Digest;

/// An image opened for reading, with its manifest and config parsed and verified.
#[derive(Debug)]
pub struct OpenedImage {
    pub reference: String,
    /// Where the blobs are: the layout itself, or a private extraction of an archive.
    pub layout: Layout,
    /// The digest the reference resolved to (an index digest for multi-platform images).
    pub resolved_digest: Sha256Digest,
    pub manifest_digest: Sha256Digest,
    pub manifest_bytes: Vec<u8>,
    pub manifest_media_type: String,
    pub manifest: ImageManifest,
    pub config_bytes: Vec<u8>,
    pub config: ImageConfiguration,
    /// Manifests in the layout's index whose `subject` is this image (provenance, SBOMs …).
    pub referrers: Vec<Descriptor>,
    /// Keeps an archive's extraction alive as long as the image is open.
    pub(crate) _scratch: Option<tempfile::TempDir>,
}

impl OpenedImage {
    pub fn diff_ids(&self) -> Vec<String> {
        self.config.rootfs().diff_ids().clone()
    }

    /// The `os/arch[/variant]` of the config.
    pub fn platform(&self) -> String {
        let mut p = format!("{}/{}", self.config.os(), self.config.architecture());
        if let Some(v) = self.config.variant() {
            p.push('/');
            p.push_str(v);
        }
        p
    }
}

/// Opens `reference` for reading. `platform` (`os/arch[/variant]`) picks from an index.
pub fn open_image(reference: &ImageRef, platform: &str) -> Result<OpenedImage> {
    match reference {
        ImageRef::Oci { path, tag, digest } => {
            let layout = Layout::open(path)?;
            open_in_layout(
                reference.to_string(),
                layout,
                tag.as_deref(),
                digest.as_ref(),
                platform,
                None,
            )
        }
        ImageRef::OciArchive { .. } | ImageRef::DockerArchive { .. } => {
            super::archive::open_archive(reference, platform)
        }
        ImageRef::Docker { .. } => Err(ImageError::UnsupportedTransport {
            reference: reference.to_string(),
            transport: "docker",
        }),
    }
}

pub(crate) fn open_in_layout(
    reference: String,
    layout: Layout,
    tag: Option<&str>,
    digest: Option<&Sha256Digest>,
    platform: &str,
    scratch: Option<tempfile::TempDir>,
) -> Result<OpenedImage> {
    let select = |reason: String| ImageError::Select {
        reference: reference.clone(),
        reason,
    };
    let index = layout.read_index()?;
    let (resolved, media_type) = match (digest, tag) {
        (Some(d), _) => {
            let media_type = find_media_type(&layout, &index, d)?;
            (*d, media_type)
        }
        (None, Some(tag)) => {
            let desc = index
                .manifests()
                .iter()
                .find(|m| ref_name(m) == Some(tag))
                .ok_or_else(|| {
                    select(format!("no image tagged `{tag}`; tags: {}", tags(&index)))
                })?;
            (digest_of(desc)?, desc.media_type().to_string())
        }
        (None, None) => {
            let images: Vec<&Descriptor> = index
                .manifests()
                .iter()
                .filter(|m| m.artifact_type().is_none())
                .collect();
            match images.as_slice() {
                [one] => (digest_of(one)?, one.media_type().to_string()),
                [] => return Err(select("the layout's index lists no image".into())),
                _ => {
                    return Err(select(format!(
                    "the layout holds several images; name one with :TAG or @sha256:… (tags: {})",
                    tags(&index)
                )))
                }
            }
        }
    };

    let (manifest_digest, manifest_bytes, manifest_media_type) =
        resolve_platform(&reference, &layout, resolved, media_type, platform)?;
    let manifest: ImageManifest = parse(&manifest_bytes, &format!("manifest {manifest_digest}"))?;
    let config_digest = digest_of(manifest.config())?;
    let config_bytes = layout.read_blob(&config_digest)?;
    let config: ImageConfiguration = parse(&config_bytes, &format!("config {config_digest}"))?;
    let referrers = index
        .manifests()
        .iter()
        .filter(|m| m.artifact_type().is_some())
        .filter(|m| referrer_subject(&layout, m).as_ref() == Some(&manifest_digest))
        .cloned()
        .collect();
    Ok(OpenedImage {
        reference,
        layout,
        resolved_digest: resolved,
        manifest_digest,
        manifest_bytes,
        manifest_media_type,
        manifest,
        config_bytes,
        config,
        referrers,
        _scratch: scratch,
    })
}

fn ref_name(desc: &Descriptor) -> Option<&str> {
    desc.annotations()
        .as_ref()?
        .get(media::ANNOTATION_REF_NAME)
        .map(String::as_str)
}

fn tags(index: &ImageIndex) -> String {
    let mut names: Vec<&str> = index.manifests().iter().filter_map(ref_name).collect();
    names.sort();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn referrer_subject(layout: &Layout, desc: &Descriptor) -> Option<Sha256Digest> {
    let bytes = layout.read_blob(&digest_of(desc).ok()?).ok()?;
    let manifest: ImageManifest = serde_json::from_slice(&bytes).ok()?;
    digest_of(manifest.subject().as_ref()?).ok()
}

/// The media type of `digest`: from the index if listed there, else sniffed from the blob.
fn find_media_type(layout: &Layout, index: &ImageIndex, digest: &Sha256Digest) -> Result<String> {
    if let Some(desc) = index
        .manifests()
        .iter()
        .find(|m| digest_of(m).ok().as_ref() == Some(digest))
    {
        return Ok(desc.media_type().to_string());
    }
    let bytes = layout.read_blob(digest)?;
    let v: serde_json::Value = parse(&bytes, &format!("blob {digest}"))?;
    if let Some(mt) = v.get("mediaType").and_then(|m| m.as_str()) {
        return Ok(mt.to_string());
    }
    Ok(if v.get("manifests").is_some() {
        media::OCI_INDEX
    } else {
        media::OCI_MANIFEST
    }
    .into())
}

/// Follows indexes down to the image manifest for `platform` (at most 4 levels deep).
fn resolve_platform(
    reference: &str,
    layout: &Layout,
    mut digest: Sha256Digest,
    mut media_type: String,
    platform: &str,
) -> Result<(Sha256Digest, Vec<u8>, String)> {
    for _ in 0..4 {
        let bytes = layout.read_blob(&digest)?;
        if media::is_manifest(&media_type) {
            return Ok((digest, bytes, media_type));
        }
        if !media::is_index(&media_type) {
            return Err(ImageError::UnsupportedMediaType {
                reference: reference.to_string(),
                media_type,
            });
        }
        let index: ImageIndex = parse(&bytes, &format!("index {digest}"))?;
        let mut available = Vec::new();
        let mut found = None;
        for m in index.manifests() {
            let Some(p) = m.platform() else { continue };
            let mut name = format!("{}/{}", p.os(), p.architecture());
            if let Some(v) = p.variant() {
                name = format!("{name}/{v}");
            }
            if name == platform || (found.is_none() && platform_matches(&name, platform)) {
                found = Some(m.clone());
            }
            available.push(name);
        }
        let Some(next) = found else {
            return Err(ImageError::NoPlatform {
                reference: reference.to_string(),
                platform: platform.to_string(),
                available: available.join(", "),
            });
        };
        let next_digest = digest_of(&next)?;
        if next_digest == digest {
            return Err(ImageError::Select {
                reference: reference.to_string(),
                reason: format!("index {digest} refers to itself"),
            });
        }
        digest = next_digest;
        media_type = next.media_type().to_string();
    }
    Err(ImageError::Select {
        reference: reference.to_string(),
        reason: "indexes nested more than 4 deep".into(),
    })
}

/// `linux/arm64` matches `linux/arm64/v8`: a missing variant is a wildcard.
fn platform_matches(have: &str, want: &str) -> bool {
    have.starts_with(&format!("{want}/")) || want.starts_with(&format!("{have}/"))
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::BadJson {
        what: what.to_string(),
        source: e,
    })
}
