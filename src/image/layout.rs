//! OCI image layouts on disk: `oci-layout`, `index.json`, `blobs/sha256/<hex>`.
//!
//! Reading verifies every blob against its digest before its bytes are trusted. Writing puts
//! each blob in place once (content addressing makes a second write a no-op), and writes
//! `index.json` last, canonically, so a layout is complete once it has an index.
//!
//! `index.json` lists images only. skopeo 1.9 and podman 4.3 open a layout without a tag only
//! when `index.json` has exactly one entry, and umoci refuses a tag behind which it finds two
//! image manifests (so a nested index holding the image and its referrers does not work
//! either). Referrers and cosign `.sig`/`.att`/`.sbom` tags therefore go to a side index: a
//! blob in the format of the OCI 1.1 referrers fallback tag, named by the
//! [`media::ANNOTATION_REFERRERS`] annotation of the first image entry. [`Layout::read_index`]
//! and [`Layout::write_index`] hide the split: the rest of kiln sees one list of entries.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use fs_err as fs;
use oci_spec::image::{Descriptor, ImageIndex};

use super::json::to_canonical_vec;
use super::manifest::image_index;
use super::{ImageError, Result};
use crate::digest::{HashingReader, Sha256Digest};
use crate::media::{self, MAX_JSON_BLOB};

pub const OCI_LAYOUT_FILE: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// An OCI image layout directory.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Opens an existing layout; it must have `oci-layout` and `index.json`.
    pub fn open(root: &Path) -> Result<Self> {
        let marker = root.join("oci-layout");
        if !marker.is_file() || !root.join("index.json").is_file() {
            return Err(ImageError::NotALayout {
                path: root.to_path_buf(),
            });
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// Creates the skeleton of a new layout in `root` (which may exist and be empty):
    /// directories 0755 and files 0644, whatever the umask.
    pub fn create(root: &Path) -> Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let blobs = root.join("blobs/sha256");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&blobs)
            .map_err(|e| ImageError::Write {
                path: blobs.clone(),
                source: Box::new(e),
            })?;
        write_atomic(&root.join("oci-layout"), OCI_LAYOUT_FILE)?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &Sha256Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Sha256Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Reads a JSON-sized blob (at most [`MAX_JSON_BLOB`]) and verifies its digest.
    pub fn read_blob(&self, digest: &Sha256Digest) -> Result<Vec<u8>> {
        let (path, file) = self.open_blob_file(digest)?;
        let bytes = read_json_blob(file, digest)?;
        let actual = Sha256Digest::of(&bytes);
        if actual != *digest {
            return Err(ImageError::DigestMismatch {
                what: path.display().to_string(),
                expected: *digest,
                actual,
            });
        }
        Ok(bytes)
    }

    /// Opens a blob for streaming; the returned reader fails at EOF if the bytes do not match
    /// the digest (or the expected size), so a consumer never finishes on corrupt data.
    pub fn open_blob(&self, digest: &Sha256Digest, size: Option<u64>) -> Result<VerifyingReader> {
        let (path, file) = self.open_blob_file(digest)?;
        Ok(VerifyingReader::new(
            Box::new(file),
            *digest,
            size,
            path.display().to_string(),
        ))
    }

    /// The blob's path and open file; a missing blob names the digest and the layout.
    fn open_blob_file(&self, digest: &Sha256Digest) -> Result<(PathBuf, fs::File)> {
        let path = self.blob_path(digest);
        let file = fs::File::open(&path).map_err(|e| ImageError::MissingBlob {
            digest: *digest,
            location: self.root.display().to_string(),
            source: e,
        })?;
        Ok((path, file))
    }

    /// Writes `bytes` as a blob unless it is already present; returns its digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Sha256Digest> {
        let digest = Sha256Digest::of(bytes);
        let path = self.blob_path(&digest);
        if !path.is_file() {
            write_atomic(&path, bytes)?;
        }
        Ok(digest)
    }

    /// Streams blob `digest` from `reader` into the layout unless it is present; the bytes are
    /// hashed on the way and nothing is renamed into place unless they match.
    pub fn put_blob_reader(&self, digest: &Sha256Digest, reader: &mut dyn Read) -> Result<()> {
        let path = self.blob_path(digest);
        if path.is_file() {
            return Ok(());
        }
        let tmp = path.with_extension("tmp");
        let mut out =
            crate::digest::HashingWriter::new(io::BufWriter::new(fs::File::create(&tmp)?));
        let result = io::copy(reader, &mut out);
        let (actual, _, writer) = out.finish();
        let written = result.and_then(|_| writer.into_inner().map_err(|e| e.into_error()));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }
        if actual != *digest {
            let _ = fs::remove_file(&tmp);
            return Err(ImageError::DigestMismatch {
                what: path.display().to_string(),
                expected: *digest,
                actual,
            });
        }
        set_mode(&tmp, 0o644)?;
        fs::rename(&tmp, &path)?;
        Ok(())
    }

    /// The layout's index as kiln sees it: the entries of `index.json`, then the entries of
    /// the side index an image entry names in [`media::ANNOTATION_REFERRERS`] (that
    /// annotation removed). An `index.json` entry wins over a side entry with the same tag (or,
    /// untagged, the same digest), so layouts written by other tools or older kiln versions,
    /// which list referrers and `.sig` tags in `index.json`, read the same way.
    pub fn read_index(&self) -> Result<ImageIndex> {
        let path = self.root.join("index.json");
        let bytes = fs::read(&path)?;
        let mut index: ImageIndex =
            serde_json::from_slice(&bytes).map_err(|e| ImageError::BadJson {
                what: path.display().to_string(),
                source: e,
            })?;
        let mut entries = index.manifests().clone();
        let mut side = Vec::new();
        for entry in &mut entries {
            let Some(mut annotations) = entry.annotations().clone() else {
                continue;
            };
            let Some(digest) = annotations.remove(media::ANNOTATION_REFERRERS) else {
                continue;
            };
            entry.set_annotations((!annotations.is_empty()).then_some(annotations));
            let digest: Sha256Digest = digest
                .parse()
                .map_err(|_| ImageError::UnsupportedDigest { digest })?;
            let side_index: ImageIndex = super::source::parse(
                &self.read_blob(&digest)?,
                &format!("side index {digest} of {}", path.display()),
            )?;
            side.extend(side_index.manifests().iter().cloned());
        }
        for desc in side {
            let shadowed = entries.iter().any(|e| match ref_name(&desc) {
                Some(name) => ref_name(e) == Some(name),
                None => e.digest() == desc.digest(),
            });
            if !shadowed {
                entries.push(desc);
            }
        }
        index.set_manifests(entries);
        Ok(index)
    }

    /// Writes `index.json` for the entries `manifests` (in kiln's view, as [`Self::read_index`]
    /// returns them), canonically. Images stay in `index.json`; referrers and attachment tags
    /// go to a side index blob named by an annotation on the first image entry, so that a
    /// layout with one image has exactly one `index.json` entry. With no image to hang it on,
    /// every entry stays in `index.json`.
    pub fn write_index(&self, manifests: Vec<Descriptor>) -> Result<()> {
        let (mut images, side): (Vec<Descriptor>, Vec<Descriptor>) =
            manifests.into_iter().partition(is_image_entry);
        let manifests = match images.first_mut() {
            Some(first) if !side.is_empty() => {
                let side_bytes = canonical_index(side)?;
                let digest = self.put_blob(&side_bytes)?;
                let mut annotations = first.annotations().clone().unwrap_or_default();
                annotations.insert(media::ANNOTATION_REFERRERS.to_string(), digest.to_string());
                first.set_annotations(Some(annotations));
                images
            }
            _ => images.into_iter().chain(side).collect(),
        };
        write_atomic(&self.root.join("index.json"), &canonical_index(manifests)?)
    }
}

