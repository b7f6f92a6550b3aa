//! Reading `oci-archive:` (a tar of an OCI layout) and `docker-archive:` (`docker save`:
//! `manifest.json`, a config and layer tars) images. Writing both is in [`super::write`].
//!
//! Why extract at all: a tar cannot be read at random, and the same blob may be needed several
//! times (build, inspect, copy). The archive is unpacked once into a private scratch directory
//! that lives as long as the [`OpenedImage`], and from there every blob is verified like any
//! layout's. An image archive holds plain files in plain directories, so the extractor accepts
//! regular files and directories with relative names made of normal components, plus links
//! between its own members: podman's `docker-archive` stores each `<id>/layer.tar` as a symlink
//! to `../<diff_id>.tar`. A link is followed inside the archive's own namespace only (never on
//! the host: nothing but files and directories is ever created) and must end at a regular file
//! of the archive; a link that leaves it (`../x` above the top, `/etc/passwd`), dangles or loops
//! is refused. Anything else (devices, `..` in names, absolute names, duplicates) is refused
//! with the entry named, before any of it is trusted.

use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::layout::{descriptor, read_json_sized};
use super::manifest::{image_manifest, manifest_bytes};
use super::remote::uncompressed_digest;
use super::source::{open_in_layout, OpenedImage};
use super::{ImageError, ImageRef, Layout, Result};
use crate::digest::Sha256Digest;
use crate::layer::decompress::{self, Format};
use crate::layer::read::{ReadLimits, TarKind, TarReader};
use crate::layer::tree::MAX_SYMLINK_HOPS;
use crate::media::{self, MAX_JSON_BLOB};
use crate::platform::Platform;

/// Opens an archive reference, extracting it into `scratch` (kept alive by the image).
pub(crate) fn open_archive(
    reference: &ImageRef,
    platform: Option<&Platform>,
    scratch: tempfile::TempDir,
) -> Result<OpenedImage> {
    match reference {
        ImageRef::OciArchive { path, tag, digest } => {
            let dir = scratch.path().join("layout");
            extract_plain(path, &dir)?;
            let layout = Layout::open(&dir)?;
            open_in_layout(
                reference.to_string(),
                layout,
                tag.as_deref(),
                digest.as_ref(),
                platform,
                Some(scratch),
            )
        }
        ImageRef::DockerArchive { path } => {
            let dir = scratch.path().join("archive");
            extract_plain(path, &dir)?;
            let layout_dir = scratch.path().join("layout");
            let (digest, tag) = docker_to_layout(path, &dir, &layout_dir)?;
            let mut img = open_in_layout(
                reference.to_string(),
                Layout::open(&layout_dir)?,
                None,
                Some(&digest),
                platform,
                Some(scratch),
            )?;
            img.tag = tag;
            Ok(img)
        }
        other => Err(ImageError::UnsupportedTransport {
            reference: other.to_string(),
            transport: other.transport(),
        }),
    }
}

/// The relative path of an archive member, if it is made of normal components only (a leading
/// `./` is allowed, as GNU tar writes it).
fn plain_relative(name: &str) -> Option<PathBuf> {
    let trimmed = name.trim_end_matches('/');
    let mut out = PathBuf::new();
    for (i, c) in Path::new(trimmed).components().enumerate() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir if i == 0 => {}
            _ => return None,
        }
    }
    Some(out)
}

/// A link member of an archive, resolved once every member is out.
struct ArchiveLink {
    entry: String,
    /// The link's target as an archive path: a symlink's target joined to its directory, a
    /// hard link's target as it is (tar names it from the archive's top).
    target: Option<PathBuf>,
    raw_target: String,
}

