//! A streaming tar reader with hard caps.
//!
//! Layers, `.deb` data members and `extract` inputs are written by strangers, so the reader
//! must fail fast and with bounded memory on hostile headers: a 1 GiB GNU long name or a 100 MB
//! PAX record is refused from its header alone, before any of it is read. The `tar` crate has
//! no such caps, hence this reader of our own.
//!
//! Understood: ustar (with `prefix`), GNU long names/links (`L`, `K`) and base-256 numbers,
//! PAX extended headers (`x` per entry, `g` global) with `path`, `linkpath`, `size`, `uid`,
//! `gid`, `mtime` (whole seconds kept) and `SCHILY.xattr.*`. Global records apply to every
//! later entry (as GNU tar applies them), so they are capped: [`MAX_PAX_GLOBALS`] bytes in
//! force at once, no global `path` or `linkpath`; xattr values are capped at
//! [`MAX_XATTR_VALUE`], an entry's xattrs at [`MAX_ENTRY_XATTRS`] and an archive's at
//! [`ReadLimits::max_archive_xattrs`], so what a reader holds stays bounded whatever a few
//! kilobytes of compressed headers expand to. Every header checksum is
//! verified; an archive that ends inside a header or inside member data is an error; the
//! end-of-archive marker may be one or two NUL blocks, and anything after the first NUL block
//! is ignored. An archive that ends without any NUL block, at a header boundary or right after
//! the last member's data (umoci's `insert` writes its layers so: no padding, no marker), is
//! accepted, as the runtimes that unpack layers (podman, containerd: Go) accept it;
//! [`TarReader::end`] tells these endings apart. A stream cut inside a header, inside member
//! data or after an extension header is still an error (and a cut-off download is caught by
//! the blob's digest or the compressed stream's own end).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use super::tar_header::{
    field_str, padding_for, parse_number, parse_pax, parse_pax_time, trim_nul, verify_checksum,
    BLOCK,
};

/// Largest GNU long name (`L`) or long link (`K`) member accepted, in bytes.
pub const MAX_GNU_LONG_NAME: u64 = 64 * 1024;
/// Largest single PAX extended header (`x` or `g`) accepted, in bytes.
pub const MAX_PAX_HEADER: u64 = 1024 * 1024;
/// Default cap on the number of entries in one archive.
pub const DEFAULT_MAX_ENTRIES: u64 = 4_000_000;
/// Default cap on a path or link target length (Linux `PATH_MAX`).
pub const DEFAULT_MAX_PATH_LEN: usize = 4096;
/// Size of the buffer `read_data` copies through.
const COPY_BUF: usize = 64 * 1024;
/// Extension headers (`L`, `K`, `x`, `g`) allowed in a row before a real entry.
pub const MAX_EXTENSION_HEADERS: u32 = 32;
/// Largest xattr value accepted (Linux's `XATTR_SIZE_MAX`: nothing larger can be set).
pub const MAX_XATTR_VALUE: usize = 64 * 1024;
/// Largest total of xattr names and values on one entry.
pub const MAX_ENTRY_XATTRS: usize = 128 * 1024;
/// Largest total of keys and values of the global (`g`) PAX records in force at once: they
/// are held for the rest of the archive and apply to every later entry.
pub const MAX_PAX_GLOBALS: usize = 64 * 1024;
/// Default cap on the xattr names and values of all entries of one archive together. Global
/// records repeat theirs on every entry, so without it a few kilobytes of archive could make
/// every reader hold gigabytes.
pub const DEFAULT_MAX_ARCHIVE_XATTRS: u64 = 32 << 20;

