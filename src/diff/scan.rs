//! Reading one layer, once, as a stream: the compressed blob is verified against its digest,
//! decompressed on the fly, hashed again (its diff_id), and walked entry by entry. Each regular
//! file's bytes go through sha256 and are dropped, so what stays in memory is the layer's
//! metadata: paths, modes, owners, link targets and content digests, never contents.
//!
//! Alongside, the tar-level facts that the applied filesystem cannot show are recorded: the
//! header formats, owner names, entry order and duplicate paths.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

use serde::Serialize;

use super::compression::{CompressionFacts, HEADER_PREFIX};
use super::{DiffError, Result};
use crate::digest::{Hasher, HashingReader, Sha256Digest};
use crate::image::OpenedImage;
use crate::layer::decompress;
use crate::layer::kind::Kind;
use crate::layer::member::{self, Names, Role};
use crate::layer::read::{ArchiveEnd, ReadLimits, TarKind, TarReader};
use crate::layer::tar_header::parse_number;

/// Duplicate paths listed per layer (the count is always complete).
pub const MAX_LISTED_DUPLICATES: usize = 20;

/// What a filesystem object is, with what identifies its content: a file by its size and
/// digest; a hard link names another path (normalized), resolved when layers are applied.
pub type NodeKind = Kind<FileDigest>;

/// What identifies a regular file's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileDigest {
    pub size: u64,
    pub sha256: Sha256Digest,
}

/// One object's metadata and content identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: NodeKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

/// One change a layer makes, in archive order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Put(Node),
    /// `.wh.<name>`: removes the path from lower layers.
    Whiteout,
    /// `.wh..wh..opq`: hides the directory's lower-layer contents.
    Opaque,
}

/// The tar-level facts of one layer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TarFacts {
    pub entries: u64,
    /// Entries per header format (`ustar`, `gnu`, `pax`, `v7`).
    pub formats: BTreeMap<String, u64>,
    /// Owner and group names used (empty names are not listed).
    pub unames: BTreeSet<String>,
    pub gnames: BTreeSet<String>,
    /// Whether entries are sorted bytewise by normalized path.
    pub sorted: bool,
    /// The first entry that breaks the order, when not sorted.
    pub first_unsorted: Option<String>,
    pub duplicate_count: u64,
    pub duplicates: Vec<String>,
    /// The root directory's own entry as named in the archive (`./`), when the layer has one.
    pub root_entry: Option<String>,
    /// Entries whose mode field carries file-type bits (`0040755`, as Go's archive/tar writes
    /// it; GNU tar and kiln write `0000755`).
    pub mode_type_bits: u64,
    /// How the devmajor/devminor fields of entries that are not devices are written, with the
    /// entries written so: `octal` (`0000000\0`: POSIX ustar, Go, kiln), `nul` (GNU format,
    /// Python), `other`.
    pub device_fields: BTreeMap<String, u64>,
    /// How the header checksums are written (`6 digits, NUL, space` …), with entry counts.
    pub checksums: BTreeMap<String, u64>,
    /// PAX record keys (per-entry and global headers), with the entries each applied to.
    pub pax_records: BTreeMap<String, u64>,
    /// How the archive ends (one element per layer read; several when layers are aggregated).
    pub end_of_archive: BTreeSet<EndOfArchive>,
    /// sha256 of the normalized paths in archive order, one per line.
    #[serde(skip)]
    pub order_digest: Option<Sha256Digest>,
    /// sha256 of the set of normalized paths, sorted: equal sets with different order
    /// digests are an entry-order difference.
    #[serde(skip)]
    pub path_set_digest: Option<Sha256Digest>,
}

/// What follows the last entry of a layer's tar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndOfArchive {
    /// `marker` (NUL blocks), `no-marker` (the stream ends at a header boundary), or
    /// `unpadded` (it ends right after the last member's data: umoci's `insert`).
    pub ending: &'static str,
    /// Bytes after the last entry: the marker (two 512-byte NUL blocks = 1024) and any padding
    /// to a record size (GNU tar pads to 10240 bytes).
    pub trailing_bytes: u64,
}