/// `target` (a symlink's text) seen from the archive directory `dir`, lexically; `None` when it
/// is absolute or climbs above the archive's top.
fn join_inside(dir: &Path, target: &str) -> Option<PathBuf> {
    let mut out = dir.to_path_buf();
    for c in Path::new(target).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Extracts `archive` (a tar, possibly compressed) into the new directory `dest`, accepting
/// regular files and directories with plain relative names, and links to regular files of the
/// archive (each materialized as a hard link to that file inside `dest`).
pub(crate) fn extract_plain(archive: &Path, dest: &Path) -> Result<()> {
    let unsafe_entry = |entry: &str, reason: &'static str| ImageError::UnsafeArchiveEntry {
        archive: archive.to_path_buf(),
        entry: entry.to_string(),
        reason,
    };
    let file = BufReader::new(fs_err::File::open(archive)?);
    let stream = decompress::open_archive(file, &archive.display().to_string()).map_err(|e| {
        ImageError::ArchiveDecompress {
            archive: archive.to_path_buf(),
            source: Box::new(e),
        }
    })?;
    fs_err::create_dir(dest)?;
    let mut reader = TarReader::new(stream, ReadLimits::default());
    let mut links: BTreeMap<PathBuf, ArchiveLink> = BTreeMap::new();
    let tar_err = |e| ImageError::ArchiveTar {
        archive: archive.to_path_buf(),
        source: Box::new(e),
    };
    while let Some(entry) = reader.next_entry().map_err(tar_err)? {
        let Some(rel) = plain_relative(&entry.path) else {
            return Err(unsafe_entry(
                &entry.path,
                "is not a plain relative path (absolute, `..` or empty components)",
            ));
        };
        let target = dest.join(&rel);
        match entry.kind {
            TarKind::Dir => {
                if target.is_file() || links.contains_key(&rel) {
                    return Err(unsafe_entry(&entry.path, "is both a file and a directory"));
                }
                fs_err::create_dir_all(&target)?;
            }
            TarKind::File => {
                if rel.as_os_str().is_empty() {
                    return Err(unsafe_entry(&entry.path, "is a file without a name"));
                }
                if links.contains_key(&rel) {
                    return Err(unsafe_entry(&entry.path, "appears twice"));
                }
                if let Some(parent) = target.parent() {
                    fs_err::create_dir_all(parent)?;
                }
                let mut out = match fs_err::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Err(unsafe_entry(&entry.path, "appears twice"))
                    }
                    Err(e) => return Err(e.into()),
                };
                reader.read_data(&mut out).map_err(tar_err)?;
                out.flush()?;
            }
            TarKind::Symlink | TarKind::Hardlink => {
                if rel.as_os_str().is_empty() {
                    return Err(unsafe_entry(&entry.path, "is a link without a name"));
                }
                if fs_err::symlink_metadata(&target).is_ok() || links.contains_key(&rel) {
                    return Err(unsafe_entry(&entry.path, "appears twice"));
                }
                let resolved = if entry.kind == TarKind::Symlink {
                    join_inside(rel.parent().unwrap_or(Path::new("")), &entry.link_name)
                } else {
                    plain_relative(&entry.link_name)
                };
                links.insert(
                    rel,
                    ArchiveLink {
                        entry: entry.path.clone(),
                        target: resolved,
                        raw_target: entry.link_name.clone(),
                    },
                );
            }
            _ => {
                return Err(unsafe_entry(
                    &entry.path,
                    "is not a regular file, directory or link (image archives hold no devices)",
                ))
            }
        }
    }
    for (rel, link) in &links {
        let file = resolve_link(archive, dest, &links, link)?;
        let at = dest.join(rel);
        if let Some(parent) = at.parent() {
            fs_err::create_dir_all(parent)?;
        }
        fs_err::hard_link(dest.join(file), at)?;
    }
    Ok(())
}

/// The regular file of the archive that `link` ends at, following links of the archive (never
/// of the host) at most [`MAX_SYMLINK_HOPS`] times.
fn resolve_link<'a>(
    archive: &Path,
    dest: &Path,
    links: &'a BTreeMap<PathBuf, ArchiveLink>,
    link: &'a ArchiveLink,
) -> Result<&'a Path> {
    let refuse = |reason: &'static str| ImageError::ArchiveLink {
        archive: archive.to_path_buf(),
        entry: link.entry.clone(),
        target: link.raw_target.clone(),
        reason,
    };
    let mut current = link;
    for _ in 0..MAX_SYMLINK_HOPS {
        let target = current
            .target
            .as_deref()
            .ok_or_else(|| refuse("leaves the archive (absolute, or `..` above its top)"))?;
        match links.get(target) {
            Some(next) => current = next,
            None => {
                // Only files and directories were created under `dest`, so this looks at
                // nothing outside it.
                let md = fs_err::symlink_metadata(dest.join(target))
                    .map_err(|_| refuse("names nothing the archive holds"))?;
                if !md.is_file() {
                    return Err(refuse("does not end at a regular file of the archive"));
                }
                return Ok(target);
            }
        }
    }
    Err(refuse(
        "is a loop (more links than the kernel's MAXSYMLINKS)",
    ))
}