/// Caps applied while reading; see the constants for the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    pub max_entries: u64,
    pub max_path_len: usize,
    /// Xattr names and values of all entries together, in bytes.
    pub max_archive_xattrs: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_path_len: DEFAULT_MAX_PATH_LEN,
            max_archive_xattrs: DEFAULT_MAX_ARCHIVE_XATTRS,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("failed to read tar archive at byte {offset}")]
    Io {
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error(
        "failed to read tar archive: truncated at byte {offset} while reading {what}{}",
        of_entry(path)
    )]
    Truncated {
        path: String,
        offset: u64,
        what: &'static str,
    },
    #[error("failed to read tar header at byte {offset} (`{path}`): checksum {stored:#o} does not match {computed:#o}")]
    BadChecksum {
        path: String,
        offset: u64,
        stored: u64,
        computed: u64,
    },
    #[error("failed to read tar header at byte {offset} (`{path}`): field `{field}` is not a valid number")]
    BadNumber {
        path: String,
        offset: u64,
        field: &'static str,
    },
    #[error("failed to read tar header at byte {offset}: {what} of {size} bytes exceeds the cap of {limit} bytes")]
    ExtensionTooLarge {
        offset: u64,
        what: &'static str,
        size: u64,
        limit: u64,
    },
    #[error(
        "failed to read tar archive at byte {offset}: more than {limit} extension headers in a row"
    )]
    TooManyExtensions { offset: u64, limit: u32 },
    #[error("failed to read pax header at byte {offset} for `{path}`: {reason}")]
    BadPax {
        path: String,
        offset: u64,
        reason: &'static str,
    },
    #[error("failed to read tar archive at byte {offset}: more than {limit} entries")]
    TooManyEntries { offset: u64, limit: u64 },
    #[error("failed to read pax header at byte {offset} for `{path}`: xattr `{name}` of {size} bytes exceeds the cap of {limit} bytes")]
    XattrTooLarge {
        path: String,
        offset: u64,
        name: String,
        size: usize,
        limit: usize,
    },
    #[error("failed to read tar header at byte {offset} (`{path}`): its xattrs take {size} bytes, above the cap of {limit} bytes per entry")]
    EntryXattrsTooLarge {
        path: String,
        offset: u64,
        size: usize,
        limit: usize,
    },
    #[error("failed to read tar header at byte {offset} (`{path}`): the xattrs of the archive's entries exceed the cap of {limit} bytes in total")]
    ArchiveXattrsTooLarge {
        path: String,
        offset: u64,
        limit: u64,
    },
    #[error("failed to read global pax header at byte {offset}: its records take {size} bytes, above the cap of {limit} bytes (they apply to every later entry)")]
    GlobalPaxTooLarge {
        offset: u64,
        size: usize,
        limit: usize,
    },
    #[error("failed to read global pax header at byte {offset}: a `{key}` record would give every later entry the same {what}")]
    GlobalPaxPath {
        offset: u64,
        key: String,
        what: &'static str,
    },
    #[error("failed to read tar header at byte {offset}: {field} of {len} bytes exceeds the cap of {limit} bytes (starts `{prefix}`)")]
    PathTooLong {
        offset: u64,
        field: &'static str,
        len: usize,
        limit: usize,
        prefix: String,
    },
    #[error("failed to read tar header at byte {offset}: {field} is not valid UTF-8 (`{lossy}`)")]
    NotUtf8 {
        offset: u64,
        field: &'static str,
        lossy: String,
    },
    #[error("failed to read tar header at byte {offset} (`{path}`): unsupported entry type {typeflag:?}")]
    UnsupportedType {
        path: String,
        offset: u64,
        typeflag: char,
    },
    #[error("failed to write data of tar entry `{path}`")]
    Sink {
        path: String,
        #[source]
        source: io::Error,
    },
}

fn of_entry(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" of `{path}`")
    }
}

/// The header format of one entry, as far as its headers show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TarFormat {
    /// No magic: the original Unix v7 header.
    V7,
    /// POSIX ustar (`ustar\0` magic), no extension headers.
    Ustar,
    /// GNU (`ustar  ` magic, or GNU `L`/`K` long-name members).
    Gnu,
    /// A PAX extended header (`x`) applied to the entry.
    Pax,
}

