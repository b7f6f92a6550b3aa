//! The deterministic tar writer: one `FileTree` in, one exact byte stream out.
//!
//! A layer's digest is the sha256 of these bytes (after compression), so every choice that a
//! general-purpose tar writer leaves to the environment is fixed here, once:
//!
//! - **Order**: bytewise on the normalized path ([`FileTree::entries`]: the tree's keys and the
//!   contents of copied host directories merged), which puts every parent before its
//!   children. Directories are written with a trailing `/`. A whiteout
//!   sits at the key of the path it deletes; an opaque marker `dir/.wh..wh..opq` comes right
//!   after its directory's entry (an opaque root, key `""`, is the very first entry).
//! - **Format**: POSIX ustar headers. A PAX extended header (`x`, named `././@PaxHeader`, mode
//!   0644, uid/gid/mtime 0) precedes an entry only when a value does not fit ustar: a path that
//!   cannot be split into `prefix` (155) + `name` (100) at a `/`, a link target longer than 100
//!   bytes, a size of 8 GiB or more, a uid/gid above `0o7777777`, an mtime above
//!   `0o77777777777`, or a `security.capability` xattr. PAX records are written in bytewise key
//!   order; a field that overflows is written as zero in the ustar header.
//! - **Metadata**: mtime is `min(entry mtime, epoch)`, negative values become 0; no atime or
//!   ctime; numeric uid/gid with empty uname/gname; mode exactly as the tree says (`0o7777`
//!   bits only); devmajor/devminor for device nodes, zero otherwise. Only the
//!   `security.capability` xattr is carried (as `SCHILY.xattr.security.capability`); any other
//!   xattr in the tree is dropped and counted in [`WriteStats::xattrs_dropped`].
//! - **Whiteouts**: empty regular files `dir/.wh.name` with mode 0644, uid/gid 0 and the
//!   entry's clamped mtime; the entry's own mode and owner are ignored, so that two trees that
//!   delete the same path always write the same bytes. Opaque markers are empty regular files
//!   with mode 0644, uid/gid 0 and mtime = epoch.
//! - **Numbers**: octal, zero-padded, NUL-terminated; the checksum is six octal digits, NUL,
//!   space (as GNU tar and Go's archive/tar write it).
//! - **End**: two zero blocks and nothing else (no padding to a 10 KiB record).
//!
//! - **Hardlinks**: every hard-link group (links of the tree, host files of one `copy` that
//!   share an inode) is written once with its content, at the first of its paths in sort
//!   order, and as hard links to that path at the others, whichever member held the content
//!   in the archive it came from. The content carries the metadata of the member that held it.
//!
//! All of the above is kiln's own style, the default; [`write_tar_styled`] writes Go's instead
//! (`[[layer]] tar = "go"`, see [`super::tar_style`]), to rebuild podman's and buildah's
//! layers byte for byte.
//!
//! File contents are streamed: a host file is opened and copied when its entry is written
//! (small ones are read just ahead by the directory's walking thread), a spilled archive
//! member is read from its offset in the spill file; nothing is buffered whole. A file whose
//! size differs from the tree's record is an error naming the path, never a silently
//! different layer.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use std::borrow::Cow;

use super::host::HostError;
use super::member::{OPAQUE_MARKER, WHITEOUT_PREFIX};
use super::tar_style::{self, TarStyle};
use super::tree::{Content, Entry, EntryKind, FileTree, HostLink, Metadata};
use super::tree_walk::WalkEntry;

const BLOCK: usize = 512;
const WHITEOUT_MODE: u32 = 0o644;
const PAX_HEADER_NAME: &str = "././@PaxHeader";
/// The largest value of a 7-digit octal field (mode, uid, gid, devmajor, devminor).
const MAX_OCTAL_7: u64 = 0o7777777;
/// The largest value of an 11-digit octal field (size, mtime).
const MAX_OCTAL_11: u64 = 0o77777777777;
/// The one xattr that survives into layers (file capabilities).
pub const CAPABILITY_XATTR: &str = "security.capability";