/// How the devmajor/devminor fields (bytes 329..345) of a ustar or GNU header that is not a
/// device are written; `None` for a v7 header, which has no such fields.
fn device_fields_style(block: &[u8; 512]) -> Option<&'static str> {
    if &block[257..262] != b"ustar" {
        return None;
    }
    let fields = &block[329..345];
    Some(if fields.iter().all(|&b| b == 0) {
        "nul"
    } else if fields
        .iter()
        .all(|&b| b.is_ascii_digit() || b == 0 || b == b' ')
    {
        "octal"
    } else {
        "other"
    })
}

/// The spelling of a header checksum field (bytes 148..156): its leading spaces, octal digits
/// and what ends it, e.g. `6 digits, NUL, space` (POSIX, GNU tar, Go, kiln).
fn checksum_style(field: &[u8]) -> String {
    let spaces = field.iter().take_while(|&&b| b == b' ').count();
    let digits = field[spaces..]
        .iter()
        .take_while(|b| (b'0'..=b'7').contains(b))
        .count();
    let mut parts = Vec::new();
    if spaces > 0 {
        parts.push(format!("{spaces} spaces"));
    }
    parts.push(format!("{digits} digits"));
    for &b in &field[spaces + digits..] {
        parts.push(match b {
            0 => "NUL".to_string(),
            b' ' => "space".to_string(),
            other => format!("{other:#04x}"),
        });
    }
    parts.join(", ")
}

/// Everything kiln diff needs from one layer.
#[derive(Clone, Debug)]
pub struct LayerScan {
    pub digest: Sha256Digest,
    pub diff_id: Sha256Digest,
    pub compression: CompressionFacts,
    /// `(normalized path, change)` in archive order; duplicates kept (the last one wins).
    pub changes: Vec<(String, Change)>,
    pub tar: TarFacts,
}

/// Keeps the first [`HEADER_PREFIX`] bytes that pass through.
struct PrefixTap<R> {
    inner: R,
    prefix: Vec<u8>,
}

impl<R: Read> Read for PrefixTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let room = HEADER_PREFIX.saturating_sub(self.prefix.len());
        self.prefix.extend_from_slice(&buf[..n.min(room)]);
        Ok(n)
    }
}

/// Reads only the first bytes of a blob, for its compression facts (layers that need no walk).
pub fn read_compression(img: &OpenedImage, digest: &Sha256Digest) -> Result<CompressionFacts> {
    let mut reader = img
        .open_blob(digest, None)
        .map_err(|source| DiffError::Image {
            what: format!("layer {digest}"),
            source,
        })?;
    let mut prefix = vec![0u8; HEADER_PREFIX];
    let mut len = 0;
    while len < prefix.len() {
        let n = reader
            .read(&mut prefix[len..])
            .map_err(|source| DiffError::Blob {
                digest: *digest,
                source,
            })?;
        if n == 0 {
            break;
        }
        len += n;
    }
    prefix.truncate(len);
    Ok(CompressionFacts::parse(&prefix))
}

/// Streams the layer blob `digest` (of `size` bytes) once and returns its scan.
pub fn scan_layer(img: &OpenedImage, digest: &Sha256Digest, size: u64) -> Result<LayerScan> {
    let reader = img
        .open_blob(digest, Some(size))
        .map_err(|source| DiffError::Image {
            what: format!("layer {digest}"),
            source,
        })?;
    scan_reader(reader, digest)
}

/// Regular files whose contents a scan keeps (keyed by content digest), for callers that read
/// a few small files of an image (`kiln scan`, `kiln sbom`): paths `wanted` accepts, at most
/// `max_size` bytes each (larger ones are hashed and listed in `too_large`).
pub struct Capture<'a> {
    pub wanted: &'a dyn Fn(&str) -> bool,
    pub max_size: u64,
    pub contents: BTreeMap<Sha256Digest, Vec<u8>>,
    pub too_large: BTreeSet<String>,
}

