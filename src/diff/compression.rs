//! What a compressed layer's header says about how it was made.
//!
//! Two layers with the same diff_id but different blob digests differ only in compression.
//! The gzip header (RFC 1952) usually explains why: an mtime (`gzip` without `-n` writes the
//! input's), an OS byte (3 for Unix from GNU gzip and zlib, 255 from Go and Rust encoders), an
//! embedded file name, and XFL, the only trace of the level (2: slowest/-9, 4: fastest/-1).
//! When the headers agree, the deflate streams themselves differ: another encoder or level.

use serde::Serialize;

/// How many leading bytes of a blob are kept to read its header.
pub const HEADER_PREFIX: usize = 1024;

/// The header facts of one layer blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "format", rename_all = "camelCase")]
pub enum CompressionFacts {
    /// An uncompressed tar.
    #[serde(rename = "none")]
    Uncompressed,
    #[serde(rename = "gzip")]
    Gzip(GzipHeader),
    #[serde(rename = "zstd")]
    Zstd(ZstdFrame),
    /// Something else (xz, bzip2): no header facts are read.
    #[serde(rename = "other")]
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GzipHeader {
    /// MTIME, seconds since the epoch (0: none recorded).
    pub mtime: u32,
    /// The OS byte (3 Unix, 255 unknown, 0 FAT …).
    pub os: u8,
    /// XFL: 2 for maximum compression, 4 for fastest, 0 otherwise.
    pub xfl: u8,
    /// The level XFL suggests.
    pub level_hint: &'static str,
    /// FNAME, when present.
    pub name: Option<String>,
    /// FCOMMENT, when present.
    pub comment: Option<String>,
    /// FEXTRA present (pigz --rsyncable and some tools add fields).
    pub extra: bool,
    /// FHCRC present.
    pub header_crc: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZstdFrame {
    /// The window size the first frame asks for, if it says.
    pub window_size: Option<u64>,
    /// The content-size field of the first frame, if present.
    pub content_size: Option<u64>,
    pub checksum: bool,
}

impl CompressionFacts {
    /// Reads the facts from the first bytes of a blob.
    pub fn parse(prefix: &[u8]) -> Self {
        if prefix.starts_with(&[0x1f, 0x8b]) {
            return parse_gzip(prefix).map_or(CompressionFacts::Other, CompressionFacts::Gzip);
        }
        if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            return CompressionFacts::Zstd(parse_zstd(prefix));
        }
        if prefix.len() >= 262 && &prefix[257..262] == b"ustar" {
            return CompressionFacts::Uncompressed;
        }
        if prefix.len() >= 512 && prefix[..512].iter().all(|&b| b == 0) {
            return CompressionFacts::Uncompressed;
        }
        CompressionFacts::Other
    }

    pub fn format_name(&self) -> &'static str {
        match self {
            CompressionFacts::Uncompressed => "none",
            CompressionFacts::Gzip(_) => "gzip",
            CompressionFacts::Zstd(_) => "zstd",
            CompressionFacts::Other => "other",
        }
    }

    /// The facts that differ between `self` and `other`, one phrase each ("gzip header mtime
    /// 0 vs 1700000000"); empty when the headers agree.
    pub fn differences(&self, other: &Self) -> Vec<String> {
        match (self, other) {
            (CompressionFacts::Gzip(a), CompressionFacts::Gzip(b)) => {
                let mut out = Vec::new();
                if a.mtime != b.mtime {
                    out.push(format!("gzip header mtime {} vs {}", a.mtime, b.mtime));
                }
                if a.os != b.os {
                    out.push(format!(
                        "gzip OS byte {} ({}) vs {} ({})",
                        a.os,
                        os_name(a.os),
                        b.os,
                        os_name(b.os)
                    ));
                }
                if a.xfl != b.xfl {
                    out.push(format!(
                        "gzip XFL {} ({}) vs {} ({})",
                        a.xfl, a.level_hint, b.xfl, b.level_hint
                    ));
                }
                if a.name != b.name {
                    out.push(format!(
                        "gzip file name {:?} vs {:?}",
                        a.name.as_deref().unwrap_or(""),
                        b.name.as_deref().unwrap_or("")
                    ));
                }
                if a.comment != b.comment || a.extra != b.extra || a.header_crc != b.header_crc {
                    out.push("gzip optional header fields differ".to_string());
                }
                out
            }
            (CompressionFacts::Zstd(a), CompressionFacts::Zstd(b)) if a != b => {
                vec![format!(
                    "zstd frame parameters differ (window {:?} vs {:?}, checksum {} vs {})",
                    a.window_size, b.window_size, a.checksum, b.checksum
                )]
            }
            (a, b) if a.format_name() != b.format_name() => {
                vec![format!(
                    "compression {} vs {}",
                    a.format_name(),
                    b.format_name()
                )]
            }
            _ => Vec::new(),
        }
    }
}