/// What the writer did; `bytes` is the length of the tar stream (the layer's uncompressed size).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Tar entries written, counting whiteouts and opaque markers but not PAX headers.
    pub entries: u64,
    pub pax_headers: u64,
    pub bytes: u64,
    pub xattrs_dropped: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("failed to write the tar stream at entry `{path}`")]
    Output { path: String, source: io::Error },
    #[error("failed to read `{}` for layer entry `{entry}`", file.display())]
    ReadContent {
        entry: String,
        file: PathBuf,
        source: io::Error,
    },
    #[error(
        "file `{}` for layer entry `{entry}` changed while the layer was written: expected {expected} bytes, found {found}",
        file.display()
    )]
    ContentSizeChanged {
        entry: String,
        file: PathBuf,
        expected: u64,
        found: String,
    },
    #[error("invalid layer path `{path}`: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("layer entry `{path}` has mode {mode:#o}, which has bits outside 0o7777")]
    InvalidMode { path: String, mode: u32 },
    #[error("hard link `{path}` points at `{target}`, which is not an earlier regular file of the layer")]
    InvalidHardlink { path: String, target: String },
    #[error("failed to list a host directory of the layer")]
    Host { source: Box<HostError> },
    #[error("opaque directory `{path}` has no directory entry in the layer")]
    OpaqueWithoutDir { path: String },
    #[error("layer entry `{path}` has uid/gid {uid}/{gid}, above the 32-bit ids Linux supports")]
    IdOutOfRange { path: String, uid: u64, gid: u64 },
    #[error("device `{path}` has number {major}:{minor}, which does not fit a ustar header")]
    DeviceNumberTooLarge {
        path: String,
        major: u32,
        minor: u32,
    },
}

/// Writes `tree` as a tar stream to `out`; `epoch` is the recipe's SOURCE_DATE_EPOCH.
pub fn write_tar(
    tree: &FileTree,
    epoch: i64,
    out: &mut impl Write,
) -> Result<WriteStats, WriteError> {
    write_tar_styled(tree, epoch, TarStyle::Kiln, out)
}

/// [`write_tar`] in another header style (see [`super::tar_style`]).
pub fn write_tar_styled(
    tree: &FileTree,
    epoch: i64,
    style: TarStyle,
    out: &mut impl Write,
) -> Result<WriteStats, WriteError> {
    for path in &tree.opaque {
        let is_dir = matches!(
            tree.entries.get(path),
            Some(Entry {
                kind: EntryKind::Dir,
                ..
            })
        );
        if !path.is_empty() && !is_dir {
            return Err(WriteError::OpaqueWithoutDir { path: path.clone() });
        }
    }
    let mut w = TarWriter {
        out,
        stats: WriteStats::default(),
        epoch: epoch.max(0) as u64,
        buf: Vec::new(),
        slices: None,
        style,
    };
    if tree.opaque.contains("") {
        w.opaque_marker("", None)?;
    }
    // Host files sharing an inode: the path written with the content, per inode; and the
    // paths written as links to it, so that a tree hardlink naming one of them follows.
    let mut first_of: BTreeMap<HostLink, String> = BTreeMap::new();
    let mut linked: BTreeMap<String, String> = BTreeMap::new();
    let entries: Box<dyn Iterator<Item = Result<WalkEntry<'_>, HostError>>> = match style {
        TarStyle::Kiln | TarStyle::GoBytewise => Box::new(tree.entries_read_ahead()),
        TarStyle::Go => Box::new(
            tar_style::walk_order(tree)?
                .into_iter()
                .map(|(p, e)| Ok((Cow::Owned(p), Cow::Owned(e)))),
        ),
    };
    for item in entries {
        let (path, entry) = item.map_err(|source| WriteError::Host {
            source: Box::new(source),
        })?;
        let path: &str = &path;
        validate_path(path)?;
        // Tree hard-link groups: the content goes to the group's first path in sort order,
        // whichever member held it in the tree (see `FileTree::insert`). The Go style's walk
        // order has already regrouped its links at the first path of its own walk.
        let (kind, meta) = match &entry.kind {
            EntryKind::Hardlink(target) if style == TarStyle::Go => {
                let first = linked.get(target).unwrap_or(target);
                (Cow::Owned(EntryKind::Hardlink(first.clone())), &entry.meta)
            }
            EntryKind::Hardlink(holder) => {
                let content = match tree.entries.get(holder) {
                    Some(e) if matches!(e.kind, EntryKind::File(_)) => e,
                    _ => return Err(invalid_link(path, holder)),
                };
                let first = tree.first_of_group(holder).min(path);
                if first == path {
                    // The content moves here with the metadata of the entry that held it (its
                    // inode's); the holder is written as a link to this path.
                    (Cow::Borrowed(&content.kind), &content.meta)
                } else {
                    let first = linked.get(first).map_or(first, String::as_str);
                    (Cow::Owned(EntryKind::Hardlink(first.into())), &entry.meta)
                }
            }
            EntryKind::File(_) if style != TarStyle::Go && tree.first_of_group(path) != path => {
                // The content went to the group's first path, a link in the tree: this entry
                // is written in its place, with that link's metadata.
                let first = tree.first_of_group(path);
                let meta = &tree.entries[first].meta;
                let first = linked.get(first).map_or(first, String::as_str);
                (Cow::Owned(EntryKind::Hardlink(first.into())), meta)
            }
            kind => (Cow::Borrowed(kind), &entry.meta),
        };
        // Host files of one `copy` that share an inode.
        let kind = match kind.as_ref() {
            EntryKind::File(Content::File {
                link: Some(link), ..
            }) => match first_of.get(link) {
                Some(first) => {
                    linked.insert(path.to_string(), first.clone());
                    Cow::Owned(EntryKind::Hardlink(first.clone()))
                }
                None => {
                    first_of.insert(**link, path.to_string());
                    kind
                }
            },
            _ => kind,
        };
        w.entry(path, &kind, meta)?;
        if matches!(entry.kind, EntryKind::Dir) && tree.opaque.contains(path) {
            w.opaque_marker(path, Some(&entry.meta))?;
        }
    }
    w.write(&[0u8; 2 * BLOCK], "")?;
    w.out.flush().map_err(|source| WriteError::Output {
        path: String::new(),
        source,
    })?;
    Ok(w.stats)
}

