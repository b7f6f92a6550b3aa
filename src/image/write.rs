//! Writing an opened image to the local transports: an OCI layout (image, referrers and
//! cosign-style attachments), an `oci-archive` tarball of a layout, or a `docker-archive`
//! tarball that `docker load` and `podman load` accept.
//!
//! These are the only tar/archive writers in kiln: `kiln build` stages its layout and hands it
//! here for the archive formats, and `kiln copy` writes any opened image through them.
//! Archives are staged beside their destination and moved into place at the end, so a failure
//! never leaves a half-written result where a good one was.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageManifest};

use super::archive::DockerManifestEntry;
use super::json::to_canonical_vec;
use super::layout::{descriptor, digest_of, ref_name};
use super::source::{parse, OpenedImage};
use super::{ImageError, Layout, Result};
use crate::digest::Sha256Digest;
use crate::layer::decompress;
use crate::layer::host::HostOptions;
use crate::layer::tree::{Content, Entry, EntryKind, FileTree, Metadata};
use crate::layer::write::write_tar;
use crate::media;
use crate::store::scratch;

fn write_err(path: &Path, e: impl std::error::Error + Send + Sync + 'static) -> ImageError {
    ImageError::Write {
        path: path.to_path_buf(),
        source: Box::new(e),
    }
}

/// Copies blob `digest` of `img` into `layout` (verified while it streams).
fn copy_blob(img: &OpenedImage, layout: &Layout, digest: &Sha256Digest, size: u64) -> Result<()> {
    if layout.has_blob(digest) {
        return Ok(());
    }
    let mut reader = img.open_blob(digest, Some(size))?;
    layout.put_blob_reader(digest, &mut reader)
}

/// Copies a referrer or attachment manifest and every blob it names.
fn copy_child(img: &OpenedImage, layout: &Layout, desc: &Descriptor) -> Result<()> {
    let digest = digest_of(desc)?;
    let bytes = img.read_blob(&digest)?;
    let manifest: ImageManifest = parse(&bytes, &format!("manifest {digest}"))?;
    for b in std::iter::once(manifest.config()).chain(manifest.layers()) {
        copy_blob(img, layout, &digest_of(b)?, b.size())?;
    }
    layout.put_blob(&bytes)?;
    Ok(())
}

/// Writes `img` (its platform manifest, config, layers, referrers and attachments) into the
/// layout at `dir`, created if needed. An existing layout keeps its other images; an entry
/// with the same tag is replaced. `index.json` is written last. Returns the manifest digest.
pub fn write_layout_from(img: &OpenedImage, dir: &Path, tag: Option<&str>) -> Result<Sha256Digest> {
    // Registry layers first (several at once), so a refused blob stops the copy before
    // anything is written.
    img.prefetch(crate::registry::DEFAULT_PARALLELISM)?;
    let (layout, existing) = match Layout::open(dir) {
        Ok(l) => {
            let index = l.read_index()?;
            (l, index.manifests().clone())
        }
        Err(ImageError::NotALayout { .. }) => (Layout::create(dir)?, Vec::new()),
        Err(e) => return Err(e),
    };
    let config = img.manifest.config();
    copy_blob(img, &layout, &digest_of(config)?, config.size())?;
    let jobs: Vec<(Sha256Digest, u64)> = img
        .manifest
        .layers()
        .iter()
        .map(|l| Ok((digest_of(l)?, l.size())))
        .collect::<Result<_>>()?;
    for (d, size) in &jobs {
        copy_blob(img, &layout, d, *size)?;
    }
    layout.put_blob(&img.manifest_bytes)?;
    for desc in img.referrers.iter().chain(&img.attachments) {
        copy_child(img, &layout, desc)?;
    }

    let mut image_desc = descriptor(
        &img.manifest_media_type,
        &img.manifest_digest,
        img.manifest_bytes.len() as u64,
    );
    if let Some(t) = tag {
        image_desc.set_annotations(Some(
            [(media::ANNOTATION_REF_NAME.to_string(), t.to_string())]
                .into_iter()
                .collect(),
        ));
    }
    let mut ours = vec![image_desc];
    ours.extend(img.referrers.iter().cloned());
    ours.extend(img.attachments.iter().cloned());
    let our_names: BTreeSet<&str> = ours.iter().filter_map(ref_name).collect();
    let our_digests: BTreeSet<String> = ours.iter().map(|d| d.digest().to_string()).collect();
    let mut manifests: Vec<Descriptor> = existing
        .iter()
        .filter(|d| match ref_name(d) {
            Some(n) => !our_names.contains(n),
            None => !our_digests.contains(&d.digest().to_string()),
        })
        .cloned()
        .collect();
    manifests.extend(ours);
    layout.write_index(manifests)?;
    Ok(img.manifest_digest)
}

/// A private staging directory beside `dest` (same file system, so the final move is a
/// rename) and the path to stage the output at. Its name carries this process's tag, so that
/// SIGINT/SIGTERM, or the next kiln staging there once this process is gone, removes it
/// (see [`crate::store::scratch`]).
pub fn stage_beside(dest: &Path) -> Result<(tempfile::TempDir, PathBuf)> {
    use std::os::unix::fs::DirBuilderExt;
    const STAGING: &[&str] = &[".kiln-out-"];
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(parent)
        .map_err(|e| write_err(parent, e))?;
    scratch::remove_tagged(parent, STAGING, false);
    scratch::watch(parent, STAGING);
    let staging = tempfile::Builder::new()
        .prefix(&scratch::tagged_prefix(STAGING[0]))
        .tempdir_in(parent)?;
    let staged = staging.path().join("out");
    Ok((staging, staged))
}