/// One image of docker-archive's `manifest.json` (read here, written by [`super::write`]).
/// A serde struct rather than an oci-spec type: this is Docker's format, which oci-spec does
/// not model.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DockerManifestEntry {
    pub config: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
}

/// Turns an extracted `docker save` archive into an OCI layout: layers keep their bytes (so a
/// compressed layer stays compressed), the config keeps its bytes, and the manifest is
/// synthesized canonically. Returns the manifest digest and the first RepoTag.
fn docker_to_layout(
    archive: &Path,
    dir: &Path,
    layout_dir: &Path,
) -> Result<(Sha256Digest, Option<String>)> {
    let bad = |reason: String| ImageError::BadDockerArchive {
        archive: archive.to_path_buf(),
        reason,
    };
    let member = |name: &str| -> Result<PathBuf> {
        let rel = plain_relative(name)
            .filter(|r| !r.as_os_str().is_empty())
            .ok_or_else(|| bad(format!("`{name}` is not a plain relative path")))?;
        let path = dir.join(rel);
        if !path.is_file() {
            return Err(bad(format!(
                "`{name}` is named in manifest.json but missing"
            )));
        }
        Ok(path)
    };
    let manifest_path = member("manifest.json")?;
    let text = read_small(&manifest_path)?;
    let entries: Vec<DockerManifestEntry> = serde_json::from_slice(&text)
        .map_err(|e| bad(format!("manifest.json is not a docker-save manifest: {e}")))?;
    let entry = match entries.as_slice() {
        [one] => one,
        [] => return Err(bad("manifest.json lists no image".into())),
        _ => {
            return Err(bad(format!(
                "manifest.json lists {} images; kiln reads archives with one",
                entries.len()
            )))
        }
    };
    let config_bytes = read_small(&member(&entry.config)?)?;
    let config: serde_json::Value = serde_json::from_slice(&config_bytes)
        .map_err(|e| bad(format!("config `{}` is not JSON: {e}", entry.config)))?;
    let diff_ids: Vec<String> = config
        .pointer("/rootfs/diff_ids")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    if diff_ids.len() != entry.layers.len() {
        return Err(bad(format!(
            "the config lists {} diff_ids but manifest.json {} layers",
            diff_ids.len(),
            entry.layers.len()
        )));
    }
    let layout = Layout::create(layout_dir)?;
    let mut layers = Vec::new();
    for (name, diff_id) in entry.layers.iter().zip(&diff_ids) {
        let path = member(name)?;
        let (digest, size) = Sha256Digest::of_reader(BufReader::new(fs_err::File::open(&path)?))?;
        let mut prefix = [0u8; 8];
        let n = fs_err::File::open(&path)?.read(&mut prefix)?;
        let media_type = match Format::detect(&prefix[..n]) {
            Some(Format::Gzip) => media::OCI_LAYER_GZIP,
            Some(Format::Zstd) => media::OCI_LAYER_ZSTD,
            Some(_) => {
                return Err(bad(format!(
                    "layer `{name}` uses a compression OCI has no media type for"
                )))
            }
            None => media::OCI_LAYER_TAR,
        };
        let actual = if media_type == media::OCI_LAYER_TAR {
            digest
        } else {
            uncompressed_digest(BufReader::new(fs_err::File::open(&path)?), &digest)?
        };
        if actual.to_string() != *diff_id {
            return Err(ImageError::DiffIdMismatch(Box::new(
                super::DiffIdMismatch {
                    reference: format!("docker-archive:{}", archive.display()),
                    digest,
                    expected: diff_id.clone(),
                    actual,
                },
            )));
        }
        if !layout.has_blob(&digest) {
            fs_err::rename(&path, layout.blob_path(&digest))?;
        }
        layers.push(descriptor(media_type, &digest, size));
    }
    let config_digest = layout.put_blob(&config_bytes)?;
    let config = descriptor(media::OCI_CONFIG, &config_digest, config_bytes.len() as u64);
    let manifest_bytes = manifest_bytes(image_manifest(config, layers));
    let manifest_digest = layout.put_blob(&manifest_bytes)?;
    let tag = entry.repo_tags.as_ref().and_then(|t| t.first()).cloned();
    let mut desc = descriptor(
        media::OCI_MANIFEST,
        &manifest_digest,
        manifest_bytes.len() as u64,
    );
    if let Some(t) = &tag {
        desc.set_annotations(Some(
            [(media::ANNOTATION_REF_NAME.to_string(), t.clone())]
                .into_iter()
                .collect(),
        ));
    }
    layout.write_index(vec![desc])?;
    Ok((manifest_digest, tag))
}