fn invalid_link(path: &str, target: &str) -> WriteError {
    WriteError::InvalidHardlink {
        path: path.to_string(),
        target: target.to_string(),
    }
}

fn validate_path(path: &str) -> Result<(), WriteError> {
    let reason = if path.is_empty() {
        "empty path"
    } else if path.contains('\0') {
        "contains a NUL byte"
    } else if path.starts_with('/') || path.ends_with('/') {
        "leading or trailing `/`"
    } else if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        "empty, `.` or `..` component"
    } else if path.split('/').any(|c| c.starts_with(WHITEOUT_PREFIX)) {
        // Every reader takes it for an OCI whiteout or refuses the layer (see `member`).
        "a `.wh.` name, which layers reserve for whiteouts"
    } else {
        return Ok(());
    };
    Err(WriteError::InvalidPath {
        path: path.to_string(),
        reason,
    })
}

/// One ustar header's values, before encoding.
struct Header<'a> {
    name: String,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    typeflag: u8,
    linkname: &'a str,
    dev: (u32, u32),
    capability: Option<&'a [u8]>,
}

struct TarWriter<'o, W: Write> {
    out: &'o mut W,
    stats: WriteStats,
    epoch: u64,
    /// The read buffer for file contents, reused across entries.
    buf: Vec<u8>,
    /// The spill file of archive members last read from (see [`Content::Slice`]).
    slices: Option<(std::sync::Arc<PathBuf>, std::fs::File)>,
    style: TarStyle,
}

