//! Opening archives written by strangers: format detection, decompression, `.deb` unwrapping,
//! and the caps that keep a hostile archive from exhausting memory or disk.
//!
//! The format is decided by magic bytes, never by the file name (the name only labels errors):
//! gzip (every member, like `gzip -d`), xz (every stream), zstd (every frame), bzip2 (every
//! stream), plain tar (ustar magic, an all-zero first block, or a valid v7 header checksum),
//! and `.deb` (an `ar` archive whose single `data.tar[.gz|.xz|.zst|.bz2]` member is opened the
//! same way). Everything else is a clear error.
//!
//! Caps ([`Limits`], with documented defaults): at most 64 GiB of output (an error past it,
//! never a silent truncation); zstd windows up to 2^27 bytes (128 MiB, what `zstd` itself
//! accepts without `--long`); xz decoders up to 256 MiB of memory (xz -9 needs 65 MiB).
//!
//! Trailing data is an error, except NUL padding after the last gzip member (which
//! `gzip -d` also accepts). These end-of-stream checks run when the stream is read to its
//! end, so a caller that stops at the tar end-of-archive marker must drain the rest
//! (`io::copy(&mut r, &mut io::sink())`) to get them.

use std::io::{self, BufRead, BufReader, Read};

/// Caps on what one archive may make kiln do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of decompressed output; more is an error.
    pub max_uncompressed: u64,
    /// Largest zstd window, as a power of two.
    pub zstd_window_log_max: u32,
    /// Memory the xz decoder may use.
    pub xz_memlimit: u64,
}

impl Limits {
    pub const DEFAULT_MAX_UNCOMPRESSED: u64 = 64 << 30;
    pub const DEFAULT_ZSTD_WINDOW_LOG_MAX: u32 = 27;
    pub const DEFAULT_XZ_MEMLIMIT: u64 = 256 << 20;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_uncompressed: Self::DEFAULT_MAX_UNCOMPRESSED,
            zstd_window_log_max: Self::DEFAULT_ZSTD_WINDOW_LOG_MAX,
            xz_memlimit: Self::DEFAULT_XZ_MEMLIMIT,
        }
    }
}

/// A detected archive format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Tar,
    Gzip,
    Xz,
    Zstd,
    Bzip2,
    Deb,
}

impl Format {
    fn label(self) -> &'static str {
        match self {
            Format::Tar => "tar",
            Format::Gzip => "gzip",
            Format::Xz => "xz",
            Format::Zstd => "zstd",
            Format::Bzip2 => "bzip2",
            Format::Deb => "deb",
        }
    }

    /// The format whose magic bytes start `prefix` (at most the first 512 bytes are looked at).
    pub fn detect(prefix: &[u8]) -> Option<Format> {
        let starts = |magic: &[u8]| prefix.starts_with(magic);
        if starts(&[0x1f, 0x8b]) {
            Some(Format::Gzip)
        } else if starts(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Some(Format::Xz)
        } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Format::Zstd)
        } else if starts(b"BZh") {
            Some(Format::Bzip2)
        } else if starts(b"!<arch>\n") {
            Some(Format::Deb)
        } else if is_tar_header(prefix) {
            Some(Format::Tar)
        } else {
            None
        }
    }
}

fn is_tar_header(prefix: &[u8]) -> bool {
    if prefix.len() < 512 {
        return false;
    }
    let block = &prefix[..512];
    if &block[257..262] == b"ustar" || block.iter().all(|&b| b == 0) {
        return true;
    }
    // A v7 header has no magic: accept it when its checksum is right.
    let field = std::str::from_utf8(&block[148..156]).unwrap_or("");
    let field = field.trim_matches(|c: char| c == ' ' || c == '\0');
    let Ok(stored) = u64::from_str_radix(field, 8) else {
        return false;
    };
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    stored == sum
}

