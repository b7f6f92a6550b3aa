use std::time::{Duration, Instant};

use super::*;
use crate::layer::testtar::{header, set_checksum, Lazy, Tar, BLOCK};

fn all(bytes: &[u8]) -> Result<Vec<(TarEntry, Vec<u8>)>, ReadError> {
    all_with(bytes, ReadLimits::default())
}

fn all_with(bytes: &[u8], limits: ReadLimits) -> Result<Vec<(TarEntry, Vec<u8>)>, ReadError> {
    let mut r = TarReader::new(bytes, limits);
    let mut out = Vec::new();
    while let Some(e) = r.next_entry()? {
        let mut data = Vec::new();
        r.read_data(&mut data)?;
        out.push((e, data));
    }
    Ok(out)
}

#[test]
fn reads_every_entry_kind() {
    let mut t = Tar::new();
    t.dir("d/", 0o755)
        .file_mode("d/f", b"hello", 0o4755)
        .symlink("s", "/etc/passwd")
        .hardlink("h", "d/f")
        .device("c", b'3', 1, 3)
        .device("b", b'4', 8, 1)
        .raw(header(b"p", b'6', 0, 0o600, b""), b"")
        .raw(header(b"v7dir/", 0, 0, 0o755, b""), b"");
    let got = all(&t.finish()).unwrap();
    let kinds: Vec<_> = got.iter().map(|(e, _)| (e.path.as_str(), e.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("d/", TarKind::Dir),
            ("d/f", TarKind::File),
            ("s", TarKind::Symlink),
            ("h", TarKind::Hardlink),
            ("c", TarKind::CharDevice),
            ("b", TarKind::BlockDevice),
            ("p", TarKind::Fifo),
            ("v7dir/", TarKind::Dir),
        ]
    );
    assert_eq!(got[1].1, b"hello");
    assert_eq!(got[1].0.mode, 0o4755);
    assert_eq!(got[1].0.mtime, 1000);
    assert_eq!(got[2].0.link_name, "/etc/passwd");
    assert_eq!((got[4].0.dev_major, got[4].0.dev_minor), (1, 3));
    assert_eq!((got[5].0.dev_major, got[5].0.dev_minor), (8, 1));
    assert_eq!(got[1].0.offset, 512);
}

#[test]
fn ustar_prefix_is_joined() {
    let mut h = header(b"name", b'0', 0, 0o644, b"");
    h[345..351].copy_from_slice(b"a/b/cc");
    set_checksum(&mut h);
    let got = all(&Tar::new().raw(h, b"").finish()).unwrap();
    assert_eq!(got[0].0.path, "a/b/cc/name");
}

#[test]
fn gnu_long_name_and_link() {
    let long = "x/".repeat(100) + "file";
    let target = "y/".repeat(80) + "t";
    let mut t = Tar::new();
    t.gnu_long(b'L', long.as_bytes())
        .gnu_long(b'K', target.as_bytes())
        .symlink("short", "short");
    let got = all(&t.finish()).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.path, long);
    assert_eq!(got[0].0.link_name, target);
    assert_eq!(got[0].0.offset, 0, "offset is the first extension header");
}

#[test]
fn base256_numeric_fields() {
    let mut h = header(b"big", b'0', 0, 0o644, b"");
    // uid 2^40, size 3, mtime -1 (all base-256).
    h[108..116].copy_from_slice(&[0x80, 0, 1, 0, 0, 0, 0, 0]);
    h[124..136].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]);
    h[136..148].copy_from_slice(&[0xff; 12]);
    set_checksum(&mut h);
    let got = all(&Tar::new().raw(h, b"abc").finish()).unwrap();
    assert_eq!(got[0].0.uid, 1 << 40);
    assert_eq!(got[0].0.size, 3);
    assert_eq!(got[0].0.mtime, -1);
    assert_eq!(got[0].1, b"abc");
}

