//! Writing a built image out: an OCI layout (with the provenance as an OCI 1.1 referrer), an
//! `oci-archive` tarball of that layout, or a `docker-archive` tarball that `docker load` and
//! `podman load` accept. Everything is written beside the destination first and moved into
//! place at the end, so a failed build never leaves a half-written result where a good one was.

use std::path::Path;

use super::{BuiltImage, Result};
use crate::digest::Sha256Digest;
use crate::image::layout::descriptor;
use crate::image::manifest;
use crate::image::referrer::{self, Subject};
use crate::image::write::{
    docker_repo_tag, replace, stage_beside, write_docker_archive_file, write_oci_archive_file,
};
use crate::image::{open_image, ImageRef, Layout};
use crate::media;
use crate::store::Store;

/// The mode of blobs in an output layout, whatever the umask.
const BLOB_MODE: u32 = 0o644;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Oci,
    OciArchive,
    DockerArchive,
}

fn subject(image: &BuiltImage) -> Subject<'_> {
    Subject {
        media_type: media::OCI_MANIFEST,
        digest: &image.manifest_digest,
        size: image.manifest_bytes.len() as u64,
    }
}

/// Writes the image and its provenance into the layout directory `dir` (created). Layer blobs
/// are copied (or cloned) out of the store, never linked, and re-hashed on the way unless this
/// build wrote or hashed them itself (see `Store::export`).
pub fn write_layout(image: &BuiltImage, dir: &Path) -> Result<()> {
    let layout = Layout::create(dir)?;
    export_layers(image, &layout)?;
    layout.put_blob(&image.config_bytes)?;
    layout.put_blob(&image.manifest_bytes)?;
    let prov_desc = referrer::put_statement(
        &layout,
        subject(image),
        &image.provenance,
        crate::attest::provenance::SLSA_PROVENANCE_V1,
    )?;

    let mut image_desc = descriptor(
        media::OCI_MANIFEST,
        &image.manifest_digest,
        image.manifest_bytes.len() as u64,
    );
    image_desc.set_annotations(Some(
        [(media::ANNOTATION_REF_NAME.to_string(), image.name.clone())]
            .into_iter()
            .collect(),
    ));
    layout.write_index(vec![image_desc, prov_desc])?;
    Ok(())
}

/// Copies the layer blobs of `image` out of the store into `layout` (see `Store::export`).
fn export_layers(image: &BuiltImage, layout: &Layout) -> Result<()> {
    for blob in &image.layers {
        let dest = layout.blob_path(&blob.digest);
        if !dest.is_file() && !image.store.export(&blob.digest, &dest, BLOB_MODE)? {
            return Err(crate::store::StoreError::ReadEntry {
                digest: blob.digest,
                path: blob.path.clone(),
                source: std::io::ErrorKind::NotFound.into(),
            }
            .into());
        }
    }
    Ok(())
}

/// The platform fields of an image config, for its index entry.
#[derive(serde::Deserialize)]
struct ConfigPlatform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

/// Writes the images of a several-platform build into the layout directory `dir`: an OCI image
/// index (one manifest per platform, in recipe order) named `name`, each image's provenance as a
/// referrer of that image.
pub fn write_index_layout(images: &[BuiltImage], name: &str, dir: &Path) -> Result<Sha256Digest> {
    let layout = Layout::create(dir)?;
    let mut entries = Vec::new();
    let mut referrers = Vec::new();
    for image in images {
        export_layers(image, &layout)?;
        layout.put_blob(&image.config_bytes)?;
        layout.put_blob(&image.manifest_bytes)?;
        referrers.push(referrer::put_statement(
            &layout,
            subject(image),
            &image.provenance,
            crate::attest::provenance::SLSA_PROVENANCE_V1,
        )?);
        let config: ConfigPlatform =
            serde_json::from_slice(&image.config_bytes).expect("kiln wrote the config");
        let mut entry = descriptor(
            media::OCI_MANIFEST,
            &image.manifest_digest,
            image.manifest_bytes.len() as u64,
        );
        entry.set_platform(Some(manifest::platform(
            &config.os,
            &config.architecture,
            config.variant.as_deref(),
        )));
        entries.push(entry);
    }
    let index = manifest::image_index(entries);
    let bytes = crate::image::json::to_canonical_vec(&index).expect("an index serializes");
    let digest = layout.put_blob(&bytes)?;
    let mut index_desc = descriptor(media::OCI_INDEX, &digest, bytes.len() as u64);
    index_desc.set_annotations(Some(
        [(media::ANNOTATION_REF_NAME.to_string(), name.to_string())]
            .into_iter()
            .collect(),
    ));
    let mut all = vec![index_desc];
    all.extend(referrers);
    layout.write_index(all)?;
    Ok(digest)
}

/// Writes `image` to `dest` in `format`, replacing what was there only once the new output is
/// complete. The archive formats are written from the staged layout by [`crate::image::write`],
/// the same code `kiln copy` uses. Layer blobs are then stamped as verified (this build wrote
/// them or hashed them on their way out), so the next warm build finds them without hashing.
pub fn write_output(
    image: &BuiltImage,
    dest: &Path,
    format: OutputFormat,
    store: &Store,
) -> Result<()> {
    let (staging, staged) = stage_beside(dest)?;
    match format {
        OutputFormat::Oci => write_layout(image, &staged)?,
        OutputFormat::OciArchive => {
            let layout_dir = staging.path().join("layout");
            write_layout(image, &layout_dir)?;
            write_oci_archive_file(&layout_dir, image.epoch, &staged)?;
        }
        OutputFormat::DockerArchive => {
            let layout_dir = staging.path().join("layout");
            write_layout(image, &layout_dir)?;
            let opened = open_image(
                &ImageRef::Oci {
                    path: layout_dir,
                    tag: None,
                    digest: Some(image.manifest_digest),
                },
                None,
            )?;
            let scratch = store.scratch("kiln-docker-")?;
            write_docker_archive_file(
                &opened,
                &docker_repo_tag(&image.name),
                image.epoch,
                &staged,
                scratch.path(),
            )?;
        }
    }
    replace(&staged, dest)?;
    for blob in &image.layers {
        image.store.stamp_verified(&blob.digest);
    }
    Ok(())
}