#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    #[error("failed to read `{name}`")]
    Read { name: String, source: io::Error },
    #[error("`{name}` is empty")]
    Empty { name: String },
    #[error("`{name}` is not a tar, tar.gz, tar.xz, tar.zst, tar.bz2 or .deb archive (it starts with {magic})")]
    UnknownFormat { name: String, magic: String },
    #[error("`{name}` decompresses to more than {limit} bytes, the limit for one archive")]
    LimitExceeded { name: String, limit: u64 },
    #[error("`{name}` is a zstd stream with a {window}-byte window, above the {max}-byte limit")]
    ZstdWindowTooLarge { name: String, window: u64, max: u64 },
    #[error("`{name}` is a truncated {format} stream")]
    Truncated { name: String, format: &'static str },
    #[error("`{name}` is not a valid {format} stream")]
    Corrupt {
        name: String,
        format: &'static str,
        source: io::Error,
    },
    #[error("`{name}` has trailing data after gzip member {member}")]
    TrailingGarbage { name: String, member: u64 },
    #[error("`{name}` is not a .deb: its first member is `{member}`, not `debian-binary`")]
    DebNotDebianBinary { name: String, member: String },
    #[error("`{name}` has an invalid ar member header{}: {reason}", member.as_ref().map(|m| format!(" for `{m}`")).unwrap_or_default())]
    DebBadMember {
        name: String,
        member: Option<String>,
        reason: &'static str,
    },
    #[error("`{name}` ends inside ar member `{member}`: the header says {expected} bytes, {found} are there")]
    DebMemberTruncated {
        name: String,
        member: String,
        expected: u64,
        found: u64,
    },
    #[error("`{name}` has no data.tar member")]
    DebNoData { name: String },
    #[error("{name} is a .deb without a control.tar member before its data")]
    DebNoControl { name: String },
    #[error("`{name}` has two data members, `{first}` and `{second}`")]
    DebTwoData {
        name: String,
        first: String,
        second: String,
    },
    #[error("`{name}` contains a .deb inside its data member")]
    DebNested { name: String },
}

impl DecompressError {
    fn into_io(self) -> io::Error {
        let kind = match self {
            DecompressError::Truncated { .. } | DecompressError::DebMemberTruncated { .. } => {
                io::ErrorKind::UnexpectedEof
            }
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, self)
    }
}

/// A boxed stream of the archive's tar bytes.
pub type ArchiveReader<'a> = Box<dyn Read + Send + 'a>;

/// Opens `reader` with the default [`Limits`]; `hint_name` only labels errors.
pub fn open_archive<'a>(
    reader: impl Read + Send + 'a,
    hint_name: &str,
) -> Result<ArchiveReader<'a>, DecompressError> {
    open_archive_with_limits(reader, hint_name, &Limits::default())
}

/// Detects the format of `reader` and returns a stream of the tar inside it.
pub fn open_archive_with_limits<'a>(
    reader: impl Read + Send + 'a,
    hint_name: &str,
    limits: &Limits,
) -> Result<ArchiveReader<'a>, DecompressError> {
    let name = hint_name.to_string();
    let (prefix, reader) = peek(reader, &name)?;
    match Format::detect(&prefix) {
        Some(Format::Deb) => {
            let data = deb::open_data_member(reader, &name)?;
            let (prefix, data) = peek(data, &name)?;
            match Format::detect(&prefix) {
                Some(Format::Deb) => Err(DecompressError::DebNested { name }),
                Some(format) => Ok(decode(format, data, &name, limits, &prefix)),
                None => Err(DecompressError::UnknownFormat {
                    name,
                    magic: hex::encode(&prefix[..prefix.len().min(8)]),
                }),
            }
        }
        Some(format) => Ok(decode(format, reader, &name, limits, &prefix)),
        None if prefix.is_empty() => Err(DecompressError::Empty { name }),
        None => Err(DecompressError::UnknownFormat {
            name,
            magic: hex::encode(&prefix[..prefix.len().min(8)]),
        }),
    }
}

/// Opens the `control.tar[.gz|.xz|.zst]` member of a `.deb` and returns a stream of its tar
/// (what dpkg keeps of a package: `control`, `md5sums`, maintainer scripts).
pub fn open_deb_control<'a>(
    reader: impl Read + Send + 'a,
    hint_name: &str,
) -> Result<ArchiveReader<'a>, DecompressError> {
    let name = hint_name.to_string();
    let control = deb::open_control_member(reader, &name)?;
    let (prefix, control) = peek(control, &name)?;
    match Format::detect(&prefix) {
        Some(Format::Deb) => Err(DecompressError::DebNested { name }),
        Some(format) => Ok(decode(format, control, &name, &Limits::default(), &prefix)),
        None => Err(DecompressError::UnknownFormat {
            name,
            magic: hex::encode(&prefix[..prefix.len().min(8)]),
        }),
    }
}

/// Reads up to 512 bytes and returns them with a reader that yields them again.
fn peek<'a>(
    mut reader: impl Read + Send + 'a,
    name: &str,
) -> Result<(Vec<u8>, impl Read + Send + 'a), DecompressError> {
    let mut prefix = vec![0u8; 512];
    let mut len = 0;
    while len < prefix.len() {
        match reader.read(&mut prefix[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(DecompressError::Read {
                    name: name.to_string(),
                    source,
                })
            }
        }
    }
    prefix.truncate(len);
    Ok((prefix.clone(), io::Cursor::new(prefix).chain(reader)))
}

