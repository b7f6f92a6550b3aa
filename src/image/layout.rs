//! OCI image layouts on disk: `oci-layout`, `index.json`, `blobs/sha256/<hex>`.
//!
//! Reading verifies every blob against its digest before its bytes are trusted. Writing puts
//! each blob in place once (content addressing makes a second write a no-op), and writes
//! `index.json` last, canonically, so a layout is complete once it has an index.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use fs_err as fs;
use oci_spec::image::{Descriptor, ImageIndex};

use super::json::to_canonical_vec;
use super::{media, ImageError, Result, MAX_JSON_BLOB};
use crate::digest::{HashingReader, Sha256Digest};

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
        let path = self.blob_path(digest);
        let file = fs::File::open(&path).map_err(|e| ImageError::MissingBlob {
            digest: *digest,
            location: self.root.display().to_string(),
            source: e,
        })?;
        let mut bytes = Vec::new();
        file.take(MAX_JSON_BLOB + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_JSON_BLOB {
            return Err(ImageError::TooLarge {
                digest: *digest,
                limit: MAX_JSON_BLOB,
            });
        }
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
        let path = self.blob_path(digest);
        let file = fs::File::open(&path).map_err(|e| ImageError::MissingBlob {
            digest: *digest,
            location: self.root.display().to_string(),
            source: e,
        })?;
        Ok(VerifyingReader::new(
            Box::new(file),
            *digest,
            size,
            path.display().to_string(),
        ))
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

    pub fn read_index(&self) -> Result<ImageIndex> {
        let path = self.root.join("index.json");
        let bytes = fs::read(&path)?;
        serde_json::from_slice(&bytes).map_err(|e| ImageError::BadJson {
            what: path.display().to_string(),
            source: e,
        })
    }

    /// Writes `index.json` listing `manifests`, canonically.
    pub fn write_index(&self, manifests: Vec<Descriptor>) -> Result<()> {
        let mut index = ImageIndex::default();
        index.set_media_type(Some(oci_spec::image::MediaType::ImageIndex));
        index.set_manifests(manifests);
        let bytes = to_canonical_vec(&index).map_err(|e| ImageError::BadJson {
            what: "index.json".into(),
            source: e,
        })?;
        write_atomic(&self.root.join("index.json"), &bytes)
    }
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