pub fn os_name(os: u8) -> &'static str {
    match os {
        0 => "FAT",
        3 => "Unix",
        7 => "Macintosh",
        11 => "NTFS",
        255 => "unknown",
        _ => "other",
    }
}

fn parse_gzip(p: &[u8]) -> Option<GzipHeader> {
    if p.len() < 10 || p[2] != 8 {
        return None;
    }
    let flags = p[3];
    let mtime = u32::from_le_bytes([p[4], p[5], p[6], p[7]]);
    let xfl = p[8];
    let os = p[9];
    let mut pos = 10usize;
    let extra = flags & 0x04 != 0;
    if extra {
        let len = usize::from(u16::from_le_bytes([*p.get(pos)?, *p.get(pos + 1)?]));
        pos += 2 + len;
    }
    let mut zstring = |present: bool| -> Option<String> {
        if !present {
            return None;
        }
        let rest = p.get(pos..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        pos += end + 1;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    };
    let name = zstring(flags & 0x08 != 0);
    let comment = zstring(flags & 0x10 != 0);
    Some(GzipHeader {
        mtime,
        os,
        xfl,
        level_hint: match xfl {
            2 => "maximum compression (-9)",
            4 => "fastest (-1)",
            _ => "default or unspecified level",
        },
        name,
        comment,
        extra,
        header_crc: flags & 0x02 != 0,
    })
}

fn parse_zstd(p: &[u8]) -> ZstdFrame {
    let Some(&descriptor) = p.get(4) else {
        return ZstdFrame {
            window_size: None,
            content_size: None,
            checksum: false,
        };
    };
    let single_segment = descriptor & 0x20 != 0;
    let checksum = descriptor & 0x04 != 0;
    let dict_len = [0usize, 1, 2, 4][usize::from(descriptor & 3)];
    let fcs_code = usize::from(descriptor >> 6);
    let fcs_len = match (fcs_code, single_segment) {
        (0, true) => 1,
        (0, false) => 0,
        (c, _) => [0usize, 2, 4, 8][c],
    };
    let mut pos = 5;
    let mut window_size = None;
    if !single_segment {
        if let Some(&wd) = p.get(5) {
            let log = 10 + u64::from(wd >> 3);
            let base = 1u64 << log;
            window_size = Some(base + (base / 8) * u64::from(wd & 7));
        }
        pos += 1;
    }
    pos += dict_len;
    let content_size = p.get(pos..pos + fcs_len).map(|bytes| {
        let mut v = 0u64;
        for (i, &b) in bytes.iter().enumerate() {
            v |= u64::from(b) << (8 * i);
        }
        if fcs_len == 2 {
            v + 256
        } else {
            v
        }
    });
    let content_size = if fcs_len == 0 { None } else { content_size };
    if single_segment {
        window_size = content_size;
    }
    ZstdFrame {
        window_size,
        content_size,
        checksum,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip_with(level: flate2::Compression, mtime: u32, name: Option<&[u8]>) -> Vec<u8> {
        use std::io::Write;
        let mut b = flate2::GzBuilder::new().mtime(mtime);
        if let Some(n) = name {
            b = b.filename(n);
        }
        let mut enc = b.write(Vec::new(), level);
        enc.write_all(b"hello").unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gzip_header_facts_are_read() {
        let fast = gzip_with(flate2::Compression::fast(), 0, None);
        let best = gzip_with(
            flate2::Compression::best(),
            1_700_000_000,
            Some(b"layer.tar"),
        );
        let (CompressionFacts::Gzip(f), CompressionFacts::Gzip(b)) = (
            CompressionFacts::parse(&fast),
            CompressionFacts::parse(&best),
        ) else {
            panic!("both are gzip");
        };
        assert_eq!((f.mtime, f.xfl, f.name.as_deref()), (0, 4, None));
        assert_eq!(
            (b.mtime, b.xfl, b.name.as_deref()),
            (1_700_000_000, 2, Some("layer.tar"))
        );
        let diffs = CompressionFacts::Gzip(f).differences(&CompressionFacts::Gzip(b));
        assert_eq!(diffs.len(), 3, "{diffs:?}");
        assert!(diffs[0].contains("mtime 0 vs 1700000000"));
        assert!(diffs[1].contains("XFL 4"));
        assert!(diffs[2].contains("layer.tar"));
    }

    #[test]
    fn other_formats_are_recognized() {
        let zstd = zstd::encode_all(&b"hello"[..], 3).unwrap();
        match CompressionFacts::parse(&zstd) {
            CompressionFacts::Zstd(z) => assert!(z.window_size.is_some(), "{z:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            CompressionFacts::parse(&[0u8; 1024]),
            CompressionFacts::Uncompressed
        );
        assert_eq!(CompressionFacts::parse(b"BZh9"), CompressionFacts::Other);
        assert_eq!(
            CompressionFacts::parse(&zstd).differences(&CompressionFacts::Gzip(
                parse_gzip(&gzip_with(flate2::Compression::default(), 0, None)).unwrap()
            )),
            vec!["compression zstd vs gzip".to_string()]
        );
    }
}