fn decode<'a>(
    format: Format,
    reader: impl Read + Send + 'a,
    name: &str,
    limits: &Limits,
    prefix: &[u8],
) -> ArchiveReader<'a> {
    let buffered = BufReader::with_capacity(64 * 1024, reader);
    let inner: ArchiveReader<'a> = match format {
        Format::Tar | Format::Deb => Box::new(buffered),
        Format::Gzip => Box::new(gzip::Members::new(buffered, name)),
        Format::Xz => match liblzma::stream::Stream::new_stream_decoder(
            limits.xz_memlimit,
            liblzma::stream::CONCATENATED,
        ) {
            Ok(stream) => Box::new(liblzma::bufread::XzDecoder::new_stream(buffered, stream)),
            Err(e) => Box::new(Failed(Some(io::Error::other(e)))),
        },
        Format::Zstd => match zstd_decoder(buffered, limits, prefix, name) {
            Ok(decoder) => decoder,
            Err(e) => Box::new(Failed(Some(e.into_io()))),
        },
        Format::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(buffered)),
    };
    Box::new(Capped {
        inner: Labeled {
            inner,
            name: name.to_string(),
            format: format.label(),
        },
        total: 0,
        limit: limits.max_uncompressed,
        name: name.to_string(),
    })
}

fn zstd_decoder<'a>(
    buffered: BufReader<impl Read + Send + 'a>,
    limits: &Limits,
    prefix: &[u8],
    name: &str,
) -> Result<ArchiveReader<'a>, DecompressError> {
    let max = 1u64 << limits.zstd_window_log_max;
    // Check the first frame's window here for a clear error; libzstd enforces the same cap on
    // every later frame.
    if let Some(window) = zstd_window_size(prefix) {
        if window > max {
            return Err(DecompressError::ZstdWindowTooLarge {
                name: name.to_string(),
                window,
                max,
            });
        }
    }
    let corrupt = |source| DecompressError::Corrupt {
        name: name.to_string(),
        format: "zstd",
        source,
    };
    let mut decoder = zstd::stream::read::Decoder::with_buffer(buffered).map_err(corrupt)?;
    decoder
        .window_log_max(limits.zstd_window_log_max)
        .map_err(corrupt)?;
    Ok(Box::new(decoder))
}

/// The window size a zstd frame header asks for (RFC 8878 §3.1.1.1), if `header` holds one.
fn zstd_window_size(header: &[u8]) -> Option<u64> {
    let descriptor = *header.get(4)?;
    let single_segment = descriptor & 0x20 != 0;
    if !single_segment {
        let wd = *header.get(5)?;
        let log = 10 + u64::from(wd >> 3);
        let base = 1u64 << log;
        return Some(base + (base / 8) * u64::from(wd & 7));
    }
    // Single segment: the window is the frame content size.
    let fcs_len = [1usize, 2, 4, 8][usize::from(descriptor >> 6)];
    let dict_len = [0usize, 1, 2, 4][usize::from(descriptor & 3)];
    let start = 5 + dict_len;
    let bytes = header.get(start..start + fcs_len)?;
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate() {
        value |= u64::from(b) << (8 * i);
    }
    Some(if fcs_len == 2 { value + 256 } else { value })
}

/// A reader that fails with the error it was given.
struct Failed(Option<io::Error>);

impl Read for Failed {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(self
            .0
            .take()
            .unwrap_or_else(|| io::Error::other("archive could not be opened")))
    }
}

/// Turns a decoder's bare errors into errors that name the archive and the format.
struct Labeled<R> {
    inner: R,
    name: String,
    format: &'static str,
}

impl<R: Read> Read for Labeled<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if e.get_ref()
                .is_some_and(|inner| inner.is::<DecompressError>())
            {
                return e;
            }
            let (name, format) = (self.name.clone(), self.format);
            match e.kind() {
                io::ErrorKind::UnexpectedEof => DecompressError::Truncated { name, format },
                _ => DecompressError::Corrupt {
                    name,
                    format,
                    source: e,
                },
            }
            .into_io()
        })
    }
}