impl<W: Write> TarWriter<'_, W> {
    fn write(&mut self, bytes: &[u8], path: &str) -> Result<(), WriteError> {
        self.out
            .write_all(bytes)
            .map_err(|source| WriteError::Output {
                path: path.to_string(),
                source,
            })?;
        self.stats.bytes += bytes.len() as u64;
        Ok(())
    }

    fn clamp(&self, mtime: i64) -> u64 {
        (mtime.max(0) as u64).min(self.epoch)
    }

    /// The opaque marker of `dir`; `meta` is the directory's own (`None` for the root). The Go
    /// style gives the marker the directory's permission bits and owner, as containers/storage
    /// does.
    fn opaque_marker(&mut self, dir: &str, meta: Option<&Metadata>) -> Result<(), WriteError> {
        let name = if dir.is_empty() {
            OPAQUE_MARKER.to_string()
        } else {
            format!("{dir}/{OPAQUE_MARKER}")
        };
        let (mode, uid, gid) = match (self.style, meta) {
            (TarStyle::Go | TarStyle::GoBytewise, Some(m)) => (m.mode & 0o777, m.uid, m.gid),
            _ => (WHITEOUT_MODE, 0, 0),
        };
        let header = Header {
            name,
            mode,
            uid,
            gid,
            size: 0,
            mtime: self.epoch,
            typeflag: b'0',
            linkname: "",
            dev: (0, 0),
            capability: None,
        };
        self.header(&header)
    }

    fn entry(&mut self, path: &str, kind: &EntryKind, meta: &Metadata) -> Result<(), WriteError> {
        if meta.mode & !0o7777 != 0 {
            return Err(WriteError::InvalidMode {
                path: path.to_string(),
                mode: meta.mode,
            });
        }
        if meta.uid > u64::from(u32::MAX) || meta.gid > u64::from(u32::MAX) {
            return Err(WriteError::IdOutOfRange {
                path: path.to_string(),
                uid: meta.uid,
                gid: meta.gid,
            });
        }
        let mut capability = None;
        for (key, value) in &meta.xattrs {
            if key == CAPABILITY_XATTR {
                capability = Some(value.as_slice());
            } else {
                self.stats.xattrs_dropped += 1;
            }
        }
        let mut h = Header {
            name: path.to_string(),
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            size: 0,
            mtime: self.clamp(meta.mtime),
            typeflag: b'0',
            linkname: "",
            dev: (0, 0),
            capability,
        };
        if self.style.go_headers() {
            h.mode |= tar_style::type_bits(kind);
        }
        match kind {
            EntryKind::Dir => {
                h.typeflag = b'5';
                h.name.push('/');
            }
            EntryKind::File(content) => h.size = content.size(),
            EntryKind::Symlink(target) => {
                h.typeflag = b'2';
                h.linkname = target;
            }
            EntryKind::Hardlink(target) => {
                h.typeflag = b'1';
                h.linkname = target;
            }
            EntryKind::CharDevice { major, minor } | EntryKind::BlockDevice { major, minor } => {
                if u64::from(*major) > MAX_OCTAL_7 || u64::from(*minor) > MAX_OCTAL_7 {
                    let (major, minor) = (*major, *minor);
                    return Err(WriteError::DeviceNumberTooLarge {
                        path: path.to_string(),
                        major,
                        minor,
                    });
                }
                h.typeflag = if matches!(kind, EntryKind::CharDevice { .. }) {
                    b'3'
                } else {
                    b'4'
                };
                h.dev = (*major, *minor);
            }
            EntryKind::Fifo => h.typeflag = b'6',
            EntryKind::Whiteout(()) => {
                h.name = match path.rsplit_once('/') {
                    Some((dir, base)) => format!("{dir}/{WHITEOUT_PREFIX}{base}"),
                    None => format!("{WHITEOUT_PREFIX}{path}"),
                };
                // containers/storage writes whiteouts with mode 0.
                let mode = match self.style {
                    TarStyle::Kiln => WHITEOUT_MODE,
                    TarStyle::Go | TarStyle::GoBytewise => 0,
                };
                (h.mode, h.uid, h.gid, h.capability) = (mode, 0, 0, None);
            }
        }
        self.header(&h)?;
        if let EntryKind::File(content) = kind {
            self.content(path, content)?;
        }
        Ok(())
    }

    /// Writes the PAX header (when one is needed) and the ustar header of one entry.
    fn header(&mut self, h: &Header<'_>) -> Result<(), WriteError> {
        if self.style.go_headers() {
            return self.header_go(h);
        }
        let mut pax = overflow_records(h);
        let split = split_ustar_path(&h.name);
        if split.is_none() {
            pax.insert("path".into(), h.name.as_bytes().to_vec());
        }
        if h.linkname.len() > 100 {
            pax.insert("linkpath".into(), h.linkname.as_bytes().to_vec());
        }
        if !pax.is_empty() {
            let pax_header = PaxHeader {
                name: PAX_HEADER_NAME.as_bytes(),
                mode: 0o644,
                dev: Some((0, 0)),
            };
            self.pax_header(&pax_header, &pax, &h.name)?;
        }
        let (prefix, name) = split.unwrap_or((b"", truncate(h.name.as_bytes(), 100)));
        self.ustar_header(h, (prefix, name), truncate(h.linkname.as_bytes(), 100))
    }

    /// [`Self::header`] as Go's `archive/tar` decides it (see [`super::tar_style`]).
    fn header_go(&mut self, h: &Header<'_>) -> Result<(), WriteError> {
        let mut pax = overflow_records(h);
        let split = tar_style::split_ustar_path(&h.name);
        let mut ustar = pax.is_empty() && split.is_some();
        if !h.name.is_ascii() || h.name.len() > 100 {
            pax.insert("path".into(), h.name.as_bytes().to_vec());
        }
        if !h.linkname.is_ascii() || h.linkname.len() > 100 {
            pax.insert("linkpath".into(), h.linkname.as_bytes().to_vec());
            ustar = false;
        }
        if let (true, Some(split)) = (ustar, split) {
            return self.ustar_header(h, split, h.linkname.as_bytes());
        }
        let pax_name = tar_style::pax_header_name(&h.name);
        let pax_header = PaxHeader {
            name: &pax_name,
            mode: 0,
            dev: None,
        };
        self.pax_header(&pax_header, &pax, &h.name)?;
        let (name, linkname) = (
            tar_style::to_ascii(&h.name),
            tar_style::to_ascii(h.linkname),
        );
        self.ustar_header(h, (b"", truncate(&name, 100)), truncate(&linkname, 100))
    }

    /// An extended header (`x`) holding `records`, for the entry at `path`.
    fn pax_header(
        &mut self,
        header: &PaxHeader<'_>,
        records: &BTreeMap<String, Vec<u8>>,
        path: &str,
    ) -> Result<(), WriteError> {
        let records = pax_records(records);
        let mut block = [0u8; BLOCK];
        encode_header(
            &mut block,
            (b"", header.name),
            header.mode,
            0,
            0,
            records.len() as u64,
            0,
            b'x',
            b"",
            header.dev,
        );
        self.write(&block, path)?;
        self.write(&records, path)?;
        self.pad(records.len() as u64, path)?;
        self.stats.pax_headers += 1;
        Ok(())
    }

    /// The ustar header of one entry; a number that does not fit is written as zero (a PAX
    /// record holds it).
    fn ustar_header(
        &mut self,
        h: &Header<'_>,
        (prefix, name): (&[u8], &[u8]),
        linkname: &[u8],
    ) -> Result<(), WriteError> {
        let fit = |v: u64, max: u64| if v > max { 0 } else { v };
        let mut block = [0u8; BLOCK];
        encode_header(
            &mut block,
            (prefix, name),
            h.mode,
            fit(h.uid, MAX_OCTAL_7),
            fit(h.gid, MAX_OCTAL_7),
            fit(h.size, MAX_OCTAL_11),
            fit(h.mtime, MAX_OCTAL_11),
            h.typeflag,
            linkname,
            Some(h.dev),
        );
        self.write(&block, &h.name)?;
        self.stats.entries += 1;
        Ok(())
    }

    fn pad(&mut self, len: u64, path: &str) -> Result<(), WriteError> {
        let rem = (len % BLOCK as u64) as usize;
        if rem != 0 {
            self.write(&[0u8; BLOCK][..BLOCK - rem], path)?;
        }
        Ok(())
    }

    fn content(&mut self, entry: &str, content: &Content) -> Result<(), WriteError> {
        let read_err = |file: &std::path::Path| {
            let (entry, file) = (entry.to_string(), file.to_path_buf());
            move |source| WriteError::ReadContent {
                entry,
                file,
                source,
            }
        };
        let changed = |file: &std::path::Path, found: String| WriteError::ContentSizeChanged {
            entry: entry.into(),
            file: file.to_path_buf(),
            expected: content.size(),
            found,
        };
        match content {
            Content::Inline(bytes) => self.write(bytes, entry)?,
            Content::File { path, size, .. } => {
                let mut file = super::host::open_file(path).map_err(read_err(path))?;
                let on_disk = file.metadata().map_err(read_err(path))?.len();
                if on_disk != *size {
                    return Err(changed(path, on_disk.to_string()));
                }
                let copied = self.copy(entry, *size, |buf, _| file.read(buf), read_err(path))?;
                if copied != *size {
                    return Err(changed(path, copied.to_string()));
                }
                if file.read(&mut [0u8; 1]).map_err(read_err(path))? != 0 {
                    return Err(changed(path, format!("more than {size}")));
                }
            }
            Content::Slice { file, offset, size } => {
                let f = match self.slices.take() {
                    Some((open, f)) if open == *file => f,
                    _ => std::fs::File::open(file.as_path()).map_err(read_err(file))?,
                };
                let copied = self.copy(
                    entry,
                    *size,
                    |buf, done| std::os::unix::fs::FileExt::read_at(&f, buf, offset + done),
                    read_err(file),
                );
                self.slices = Some((file.clone(), f));
                let copied = copied?;
                if copied != *size {
                    return Err(changed(file, copied.to_string()));
                }
            }
        }
        self.pad(content.size(), entry)
    }

    /// Copies up to `size` bytes from `read(buf, bytes so far)` to the output; returns how
    /// many there were (fewer when the source ended early).
    fn copy(
        &mut self,
        entry: &str,
        size: u64,
        mut read: impl FnMut(&mut [u8], u64) -> io::Result<usize>,
        read_err: impl FnOnce(io::Error) -> WriteError,
    ) -> Result<u64, WriteError> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(64 * 1024, 0);
        let mut done = 0u64;
        let result = loop {
            if done == size {
                break Ok(done);
            }
            let want = (size - done).min(buf.len() as u64) as usize;
            match read(&mut buf[..want], done) {
                Ok(0) => break Ok(done),
                Ok(n) => {
                    if let Err(e) = self.write(&buf[..n], entry) {
                        break Err(e);
                    }
                    done += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(read_err(e)),
            }
        };
        self.buf = buf;
        result
    }
}