/// Writes the tar of the layout directory `layout_dir` to the file `dest` (not replaced
/// atomically: pass a staged path), every entry root-owned with mtime `epoch`.
pub fn write_oci_archive_file(layout_dir: &Path, epoch: i64, dest: &Path) -> Result<()> {
    let mut tree = FileTree::default();
    tree.add_host_path(
        layout_dir,
        "/",
        &HostOptions {
            mode: None,
            owner: Some((0, 0)),
            epoch,
        },
    )
    .map_err(|e| write_err(dest, e))?;
    write_tar_file(&tree, epoch, dest)
}

/// Writes `img` as a `docker save` tarball to `dest`: `manifest.json`, the config as
/// `<hex>.json`, each layer uncompressed as `<diff_id hex>.tar` (what `docker load` expects).
/// `scratch` receives the decompressed layers.
pub fn write_docker_archive_file(
    img: &OpenedImage,
    repo_tag: &str,
    epoch: i64,
    dest: &Path,
    scratch: &Path,
) -> Result<()> {
    let mut tree = FileTree::default();
    let mut layer_names = Vec::new();
    let diff_ids = img.diff_ids();
    for (i, desc) in img.manifest.layers().iter().enumerate() {
        let digest = digest_of(desc)?;
        let reader = img.open_blob(&digest, Some(desc.size()))?;
        let mut tar = decompress::open_archive(reader, &digest.to_string())
            .map_err(|e| write_err(dest, e))?;
        let tmp = scratch.join(format!("layer-{i}.tar"));
        let mut out =
            crate::digest::HashingWriter::new(std::io::BufWriter::new(fs_err::File::create(&tmp)?));
        std::io::copy(&mut tar, &mut out)
            .map_err(|e| ImageError::LayerRead { digest, source: e })?;
        let (diff_id, size, mut w) = out.finish();
        w.flush()?;
        if diff_ids.get(i).map(String::as_str) != Some(diff_id.to_string().as_str()) {
            return Err(ImageError::DiffIdMismatch(Box::new(
                super::DiffIdMismatch {
                    reference: img.reference.clone(),
                    digest,
                    expected: diff_ids.get(i).cloned().unwrap_or_default(),
                    actual: diff_id,
                },
            )));
        }
        let name = format!("{}.tar", diff_id.hex());
        if tree.get(&name).is_none() {
            tree.insert(
                &name,
                file_entry(
                    Content::File {
                        path: tmp,
                        size,
                        link: None,
                    },
                    epoch,
                ),
            )
            .map_err(|e| write_err(dest, e))?;
        }
        layer_names.push(name);
    }
    let config_name = format!("{}.json", digest_of(img.manifest.config())?.hex());
    let manifest = [DockerManifestEntry {
        config: config_name.clone(),
        repo_tags: Some(vec![repo_tag.to_string()]),
        layers: layer_names,
    }];
    let inline = |b: Vec<u8>| Content::Inline(std::sync::Arc::from(b));
    tree.insert(
        &config_name,
        file_entry(inline(img.config_bytes.clone()), epoch),
    )
    .map_err(|e| write_err(dest, e))?;
    tree.insert(
        "manifest.json",
        file_entry(inline(to_canonical_vec(&manifest).expect("JSON")), epoch),
    )
    .map_err(|e| write_err(dest, e))?;
    write_tar_file(&tree, epoch, dest)
}

/// The `RepoTags` entry for a docker archive: `NAME:TAG`, adding `:latest` to a bare name.
pub fn docker_repo_tag(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

fn write_tar_file(tree: &FileTree, epoch: i64, path: &Path) -> Result<()> {
    use fs_err::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    let file = fs_err::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)?;
    // 0644 whatever the umask (which can only have taken bits away at create).
    file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    let mut file = std::io::BufWriter::new(file);
    write_tar(tree, epoch, &mut file).map_err(|e| write_err(path, e))?;
    file.flush()?;
    Ok(())
}

fn file_entry(content: Content, epoch: i64) -> Entry {
    Entry {
        kind: EntryKind::File(content),
        meta: Metadata::new(0o644, 0, 0, epoch),
    }
}

/// Moves `staged` to `dest`. An existing `dest` is swapped out atomically where the kernel can
/// (`renameat2(RENAME_EXCHANGE)`), then removed.
pub fn replace(staged: &Path, dest: &Path) -> Result<()> {
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
    .map_err(|e| write_err(dest, std::io::Error::from(e)))?;
    // `staged` now holds the old output.
    if staged.is_dir() {
        fs_err::remove_dir_all(staged)?;
    } else {
        fs_err::remove_file(staged)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_tags() {
        for (name, want) in [
            ("hello", "hello:latest"),
            ("hello:v1", "hello:v1"),
            ("127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b:latest"),
            ("127.0.0.1:5000/a/b:t", "127.0.0.1:5000/a/b:t"),
        ] {
            assert_eq!(docker_repo_tag(name), want, "{name}");
        }
    }
}