fn read_small(path: &Path) -> Result<Vec<u8>> {
    read_json_sized(fs_err::File::open(path)?)?.ok_or_else(|| ImageError::BadDockerArchive {
        archive: path.to_path_buf(),
        reason: format!("larger than the {MAX_JSON_BLOB}-byte limit for JSON"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amd64() -> Platform {
        "linux/amd64".parse().unwrap()
    }

    /// A ustar header + data for one entry (typeflag `0` file, `5` dir, `2` symlink, `1` link).
    fn entry(name: &str, typeflag: u8, link: &str, data: &[u8]) -> Vec<u8> {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[108..115].copy_from_slice(b"0000000");
        h[116..123].copy_from_slice(b"0000000");
        h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = typeflag;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let mut out = h.to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }

    fn tar(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut out: Vec<u8> = entries.concat();
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    #[test]
    fn extracts_plain_files_and_refuses_everything_else() {
        let ok = tar(&[
            entry("./", b'5', "", b""),
            entry("./blobs/", b'5', "", b""),
            entry("./blobs/sha256/ab", b'0', "", b"data"),
            entry("index.json", b'0', "", b"{}"),
        ]);
        let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
            ("plain", ok, None),
            (
                "dotdot",
                tar(&[entry("../x", b'0', "", b"x")]),
                Some("`../x`"),
            ),
            (
                "absolute",
                tar(&[entry("/etc/x", b'0', "", b"x")]),
                Some("`/etc/x`"),
            ),
            (
                "inner dotdot",
                tar(&[entry("a/../../x", b'0', "", b"x")]),
                Some("`a/../../x`"),
            ),
            (
                "absolute symlink",
                tar(&[entry("blobs", b'2', "/etc", b"")]),
                Some("link `blobs` -> `/etc` leaves the archive"),
            ),
            (
                "symlink above the top",
                tar(&[entry("a/x", b'2', "../../x", b"")]),
                Some("link `a/x` -> `../../x` leaves the archive"),
            ),
            (
                "hardlink outside",
                tar(&[entry("x", b'1', "/etc/passwd", b"")]),
                Some("link `x` -> `/etc/passwd` leaves the archive"),
            ),
            (
                "symlink loop",
                tar(&[entry("a", b'2', "b", b""), entry("b", b'2', "a", b"")]),
                Some("is a loop"),
            ),
            (
                "dangling symlink",
                tar(&[entry("a", b'2', "nothing", b"")]),
                Some("names nothing the archive holds"),
            ),
            (
                "symlink to a directory",
                tar(&[entry("d/", b'5', "", b""), entry("a", b'2', "d", b"")]),
                Some("does not end at a regular file"),
            ),
            (
                "symlink then file of the same name",
                tar(&[
                    entry("f", b'0', "", b"1"),
                    entry("a", b'2', "f", b""),
                    entry("a", b'0', "", b"2"),
                ]),
                Some("appears twice"),
            ),
            (
                "duplicate",
                tar(&[entry("x", b'0', "", b"1"), entry("x", b'0', "", b"2")]),
                Some("appears twice"),
            ),
            (
                "fifo",
                tar(&[entry("p", b'6', "", b"")]),
                Some("not a regular file, directory or link"),
            ),
        ];
        for (name, bytes, want_err) in cases {
            let dir = tempfile::tempdir().unwrap();
            let archive = dir.path().join("a.tar");
            fs_err::write(&archive, &bytes).unwrap();
            let dest = dir.path().join("out");
            let result = extract_plain(&archive, &dest);
            match want_err {
                None => {
                    result.unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert_eq!(fs_err::read(dest.join("blobs/sha256/ab")).unwrap(), b"data");
                    assert_eq!(fs_err::read(dest.join("index.json")).unwrap(), b"{}");
                }
                Some(want) => {
                    let err = result.expect_err(name).to_string();
                    assert!(err.contains(want), "{name}: {err}");
                    assert!(err.contains("a.tar"), "{name}: names the archive: {err}");
                    assert!(!dir.path().join("x").exists() && !Path::new("/etc/x").exists());
                }
            }
        }
    }

    #[test]
    fn docker_archive_with_a_lying_diff_id_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layer = tar(&[entry("hello", b'0', "", b"hi\n")]);
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["sha256:{}"]}}}}"#,
            "0".repeat(64)
        );
        let manifest = r#"[{"Config":"c.json","RepoTags":["x:latest"],"Layers":["l.tar"]}]"#;
        let archive = dir.path().join("d.tar");
        fs_err::write(
            &archive,
            tar(&[
                entry("manifest.json", b'0', "", manifest.as_bytes()),
                entry("c.json", b'0', "", config.as_bytes()),
                entry("l.tar", b'0', "", &layer),
            ]),
        )
        .unwrap();
        let r: ImageRef = format!("docker-archive:{}", archive.display())
            .parse()
            .unwrap();
        let err = open_archive(&r, Some(&amd64()), tempfile::tempdir().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("diff_id"), "{err}");

        // With the right diff_id it opens, and the layer keeps its bytes.
        let good = config.replace(&"0".repeat(64), &Sha256Digest::of(&layer).hex());
        fs_err::write(
            &archive,
            tar(&[
                entry("manifest.json", b'0', "", manifest.as_bytes()),
                entry("c.json", b'0', "", good.as_bytes()),
                entry("l.tar", b'0', "", &layer),
            ]),
        )
        .unwrap();
        let img = open_archive(&r, Some(&amd64()), tempfile::tempdir().unwrap()).unwrap();
        assert_eq!(img.tag.as_deref(), Some("x:latest"));
        assert_eq!(
            img.manifest.layers()[0].digest().to_string(),
            Sha256Digest::of(&layer).to_string()
        );
        assert_eq!(img.config_bytes, good.as_bytes());
    }

    /// podman's docker-archive: each layer is `<diff_id>.tar` at the top, and the legacy
    /// `<id>/layer.tar` is a symlink to it; links to links are followed too.
    #[test]
    fn links_inside_the_archive_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar");
        fs_err::write(
            &archive,
            tar(&[
                entry("abc.tar", b'0', "", b"layer bytes"),
                entry("1234/", b'5', "", b""),
                entry("1234/layer.tar", b'2', "../abc.tar", b""),
                entry("5678/layer.tar", b'2', "./../1234/layer.tar", b""),
                entry("hard", b'1', "./abc.tar", b""),
            ]),
        )
        .unwrap();
        let dest = dir.path().join("out");
        extract_plain(&archive, &dest).unwrap();
        for p in ["abc.tar", "1234/layer.tar", "5678/layer.tar", "hard"] {
            let md = fs_err::symlink_metadata(dest.join(p)).unwrap();
            assert!(md.is_file(), "{p} is a plain file, not a host symlink");
            assert_eq!(fs_err::read(dest.join(p)).unwrap(), b"layer bytes", "{p}");
        }
    }

    #[test]
    fn plain_relative_names() {
        for (name, want) in [
            ("index.json", Some("index.json")),
            ("./blobs/sha256/", Some("blobs/sha256")),
            ("blobs//sha256/ab", Some("blobs/sha256/ab")),
            ("./", Some("")),
            ("../x", None),
            ("/etc/passwd", None),
            ("a/../b", None),
            ("a/./b", Some("a/b")),
        ] {
            assert_eq!(plain_relative(name), want.map(PathBuf::from), "{name}");
        }
    }
}
