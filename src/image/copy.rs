//! `kiln copy`: write an opened image to any transport, referrers and attachments included.

use super::push::{push_image, PushReport};
use super::remote::{registry_reference, Transports};
use super::source::OpenedImage;
use super::write::{
    docker_repo_tag, replace, stage_beside, write_docker_archive_file, write_layout_from,
    write_oci_archive_file,
};
use super::{ImageRef, Result};
use crate::digest::Sha256Digest;

/// What a copy wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    pub manifest_digest: Sha256Digest,
    /// Present when the destination was a registry.
    pub push: Option<PushReport>,
}

/// The name a docker archive records for `img` when the destination does not say.
fn archive_name(img: &OpenedImage) -> String {
    if let Some(r) = img.registry() {
        let r = &r.reference;
        return format!("{}:{}", r.repository(), r.tag_or_latest());
    }
    img.tag.clone().unwrap_or_else(|| "kiln:latest".to_string())
}

/// Writes `img` to `dest`. Archive outputs replace the destination only once complete; an OCI
/// layout destination keeps its other images. Timestamps inside archives are `epoch`.
pub fn copy_image(
    img: &OpenedImage,
    dest: &ImageRef,
    ctx: &Transports,
    epoch: i64,
) -> Result<CopyReport> {
    super::DestinationDigest::check(dest, dest.digest(), &img.manifest_digest)?;
    let done = |push| CopyReport {
        manifest_digest: img.manifest_digest,
        push,
    };
    match dest {
        ImageRef::Oci { path, tag, .. } => {
            let tag = tag.clone().or_else(|| img.tag.clone());
            if path.join("index.json").is_file() {
                // An existing layout gains blobs, then its index is replaced in one rename.
                write_layout_from(img, path, tag.as_deref())?;
            } else {
                let (_staging, staged) = stage_beside(path)?;
                write_layout_from(img, &staged, tag.as_deref())?;
                replace(&staged, path)?;
            }
            Ok(done(None))
        }
        ImageRef::OciArchive { path, tag, .. } => {
            let (staging, staged) = stage_beside(path)?;
            let layout_dir = staging.path().join("layout");
            let tag = tag.clone().or_else(|| img.tag.clone());
            write_layout_from(img, &layout_dir, tag.as_deref())?;
            write_oci_archive_file(&layout_dir, epoch, &staged)?;
            replace(&staged, path)?;
            Ok(done(None))
        }
        ImageRef::DockerArchive { path } => {
            img.prefetch(ctx.threads)?;
            let (_staging, staged) = stage_beside(path)?;
            let scratch = ctx.scratch()?;
            let name = docker_repo_tag(&archive_name(img));
            write_docker_archive_file(img, &name, epoch, &staged, scratch.path())?;
            replace(&staged, path)?;
            Ok(done(None))
        }
        ImageRef::Docker { .. } => {
            let reference = registry_reference(dest)?;
            let report = push_image(&ctx.client, img, &reference, ctx.threads)?;
            Ok(done(Some(report)))
        }
    }
}
