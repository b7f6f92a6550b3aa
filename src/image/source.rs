//! Opening an image from any transport: choose the manifest (by digest, tag, or the only
//! image), follow an index to the wanted platform, and read the config — every byte verified.
//!
//! An [`OpenedImage`] hides where its blobs live ([`BlobSource`]: a layout directory, possibly
//! a private extraction of an archive, or a registry backed by the store), so that build,
//! inspect, diff and copy read every transport the same way through
//! [`OpenedImage::open_blob`].

use std::fmt::Display;
use std::io::{BufReader, Read, Write};
use std::path::PathBuf;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use super::layout::{digest_of, is_image_entry, ref_name};
use super::remote::{open_registry, uncompressed_digest, RegistryBlobs, Transports};
use super::{ImageError, ImageRef, Layout, Result};
use crate::digest::Sha256Digest;
use crate::media;
use crate::platform::{Fit, Platform};
use crate::store::Store;

/// Where an opened image's blobs are.
#[derive(Debug)]
pub enum BlobSource {
    /// An OCI layout: the reference's own, or a private extraction of an archive.
    Layout(Layout),
    /// A registry; blobs are fetched into the store on first use and read from there.
    Registry(RegistryBlobs),
}

/// An image opened for reading, with its manifest and config parsed and verified.
#[derive(Debug)]
pub struct OpenedImage {
    pub reference: String,
    pub blobs: BlobSource,
    /// The tag the image was opened by (the layout's `ref.name`, the registry tag, the
    /// docker archive's first RepoTag), if any.
    pub tag: Option<String>,
    /// The digest the reference resolved to (an index digest for multi-platform images).
    pub resolved_digest: Sha256Digest,
    pub manifest_digest: Sha256Digest,
    pub manifest_bytes: Vec<u8>,
    pub manifest_media_type: String,
    pub manifest: ImageManifest,
    pub config_bytes: Vec<u8>,
    pub config: ImageConfiguration,
    /// Manifests whose `subject` is this image (provenance, SBOMs …): the layout's index
    /// entries, or the registry's referrers (API or fallback tag).
    pub referrers: Vec<Descriptor>,
    /// Cosign-style attachments: manifests tagged `sha256-<hex>.sig|.att|.sbom`, each
    /// descriptor annotated with its tag as `org.opencontainers.image.ref.name`.
    pub attachments: Vec<Descriptor>,
    /// Keeps an archive's extraction alive as long as the image is open.
    pub(crate) _scratch: Option<tempfile::TempDir>,
}

impl OpenedImage {
    pub fn diff_ids(&self) -> Vec<String> {
        self.config.rootfs().diff_ids().clone()
    }

    /// The `os/arch[/variant]` of the config.
    pub fn platform(&self) -> String {
        platform_name(
            self.config.os(),
            self.config.architecture(),
            self.config.variant().as_deref(),
        )
    }

    /// Whether the config's os, architecture and variant serve `platform` ([`Platform::fit`]).
    pub fn serves(&self, platform: &Platform) -> bool {
        platform.is_served_by(
            &self.config.os().to_string(),
            &self.config.architecture().to_string(),
            self.config.variant().as_deref(),
        )
    }

    /// The registry reference, when the image comes from one.
    pub fn registry(&self) -> Option<&RegistryBlobs> {
        match &self.blobs {
            BlobSource::Layout(_) => None,
            BlobSource::Registry(r) => Some(r),
        }
    }

    /// A stream of blob `digest` that fails at end of file unless the bytes match the digest
    /// (and `size`, when given). A registry blob is fetched into the store first.
    pub fn open_blob(
        &self,
        digest: &Sha256Digest,
        size: Option<u64>,
    ) -> Result<Box<dyn Read + Send>> {
        match &self.blobs {
            BlobSource::Layout(l) => Ok(Box::new(l.open_blob(digest, size)?)),
            BlobSource::Registry(r) => {
                let path = r.ensure_blob(digest, size, None)?;
                let file = fs_err::File::open(&path)?;
                Ok(Box::new(super::layout::VerifyingReader::new(
                    Box::new(file),
                    *digest,
                    size,
                    path.display().to_string(),
                )))
            }
        }
    }

    /// A JSON-sized blob (manifest, config), verified.
    pub fn read_blob(&self, digest: &Sha256Digest) -> Result<Vec<u8>> {
        match &self.blobs {
            BlobSource::Layout(l) => l.read_blob(digest),
            BlobSource::Registry(r) => {
                if let Ok(m) = r.manifest_by_digest(digest) {
                    return Ok(m.bytes);
                }
                super::layout::read_json_blob(self.open_blob(digest, None)?, digest)
            }
        }
    }