/// Passes at most `limit` bytes through, then fails (rather than truncating) if more follow.
struct Capped<R> {
    inner: R,
    total: u64,
    limit: u64,
    name: String,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let allowed = self.limit - self.total;
        if allowed == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(DecompressError::LimitExceeded {
                    name: self.name.clone(),
                    limit: self.limit,
                }
                .into_io()),
            };
        }
        let max = buf
            .len()
            .min(usize::try_from(allowed).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.total += n as u64;
        Ok(n)
    }
}

mod gzip {
    //! Every member of a gzip file, then nothing but NUL padding.

    use super::*;
    use flate2::bufread::GzDecoder;

    pub(super) struct Members<R: BufRead> {
        state: State<R>,
        members: u64,
        name: String,
    }

    enum State<R: BufRead> {
        Member(Box<GzDecoder<R>>),
        Between(R),
        Done,
    }

    impl<R: BufRead> Members<R> {
        pub(super) fn new(reader: R, name: &str) -> Self {
            Self {
                state: State::Member(Box::new(GzDecoder::new(reader))),
                members: 1,
                name: name.to_string(),
            }
        }
    }

    impl<R: BufRead> Read for Members<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            loop {
                match &mut self.state {
                    State::Done => return Ok(0),
                    State::Member(decoder) => {
                        let n = decoder.read(buf)?;
                        if n > 0 || buf.is_empty() {
                            return Ok(n);
                        }
                        let State::Member(decoder) =
                            std::mem::replace(&mut self.state, State::Done)
                        else {
                            unreachable!()
                        };
                        self.state = State::Between(decoder.into_inner());
                    }
                    State::Between(reader) => {
                        let next = reader.fill_buf()?;
                        match next.first() {
                            None => self.state = State::Done,
                            Some(0x1f) => {
                                let State::Between(reader) =
                                    std::mem::replace(&mut self.state, State::Done)
                                else {
                                    unreachable!()
                                };
                                self.members += 1;
                                self.state = State::Member(Box::new(GzDecoder::new(reader)));
                            }
                            Some(_) if next.iter().all(|&b| b == 0) => {
                                let len = next.len();
                                reader.consume(len);
                            }
                            Some(_) => {
                                let (name, member) = (self.name.clone(), self.members);
                                return Err(
                                    DecompressError::TrailingGarbage { name, member }.into_io()
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

mod deb {
    //! The `ar` container of a `.deb`: `!<arch>\n`, then members with 60-byte headers, each
    //! padded to an even length. dpkg's order is `debian-binary`, `control.tar.*`,
    //! `data.tar.*`; optional members (signatures, `_`-prefixed) may appear around them.

    use super::*;

    const HEADER: usize = 60;

    struct Member {
        name: String,
        size: u64,
    }

    /// Reads the `!<arch>` magic every `.deb` starts with.
    fn read_ar_magic(reader: &mut impl Read, archive: &str) -> Result<(), DecompressError> {
        let mut magic = [0u8; 8];
        let got = read_full(reader, &mut magic, archive)?;
        if got < 8 || &magic != b"!<arch>\n" {
            let (name, reason) = (archive.to_string(), "missing `!<arch>` magic");
            return Err(DecompressError::DebBadMember {
                name,
                member: None,
                reason,
            });
        }
        Ok(())
    }

    /// Validates the archive up to its data member and returns a reader of that member; the
    /// rest of the archive is checked when the member has been read to its end.
    pub(super) fn open_data_member<'a>(
        mut reader: impl Read + Send + 'a,
        archive: &str,
    ) -> Result<impl Read + Send + 'a, DecompressError> {
        read_ar_magic(&mut reader, archive)?;
        let mut first = true;
        loop {
            let Some(member) = next_member(&mut reader, archive)? else {
                return Err(DecompressError::DebNoData {
                    name: archive.to_string(),
                });
            };
            if first && member.name != "debian-binary" {
                return Err(DecompressError::DebNotDebianBinary {
                    name: archive.to_string(),
                    member: member.name,
                });
            }
            first = false;
            if is_data(&member.name) {
                return Ok(DataMember {
                    reader,
                    archive: archive.to_string(),
                    member,
                    read: 0,
                    checked: false,
                });
            }
            skip(&mut reader, &member, archive)?;
        }
    }

    /// The `control.tar*` member, which dpkg writes before the data member.
    pub(super) fn open_control_member<'a>(
        mut reader: impl Read + Send + 'a,
        archive: &str,
    ) -> Result<impl Read + Send + 'a, DecompressError> {
        read_ar_magic(&mut reader, archive)?;
        while let Some(member) = next_member(&mut reader, archive)? {
            if member.name.starts_with("control.tar") {
                return Ok(reader.take(member.size));
            }
            if is_data(&member.name) {
                break;
            }
            skip(&mut reader, &member, archive)?;
        }
        Err(DecompressError::DebNoControl {
            name: archive.to_string(),
        })
    }

    fn is_data(name: &str) -> bool {
        name.starts_with("data.tar")
    }

    /// Fills `buf` as far as the stream allows; returns how much was read.
    fn read_full(
        reader: &mut impl Read,
        buf: &mut [u8],
        archive: &str,
    ) -> Result<usize, DecompressError> {
        let mut len = 0;
        while len < buf.len() {
            match reader.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(DecompressError::Read {
                        name: archive.to_string(),
                        source,
                    })
                }
            }
        }
        Ok(len)
    }