impl TarFormat {
    pub fn name(self) -> &'static str {
        match self {
            TarFormat::V7 => "v7",
            TarFormat::Ustar => "ustar",
            TarFormat::Gnu => "gnu",
            TarFormat::Pax => "pax",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TarKind {
    File,
    Dir,
    Symlink,
    Hardlink,
    CharDevice,
    BlockDevice,
    Fifo,
}

/// One archive member, with every extension header folded in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TarEntry {
    /// The path exactly as stored in the archive (after GNU/PAX overrides), not normalized.
    pub path: String,
    pub kind: TarKind,
    /// Symlink or hardlink target, raw; empty for other kinds.
    pub link_name: String,
    /// Permission and special bits (`0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
    /// Data bytes that follow the header (0 for every kind but `File`).
    pub size: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// `SCHILY.xattr.*` records, keyed without the prefix.
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Byte offset of this entry's (first) header in the archive.
    pub offset: u64,
    /// The owner and group names of the header (empty when absent), PAX `uname`/`gname`
    /// applied.
    pub uname: String,
    pub gname: String,
    /// Which header format carried the entry (PAX when a per-entry `x` header applied, GNU
    /// when a GNU long name/link did or the magic is GNU's).
    pub format: TarFormat,
}

/// How an archive ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveEnd {
    /// A NUL block (what follows it is not read).
    Marker,
    /// The stream ended at a header boundary with no end-of-archive marker.
    NoMarker,
    /// The stream ended right after the last member's data: no padding to a 512-byte block,
    /// no marker.
    Unpadded,
}

/// Streams entries out of a tar archive; see the module docs for what is accepted.
pub struct TarReader<R: Read> {
    inner: R,
    limits: ReadLimits,
    offset: u64,
    /// Unread data of the current entry, then its padding.
    remaining: u64,
    padding: u64,
    current_path: String,
    entries: u64,
    /// Xattr bytes of the entries returned so far (see [`ReadLimits::max_archive_xattrs`]).
    xattr_bytes: u64,
    globals: BTreeMap<String, Vec<u8>>,
    done: bool,
    end: Option<ArchiveEnd>,
    /// The header block and PAX record keys of the entry last returned (for `kiln diff`).
    header: [u8; BLOCK],
    pax_keys: Vec<String>,
    buf: Vec<u8>,
}