/// How an extended header's own ustar block is filled.
struct PaxHeader<'a> {
    name: &'a [u8],
    mode: u32,
    /// `None` leaves devmajor/devminor as NUL bytes (Go does).
    dev: Option<(u32, u32)>,
}

/// The PAX records for values that do not fit their ustar fields, and the capability xattr.
fn overflow_records(h: &Header<'_>) -> BTreeMap<String, Vec<u8>> {
    let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    if h.size > MAX_OCTAL_11 {
        pax.insert("size".into(), h.size.to_string().into_bytes());
    }
    if h.mtime > MAX_OCTAL_11 {
        pax.insert("mtime".into(), h.mtime.to_string().into_bytes());
    }
    if h.uid > MAX_OCTAL_7 {
        pax.insert("uid".into(), h.uid.to_string().into_bytes());
    }
    if h.gid > MAX_OCTAL_7 {
        pax.insert("gid".into(), h.gid.to_string().into_bytes());
    }
    if let Some(cap) = h.capability {
        pax.insert(format!("SCHILY.xattr.{CAPABILITY_XATTR}"), cap.to_vec());
    }
    pax
}

fn truncate(bytes: &[u8], max: usize) -> &[u8] {
    &bytes[..bytes.len().min(max)]
}

/// Splits `path` into ustar's `prefix` and `name` fields, or `None` when it needs PAX. The
/// rule is fixed: the whole path in `name` when it fits, else the shortest prefix ending at a
/// `/` that leaves at most 100 bytes for `name` (never splitting off a directory's trailing
/// `/` alone).
fn split_ustar_path(path: &str) -> Option<(&[u8], &[u8])> {
    let bytes = path.as_bytes();
    if bytes.len() <= 100 {
        return Some((b"", bytes));
    }
    let trimmed = bytes.strip_suffix(b"/").unwrap_or(bytes);
    let start = bytes.len() - 101;
    (start..trimmed.len())
        .find(|&i| bytes[i] == b'/')
        .filter(|&i| i <= 155)
        .map(|i| (&bytes[..i], &bytes[i + 1..]))
}