    fn next_member(
        reader: &mut impl Read,
        archive: &str,
    ) -> Result<Option<Member>, DecompressError> {
        let mut h = [0u8; HEADER];
        let bad = |member: Option<String>, reason| DecompressError::DebBadMember {
            name: archive.to_string(),
            member,
            reason,
        };
        match read_full(reader, &mut h, archive)? {
            0 => return Ok(None),
            HEADER => {}
            _ => return Err(bad(None, "the archive ends inside a member header")),
        }
        if &h[58..60] != b"`\n" {
            return Err(bad(None, "bad header terminator"));
        }
        let raw = String::from_utf8_lossy(&h[..16]);
        let trimmed = raw.trim_end_matches(' ');
        // GNU ar ends names with one `/`; any other `/` (or `..`) is not a dpkg member name.
        let name = trimmed.strip_suffix('/').unwrap_or(trimmed);
        if name.is_empty()
            || name.contains('/')
            || name == "."
            || name == ".."
            || name.contains('\0')
        {
            return Err(bad(
                Some(trimmed.to_string()),
                "member names must be plain file names",
            ));
        }
        let size_field = std::str::from_utf8(&h[48..58])
            .unwrap_or("")
            .trim_end_matches(' ');
        let size = match size_field.parse::<u64>() {
            Ok(size) if size_field.bytes().all(|b| b.is_ascii_digit()) => size,
            _ => {
                return Err(bad(
                    Some(name.to_string()),
                    "the size field is not a decimal number",
                ))
            }
        };
        Ok(Some(Member {
            name: name.to_string(),
            size,
        }))
    }

    /// Skips a member's data and its padding byte.
    fn skip(reader: &mut impl Read, member: &Member, archive: &str) -> Result<(), DecompressError> {
        let want = member.size + member.size % 2;
        let found = io::copy(&mut reader.take(want), &mut io::sink()).map_err(|source| {
            DecompressError::Read {
                name: archive.to_string(),
                source,
            }
        })?;
        if found < member.size {
            return Err(truncated(archive, member, found));
        }
        Ok(())
    }

    fn truncated(archive: &str, member: &Member, found: u64) -> DecompressError {
        DecompressError::DebMemberTruncated {
            name: archive.to_string(),
            member: member.name.clone(),
            expected: member.size,
            found,
        }
    }

    struct DataMember<R> {
        reader: R,
        archive: String,
        member: Member,
        read: u64,
        checked: bool,
    }

    impl<R: Read> DataMember<R> {
        /// After the data member: only non-data members, each complete, may follow.
        fn check_rest(&mut self) -> Result<(), DecompressError> {
            if self.member.size % 2 == 1 {
                let mut pad = [0u8; 1];
                read_full(&mut self.reader, &mut pad, &self.archive)?;
            }
            while let Some(member) = next_member(&mut self.reader, &self.archive)? {
                if is_data(&member.name) {
                    return Err(DecompressError::DebTwoData {
                        name: self.archive.clone(),
                        first: self.member.name.clone(),
                        second: member.name,
                    });
                }
                skip(&mut self.reader, &member, &self.archive)?;
            }
            Ok(())
        }
    }

    impl<R: Read> Read for DataMember<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let left = self.member.size - self.read;
            if left == 0 {
                if !self.checked {
                    self.checked = true;
                    self.check_rest().map_err(DecompressError::into_io)?;
                }
                return Ok(0);
            }
            let max = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = self.reader.read(&mut buf[..max])?;
            if n == 0 && max > 0 {
                return Err(truncated(&self.archive, &self.member, self.read).into_io());
            }
            self.read += n as u64;
            Ok(n)
        }
    }
}

#[cfg(test)]
#[path = "decompress_tests.rs"]
mod tests;