    /// Brings every layer into `store`, `threads` at a time, each checked against its digest
    /// and against the config's diff_id before it is committed there (SECURITY.md 18, 36), and
    /// returns the store paths, in manifest order. Builds read base layers only through this:
    /// a layout's (or archive's) own files are never used or linked, so a blob swapped under
    /// an unchanged manifest is refused and cannot reach the cache or an output. A layer the
    /// store has already is checked by its stamp and its recorded diff_id (computed once).
    pub fn import_layers(&self, store: &Store, threads: usize) -> Result<Vec<PathBuf>> {
        let diff_ids = self.diff_ids();
        if diff_ids.len() != self.manifest.layers().len() {
            return Err(ImageError::Select {
                reference: self.reference.clone(),
                reason: format!(
                    "the manifest lists {} layers but the config {} diff_ids",
                    self.manifest.layers().len(),
                    diff_ids.len()
                ),
            });
        }
        let mut jobs = Vec::new();
        for (l, diff_id) in self.manifest.layers().iter().zip(diff_ids) {
            let diff_id: Sha256Digest =
                diff_id.parse().map_err(|_| ImageError::UnsupportedDigest {
                    digest: diff_id.clone(),
                })?;
            jobs.push((digest_of(l)?, l.size(), diff_id));
        }
        crate::registry::run_parallel(jobs, threads, |(d, size, diff_id)| {
            self.import_layer(store, &d, size, &diff_id)
        })
    }

    fn import_layer(
        &self,
        store: &Store,
        digest: &Sha256Digest,
        size: u64,
        diff_id: &Sha256Digest,
    ) -> Result<PathBuf> {
        let path = match store.open_verified_cached(digest) {
            Ok(Some(b)) => b.path,
            Ok(None) | Err(crate::store::StoreError::Corrupt { .. }) => match &self.blobs {
                BlobSource::Registry(r) => {
                    r.ensure_blob(digest, Some(size), Some(&diff_id.to_string()))?
                }
                BlobSource::Layout(l) => self.import_from_layout(store, l, digest, diff_id)?,
            },
            Err(e) => return Err(e.into()),
        };
        if store.diff_id_record(digest).as_ref() != Some(diff_id) {
            let actual = uncompressed_digest(BufReader::new(fs_err::File::open(&path)?), digest)?;
            self.check_diff_id(digest, diff_id, actual)?;
            store.record_diff_id(digest, diff_id);
        }
        Ok(path)
    }

    /// Streams a layout's blob into the store: hashed on the way, its diff_id checked on the
    /// temp file, committed only if both match (the temp file is removed otherwise).
    fn import_from_layout(
        &self,
        store: &Store,
        layout: &Layout,
        digest: &Sha256Digest,
        diff_id: &Sha256Digest,
    ) -> Result<PathBuf> {
        let lock = store.lock(digest)?;
        if let Some(b) = store.open_verified_locked(&lock)? {
            return Ok(b.path);
        }
        let src = layout.blob_path(digest);
        let what = format!("{} blob {}", self.reference, src.display());
        let mut writer = store.writer_for(&what)?;
        let file = fs_err::File::open(&src).map_err(|e| ImageError::MissingBlob {
            digest: *digest,
            location: layout.root().display().to_string(),
            source: e,
        })?;
        std::io::copy(&mut BufReader::new(file), &mut writer)?;
        writer.flush()?;
        let actual = writer.digest();
        if actual != *digest {
            // Dropping the writer removes its temp file: nothing enters the store.
            return Err(crate::store::StoreError::DigestMismatch {
                input: what,
                expected: *digest,
                actual,
            }
            .into());
        }
        let temp = BufReader::new(fs_err::File::open(writer.temp_path())?);
        self.check_diff_id(digest, diff_id, uncompressed_digest(temp, digest)?)?;
        let (d, _) = writer.commit(Some(digest))?;
        store.record_diff_id(&d, diff_id);
        Ok(store.path_unverified(&d))
    }

    fn check_diff_id(
        &self,
        digest: &Sha256Digest,
        expected: &Sha256Digest,
        actual: Sha256Digest,
    ) -> Result<()> {
        if actual == *expected {
            Ok(())
        } else {
            Err(self.diff_id_error(digest, expected, actual))
        }
    }

    fn diff_id_error(
        &self,
        digest: &Sha256Digest,
        expected: &Sha256Digest,
        actual: Sha256Digest,
    ) -> ImageError {
        ImageError::DiffIdMismatch(Box::new(super::DiffIdMismatch {
            reference: self.reference.clone(),
            digest: *digest,
            expected: expected.to_string(),
            actual,
        }))
    }