#[test]
fn pax_records_override_the_header() {
    let long = "p/".repeat(120) + "f";
    let mut t = Tar::new();
    t.pax(b'g', &[("uid", b"7"), ("mtime", b"5")])
        .pax(
            b'x',
            &[
                ("path", long.as_bytes()),
                ("gid", b"9"),
                ("mtime", b"1700000000.999"),
                ("size", b"2"),
                ("SCHILY.xattr.security.capability", b"\x01\x00\x00\x02"),
                ("comment", b"ignored"),
            ],
        )
        .raw(header(b"short", b'0', 2, 0o644, b""), b"hi")
        .pax(b'x', &[("linkpath", b"target-from-pax")])
        .symlink("l", "t");
    let got = all(&t.finish()).unwrap();
    let e = &got[0].0;
    assert_eq!(e.path, long);
    assert_eq!((e.uid, e.gid, e.mtime, e.size), (7, 9, 1_700_000_000, 2));
    assert_eq!(e.xattrs["security.capability"], b"\x01\x00\x00\x02");
    assert_eq!(got[0].1, b"hi");
    // The global header still applies; the per-entry one does not leak.
    assert_eq!((got[1].0.uid, got[1].0.mtime), (7, 5));
    assert_eq!(got[1].0.link_name, "target-from-pax");
    assert_eq!(got[1].0.path, "l");
}

#[test]
fn pax_time_parsing_table() {
    for (input, want) in [
        ("0", Some(0)),
        ("12", Some(12)),
        ("12.5", Some(12)),
        ("-1.5", Some(-2)),
        ("-1.0", Some(-1)),
        ("x", None),
        ("1.x", None),
    ] {
        assert_eq!(parse_pax_time(input.as_bytes()), want, "{input}");
    }
}

#[test]
fn numeric_field_table() {
    for (field, want) in [
        (&b"0000644\0"[..], Some(0o644)),
        (b"    644 ", Some(0o644)),
        (b"\0\0\0\0\0\0\0\0", Some(0)),
        (b"0000899\0", None),
        (&[0x80, 0, 0, 0, 0, 0, 1, 0], Some(256)),
    ] {
        assert_eq!(parse_number(field), want, "{field:?}");
    }
}

#[test]
fn unread_data_is_skipped_and_data_reader_reads() {
    let mut t = Tar::new();
    t.file("a", &[1u8; 1000]).file("b", b"second");
    let bytes = t.finish();
    let mut r = TarReader::new(&bytes[..], ReadLimits::default());
    assert_eq!(r.next_entry().unwrap().unwrap().path, "a");
    let b = r.next_entry().unwrap().unwrap();
    assert_eq!(b.path, "b");
    let mut s = String::new();
    std::io::Read::read_to_string(&mut r.data_reader(), &mut s).unwrap();
    assert_eq!(s, "second");
    assert!(r.next_entry().unwrap().is_none());
    assert!(r.next_entry().unwrap().is_none());
}

#[test]
fn case14_trailing_nuls_are_accepted() {
    let mut t = Tar::new();
    t.file("a", b"x");
    let mut many = t.finish();
    many.resize(many.len() + 20 * BLOCK, 0);
    assert_eq!(all(&many).unwrap().len(), 1);
    // A single NUL block with no second one is accepted too.
    let mut one = t.out.clone();
    one.resize(one.len() + BLOCK, 0);
    assert_eq!(all(&one).unwrap().len(), 1);
    // An empty archive: just the end marker.
    assert!(all(&[0u8; 1024]).unwrap().is_empty());
}