/// Scans a layer blob from `reader`, which must verify the blob's digest at its end (as
/// [`OpenedImage::open_blob`]'s readers do).
pub fn scan_reader(reader: impl Read + Send, digest: &Sha256Digest) -> Result<LayerScan> {
    scan_reader_capturing(reader, digest, None)
}

/// [`scan_layer`], keeping the contents `capture` asks for.
pub fn scan_layer_capturing(
    img: &OpenedImage,
    digest: &Sha256Digest,
    size: u64,
    capture: &mut Capture<'_>,
) -> Result<LayerScan> {
    let reader = img
        .open_blob(digest, Some(size))
        .map_err(|source| DiffError::Image {
            what: format!("layer {digest}"),
            source,
        })?;
    scan_reader_capturing(reader, digest, Some(capture))
}

/// [`scan_reader`], keeping the contents `capture` asks for.
pub fn scan_reader_capturing(
    reader: impl Read + Send,
    digest: &Sha256Digest,
    mut capture: Option<&mut Capture<'_>>,
) -> Result<LayerScan> {
    let blob_err = |source: io::Error| DiffError::Blob {
        digest: *digest,
        source,
    };
    let mut tap = PrefixTap {
        inner: reader,
        prefix: Vec::new(),
    };
    let name = format!("layer {digest}");
    let decompressed =
        decompress::open_archive(&mut tap, &name).map_err(|source| DiffError::Decompress {
            digest: *digest,
            source,
        })?;
    let mut hashed = HashingReader::new(decompressed);
    let mut tar = TarReader::new(&mut hashed, ReadLimits::default());
    let mut changes = Vec::new();
    let mut facts = TarFacts {
        sorted: true,
        ..TarFacts::default()
    };
    let mut order = Hasher::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut previous: Option<String> = None;
    // Checksum fields with every digit written as `0` (digits ≥ `8` as `8`), so that each
    // spelling is described once, not per entry.
    let mut checksum_shapes: BTreeMap<[u8; 8], u64> = BTreeMap::new();
    while let Some(entry) = tar.next_entry().map_err(|source| DiffError::Tar {
        digest: *digest,
        source,
    })? {
        facts.entries += 1;
        *facts
            .formats
            .entry(entry.format.name().to_string())
            .or_default() += 1;
        if !entry.uname.is_empty() {
            facts.unames.insert(entry.uname.clone());
        }
        if !entry.gname.is_empty() {
            facts.gnames.insert(entry.gname.clone());
        }
        let header = tar.header_block();
        if parse_number(&header[100..108]).is_some_and(|m| m > 0o7777) {
            facts.mode_type_bits += 1;
        }
        if !matches!(entry.kind, TarKind::CharDevice | TarKind::BlockDevice) {
            if let Some(style) = device_fields_style(header) {
                *facts.device_fields.entry(style.to_string()).or_default() += 1;
            }
        }
        let checksum: [u8; 8] = header[148..156].try_into().expect("8 bytes");
        let shape = checksum.map(|b| match b {
            b'0'..=b'7' => b'0',
            b'8' | b'9' => b'8',
            other => other,
        });
        *checksum_shapes.entry(shape).or_default() += 1;
        for key in tar.pax_keys() {
            match facts.pax_records.get_mut(key) {
                Some(n) => *n += 1,
                None => {
                    facts.pax_records.insert(key.clone(), 1);
                }
            }
        }
        let member =
            member::classify(&entry, Names::Layer).map_err(|source| DiffError::Member {
                digest: *digest,
                source,
            })?;
        let path = member.name;
        order.update(path.as_bytes());
        order.update(b"\n");
        if let Some(prev) = &previous {
            if facts.sorted && path.as_bytes() < prev.as_bytes() {
                facts.sorted = false;
                facts.first_unsorted = Some(format!("/{path}"));
            }
        }
        previous = Some(path.clone());
        if !seen.insert(path.clone()) {
            facts.duplicate_count += 1;
            if facts.duplicates.len() < MAX_LISTED_DUPLICATES {
                facts.duplicates.push(format!("/{path}"));
            }
        }
        let kind = match member.role {
            Role::Root => {
                // The root directory's own entry (`./`): not a path of the image.
                facts.root_entry.get_or_insert_with(|| entry.path.clone());
                continue;
            }
            Role::Opaque { dir } => {
                changes.push((dir, Change::Opaque));
                continue;
            }
            Role::Whiteout { target } => {
                changes.push((target, Change::Whiteout));
                continue;
            }
            Role::Entry(kind) => kind,
        };
        let kind: NodeKind = kind.try_map_file(|()| {
            let tar_err = |source| DiffError::Tar {
                digest: *digest,
                source,
            };
            Ok(match capture.as_deref_mut().filter(|c| (c.wanted)(&path)) {
                Some(c) if entry.size <= c.max_size => {
                    let mut data = Vec::new();
                    let n = tar.read_data(&mut data).map_err(tar_err)?;
                    let sha256 = Sha256Digest::of(&data);
                    c.contents.insert(sha256, data);
                    FileDigest { size: n, sha256 }
                }
                wanted => {
                    if let Some(c) = wanted {
                        c.too_large.insert(path.clone());
                    }
                    let mut h = Hasher::new();
                    let n = tar.read_data(&mut h).map_err(tar_err)?;
                    FileDigest {
                        size: n,
                        sha256: h.finish(),
                    }
                }
            })
        })?;
        changes.push((
            path,
            Change::Put(Node {
                kind,
                mode: entry.mode,
                uid: entry.uid,
                gid: entry.gid,
                mtime: entry.mtime,
                xattrs: entry.xattrs,
            }),
        ));
    }
    let ending = match tar.end() {
        Some(ArchiveEnd::Marker) => "marker",
        Some(ArchiveEnd::NoMarker) => "no-marker",
        _ => "unpadded",
    };
    let last_entry_end = tar.offset() - if ending == "marker" { 512 } else { 0 };
    drop(tar);
    // Drain what follows the end-of-archive marker so the decompressor's and the verifying
    // reader's end-of-stream checks run.
    io::copy(&mut hashed, &mut io::sink()).map_err(blob_err)?;
    let (diff_id, uncompressed_size) = hashed.finish();
    facts.end_of_archive.insert(EndOfArchive {
        ending,
        trailing_bytes: uncompressed_size - last_entry_end,
    });
    for (shape, n) in checksum_shapes {
        *facts.checksums.entry(checksum_style(&shape)).or_default() += n;
    }
    facts.order_digest = Some(order.finish());
    let mut set = Hasher::new();
    for p in &seen {
        set.update(p.as_bytes());
        set.update(b"\n");
    }
    facts.path_set_digest = Some(set.finish());
    Ok(LayerScan {
        digest: *digest,
        diff_id,
        compression: CompressionFacts::parse(&tap.prefix),
        changes,
        tar: facts,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use super::*;
    use crate::image::Layout;
    use crate::layer::tree::{Content, Entry, EntryKind, FileTree, Metadata};

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn layout_with(tar: &[u8]) -> (tempfile::TempDir, Layout, Sha256Digest, u64) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let blob = gzip(tar);
        let digest = layout.put_blob(&blob).unwrap();
        (dir, layout, digest, blob.len() as u64)
    }

    /// Scans the blob `digest` of `layout` as a layer of `size` bytes.
    fn scan_blob(layout: &Layout, digest: &Sha256Digest, size: u64) -> Result<LayerScan> {
        scan_reader(layout.open_blob(digest, Some(size)).unwrap(), digest)
    }

    #[test]
    fn a_layer_is_scanned_into_changes_and_facts() {
        let mut tree = FileTree::default();
        let file = |data: &[u8]| Entry {
            kind: EntryKind::File(Content::Inline(Arc::from(data))),
            meta: Metadata::new(0o644, 0, 0, 5),
        };
        tree.insert("etc/motd", file(b"hello")).unwrap();
        tree.insert(
            "etc/z-link",
            Entry {
                kind: EntryKind::Hardlink("etc/motd".into()),
                meta: Metadata::new(0o644, 0, 0, 5),
            },
        )
        .unwrap();
        tree.remove("var/cache").unwrap();
        tree.insert(
            "opt",
            Entry {
                kind: EntryKind::Dir,
                meta: Metadata::new(0o755, 0, 0, 5),
            },
        )
        .unwrap();
        tree.set_opaque("opt").unwrap();
        let mut tar = Vec::new();
        crate::layer::write::write_tar(&tree, 10, &mut tar).unwrap();
        let (_dir, layout, digest, size) = layout_with(&tar);

        let scan = scan_blob(&layout, &digest, size).unwrap();
        assert_eq!(scan.diff_id, Sha256Digest::of(&tar));
        assert!(matches!(scan.compression, CompressionFacts::Gzip(_)));
        let changes: Vec<(&str, String)> = scan
            .changes
            .iter()
            .map(|(p, c)| {
                let what = match c {
                    Change::Put(n) => match &n.kind {
                        NodeKind::File(FileDigest { size, sha256 }) => {
                            assert_eq!(*sha256, Sha256Digest::of(b"hello"));
                            format!("file {size}")
                        }
                        NodeKind::Hardlink(target) => format!("hardlink {target}"),
                        other => other.type_name().to_string(),
                    },
                    Change::Whiteout => "whiteout".into(),
                    Change::Opaque => "opaque".into(),
                };
                (p.as_str(), what)
            })
            .collect();
        assert_eq!(
            changes,
            [
                ("etc/motd", "file 5".to_string()),
                ("etc/z-link", "hardlink etc/motd".into()),
                ("opt", "dir".into()),
                ("opt", "opaque".into()),
                ("var/cache", "whiteout".into()),
            ]
        );
        assert_eq!(scan.tar.formats.keys().collect::<Vec<_>>(), ["ustar"]);
        assert_eq!(scan.tar.duplicate_count, 0);
    }

    #[test]
    fn a_corrupt_blob_and_bad_whiteouts_are_errors() {
        let mut tree = FileTree::default();
        tree.insert(
            "a",
            Entry {
                kind: EntryKind::File(Content::Inline(Arc::from(&b"x"[..]))),
                meta: Metadata::new(0o644, 0, 0, 0),
            },
        )
        .unwrap();
        let mut tar = Vec::new();
        crate::layer::write::write_tar(&tree, 0, &mut tar).unwrap();
        let (_dir, layout, digest, size) = layout_with(&tar);
        // One byte flipped in the blob: the digest check at EOF fails the scan.
        let path = layout.blob_path(&digest);
        let mut bytes = fs_err::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs_err::write(&path, &bytes).unwrap();
        assert!(scan_blob(&layout, &digest, size).is_err());

        // `.wh..` (a whiteout of `.`) is refused, not applied.
        let mut raw = vec![0u8; 512];
        raw[..5].copy_from_slice(b".wh..");
        raw[100..107].copy_from_slice(b"0000644");
        for f in [108..115, 116..123, 124..135, 136..147] {
            raw[f].fill(b'0');
        }
        raw[156] = b'0';
        raw[257..263].copy_from_slice(b"ustar\0");
        raw[263..265].copy_from_slice(b"00");
        raw[148..156].fill(b' ');
        let sum: u32 = raw.iter().map(|&b| u32::from(b)).sum();
        raw[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        raw.resize(512 * 3, 0);
        let (_dir, layout, digest, size) = layout_with(&raw);
        let err = scan_blob(&layout, &digest, size).unwrap_err();
        assert!(
            matches!(
                err,
                DiffError::Member {
                    source: crate::layer::member::MemberError::InvalidWhiteout { .. },
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