    /// Fetches the config and every layer into the store, `threads` at a time, checking each
    /// downloaded layer against its diff_id. A no-op for layouts.
    pub fn prefetch(&self, threads: usize) -> Result<()> {
        let BlobSource::Registry(r) = &self.blobs else {
            return Ok(());
        };
        let diff_ids = self.diff_ids();
        let mut jobs = Vec::new();
        for (i, l) in self.manifest.layers().iter().enumerate() {
            jobs.push((digest_of(l)?, l.size(), diff_ids.get(i).cloned()));
        }
        crate::registry::run_parallel(jobs, threads, |(d, size, diff_id)| {
            r.ensure_blob(&d, Some(size), diff_id.as_deref())
                .map(|_| ())
        })?;
        Ok(())
    }
}

/// Opens `reference` for reading with the default store and registry settings.
/// `platform` picks from an index; without one, the reference must name an image manifest.
pub fn open_image(reference: &ImageRef, platform: Option<&Platform>) -> Result<OpenedImage> {
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
            let scratch = tempfile::Builder::new().prefix("kiln-image-").tempdir()?;
            super::archive::open_archive(reference, platform, scratch)
        }
        ImageRef::Docker(r) => open_registry(r, platform, &Transports::from_env()?),
    }
}

/// Opens `reference` for reading; registry blobs go to `ctx`'s store, archives are extracted
/// beside it.
pub fn open_image_with(
    reference: &ImageRef,
    platform: Option<&Platform>,
    ctx: &Transports,
) -> Result<OpenedImage> {
    match reference {
        ImageRef::Oci { .. } => open_image(reference, platform),
        ImageRef::OciArchive { .. } | ImageRef::DockerArchive { .. } => {
            super::archive::open_archive(reference, platform, ctx.scratch()?)
        }
        ImageRef::Docker(r) => open_registry(r, platform, ctx),
    }
}

/// Whether `tag` is a cosign-style attachment tag of `subject`: `sha256-<hex>.sig|.att|.sbom`.
pub(crate) fn is_attachment_tag(tag: &str, subject: &Sha256Digest) -> bool {
    let prefix = format!("sha256-{}.", subject.hex());
    tag.strip_prefix(&prefix)
        .is_some_and(|s| matches!(s, "sig" | "att" | "sbom"))
}

pub(crate) fn open_in_layout(
    reference: String,
    layout: Layout,
    tag: Option<&str>,
    digest: Option<&Sha256Digest>,
    platform: Option<&Platform>,
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
                .filter(|m| is_image_entry(m))
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
    let attachments = index
        .manifests()
        .iter()
        .filter(|m| {
            ref_name(m).is_some_and(|t| {
                is_attachment_tag(t, &manifest_digest) || is_attachment_tag(t, &resolved)
            })
        })
        .cloned()
        .collect();
    let tag = match tag {
        Some(t) => Some(t.to_string()),
        None => index
            .manifests()
            .iter()
            .find(|m| digest_of(m).ok() == Some(resolved))
            .and_then(ref_name)
            .map(str::to_string),
    };
    Ok(OpenedImage {
        reference,
        blobs: BlobSource::Layout(layout),
        tag,
        resolved_digest: resolved,
        manifest_digest,
        manifest_bytes,
        manifest_media_type,
        manifest,
        config_bytes,
        config,
        referrers,
        attachments,
        _scratch: scratch,
    })
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
    Ok(media::of_manifest(&v))
}