/// Reads `reader` to its end if it holds at most [`MAX_JSON_BLOB`] bytes; `None` if it holds
/// more (only one byte more is read).
pub(crate) fn read_json_sized(reader: impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    reader.take(MAX_JSON_BLOB + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= MAX_JSON_BLOB).then_some(bytes))
}

/// The bytes of the JSON blob `digest` from `reader`, refusing more than [`MAX_JSON_BLOB`].
/// The caller verifies the digest.
pub(crate) fn read_json_blob(reader: impl Read, digest: &Sha256Digest) -> Result<Vec<u8>> {
    read_json_sized(reader)?.ok_or(ImageError::TooLarge {
        digest: *digest,
        limit: MAX_JSON_BLOB,
    })
}

/// An OCI image index listing `manifests`, as canonical JSON.
fn canonical_index(manifests: Vec<Descriptor>) -> Result<Vec<u8>> {
    to_canonical_vec(&image_index(manifests)).map_err(|e| ImageError::BadJson {
        what: "index.json".into(),
        source: e,
    })
}

/// The tag of a layout entry (`org.opencontainers.image.ref.name`).
pub fn ref_name(desc: &Descriptor) -> Option<&str> {
    desc.annotations()
        .as_ref()?
        .get(media::ANNOTATION_REF_NAME)
        .map(String::as_str)
}

/// Whether a layout entry is an image (or an image index) rather than a referrer (it has an
/// `artifactType`) or a cosign attachment tag (`sha256-<hex>.sig|.att|.sbom`).
pub fn is_image_entry(desc: &Descriptor) -> bool {
    desc.artifact_type().is_none() && !ref_name(desc).is_some_and(looks_like_attachment)
}

/// Whether `tag` has the form of a cosign attachment tag, whatever image it names.
pub fn looks_like_attachment(tag: &str) -> bool {
    tag.starts_with("sha256-")
        && (tag.ends_with(".sig") || tag.ends_with(".att") || tag.ends_with(".sbom"))
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Writes a file through a temporary sibling and a rename, with mode 0644 whatever the umask.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes)?;
    set_mode(&tmp, 0o644)?;
    fs::rename(&tmp, path)?;
    Ok(())
}

