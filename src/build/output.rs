//! Writing a built image out: an OCI layout (with the provenance as an OCI 1.1 referrer), an
//! `oci-archive` tarball of that layout, or a `docker-archive` tarball that `docker load` and
//! `podman load` accept. Everything is written beside the destination first and moved into
//! place at the end, so a failed build never leaves a half-written result where a good one was.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::{BuiltImage, Result};
use crate::digest::Sha256Digest;
use crate::image::json::to_canonical_vec;
use crate::image::layout::descriptor;
use crate::image::referrer::{self, Subject};
use crate::image::{media, Layout};
use crate::layer::decompress;
use crate::layer::host::HostOptions;
use crate::layer::tree::{Content, Entry, EntryKind, FileTree, Metadata};
use crate::layer::write::write_tar;

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

/// The referrer manifest that attaches the provenance statement to the image.
pub fn provenance_manifest(image: &BuiltImage, statement_digest: &Sha256Digest) -> Vec<u8> {
    referrer::statement_manifest(
        subject(image),
        statement_digest,
        image.provenance.len() as u64,
        crate::attest::provenance::SLSA_PROVENANCE_V1,
    )
}

/// Writes the image and its provenance into the layout directory `dir` (created).
pub fn write_layout(image: &BuiltImage, dir: &Path) -> Result<()> {
    let layout = Layout::create(dir)?;
    for blob in &image.layers {
        layout.put_blob_file(&blob.path, &blob.digest)?;
    }
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

/// Writes `image` to `dest` in `format`, replacing what was there only once the new output is
/// complete.
pub fn write_output(
    image: &BuiltImage,
    dest: &Path,
    format: OutputFormat,
    scratch_parent: &Path,
) -> Result<()> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs_err::create_dir_all(parent)?;
    let staging = tempfile::Builder::new()
        .prefix(".kiln-out-")
        .tempdir_in(parent)?;
    let staged = staging.path().join("out");
    match format {
        OutputFormat::Oci => write_layout(image, &staged)?,
        OutputFormat::OciArchive => {
            let layout_dir = staging.path().join("layout");
            write_layout(image, &layout_dir)?;
            let mut tree = FileTree::default();
            tree.add_host_path(
                &layout_dir,
                "/",
                &HostOptions {
                    mode: None,
                    owner: Some((0, 0)),
                    epoch: image.epoch,
                },
            )
            .map_err(std::io::Error::other)?;
            write_tar_file(&tree, image.epoch, &staged)?;
        }
        OutputFormat::DockerArchive => {
            let scratch = tempfile::Builder::new()
                .prefix("kiln-docker-")
                .tempdir_in(scratch_parent)?;
            let tree = docker_archive_tree(image, scratch.path())?;
            write_tar_file(&tree, image.epoch, &staged)?;
        }
    }
    replace(&staged, dest)?;
    Ok(())
}

fn write_tar_file(tree: &FileTree, epoch: i64, path: &Path) -> Result<()> {
    let mut file = std::io::BufWriter::new(fs_err::File::create(path)?);
    write_tar(tree, epoch, &mut file).map_err(std::io::Error::other)?;
    use std::io::Write;
    file.flush()?;
    Ok(())
}

fn file_entry(content: Content, epoch: i64) -> Entry {
    Entry {
        kind: EntryKind::File(content),
        meta: Metadata::new(0o644, 0, 0, epoch),
    }
}

/// The `docker save` layout: `manifest.json`, the config as `<hex>.json`, and each layer
/// uncompressed as `<diff_id hex>.tar` (what `docker load` expects).
fn docker_archive_tree(image: &BuiltImage, scratch: &Path) -> Result<FileTree> {
    let mut tree = FileTree::default();
    let mut layer_names = Vec::new();
    for (blob, diff_id) in image.layers.iter().zip(&image.diff_ids) {
        let name = format!("{}.tar", diff_id.hex());
        let spilled = scratch.join(&name);
        if !spilled.exists() {
            let file = std::io::BufReader::new(fs_err::File::open(&blob.path)?);
            let mut tar = decompress::open_archive(file, &blob.digest.to_string())
                .map_err(std::io::Error::other)?;
            let mut out = fs_err::File::create(&spilled)?;
            std::io::copy(&mut tar, &mut out)?;
        }
        let size = fs_err::metadata(&spilled)?.len();
        tree.insert(
            &name,
            file_entry(
                Content::File {
                    path: spilled,
                    size,
                },
                image.epoch,
            ),
        )
        .map_err(std::io::Error::other)?;
        layer_names.push(name);
    }
    let config_name = format!("{}.json", image.config_digest.hex());
    let manifest = json!([{
        "Config": config_name,
        "RepoTags": [format!("{}:latest", image.name)],
        "Layers": layer_names,
    }]);
    let inline = |b: Vec<u8>| Content::Inline(std::sync::Arc::from(b));
    tree.insert(
        &config_name,
        file_entry(inline(image.config_bytes.clone()), image.epoch),
    )
    .map_err(std::io::Error::other)?;
    tree.insert(
        "manifest.json",
        file_entry(
            inline(to_canonical_vec(&manifest).expect("JSON")),
            image.epoch,
        ),
    )
    .map_err(std::io::Error::other)?;
    Ok(tree)
}

/// Moves `staged` to `dest`. An existing `dest` is swapped out atomically where the kernel can
/// (`renameat2(RENAME_EXCHANGE)`), then removed.
fn replace(staged: &Path, dest: &Path) -> Result<()> {
    if fs_err::symlink_metadata(dest).is_err() {
        fs_err::rename(staged, dest)?;
        return Ok(());
    }
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        staged,
        rustix::fs::CWD,
        dest,
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .map_err(|e| std::io::Error::other(format!("failed to replace {}: {e}", dest.display())))?;
    // `staged` now holds the old output.
    let old: PathBuf = staged.to_path_buf();
    if old.is_dir() {
        fs_err::remove_dir_all(&old)?;
    } else {
        fs_err::remove_file(&old)?;
    }
    Ok(())
}