#[derive(Default)]
struct Overrides {
    gnu_name: Option<Vec<u8>>,
    gnu_link: Option<Vec<u8>>,
    pax: BTreeMap<String, Vec<u8>>,
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R, limits: ReadLimits) -> Self {
        Self {
            inner,
            limits,
            offset: 0,
            remaining: 0,
            padding: 0,
            current_path: String::new(),
            entries: 0,
            xattr_bytes: 0,
            globals: BTreeMap::new(),
            done: false,
            end: None,
            header: [0; BLOCK],
            pax_keys: Vec::new(),
            buf: Vec::new(),
        }
    }

    /// How the archive ended, once [`Self::next_entry`] has returned `None`.
    pub fn end(&self) -> Option<ArchiveEnd> {
        self.end
    }

    /// The header block of the entry last returned, as stored (extension headers aside): how a
    /// writer spells its fields (mode type bits, checksum, device numbers) tells writers apart.
    pub fn header_block(&self) -> &[u8; BLOCK] {
        &self.header
    }

    /// The PAX record keys (per-entry and global) that applied to the entry last returned.
    pub fn pax_keys(&self) -> &[String] {
        &self.pax_keys
    }

    /// Bytes consumed from the underlying reader so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next entry, or `None` at the end of the archive. Unread data of the previous entry
    /// is skipped (and still checked for truncation).
    /// After an error the archive is unusable: stop reading it.
    pub fn next_entry(&mut self) -> Result<Option<TarEntry>, ReadError> {
        if self.done {
            return Ok(None);
        }
        self.skip_rest()?;
        if self.done {
            return Ok(None);
        }
        let mut ov = Overrides::default();
        let mut extensions = 0u32;
        let first_offset = self.offset;
        loop {
            let header_offset = self.offset;
            let mut block = [0u8; BLOCK];
            if !self.read_block_or_eof(&mut block)? {
                if header_offset != first_offset {
                    return Err(ReadError::Truncated {
                        path: String::new(),
                        offset: header_offset,
                        what: "the entry after an extension header",
                    });
                }
                self.done = true;
                self.end = Some(ArchiveEnd::NoMarker);
                return Ok(None);
            }
            if block.iter().all(|&b| b == 0) {
                // One NUL block is enough; the rest (second NUL block, padding) is ignored.
                self.done = true;
                self.end = Some(ArchiveEnd::Marker);
                return Ok(None);
            }
            let raw_name = field_str(&block[0..100]);
            let shown = String::from_utf8_lossy(raw_name).into_owned();
            verify_checksum(&block, &shown, header_offset)?;
            let typeflag = block[156];
            let size = parse_number(&block[124..136]).ok_or(ReadError::BadNumber {
                path: shown.clone(),
                offset: header_offset,
                field: "size",
            })?;
            // Sizes are at most i64::MAX (as in every tar implementation), so offsets never
            // overflow.
            let size = u64::try_from(size)
                .ok()
                .filter(|&v| i64::try_from(v).is_ok())
                .ok_or_else(|| ReadError::BadNumber {
                    path: shown.clone(),
                    offset: header_offset,
                    field: "size",
                })?;
            match typeflag {
                b'L' | b'K' | b'x' | b'g' | b'X' => {
                    extensions += 1;
                    if extensions > MAX_EXTENSION_HEADERS {
                        return Err(ReadError::TooManyExtensions {
                            offset: header_offset,
                            limit: MAX_EXTENSION_HEADERS,
                        });
                    }
                    let (what, limit) = match typeflag {
                        b'L' => ("gnu long name", MAX_GNU_LONG_NAME),
                        b'K' => ("gnu long link", MAX_GNU_LONG_NAME),
                        _ => ("pax header", MAX_PAX_HEADER),
                    };
                    if size > limit {
                        return Err(ReadError::ExtensionTooLarge {
                            offset: header_offset,
                            what,
                            size,
                            limit,
                        });
                    }
                    let data = self.read_small(size, &shown, what)?;
                    match typeflag {
                        b'L' => ov.gnu_name = Some(trim_nul(data)),
                        b'K' => ov.gnu_link = Some(trim_nul(data)),
                        b'g' => self.add_globals(&data, &shown, header_offset)?,
                        _ => parse_pax(&data, &mut ov.pax, &shown, header_offset)?,
                    }
                    continue;
                }
                _ => {}
            }
            self.entries += 1;
            if self.entries > self.limits.max_entries {
                return Err(ReadError::TooManyEntries {
                    offset: header_offset,
                    limit: self.limits.max_entries,
                });
            }
            let mut entry = self.build_entry(&block, ov, size, header_offset)?;
            entry.offset = first_offset;
            self.current_path = entry.path.clone();
            self.remaining = entry.size;
            self.padding = padding_for(entry.size);
            return Ok(Some(entry));
        }
    }

    fn build_entry(
        &mut self,
        block: &[u8; BLOCK],
        ov: Overrides,
        size: u64,
        offset: u64,
    ) -> Result<TarEntry, ReadError> {
        let is_ustar = &block[257..263] == b"ustar\0";
        let is_gnu = &block[257..265] == b"ustar  \0";
        let format = if !ov.pax.is_empty() {
            TarFormat::Pax
        } else if is_gnu || ov.gnu_name.is_some() || ov.gnu_link.is_some() {
            TarFormat::Gnu
        } else if is_ustar {
            TarFormat::Ustar
        } else {
            TarFormat::V7
        };
        let header_name = |range: std::ops::Range<usize>| {
            if is_ustar || is_gnu {
                String::from_utf8_lossy(field_str(&block[range])).into_owned()
            } else {
                String::new()
            }
        };
        let mut uname = header_name(265..297);
        let mut gname = header_name(297..329);
        let mut name = field_str(&block[0..100]).to_vec();
        if is_ustar {
            let prefix = field_str(&block[345..500]);
            if !prefix.is_empty() {
                let mut joined = prefix.to_vec();
                joined.push(b'/');
                joined.extend_from_slice(&name);
                name = joined;
            }
        }
        let mut link = field_str(&block[157..257]).to_vec();
        if let Some(n) = ov.gnu_name {
            name = n;
        }
        if let Some(l) = ov.gnu_link {
            link = l;
        }
        // PAX: the per-entry header overrides the globals (which are not copied: they may be
        // large, and apply to every entry).
        let pax = Pax {
            entry: &ov.pax,
            globals: &self.globals,
        };
        self.header = *block;
        self.pax_keys = self
            .globals
            .keys()
            .chain(ov.pax.keys())
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if let Some(p) = pax.get("path") {
            name = p.clone();
        }
        if let Some(l) = pax.get("linkpath") {
            link = l.clone();
        }
        if let Some(u) = pax.get("uname") {
            uname = String::from_utf8_lossy(u).into_owned();
        }
        if let Some(g) = pax.get("gname") {
            gname = String::from_utf8_lossy(g).into_owned();
        }
        let path = self.checked_string(name, offset, "path")?;
        let link_name = self.checked_string(link, offset, "link name")?;
        let bad = |field| ReadError::BadNumber {
            path: path.clone(),
            offset,
            field,
        };
        let num = |range: std::ops::Range<usize>, field| {
            parse_number(&block[range]).ok_or_else(|| bad(field))
        };
        let mode = (num(100..108, "mode")? & 0o7777) as u32;
        let mut uid = u64::try_from(num(108..116, "uid")?).map_err(|_| bad("uid"))?;
        let mut gid = u64::try_from(num(116..124, "gid")?).map_err(|_| bad("gid"))?;
        let mut mtime = i64::try_from(num(136..148, "mtime")?).map_err(|_| bad("mtime"))?;
        let mut size = size;
        let (dev_major, dev_minor) = if is_ustar || &block[257..263] == b"ustar " {
            (
                u32::try_from(num(329..337, "devmajor")?).map_err(|_| bad("devmajor"))?,
                u32::try_from(num(337..345, "devminor")?).map_err(|_| bad("devminor"))?,
            )
        } else {
            (0, 0)
        };
        let pax_num = |key: &'static str| -> Result<Option<u64>, ReadError> {
            match pax.get(key) {
                None => Ok(None),
                Some(v) => std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .map(Some)
                    .ok_or(ReadError::BadPax {
                        path: path.clone(),
                        offset,
                        reason: "bad numeric record",
                    }),
            }
        };
        if let Some(v) = pax_num("uid")? {
            uid = v;
        }
        if let Some(v) = pax_num("gid")? {
            gid = v;
        }
        if let Some(v) = pax_num("size")? {
            if i64::try_from(v).is_err() {
                return Err(bad("size"));
            }
            size = v;
        }
        if let Some(v) = pax.get("mtime") {
            mtime = parse_pax_time(v).ok_or(ReadError::BadPax {
                path: path.clone(),
                offset,
                reason: "bad mtime record",
            })?;
        }
        let xattrs = pax.xattrs(&path, offset)?;
        let held: usize = xattrs.iter().map(|(k, v)| k.len() + v.len()).sum();
        if held > MAX_ENTRY_XATTRS {
            return Err(ReadError::EntryXattrsTooLarge {
                path,
                offset,
                size: held,
                limit: MAX_ENTRY_XATTRS,
            });
        }
        self.xattr_bytes += held as u64;
        if self.xattr_bytes > self.limits.max_archive_xattrs {
            return Err(ReadError::ArchiveXattrsTooLarge {
                path,
                offset,
                limit: self.limits.max_archive_xattrs,
            });
        }
        let typeflag = block[156];
        let kind = match typeflag {
            // A directory in old (pre-POSIX) archives; Go's archive/tar and Python's tarfile
            // read it so, and skip no data for it.
            0 if path.ends_with('/') => TarKind::Dir,
            // Always a regular file with data, whatever its name: Go's archive/tar (which
            // container runtimes unpack layers with), Python and busybox read it so, and
            // skip its data by its size. GNU tar extracts `0` named `d/` as a directory and
            // then parses its data as headers: never followed here.
            b'0' | 0 | b'7' => TarKind::File,
            b'1' => TarKind::Hardlink,
            b'2' => TarKind::Symlink,
            b'3' => TarKind::CharDevice,
            b'4' => TarKind::BlockDevice,
            b'5' => TarKind::Dir,
            b'6' => TarKind::Fifo,
            other => {
                return Err(ReadError::UnsupportedType {
                    path,
                    offset,
                    typeflag: other as char,
                })
            }
        };
        // Like Go's archive/tar: header-only kinds carry no data whatever `size` says.
        if kind != TarKind::File {
            size = 0;
        }
        Ok(TarEntry {
            path,
            kind,
            link_name,
            mode,
            uid,
            gid,
            mtime,
            size,
            dev_major,
            dev_minor,
            xattrs,
            offset,
            uname,
            gname,
            format,
        })
    }

    fn checked_string(
        &self,
        bytes: Vec<u8>,
        offset: u64,
        field: &'static str,
    ) -> Result<String, ReadError> {
        if bytes.len() > self.limits.max_path_len {
            return Err(ReadError::PathTooLong {
                offset,
                field,
                len: bytes.len(),
                limit: self.limits.max_path_len,
                prefix: String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned(),
            });
        }
        String::from_utf8(bytes).map_err(|e| ReadError::NotUtf8 {
            offset,
            field,
            lossy: String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// Reads the underlying stream to its end once the end-of-archive marker was read, so the
    /// end-of-stream checks of a decompressor below (gzip CRC and length of every member,
    /// xz/zstd/bzip2 stream ends, trailing data) run: an archive is accepted only when all of
    /// it is. Does nothing before the end of the archive (after an error, say).
    pub fn drain(&mut self) -> Result<(), ReadError> {
        if !self.done {
            return Ok(());
        }
        let mut tail = CountingSink(0);
        let copied = io::copy(&mut self.inner, &mut tail);
        self.offset += tail.0;
        copied.map(drop).map_err(|source| ReadError::Io {
            offset: self.offset,
            source,
        })
    }

    /// Copies the rest of the current entry's data into `sink`; returns the bytes copied.
    pub fn read_data(&mut self, sink: &mut impl Write) -> Result<u64, ReadError> {
        // One copy buffer for the whole archive, grown (up to COPY_BUF) as members need.
        let mut buf = std::mem::take(&mut self.buf);
        let want = usize::try_from(self.remaining.min(COPY_BUF as u64)).unwrap_or(COPY_BUF);
        if buf.len() < want {
            buf.resize(want, 0);
        }
        let mut total = 0u64;
        while self.remaining > 0 {
            let want = buf
                .len()
                .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
            let n = self.fill(&mut buf[..want], "data")?;
            self.remaining -= n as u64;
            total += n as u64;
            sink.write_all(&buf[..n])
                .map_err(|source| ReadError::Sink {
                    path: self.current_path.clone(),
                    source,
                })?;
        }
        self.buf = buf;
        Ok(total)
    }

    /// A `Read` over the current entry's data. Truncation surfaces as `UnexpectedEof`.
    pub fn data_reader(&mut self) -> EntryData<'_, R> {
        EntryData { reader: self }
    }

    fn skip_rest(&mut self) -> Result<(), ReadError> {
        let total = self.remaining + self.padding;
        let mut left = total;
        let mut buf = [0u8; 8192];
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let what = if left > self.padding {
                "data"
            } else {
                "padding"
            };
            let n = match self.fill(&mut buf[..want], what) {
                // The last member's data is complete and the stream ends in its padding: the
                // archive ends here (umoci's `insert` layers), as Go's archive/tar reads it.
                Err(ReadError::Truncated { .. }) if left <= self.padding => {
                    self.done = true;
                    self.end = Some(ArchiveEnd::Unpadded);
                    break;
                }
                other => other?,
            };
            left -= n as u64;
        }
        self.remaining = 0;
        self.padding = 0;
        Ok(())
    }

    /// Reads at least one byte into `buf` or fails with `Truncated`.
    fn fill(&mut self, buf: &mut [u8], what: &'static str) -> Result<usize, ReadError> {
        loop {
            match self.inner.read(buf) {
                Ok(0) => {
                    return Err(ReadError::Truncated {
                        path: self.current_path.clone(),
                        offset: self.offset,
                        what,
                    })
                }
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ReadError::Io {
                        offset: self.offset,
                        source,
                    })
                }
            }
        }
    }

    /// Reads one header block; `false` on a clean end of input before its first byte.
    fn read_block_or_eof(&mut self, block: &mut [u8; BLOCK]) -> Result<bool, ReadError> {
        let mut got = 0;
        while got < BLOCK {
            match self.inner.read(&mut block[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => {
                    return Err(ReadError::Truncated {
                        path: String::new(),
                        offset: self.offset,
                        what: "a header",
                    })
                }
                Ok(n) => {
                    got += n;
                    self.offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ReadError::Io {
                        offset: self.offset,
                        source,
                    })
                }
            }
        }
        Ok(true)
    }

    /// Applies a global (`g`) PAX header: its records stay in force for the rest of the
    /// archive, so they are capped ([`MAX_PAX_GLOBALS`]), and may not name a path or link
    /// target (every later entry would get the same one).
    fn add_globals(&mut self, data: &[u8], shown: &str, offset: u64) -> Result<(), ReadError> {
        parse_pax(data, &mut self.globals, shown, offset)?;
        for (key, what) in [("path", "path"), ("linkpath", "link target")] {
            if self.globals.contains_key(key) {
                return Err(ReadError::GlobalPaxPath {
                    offset,
                    key: key.to_string(),
                    what,
                });
            }
        }
        let size: usize = self.globals.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > MAX_PAX_GLOBALS {
            return Err(ReadError::GlobalPaxTooLarge {
                offset,
                size,
                limit: MAX_PAX_GLOBALS,
            });
        }
        Ok(())
    }

    /// Reads an extension member (already checked against its cap) and its padding.
    fn read_small(
        &mut self,
        size: u64,
        shown: &str,
        what: &'static str,
    ) -> Result<Vec<u8>, ReadError> {
        let len = usize::try_from(size).unwrap_or(usize::MAX);
        let mut data = vec![0u8; len];
        let mut got = 0;
        self.current_path = shown.to_string();
        while got < len {
            got += self.fill(&mut data[got..], what)?;
        }
        self.padding = padding_for(size);
        self.remaining = 0;
        self.skip_rest()?;
        Ok(data)
    }
}