/// A reader that hashes what it passes on and fails at EOF unless the bytes match `expected`.
pub struct VerifyingReader {
    inner: HashingReader<Box<dyn Read + Send>>,
    expected: Sha256Digest,
    size: Option<u64>,
    what: String,
    done: bool,
}

impl VerifyingReader {
    pub fn new(
        inner: Box<dyn Read + Send>,
        expected: Sha256Digest,
        size: Option<u64>,
        what: String,
    ) -> Self {
        Self {
            inner: HashingReader::new(inner),
            expected,
            size,
            what,
            done: false,
        }
    }
}

impl Read for VerifyingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.done = true;
            let hashing =
                std::mem::replace(&mut self.inner, HashingReader::new(Box::new(io::empty())));
            let (actual, len) = hashing.finish();
            if actual != self.expected || self.size.is_some_and(|s| s != len) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    ImageError::DigestMismatch {
                        what: self.what.clone(),
                        expected: self.expected,
                        actual,
                    },
                ));
            }
        }
        Ok(n)
    }
}

/// The descriptor for a blob, with kiln's media type string.
pub fn descriptor(media_type: &str, digest: &Sha256Digest, size: u64) -> Descriptor {
    Descriptor::new(
        oci_spec::image::MediaType::from(media_type),
        size,
        oci_spec::image::Digest::try_from(digest.to_string()).expect("a sha256 digest is valid"),
    )
}

/// The empty-JSON descriptor that OCI 1.1 artifacts use for their config.
pub fn empty_descriptor() -> Descriptor {
    descriptor(media::OCI_EMPTY, &Sha256Digest::of(media::EMPTY_JSON), 2)
}

/// Our digest type from an `oci-spec` descriptor, refusing anything but sha256.
pub fn digest_of(desc: &Descriptor) -> Result<Sha256Digest> {
    let text = desc.digest().to_string();
    text.parse()
        .map_err(|_| ImageError::UnsupportedDigest { digest: text })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(bytes: &[u8], tag: Option<&str>, artifact: Option<&str>) -> Descriptor {
        let mut d = descriptor(media::OCI_MANIFEST, &Sha256Digest::of(bytes), 1);
        if let Some(t) = tag {
            d.set_annotations(Some(
                [(media::ANNOTATION_REF_NAME.to_string(), t.to_string())]
                    .into_iter()
                    .collect(),
            ));
        }
        d.set_artifact_type(artifact.map(Into::into));
        d
    }

    fn raw_index(layout: &Layout) -> ImageIndex {
        serde_json::from_slice(&fs::read(layout.root().join("index.json")).unwrap()).unwrap()
    }

    #[test]
    fn json_blobs_up_to_the_limit_are_read_and_larger_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let limit = usize::try_from(MAX_JSON_BLOB).unwrap();
        let fits = layout.put_blob(&vec![b' '; limit]).unwrap();
        assert_eq!(layout.read_blob(&fits).unwrap().len(), limit);
        let big = layout.put_blob(&vec![b' '; limit + 1]).unwrap();
        match layout.read_blob(&big) {
            Err(ImageError::TooLarge { digest, limit }) => {
                assert_eq!((digest, limit), (big, MAX_JSON_BLOB))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn referrers_and_attachment_tags_go_to_a_side_index_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let image = entry(b"image", Some("hello"), None);
        let referrer = entry(b"provenance", None, Some(media::IN_TOTO));
        let sig_tag = format!("sha256-{}.sig", Sha256Digest::of(b"image").hex());
        let sig = entry(b"sig", Some(&sig_tag), Some(media::OCI_CONFIG));
        let all = vec![image.clone(), referrer.clone(), sig.clone()];
        layout.write_index(all.clone()).unwrap();

        // index.json: the image alone, naming the side index.
        let raw = raw_index(&layout);
        assert_eq!(raw.manifests().len(), 1);
        let side = raw.manifests()[0].annotations().as_ref().unwrap()[media::ANNOTATION_REFERRERS]
            .parse::<Sha256Digest>()
            .unwrap();
        let side: ImageIndex = serde_json::from_slice(&layout.read_blob(&side).unwrap()).unwrap();
        assert_eq!(side.manifests(), &[referrer.clone(), sig.clone()]);
        // kiln's view is what was written.
        assert_eq!(layout.read_index().unwrap().manifests(), &all);

        // An older layout (everything in index.json) reads the same, and an index.json entry
        // wins over a side entry with the same tag.
        let other_sig = entry(b"other sig", Some(&sig_tag), Some(media::OCI_CONFIG));
        let mut older = raw.clone();
        let mut listed = raw.manifests().clone();
        listed.push(other_sig.clone());
        older.set_manifests(listed);
        write_atomic(
            &layout.root().join("index.json"),
            &to_canonical_vec(&older).unwrap(),
        )
        .unwrap();
        assert_eq!(
            layout.read_index().unwrap().manifests(),
            &[image.clone(), other_sig, referrer.clone()]
        );

        // Only referrers, no image: nothing to hang a side index on, all stay in index.json.
        layout.write_index(vec![referrer.clone()]).unwrap();
        assert_eq!(raw_index(&layout).manifests(), &[referrer]);
    }
}
