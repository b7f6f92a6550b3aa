//! Writing an opened image to a `docker://` registry: blobs (several at once, skipped when the
//! repository has them, mounted when another repository of the same registry does), the
//! manifest by tag or digest, then referrers (listed in the fallback `sha256-<hex>` index,
//! since the registries kiln targets have no referrers API) and cosign-style attachment tags.
//!
//! Blob bytes are read through the source's verifying reader and hashed again by the client on
//! the way out; every digest the registry names in its answers is compared with ours
//! (SECURITY.md 21).

use std::collections::BTreeMap;

use oci_spec::image::{Descriptor, ImageManifest};

use super::layout::digest_of;
use super::source::{parse, OpenedImage};
use super::Result;
use crate::digest::Sha256Digest;
use crate::media;
use crate::registry::{run_parallel, Client, Reference};

/// What a push did, for the CLI to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    pub manifest_digest: Sha256Digest,
    pub uploaded: usize,
    pub mounted: usize,
    pub existed: usize,
    pub referrers: usize,
    pub attachments: usize,
}

enum BlobOutcome {
    Uploaded,
    Mounted,
    Existed,
}

/// Pushes one blob of `img` to `dest`.
fn push_blob(
    client: &Client,
    img: &OpenedImage,
    dest: &Reference,
    digest: &Sha256Digest,
    size: u64,
) -> Result<BlobOutcome> {
    let repo = dest.repository();
    if client.blob_exists(repo, digest)? {
        return Ok(BlobOutcome::Existed);
    }
    if let Some(src) = img.registry() {
        let from = src.reference.repository();
        if from.registry() == repo.registry()
            && from != repo
            && client.mount_blob(from, repo, digest)?
        {
            return Ok(BlobOutcome::Mounted);
        }
    }
    let mut reader = img.open_blob(digest, Some(size))?;
    client.put_blob(repo, digest, size, &mut reader)?;
    Ok(BlobOutcome::Uploaded)
}

/// The blobs (config and layers) a manifest names.
fn blobs_of(manifest: &ImageManifest) -> Result<Vec<(Sha256Digest, u64)>> {
    std::iter::once(manifest.config())
        .chain(manifest.layers())
        .map(|d| Ok((digest_of(d)?, d.size())))
        .collect()
}

/// Pushes a child manifest (referrer or attachment) and its blobs; returns its digest.
fn push_child(
    client: &Client,
    img: &OpenedImage,
    dest: &Reference,
    desc: &Descriptor,
    tag: Option<&str>,
) -> Result<Sha256Digest> {
    let digest = digest_of(desc)?;
    let bytes = img.read_blob(&digest)?;
    let manifest: ImageManifest = parse(&bytes, &format!("manifest {digest}"))?;
    for (d, size) in blobs_of(&manifest)? {
        push_blob(client, img, dest, &d, size)?;
    }
    let media_type = desc.media_type().to_string();
    let reference = tag.map_or_else(|| digest.to_string(), str::to_string);
    Ok(client.put_manifest(dest.repository(), &reference, &media_type, &bytes)?)
}