/// Counts what is written to it and drops it.
struct CountingSink(u64);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The PAX records that apply to one entry: its own, over the globals in force.
struct Pax<'a> {
    entry: &'a BTreeMap<String, Vec<u8>>,
    globals: &'a BTreeMap<String, Vec<u8>>,
}

const XATTR_PREFIX: &str = "SCHILY.xattr.";

impl Pax<'_> {
    fn get(&self, key: &str) -> Option<&Vec<u8>> {
        self.entry.get(key).or_else(|| self.globals.get(key))
    }

    /// `SCHILY.xattr.*` records keyed without the prefix, each value within
    /// [`MAX_XATTR_VALUE`].
    fn xattrs(&self, path: &str, offset: u64) -> Result<BTreeMap<String, Vec<u8>>, ReadError> {
        let mut out = BTreeMap::new();
        for records in [self.globals, self.entry] {
            let range = records.range(XATTR_PREFIX.to_string()..);
            for (k, v) in range.take_while(|(k, _)| k.starts_with(XATTR_PREFIX)) {
                let name = &k[XATTR_PREFIX.len()..];
                if v.len() > MAX_XATTR_VALUE {
                    return Err(ReadError::XattrTooLarge {
                        path: path.to_string(),
                        offset,
                        name: name.to_string(),
                        size: v.len(),
                        limit: MAX_XATTR_VALUE,
                    });
                }
                out.insert(name.to_string(), v.clone());
            }
        }
        Ok(out)
    }
}

/// The data of the current entry as a `Read`; see [`TarReader::data_reader`].
pub struct EntryData<'a, R: Read> {
    reader: &'a mut TarReader<R>,
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = &mut *self.reader;
        if r.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(r.remaining).unwrap_or(usize::MAX));
        match r.fill(&mut buf[..want], "data") {
            Ok(n) => {
                r.remaining -= n as u64;
                Ok(n)
            }
            Err(ReadError::Io { source, .. }) => Err(source),
            Err(e) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, e)),
        }
    }
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