/// PAX records `"<len> <key>=<value>\n"`, where `len` counts the whole record including itself.
fn pax_records(records: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} {key}=").as_bytes());
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn encode_header(
    block: &mut [u8; BLOCK],
    (prefix, name): (&[u8], &[u8]),
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    typeflag: u8,
    linkname: &[u8],
    dev: Option<(u32, u32)>,
) {
    block[..name.len()].copy_from_slice(name);
    octal(&mut block[100..108], u64::from(mode));
    octal(&mut block[108..116], uid);
    octal(&mut block[116..124], gid);
    octal(&mut block[124..136], size);
    octal(&mut block[136..148], mtime);
    block[156] = typeflag;
    block[157..157 + linkname.len()].copy_from_slice(linkname);
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    if let Some((major, minor)) = dev {
        octal(&mut block[329..337], u64::from(major));
        octal(&mut block[337..345], u64::from(minor));
    }
    block[345..345 + prefix.len()].copy_from_slice(prefix);
    block[148..156].fill(b' ');
    let sum: u64 = block.iter().map(|&b| u64::from(b)).sum();
    octal(&mut block[148..155], sum);
    block[155] = b' ';
}

/// Zero-padded octal filling all but the last byte of `field`, then a NUL.
/// (Written by hand: it runs seven times per entry, and `format!` showed in profiles of
/// layers of many small files.)
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    debug_assert!(
        digits >= 22 || value >> (3 * digits) == 0,
        "value checked against the field width by the caller"
    );
    let mut v = value;
    for d in field[..digits].iter_mut().rev() {
        *d = b'0' + (v & 7) as u8;
        v >>= 3;
    }
    field[digits] = 0;
}

#[cfg(test)]
#[path = "write_tests.rs"]
pub(crate) mod tests;