/// Pushes `img` to `dest` (`threads` blobs at a time). A destination pinned with `@sha256:`
/// must name the image's manifest digest.
pub fn push_image(
    client: &Client,
    img: &OpenedImage,
    dest: &Reference,
    threads: usize,
) -> Result<PushReport> {
    super::DestinationDigest::check(dest, dest.digest(), &img.manifest_digest)?;
    // Config and layers, each once, in manifest order.
    let mut unique = BTreeMap::new();
    let mut jobs = Vec::new();
    for (d, size) in blobs_of(&img.manifest)? {
        if unique.insert(d, size).is_none() {
            jobs.push((d, size));
        }
    }
    let outcomes = run_parallel(jobs, threads, |(d, size)| {
        push_blob(client, img, dest, &d, size)
    })?;
    let mut report = PushReport {
        manifest_digest: img.manifest_digest,
        uploaded: 0,
        mounted: 0,
        existed: 0,
        referrers: 0,
        attachments: 0,
    };
    for o in outcomes {
        match o {
            BlobOutcome::Uploaded => report.uploaded += 1,
            BlobOutcome::Mounted => report.mounted += 1,
            BlobOutcome::Existed => report.existed += 1,
        }
    }
    let repo = dest.repository();
    let reference = match (dest.tag(), dest.digest()) {
        (Some(t), _) => t.to_string(),
        (None, Some(d)) => d.to_string(),
        (None, None) => "latest".to_string(),
    };
    client.put_manifest(
        repo,
        &reference,
        &img.manifest_media_type,
        &img.manifest_bytes,
    )?;
    for desc in &img.referrers {
        push_child(client, img, dest, desc, None)?;
        client.add_fallback_referrer(repo, &img.manifest_digest, desc)?;
        report.referrers += 1;
    }
    for desc in &img.attachments {
        let tag = desc
            .annotations()
            .as_ref()
            .and_then(|a| a.get(media::ANNOTATION_REF_NAME))
            .cloned();
        push_child(client, img, dest, desc, tag.as_deref())?;
        report.attachments += 1;
    }
    Ok(report)
}

/// Pushes the image index `index_digest` of the OCI layout `dir` to `dest`, as `cosign` and
/// `skopeo copy --all` leave one: every image the index lists, by digest, with its referrers
/// and attachments (as [`push_image`]); then the index's own attachments (`sha256-<index
/// hex>.sig` …); then the index itself under `dest`'s tag (or digest). The images go first
/// because a registry accepts an index only once the manifests it lists are there.
pub fn push_layout_index(
    ctx: &super::Transports,
    dir: &std::path::Path,
    index_digest: &Sha256Digest,
    dest: &Reference,
) -> Result<PushReport> {
    super::DestinationDigest::check(dest, dest.digest(), index_digest)?;
    let layout = super::Layout::open(dir)?;
    let index_bytes = layout.read_blob(index_digest)?;
    let index: oci_spec::image::ImageIndex = parse(&index_bytes, &format!("index {index_digest}"))?;
    let mut report = PushReport {
        manifest_digest: *index_digest,
        uploaded: 0,
        mounted: 0,
        existed: 0,
        referrers: 0,
        attachments: 0,
    };
    let mut images = Vec::new();
    for desc in index.manifests() {
        let digest = digest_of(desc)?;
        let source = super::ImageRef::Oci {
            path: dir.to_path_buf(),
            tag: None,
            digest: Some(digest),
        };
        let img = super::open_image_with(&source, None, ctx)?;
        let by_digest = Reference::new(dest.repository().clone(), None, Some(digest))
            .expect("a reference without a tag is valid");
        let pushed = push_image(&ctx.client, &img, &by_digest, ctx.threads)?;
        report.uploaded += pushed.uploaded;
        report.mounted += pushed.mounted;
        report.existed += pushed.existed;
        report.referrers += pushed.referrers;
        report.attachments += pushed.attachments;
        images.push(img);
    }
    let Some(blobs) = images.first() else {
        return Err(super::ImageError::Select {
            reference: dir.display().to_string(),
            reason: format!("index {index_digest} lists no image"),
        });
    };
    for desc in layout.read_index()?.manifests() {
        let tag = super::layout::ref_name(desc);
        if tag.is_some_and(|t| super::source::is_attachment_tag(t, index_digest)) {
            // Attachments live in the same layout as the images: read through its blobs.
            push_child(&ctx.client, blobs, dest, desc, tag)?;
            report.attachments += 1;
        }
    }
    let reference = match (dest.tag(), dest.digest()) {
        (Some(t), _) => t.to_string(),
        (None, Some(d)) => d.to_string(),
        (None, None) => "latest".to_string(),
    };
    ctx.client.put_manifest(
        dest.repository(),
        &reference,
        media::OCI_INDEX,
        &index_bytes,
    )?;
    Ok(report)
}