/// Regression (issue 12.3): umoci writes layers without the two NUL blocks; GNU tar, Go and
/// Python read them, so kiln does, and says the marker was missing.
#[test]
fn case14_missing_end_marker_is_accepted_at_a_header_boundary() {
    let mut t = Tar::new();
    t.file("a", b"x").file("b", b"yy");
    let mut r = TarReader::new(&t.out[..], ReadLimits::default());
    let mut names = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        names.push(e.path);
    }
    assert_eq!(names, ["a", "b"]);
    assert_eq!(r.end(), Some(ArchiveEnd::NoMarker));
    assert!(
        all(&[]).unwrap().is_empty(),
        "an empty stream is an empty archive"
    );
    // Cut right after the last member's data, inside its padding (umoci's `insert`).
    let unpadded = &t.out[..t.out.len() - (BLOCK - 2)];
    let mut r = TarReader::new(unpadded, ReadLimits::default());
    let mut data = Vec::new();
    while r.next_entry().unwrap().is_some() {
        r.read_data(&mut data).unwrap();
    }
    assert_eq!(data, b"xyy");
    assert_eq!(r.end(), Some(ArchiveEnd::Unpadded));
    // One byte of data missing: truncated.
    let err = all(&t.out[..t.out.len() - (BLOCK - 1)]).unwrap_err();
    assert!(
        matches!(err, ReadError::Truncated { what: "data", .. }),
        "{err}"
    );
    let ended = t.finish();
    let mut r = TarReader::new(&ended[..], ReadLimits::default());
    while r.next_entry().unwrap().is_some() {}
    assert_eq!(r.end(), Some(ArchiveEnd::Marker));

    // Cut after an extension header, before the entry it belongs to: truncated.
    let mut pax = Tar::new();
    pax.pax(b'x', &[("path", b"long/name".as_slice())]);
    let err = all(&pax.out).unwrap_err();
    assert!(
        matches!(
            err,
            ReadError::Truncated {
                what: "the entry after an extension header",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn case14_truncated_header() {
    let mut t = Tar::new();
    t.file("a", b"x").file("b", b"y");
    let bytes = &t.out[..1024 + 100];
    let err = all(bytes).unwrap_err();
    assert!(
        matches!(
            err,
            ReadError::Truncated {
                what: "a header",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn case14_short_data() {
    let mut t = Tar::new();
    t.file("victim", &[7u8; 3000]);
    let bytes = &t.out[..512 + 1000];
    let err = all(bytes).unwrap_err();
    match &err {
        ReadError::Truncated { path, offset, what } => {
            assert_eq!((path.as_str(), *offset, *what), ("victim", 1512, "data"));
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("victim"));
    // Skipping instead of reading detects it as well.
    let mut r = TarReader::new(bytes, ReadLimits::default());
    r.next_entry().unwrap();
    assert!(matches!(r.next_entry(), Err(ReadError::Truncated { .. })));
    // Data present but its padding cut: the archive ends there (issue 12.3, umoci's insert).
    let mut t = Tar::new();
    t.file("p", b"abc");
    let read = all(&t.out[..512 + 3]).unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].1, b"abc");
}

#[test]
fn case14_bad_header_checksum() {
    let mut t = Tar::new();
    t.file("good", b"1");
    let mut h = header(b"evil", b'0', 0, 0o644, b"");
    h[0] = b'E'; // changed after the checksum was computed
    t.raw(h, b"");
    let err = all(&t.finish()).unwrap_err();
    match &err {
        ReadError::BadChecksum { path, offset, .. } => {
            assert_eq!((path.as_str(), *offset), ("Evil", 1024))
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("byte 1024"), "{err}");
}

#[test]
fn case12_gnu_long_name_of_1_gib_fails_fast() {
    let len = 1u64 << 30;
    let mut src = Lazy::gnu_long_name(len);
    let start = Instant::now();
    let mut r = TarReader::new(&mut src, ReadLimits::default());
    let err = r.next_entry().unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(
        matches!(err, ReadError::ExtensionTooLarge { size, limit: MAX_GNU_LONG_NAME, .. } if size == len),
        "{err}"
    );
    assert!(src.pos <= 64 * 1024, "read {} bytes of the name", src.pos);
}

#[test]
fn case12_pax_header_of_100_mb_fails_fast() {
    let len = 100 * 1024 * 1024;
    let mut src = Lazy::pax(len);
    let err = TarReader::new(&mut src, ReadLimits::default())
        .next_entry()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ReadError::ExtensionTooLarge {
                limit: MAX_PAX_HEADER,
                ..
            }
        ),
        "{err}"
    );
    assert!(src.pos <= 64 * 1024);
    // A small header whose record claims 100 MB.
    let data = b"104857600 path=x\n";
    let mut t = Tar::new();
    t.raw(header(b"pax", b'x', data.len() as u64, 0o644, b""), data)
        .file("f", b"");
    let err = all(&t.finish()).unwrap_err();
    assert!(matches!(err, ReadError::BadPax { .. }), "{err}");
}

#[test]
fn case12_path_of_5000_bytes_is_refused() {
    let long = "a".repeat(5000);
    let mut t = Tar::new();
    t.gnu_long(b'L', long.as_bytes()).file("x", b"");
    let err = all(&t.finish()).unwrap_err();
    assert!(
        matches!(
            err,
            ReadError::PathTooLong {
                len: 5000,
                limit: 4096,
                ..
            }
        ),
        "{err}"
    );
    let mut t = Tar::new();
    t.pax(b'x', &[("linkpath", long.as_bytes())])
        .symlink("s", "t");
    let err = all(&t.finish()).unwrap_err();
    assert!(
        matches!(
            err,
            ReadError::PathTooLong {
                field: "link name",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn entry_count_is_capped() {
    let mut t = Tar::new();
    for i in 0..5 {
        t.file(&format!("f{i}"), b"");
    }
    let limits = ReadLimits {
        max_entries: 3,
        ..ReadLimits::default()
    };
    let err = all_with(&t.finish(), limits).unwrap_err();
    assert!(
        matches!(
            err,
            ReadError::TooManyEntries {
                limit: 3,
                offset: 1536
            }
        ),
        "{err}"
    );
}

#[test]
fn extension_header_chains_are_capped() {
    let mut t = Tar::new();
    for _ in 0..=MAX_EXTENSION_HEADERS {
        t.pax(b'x', &[("comment", b"x")]);
    }
    t.file("f", b"");
    assert!(matches!(
        all(&t.finish()),
        Err(ReadError::TooManyExtensions { .. })
    ));
}

#[test]
fn bad_headers_table() {
    let sparse = header(b"sparse", b'S', 0, 0o644, b"");
    let mut bad_mode = header(b"m", b'0', 0, 0o644, b"");
    bad_mode[100..108].copy_from_slice(b"0000x44\0");
    set_checksum(&mut bad_mode);
    let mut not_utf8 = header(b"n\xff", b'0', 0, 0o644, b"");
    set_checksum(&mut not_utf8);
    for (h, what) in [
        (sparse, "unsupported"),
        (bad_mode, "not a valid number"),
        (not_utf8, "UTF-8"),
    ] {
        let err = all(&Tar::new().raw(h, b"").finish()).unwrap_err();
        assert!(err.to_string().contains(what), "{err}");
    }
}

#[test]
fn pax_path_with_nul_is_refused() {
    let mut t = Tar::new();
    t.pax(b'x', &[("path", b"a\0b")]).file("f", b"");
    assert!(matches!(all(&t.finish()), Err(ReadError::BadPax { .. })));
}

#[test]
fn reads_gnu_tar_output_in_every_format() {
    for (format, long_links) in [
        ("gnu", true),
        ("oldgnu", true),
        ("pax", true),
        ("ustar", false),
    ] {
        let fx = crate::layer::testtar::interop_fixture(long_links);
        let fmt = format!("--format={format}");
        let owner: &[&str] = if format == "ustar" {
            &["--owner=0", "--group=0"]
        } else {
            &["--owner=3000000", "--group=7"]
        };
        let mut args = vec![fmt.as_str(), "--mtime=@1700000000"];
        args.extend_from_slice(owner);
        let bytes = crate::layer::testtar::gnu_tar(fx.path(), &args);
        let got = all(&bytes).unwrap_or_else(|e| panic!("{format}: {e}"));
        let by_path: BTreeMap<&str, &(TarEntry, Vec<u8>)> = got
            .iter()
            .map(|x| (x.0.path.trim_start_matches("./").trim_end_matches('/'), x))
            .collect();
        let deep = format!(
            "{}/{}/leaf-with-a-rather-long-name.txt",
            "dir-".repeat(20),
            "x".repeat(60)
        );
        assert_eq!(by_path[deep.as_str()].1, b"deep", "{format}");
        assert_eq!(by_path["big"].1.len(), 70_000, "{format}");
        assert_eq!(by_path["big-link"].0.kind, TarKind::Hardlink, "{format}");
        assert_eq!(
            by_path["big-link"].0.link_name.trim_start_matches("./"),
            "big",
            "{format}"
        );
        assert_eq!(by_path["exec"].0.mode, 0o4751, "{format}");
        assert_eq!(by_path["empty"].0.mode, 0o1777, "{format}");
        assert_eq!(by_path["empty"].0.kind, TarKind::Dir, "{format}");
        assert_eq!(by_path["rel-link"].0.link_name, "exec", "{format}");
        assert_eq!(by_path["exec"].0.mtime, 1_700_000_000, "{format}");
        if long_links {
            assert_eq!(
                by_path["long-link"].0.link_name,
                format!("/{}/{}", "dir-".repeat(20), "x".repeat(60))
            );
            assert_eq!(
                (by_path["exec"].0.uid, by_path["exec"].0.gid),
                (3_000_000, 7),
                "{format}"
            );
        }
    }
}

#[test]
fn mutated_headers_never_panic() {
    let mut t = Tar::new();
    t.pax(b'x', &[("path", b"pax/name"), ("size", b"3")])
        .raw(header(b"f", b'0', 3, 0o644, b""), b"abc")
        .gnu_long(b'L', b"long/name")
        .symlink("s", "t")
        .file("g", &[1u8; 600]);
    let base = t.finish();
    let headers: Vec<usize> = (0..base.len() / BLOCK)
        .map(|b| b * BLOCK)
        .filter(|&o| {
            base[o..o + BLOCK].iter().any(|&b| b != 0) && base[o + 257..o + 262] == *b"ustar"
        })
        .collect();
    assert_eq!(headers.len(), 5);
    for &h in &headers {
        for i in (0..BLOCK).filter(|i| !(148..156).contains(i)) {
            for v in [0u8, 0xff, 0x80, b'7', b' ', b'/'] {
                let mut bytes = base.clone();
                bytes[h + i] = v;
                let mut block: [u8; BLOCK] = bytes[h..h + BLOCK].try_into().unwrap();
                set_checksum(&mut block);
                bytes[h..h + BLOCK].copy_from_slice(&block);
                let _ = all(&bytes);
            }
        }
    }
    // Mutated PAX and GNU data blocks.
    for (i, v) in (BLOCK..2 * BLOCK).flat_map(|i| [(i, b'9'), (i, b'\n'), (i, 0)]) {
        let mut bytes = base.clone();
        bytes[i] = v;
        let _ = all(&bytes);
    }
}

#[test]
fn negative_and_huge_sizes_are_refused() {
    let mut neg = header(b"neg", b'0', 0, 0o644, b"");
    neg[124..136].copy_from_slice(&[0xff; 12]);
    set_checksum(&mut neg);
    let mut huge = header(b"huge", b'0', 0, 0o644, b"");
    huge[124..136].copy_from_slice(&[
        0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ]);
    set_checksum(&mut huge);
    for h in [neg, huge] {
        let err = all(&Tar::new().raw(h, b"").finish()).unwrap_err();
        assert!(
            matches!(err, ReadError::BadNumber { field: "size", .. }),
            "{err}"
        );
    }
    let mut t = Tar::new();
    t.pax(b'x', &[("size", b"18446744073709551615")])
        .file("f", b"");
    assert!(matches!(
        all(&t.finish()),
        Err(ReadError::BadNumber { field: "size", .. })
    ));
}

#[test]
fn reports_header_format_and_owner_names() {
    let mut named = header(b"named", b'0', 0, 0o644, b"");
    named[265..269].copy_from_slice(b"root");
    named[297..302].copy_from_slice(b"wheel");
    set_checksum(&mut named);
    let mut gnu = header(b"gnu", b'0', 0, 0o644, b"");
    gnu[257..265].copy_from_slice(b"ustar  \0");
    set_checksum(&mut gnu);
    let mut t = Tar::new();
    t.raw(named, b"")
        .raw(gnu, b"")
        .pax(b'x', &[("uname", b"alice")])
        .file("paxed", b"")
        .gnu_long(b'L', b"long-name")
        .file("ignored", b"")
        .raw(header(b"plain", b'0', 0, 0o644, b""), b"");
    let got = all(&t.finish()).unwrap();
    let facts: Vec<_> = got
        .iter()
        .map(|(e, _)| {
            (
                e.path.as_str(),
                e.format,
                e.uname.as_str(),
                e.gname.as_str(),
            )
        })
        .collect();
    assert_eq!(
        facts,
        [
            ("named", TarFormat::Ustar, "root", "wheel"),
            ("gnu", TarFormat::Gnu, "", ""),
            ("paxed", TarFormat::Pax, "alice", ""),
            ("long-name", TarFormat::Gnu, "", ""),
            ("plain", TarFormat::Ustar, "", ""),
        ]
    );
}

/// Issue 11.4: one global header's xattr repeated on every later entry made readers hold
/// gigabytes. Values, entries, globals and the archive's total are capped, with errors that
/// name the entry.
#[test]
fn pax_metadata_is_capped() {
    let big = vec![b'v'; MAX_XATTR_VALUE + 1];
    let mut t = Tar::new();
    t.pax(b'x', &[("SCHILY.xattr.user.big", &big)])
        .file("f", b"");
    let err = all(&t.finish()).unwrap_err();
    assert!(
        matches!(&err, ReadError::XattrTooLarge { path, name, .. } if path == "f" && name == "user.big"),
        "{err}"
    );

    // Within the value cap, but too many on one entry.
    let v = vec![b'v'; MAX_XATTR_VALUE];
    let mut t = Tar::new();
    t.pax(
        b'x',
        &[
            ("SCHILY.xattr.user.a", &v),
            ("SCHILY.xattr.user.b", &v),
            ("SCHILY.xattr.user.c", &v),
        ],
    )
    .file("g", b"");
    let err = all(&t.finish()).unwrap_err();
    assert!(
        matches!(&err, ReadError::EntryXattrsTooLarge { path, .. } if path == "g"),
        "{err}"
    );

    // Global records held at once.
    let half = vec![b'v'; MAX_PAX_GLOBALS / 2 + 1];
    let mut t = Tar::new();
    t.pax(b'g', &[("comment", &half)])
        .file("a", b"")
        .pax(
            b'g',
            &[("SCHILY.xattr.user.x", &half[..100]), ("other", &half)],
        )
        .file("b", b"");
    let err = all(&t.finish()).unwrap_err();
    assert!(matches!(err, ReadError::GlobalPaxTooLarge { .. }), "{err}");

    // A global path would name every later entry the same.
    let mut t = Tar::new();
    t.pax(b'g', &[("path", b"same")]).file("a", b"");
    let err = all(&t.finish()).unwrap_err();
    assert!(err.to_string().contains("`path` record"), "{err}");

    // A global xattr is applied to every later entry, and counted on each one.
    let v = vec![b'c'; 40_000];
    let mut t = Tar::new();
    t.pax(b'g', &[("SCHILY.xattr.security.capability", &v)]);
    for i in 0..10 {
        t.file(&format!("f{i}"), b"");
    }
    let bytes = t.finish();
    let entries = all(&bytes).unwrap();
    assert!(entries
        .iter()
        .all(|(e, _)| e.xattrs.get("security.capability") == Some(&v)));
    let limits = ReadLimits {
        max_archive_xattrs: 200_000,
        ..ReadLimits::default()
    };
    let err = all_with(&bytes, limits).unwrap_err();
    assert!(
        matches!(&err, ReadError::ArchiveXattrsTooLarge { path, .. } if path == "f4"),
        "{err}"
    );
    // A per-entry header overrides a global record of the same name.
    let mut t = Tar::new();
    t.pax(b'g', &[("SCHILY.xattr.user.k", b"global"), ("uname", b"g")])
        .pax(b'x', &[("SCHILY.xattr.user.k", b"own")])
        .file("a", b"")
        .file("b", b"");
    let entries = all(&t.finish()).unwrap();
    assert_eq!(entries[0].0.xattrs["user.k"], b"own");
    assert_eq!(entries[1].0.xattrs["user.k"], b"global");
    assert_eq!(entries[1].0.uname, "g");
}

/// Issue 11.9: a `0` member named `d/` with data is a regular file whose data is skipped, as
/// Go's archive/tar, Python and busybox read it; its data is never parsed as headers. An old
/// `\0` member named `d/` is a directory without data (Go, Python).
#[test]
fn regular_member_with_a_trailing_slash_keeps_the_stream_in_sync() {
    let mut inner = Tar::new();
    inner.file("evil", b"EVIL!");
    let data = inner.out.clone();
    assert_eq!(data.len(), 1024);
    for typeflag in [b'0', b'7'] {
        let mut t = Tar::new();
        t.raw(header(b"d/", typeflag, 1024, 0o755, b""), &data)
            .file("after", b"abc");
        let entries = all(&t.finish()).unwrap();
        let seen: Vec<(&str, TarKind, usize)> = entries
            .iter()
            .map(|(e, d)| (e.path.as_str(), e.kind, d.len()))
            .collect();
        assert_eq!(
            seen,
            [("d/", TarKind::File, 1024), ("after", TarKind::File, 3)],
            "typeflag {}",
            typeflag as char
        );
    }
    let mut t = Tar::new();
    t.raw(header(b"d/", 0, 0, 0o755, b""), b"")
        .file("after", b"abc");
    let entries = all(&t.finish()).unwrap();
    assert_eq!(entries[0].0.kind, TarKind::Dir);
    assert_eq!(entries[1].0.path, "after");
}

/// Issue 11.9: what follows the end-of-archive marker is read to the end by `drain`, so a
/// decompressor's end-of-stream checks run.
#[test]
fn drain_reads_to_the_end_and_reports_its_errors() {
    struct FailAtEnd<'a>(&'a [u8]);
    impl Read for FailAtEnd<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "bad crc"));
            }
            let n = self.0.len().min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let mut t = Tar::new();
    t.file("a", b"x");
    let mut bytes = t.finish();
    bytes.extend_from_slice(&[0u8; 4096]);
    let mut r = TarReader::new(FailAtEnd(&bytes), ReadLimits::default());
    while r.next_entry().unwrap().is_some() {}
    let err = r.drain().unwrap_err();
    assert!(matches!(err, ReadError::Io { .. }), "{err}");
    assert_eq!(r.offset(), bytes.len() as u64);
}