/// Follows indexes down to the image manifest for `platform` (at most 4 levels deep).
fn resolve_platform(
    reference: &str,
    layout: &Layout,
    mut digest: Sha256Digest,
    mut media_type: String,
    platform: Option<&Platform>,
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
        let found = platform.and_then(|want| {
            Fit::best(index.manifests(), |m| {
                let p = m.platform().as_ref()?;
                let (os, arch) = (p.os().to_string(), p.architecture().to_string());
                want.fit(&os, &arch, p.variant().as_deref())
            })
        });
        let Some(next) = found else {
            return Err(ImageError::NoPlatform {
                reference: reference.to_string(),
                platform: platform.map_or_else(|| "(none given)".into(), Platform::to_string),
                available: available(&index),
            });
        };
        let next_digest = digest_of(next)?;
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

/// The platforms an index lists, `os/arch[/variant]`, in its order.
fn available(index: &ImageIndex) -> String {
    let names: Vec<String> = index
        .manifests()
        .iter()
        .filter_map(|m| m.platform().as_ref())
        .map(|p| platform_name(p.os(), p.architecture(), p.variant().as_deref()))
        .collect();
    names.join(", ")
}

/// `os/arch[/variant]`, as an image names it (which may be no [`Platform`] kiln knows).
fn platform_name(os: impl Display, architecture: impl Display, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{os}/{architecture}/{v}"),
        None => format!("{os}/{architecture}"),
    }
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::BadJson {
        what: what.to_string(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layout whose index lists one manifest per platform, `(os, arch, variant, os.version)`.
    fn index_layout(
        dir: &std::path::Path,
        platforms: &[(&str, &str, Option<&str>, Option<&str>)],
    ) -> (Layout, Sha256Digest, Vec<Sha256Digest>) {
        let layout = Layout::create(dir).unwrap();
        let mut manifests = Vec::new();
        let mut entries = Vec::new();
        for (i, (os, arch, variant, os_version)) in platforms.iter().enumerate() {
            let bytes = format!("manifest {i}");
            let digest = layout.put_blob(bytes.as_bytes()).unwrap();
            let mut platform = serde_json::json!({"os": os, "architecture": arch});
            if let Some(v) = variant {
                platform["variant"] = (*v).into();
            }
            if let Some(v) = os_version {
                platform["os.version"] = (*v).into();
            }
            entries.push(serde_json::json!({
                "mediaType": media::OCI_MANIFEST,
                "digest": digest.to_string(),
                "size": bytes.len(),
                "platform": platform,
            }));
            manifests.push(digest);
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_INDEX,
            "manifests": entries,
        });
        let digest = layout.put_blob(index.to_string().as_bytes()).unwrap();
        (layout, digest, manifests)
    }

    /// A layout's index is matched as a registry's ([`Platform::fit`]): an omitted variant takes
    /// any, an entry without one is its architecture's default, an exact entry wins over an
    /// earlier compatible one, `os.version` is not compared.
    #[test]
    fn index_entries_are_matched_by_the_typed_platform() {
        let dir = tempfile::tempdir().unwrap();
        let (layout, index, m) = index_layout(
            dir.path(),
            &[
                ("linux", "arm64", Some("v8"), None),
                ("linux", "arm64", None, None),
                ("linux", "arm", None, None),
                ("windows", "amd64", None, Some("10.0.17763.1879")),
            ],
        );
        let pick = |want: Option<&str>| {
            let want = want.map(|w| w.parse::<Platform>().unwrap());
            resolve_platform(
                "oci:test",
                &layout,
                index,
                media::OCI_INDEX.into(),
                want.as_ref(),
            )
            .map(|(digest, _, _)| digest)
        };
        assert_eq!(
            pick(Some("linux/arm64")).unwrap(),
            m[1],
            "exact over earlier"
        );
        assert_eq!(pick(Some("linux/arm64/v8")).unwrap(), m[0]);
        assert_eq!(pick(Some("linux/arm/v7")).unwrap(), m[2], "arm is arm/v7");
        assert_eq!(pick(Some("windows/amd64")).unwrap(), m[3], "os.version");
        for want in [Some("linux/arm/v6"), Some("linux/amd64"), None] {
            let err = pick(want).unwrap_err().to_string();
            assert!(
                err.contains(want.unwrap_or("(none given)"))
                    && err.contains(
                        "available: linux/arm64/v8, linux/arm64, linux/arm, windows/amd64"
                    ),
                "{err}"
            );
        }

        let dir = tempfile::tempdir().unwrap();
        let (layout, index, m) = index_layout(dir.path(), &[("linux", "arm64", Some("v8"), None)]);
        let want: Platform = "linux/arm64".parse().unwrap();
        let (digest, bytes, media_type) = resolve_platform(
            "oci:test",
            &layout,
            index,
            media::OCI_INDEX.into(),
            Some(&want),
        )
        .unwrap();
        assert_eq!((digest, media_type.as_str()), (m[0], media::OCI_MANIFEST));
        assert_eq!(bytes, b"manifest 0");
    }

    #[test]
    fn attachment_tags() {
        let d = Sha256Digest::of(b"image");
        let other = Sha256Digest::of(b"other");
        for (tag, want) in [
            (format!("sha256-{}.sig", d.hex()), true),
            (format!("sha256-{}.att", d.hex()), true),
            (format!("sha256-{}.sbom", d.hex()), true),
            (format!("sha256-{}", d.hex()), false),
            (format!("sha256-{}.sig", other.hex()), false),
            (format!("sha256-{}.sigx", d.hex()), false),
            ("latest".to_string(), false),
        ] {
            assert_eq!(is_attachment_tag(&tag, &d), want, "{tag}");
        }
    }
}
