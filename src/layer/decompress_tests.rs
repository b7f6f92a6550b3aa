use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::layer::compress::{compress, Compression};
use crate::layer::tree::{Content, Entry, EntryKind, FileTree, Metadata};
use crate::layer::write::tests::require_tool;
use crate::layer::write::write_tar;

fn sample_tar() -> Vec<u8> {
    let mut tree = FileTree::default();
    tree.entries.insert(
        "etc".into(),
        Entry {
            kind: EntryKind::Dir,
            meta: Metadata::new(0o755, 0, 0, 0),
        },
    );
    let data: Vec<u8> = (0..200_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    tree.entries.insert(
        "etc/data".into(),
        Entry {
            kind: EntryKind::File(Content::Inline(data.into())),
            meta: Metadata::new(0o644, 0, 0, 0),
        },
    );
    let mut out = Vec::new();
    write_tar(&tree, 0, &mut out).unwrap();
    out
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    compress(data, &mut out, Compression::Gzip { level: 1 }, 1).unwrap();
    out
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 1);
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn bz(data: &[u8]) -> Vec<u8> {
    let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn zst(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

fn read_all(data: Vec<u8>, limits: &Limits) -> Result<Vec<u8>, DecompressError> {
    let mut reader = open_archive_with_limits(io::Cursor::new(data), "test.archive", limits)?;
    let mut out = Vec::new();
    match reader.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) => Err(*e
            .into_inner()
            .expect("a labeled error")
            .downcast::<DecompressError>()
            .expect("ours")),
    }
}

fn open(data: Vec<u8>) -> Result<Vec<u8>, DecompressError> {
    read_all(data, &Limits::default())
}

/// An `ar` archive with the given members, written the way dpkg-deb writes them.
fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        out.extend_from_slice(
            format!(
                "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                0,
                0,
                0,
                "100644",
                data.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

#[test]
fn every_format_decodes_to_the_same_tar() {
    let tar = sample_tar();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("tar", tar.clone()),
        ("gzip", gz(&tar)),
        ("xz", xz(&tar)),
        ("zstd", zst(&tar)),
        ("bzip2", bz(&tar)),
        (
            "deb with data.tar.xz",
            ar(&[
                ("debian-binary", b"2.0\n"),
                ("control.tar.xz", &xz(b"c")),
                ("data.tar.xz", &xz(&tar)),
            ]),
        ),
        (
            "deb with data.tar",
            ar(&[("debian-binary", b"2.0\n"), ("data.tar/", &tar)]),
        ),
        (
            "gzip in two members",
            [gz(&tar[..1000]), gz(&tar[1000..])].concat(),
        ),
        ("gzip with NUL padding", [gz(&tar), vec![0; 700]].concat()),
        (
            "zstd in two frames",
            [zst(&tar[..5000]), zst(&tar[5000..])].concat(),
        ),
        (
            "xz in two streams",
            [xz(&tar[..5000]), xz(&tar[5000..])].concat(),
        ),
    ];
    for (what, data) in cases {
        assert_eq!(
            open(data).unwrap_or_else(|e| panic!("{what}: {e}")),
            tar,
            "{what}"
        );
    }
}

/// Flips a byte `back` bytes before the end (gzip: 8 is the CRC's first byte, 1 the length's
/// last).
fn flip_at(mut v: Vec<u8>, back: usize) -> Vec<u8> {
    let at = v.len() - back;
    v[at] ^= 0x55;
    v
}

#[test]
fn broken_streams_are_errors_not_short_reads() {
    let tar = sample_tar();
    let cut = |mut v: Vec<u8>, n: usize| {
        v.truncate(v.len() - n);
        v
    };
    let mut flipped = gz(&tar);
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("gzip without its trailer", cut(gz(&tar), 8)),
        ("gzip cut in half", {
            let g = gz(&tar);
            g[..g.len() / 2].to_vec()
        }),
        ("gzip with a flipped byte", flipped),
        (
            "gzip with trailing garbage",
            [gz(&tar), b"garbage".to_vec()].concat(),
        ),
        ("xz cut short", cut(xz(&tar), 10)),
        ("xz cut in half", {
            let x = xz(&tar);
            x[..x.len() / 2].to_vec()
        }),
        ("zstd cut short", cut(zst(&tar), 3)),
        ("zstd cut in half", {
            let z = zst(&tar);
            z[..z.len() / 2].to_vec()
        }),
        (
            "zstd with trailing garbage",
            [zst(&tar), b"garbage".to_vec()].concat(),
        ),
        ("bzip2 cut short", cut(bz(&tar), 10)),
        // Issue 11.9: every end-of-stream check, on every member.
        ("gzip with a bad CRC", flip_at(gz(&tar), 8)),
        ("gzip with a bad length", flip_at(gz(&tar), 1)),
        (
            "gzip whose second member has a bad CRC",
            [gz(&tar[..512]), flip_at(gz(&tar[512..]), 8)].concat(),
        ),
        (
            "xz with trailing garbage",
            [xz(&tar), b"garbage".to_vec()].concat(),
        ),
        (
            "bzip2 with trailing garbage",
            [bz(&tar), b"garbage".to_vec()].concat(),
        ),
        (
            "zstd with trailing zeros",
            [zst(&tar), vec![0u8; 64]].concat(),
        ),
    ];
    for (what, data) in cases {
        let err = open(data).expect_err(what);
        assert!(
            matches!(
                err,
                DecompressError::Truncated { .. }
                    | DecompressError::Corrupt { .. }
                    | DecompressError::TrailingGarbage { .. }
            ),
            "{what}: {err:?}"
        );
        assert!(err.to_string().contains("test.archive"), "{what}: {err}");
    }
}

#[test]
fn gzip_bomb_stops_at_the_cap_quickly() {
    // 4 members of 16 MiB of zeros each: 64 MiB out of ~64 KiB in.
    let zeros = vec![0u8; 16 << 20];
    let member = gz(&zeros);
    let bomb = [member.clone(), member.clone(), member.clone(), member].concat();
    let limits = Limits {
        max_uncompressed: 20 << 20,
        ..Limits::default()
    };
    let start = thread_cpu_time();
    let mut reader =
        open_archive_with_limits(io::Cursor::new(bomb.clone()), "bomb.tar.gz", &limits).unwrap();
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let err = loop {
        match reader.read(&mut buf) {
            Ok(0) => panic!("the cap did not stop the bomb after {total} bytes"),
            Ok(n) => total += n as u64,
            Err(e) => break e,
        }
    };
    assert_eq!(
        total,
        20 << 20,
        "everything up to the cap, not a truncated stream"
    );
    assert!(
        err.to_string().contains("bomb.tar.gz")
            && err.to_string().contains("more than 20971520 bytes"),
        "{err}"
    );
    // CPU time of this thread, not wall time: a loaded machine must not fail the test.
    let spent = thread_cpu_time() - start;
    assert!(spent < Duration::from_secs(20), "took {spent:?} of CPU");
    // Exactly at the cap is fine.
    let limits = Limits {
        max_uncompressed: 64 << 20,
        ..Limits::default()
    };
    assert_eq!(read_all(bomb, &limits).unwrap().len(), 64 << 20);
}

#[test]
fn zstd_window_above_the_limit_is_refused() {
    // A frame declaring a 2^28-byte window, with one raw block "hello".
    let frame = [
        &[0x28, 0xb5, 0x2f, 0xfd, 0x00, (28 - 10) << 3, 0x29, 0, 0][..],
        b"hello",
    ]
    .concat();
    assert_eq!(zstd_window_size(&frame), Some(1 << 28));
    let err = open(frame.clone()).unwrap_err();
    assert!(
        matches!(
            err,
            DecompressError::ZstdWindowTooLarge {
                window: 268435456,
                ..
            }
        ),
        "{err:?}"
    );
    // The same frame after a harmless one: libzstd's own cap catches it.
    let err = open([zst(b"x"), frame.clone()].concat()).unwrap_err();
    assert!(
        matches!(err, DecompressError::Corrupt { format: "zstd", .. }),
        "{err:?}"
    );
    // A 2^27 window is accepted.
    let ok = [
        &[0x28, 0xb5, 0x2f, 0xfd, 0x00, (27 - 10) << 3, 0x29, 0, 0][..],
        b"hello",
    ]
    .concat();
    assert_eq!(open(ok).unwrap(), b"hello");
}

#[test]
fn unknown_and_empty_inputs_are_refused() {
    assert!(matches!(
        open(Vec::new()),
        Err(DecompressError::Empty { .. })
    ));
    let err = open(b"PK\x03\x04 a zip file".to_vec()).unwrap_err();
    assert!(
        matches!(err, DecompressError::UnknownFormat { ref magic, .. } if magic == "504b03042061207a"),
        "{err:?}"
    );
    assert!(matches!(
        open(vec![b'x'; 1024]),
        Err(DecompressError::UnknownFormat { .. })
    ));
}

#[test]
fn hostile_debs_are_clear_errors() {
    let tar = sample_tar();
    let data = xz(&tar);
    let mut too_big = ar(&[("debian-binary", b"2.0\n"), ("data.tar.xz", &data)]);
    too_big.truncate(too_big.len() - 100);
    let mut bad_size = ar(&[("debian-binary", b"2.0\n"), ("data.tar.xz", &data)]);
    bad_size[8 + 48] = b'x';
    let mut bad_fmag = ar(&[("debian-binary", b"2.0\n")]);
    bad_fmag[8 + 58] = b'!';
    type Check = fn(&DecompressError) -> bool;
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        (
            "member named ../x",
            ar(&[
                ("debian-binary", b"2.0\n"),
                ("../x", b"x"),
                ("data.tar.xz", &data),
            ]),
            |e| matches!(e, DecompressError::DebBadMember { .. }),
        ),
        (
            "member with a slash",
            ar(&[("debian-binary", b"2.0\n"), ("a/data.tar.xz", &data)]),
            |e| matches!(e, DecompressError::DebBadMember { .. }),
        ),
        (
            "member named ..",
            ar(&[("debian-binary", b"2.0\n"), ("..", b"")]),
            |e| matches!(e, DecompressError::DebBadMember { .. }),
        ),
        (
            "two data members",
            ar(&[
                ("debian-binary", b"2.0\n"),
                ("data.tar.xz", &data),
                ("data.tar.gz", &gz(&tar)),
            ]),
            |e| matches!(e, DecompressError::DebTwoData { .. }),
        ),
        ("member larger than the file", too_big, |e| {
            matches!(e, DecompressError::DebMemberTruncated { .. })
        }),
        ("size field not a number", bad_size, |e| {
            matches!(e, DecompressError::DebBadMember { .. })
        }),
        ("bad header terminator", bad_fmag, |e| {
            matches!(e, DecompressError::DebBadMember { .. })
        }),
        (
            "truncated header",
            ar(&[("debian-binary", b"2.0\n")])[..40].to_vec(),
            |e| matches!(e, DecompressError::DebBadMember { .. }),
        ),
        (
            "no data member",
            ar(&[("debian-binary", b"2.0\n"), ("control.tar.xz", b"c")]),
            |e| matches!(e, DecompressError::DebNoData { .. }),
        ),
        (
            "not debian-binary first",
            ar(&[("data.tar.xz", &data)]),
            |e| matches!(e, DecompressError::DebNotDebianBinary { .. }),
        ),
        (
            "deb inside a deb",
            ar(&[
                ("debian-binary", b"2.0\n"),
                ("data.tar", &ar(&[("debian-binary", b"2.0\n")])),
            ]),
            |e| matches!(e, DecompressError::DebNested { .. }),
        ),
        (
            "garbage data member",
            ar(&[("debian-binary", b"2.0\n"), ("data.tar.xz", &[7u8; 600])]),
            |e| matches!(e, DecompressError::UnknownFormat { .. }),
        ),
    ];
    for (what, deb, check) in cases {
        let start = Instant::now();
        let err = open(deb).expect_err(what);
        assert!(check(&err), "{what}: {err:?}");
        assert!(err.to_string().contains("test.archive"), "{what}: {err}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{what} took {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn a_real_dpkg_deb_opens() {
    require_tool("dpkg-deb");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pkg");
    fs_err::create_dir_all(root.join("DEBIAN")).unwrap();
    fs_err::create_dir_all(root.join("usr/share/kiln")).unwrap();
    fs_err::write(root.join("usr/share/kiln/hello"), b"hello from a deb\n").unwrap();
    fs_err::write(
            root.join("DEBIAN/control"),
            "Package: kiln-test\nVersion: 1.0\nArchitecture: all\nMaintainer: kiln <kiln@example.org>\nDescription: test\n",
        )
        .unwrap();
    for comp in ["xz", "gzip", "zstd", "none"] {
        let deb = dir.path().join(format!("t-{comp}.deb"));
        let status = Command::new("dpkg-deb")
            .args(["--root-owner-group", &format!("-Z{comp}"), "--build"])
            .arg(&root)
            .arg(&deb)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "dpkg-deb -Z{comp}");
        let tar = open(fs_err::read(&deb).unwrap()).unwrap_or_else(|e| panic!("{comp}: {e}"));
        let hay = String::from_utf8_lossy(&tar);
        assert!(
            hay.contains("./usr/share/kiln/hello") && hay.contains("hello from a deb"),
            "{comp}"
        );
    }
}

/// The CPU time this thread has used.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
