use std::process::{Command, Stdio};
use std::sync::Arc;

use super::*;
use crate::layer::tar_header::field_str;
use crate::layer::tar_style::TarStyle;
use crate::layer::tree::Metadata;

/// Fails the test unless `tool` runs: these tests never pass by skipping (scripts/setup.sh
/// installs every tool they use).
pub(crate) fn require_tool(tool: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(found, "this test needs `{tool}`: run scripts/setup.sh");
}

/// Runs `cmd` with `input` on its stdin: whether it succeeded, its stdout and its stderr.
pub(crate) fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> (bool, Vec<u8>, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn meta(mode: u32, mtime: i64) -> Metadata {
    Metadata::new(mode, 0, 0, mtime)
}

fn put(tree: &mut FileTree, path: &str, kind: EntryKind, meta: Metadata) {
    if let EntryKind::Hardlink(holder) = &kind {
        let group = tree.links.entry(holder.clone()).or_default();
        group.insert(path.to_string());
    }
    tree.entries.insert(path.to_string(), Entry { kind, meta });
}

fn inline(data: &[u8]) -> EntryKind {
    EntryKind::File(Content::Inline(Arc::from(data)))
}

const LONG_DIR: &str =
    "d123456789/d123456789/d123456789/d123456789/d123456789/d123456789/d123456789/d123456789";
const CAP: &[u8] =
    b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";

/// One entry of every kind, plus every PAX trigger.
fn sample_tree(host_file: &std::path::Path) -> FileTree {
    let mut t = FileTree::default();
    put(&mut t, "bin", EntryKind::Dir, meta(0o755, 5));
    put(&mut t, "bin/ping", inline(b"ping"), {
        let mut m = meta(0o4755, 2_000_000_000);
        m.xattrs.insert(CAPABILITY_XATTR.into(), CAP.to_vec());
        m.xattrs.insert("user.comment".into(), b"dropped".to_vec());
        m
    });
    put(
        &mut t,
        "bin/sh",
        EntryKind::Symlink("busybox".into()),
        meta(0o777, -5),
    );
    put(&mut t, "dev", EntryKind::Dir, meta(0o755, 0));
    put(
        &mut t,
        "dev/null",
        EntryKind::CharDevice { major: 1, minor: 3 },
        meta(0o666, 0),
    );
    put(
        &mut t,
        "dev/sda",
        EntryKind::BlockDevice { major: 8, minor: 0 },
        meta(0o660, 0),
    );
    put(&mut t, "dev/fifo", EntryKind::Fifo, meta(0o600, 0));
    put(&mut t, "etc", EntryKind::Dir, meta(0o755, 0));
    put(
        &mut t,
        "etc/big-ids",
        inline(b""),
        Metadata::new(0o644, 4_000_000_000, 70_000, 7),
    );
    put(
        &mut t,
        "etc/gone",
        EntryKind::Whiteout(()),
        Metadata::new(0o777, 9, 9, 3),
    );
    put(
        &mut t,
        "etc/hosts",
        EntryKind::File(Content::File {
            path: host_file.into(),
            size: 600,
            link: None,
        }),
        meta(0o644, 8),
    );
    put(
        &mut t,
        "etc/hosts.link",
        EntryKind::Hardlink("etc/hosts".into()),
        meta(0o644, 8),
    );
    put(&mut t, "opt", EntryKind::Dir, meta(0o700, 0));
    t.opaque.insert("opt".into());
    let long = format!("{LONG_DIR}/{LONG_DIR}/f");
    put(
        &mut t,
        &format!("opt/{LONG_DIR}"),
        EntryKind::Dir,
        meta(0o755, 0),
    );
    put(
        &mut t,
        &format!("opt/{LONG_DIR}/file"),
        inline(b"split"),
        meta(0o644, 0),
    );
    put(
        &mut t,
        &format!("opt/{long}"),
        EntryKind::Symlink(long.clone()),
        meta(0o777, 0),
    );
    put(
        &mut t,
        &format!("opt/{}", "n".repeat(120)),
        inline(b""),
        meta(0o644, 0),
    );
    t
}

fn sample_tar() -> (Vec<u8>, WriteStats) {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("hosts");
    fs_err::write(&host, vec![b'h'; 600]).unwrap();
    let mut out = Vec::new();
    let stats = write_tar(&sample_tree(&host), 1_000_000_000, &mut out).unwrap();
    (out, stats)
}

#[test]
fn stream_is_blocks_with_valid_checksums_and_two_zero_blocks_at_the_end() {
    let (tar, stats) = sample_tar();
    assert_eq!(stats.bytes, tar.len() as u64);
    assert_eq!(tar.len() % BLOCK, 0);
    assert!(tar[tar.len() - 2 * BLOCK..].iter().all(|&b| b == 0));
    // Walk the headers: every checksum must be the unsigned byte sum with the field as spaces.
    let mut pos = 0;
    let mut headers = 0;
    while tar[pos..pos + BLOCK].iter().any(|&b| b != 0) {
        let h = &tar[pos..pos + BLOCK];
        let mut copy = h.to_vec();
        copy[148..156].fill(b' ');
        let sum: u64 = copy.iter().map(|&b| u64::from(b)).sum();
        assert_eq!(&h[148..156], format!("{sum:06o}\0 ").as_bytes());
        assert_eq!(&h[257..265], b"ustar\x0000");
        assert!(
            h[265..329].iter().all(|&b| b == 0),
            "uname/gname must be empty"
        );
        let size = u64::from_str_radix(std::str::from_utf8(&h[124..135]).unwrap(), 8).unwrap();
        pos += BLOCK + (size as usize).div_ceil(BLOCK) * BLOCK;
        headers += 1;
    }
    assert_eq!(headers as u64, stats.entries + stats.pax_headers);
    assert_eq!(pos + 2 * BLOCK, tar.len());
    assert_eq!(stats.xattrs_dropped, 1);
    assert_eq!(
        stats.pax_headers, 4,
        "capability, big uid, long link, long path"
    );
}

#[test]
fn same_tree_gives_the_same_bytes() {
    assert_eq!(sample_tar().0, sample_tar().0);
}

#[test]
fn python_tarfile_reads_back_exactly_what_we_claim() {
    require_tool("python3");
    let (tar, _) = sample_tar();
    let script = r#"
import sys, tarfile, json
with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as tf:
    for m in tf:
        data = tf.extractfile(m).read().decode("latin1") if m.isreg() else ""
        print(json.dumps([m.name, m.type.decode(), oct(m.mode), m.uid, m.gid, m.mtime, m.size,
                          m.linkname, m.devmajor, m.devminor, m.uname, m.gname,
                          {k: v.encode("utf-8", "surrogateescape").hex() for k, v in sorted(m.pax_headers.items())},
                          data[:8]]))
"#;
    let (ok, stdout, stderr) = run_with_stdin(Command::new("python3").args(["-c", script]), &tar);
    assert!(ok, "{stderr}");
    let long = format!("opt/{LONG_DIR}/{LONG_DIR}/f");
    let unsplittable = "n".repeat(120);
    let cap_hex = hex::encode(CAP);
    let expected = [
            r#"["bin", "5", "0o755", 0, 0, 5, 0, "", 0, 0, "", "", {}, ""]"#.to_string(),
            format!(
                r#"["bin/ping", "0", "0o4755", 0, 0, 1000000000, 4, "", 0, 0, "", "", {{"SCHILY.xattr.security.capability": "{cap_hex}"}}, "ping"]"#
            ),
            r#"["bin/sh", "2", "0o777", 0, 0, 0, 0, "busybox", 0, 0, "", "", {}, ""]"#.into(),
            r#"["dev", "5", "0o755", 0, 0, 0, 0, "", 0, 0, "", "", {}, ""]"#.into(),
            r#"["dev/fifo", "6", "0o600", 0, 0, 0, 0, "", 0, 0, "", "", {}, ""]"#.into(),
            r#"["dev/null", "3", "0o666", 0, 0, 0, 0, "", 1, 3, "", "", {}, ""]"#.into(),
            r#"["dev/sda", "4", "0o660", 0, 0, 0, 0, "", 8, 0, "", "", {}, ""]"#.into(),
            r#"["etc", "5", "0o755", 0, 0, 0, 0, "", 0, 0, "", "", {}, ""]"#.into(),
            r#"["etc/big-ids", "0", "0o644", 4000000000, 70000, 7, 0, "", 0, 0, "", "", {"uid": "34303030303030303030"}, ""]"#.into(),
            r#"["etc/.wh.gone", "0", "0o644", 0, 0, 3, 0, "", 0, 0, "", "", {}, ""]"#.into(),
            r#"["etc/hosts", "0", "0o644", 0, 0, 8, 600, "", 0, 0, "", "", {}, "hhhhhhhh"]"#.into(),
            r#"["etc/hosts.link", "1", "0o644", 0, 0, 8, 0, "etc/hosts", 0, 0, "", "", {}, ""]"#.into(),
            r#"["opt", "5", "0o700", 0, 0, 0, 0, "", 0, 0, "", "", {}, ""]"#.into(),
            r#"["opt/.wh..wh..opq", "0", "0o644", 0, 0, 1000000000, 0, "", 0, 0, "", "", {}, ""]"#.into(),
            format!(r#"["opt/{LONG_DIR}", "5", "0o755", 0, 0, 0, 0, "", 0, 0, "", "", {{}}, ""]"#),
            format!(
                r#"["{long}", "2", "0o777", 0, 0, 0, 0, "{}", 0, 0, "", "", {{"linkpath": "{}"}}, ""]"#,
                &long[4..],
                hex::encode(&long[4..]),
            ),
            format!(r#"["opt/{LONG_DIR}/file", "0", "0o644", 0, 0, 0, 5, "", 0, 0, "", "", {{}}, "split"]"#),
            format!(
                r#"["opt/{unsplittable}", "0", "0o644", 0, 0, 0, 0, "", 0, 0, "", "", {{"path": "{}"}}, ""]"#,
                hex::encode(format!("opt/{unsplittable}"))
            ),
        ];
    let got: Vec<&str> = std::str::from_utf8(&stdout).unwrap().lines().collect();
    assert_eq!(got, expected);
}

#[test]
fn gnu_tar_lists_the_stream_without_warnings() {
    require_tool("tar");
    let (tar, _) = sample_tar();
    let (ok, stdout, stderr) = run_with_stdin(
        Command::new("tar").args(["--numeric-owner", "-tvf", "-"]),
        &tar,
    );
    assert!(ok && stderr.is_empty(), "{stderr}");
    let listing = String::from_utf8(stdout).unwrap();
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 18, "{listing}");
    assert!(lines[1].starts_with("-rwsr-xr-x 0/0"), "{}", lines[1]);
    assert!(
        lines[5].starts_with("crw-rw-rw- 0/0") && lines[5].contains("1,3"),
        "{}",
        lines[5]
    );
    assert!(
        lines[11].contains("etc/hosts.link link to etc/hosts"),
        "{}",
        lines[11]
    );
    assert!(
        lines[15].contains(&format!("{LONG_DIR}/f ->")),
        "{}",
        lines[15]
    );
    assert!(
        lines[17].ends_with(&format!("opt/{}", "n".repeat(120))),
        "{}",
        lines[17]
    );
}

#[test]
fn mtime_is_clamped_to_the_epoch_and_never_negative() {
    for (mtime, epoch, want) in [(5, 10, 5), (50, 10, 10), (-3, 10, 0), (5, -1, 0), (0, 0, 0)] {
        let mut t = FileTree::default();
        put(&mut t, "f", inline(b""), meta(0o644, mtime));
        let mut out = Vec::new();
        write_tar(&t, epoch, &mut out).unwrap();
        let field = std::str::from_utf8(&out[136..147]).unwrap();
        assert_eq!(
            u64::from_str_radix(field, 8).unwrap(),
            want,
            "mtime {mtime} epoch {epoch}"
        );
    }
}

#[test]
fn a_file_that_changed_size_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    fs_err::write(&file, b"12345").unwrap();
    let slice = |offset, size| Content::Slice {
        file: Arc::new(file.clone()),
        offset,
        size,
    };
    let file_of = |size| Content::File {
        path: file.clone(),
        size,
        link: None,
    };
    // A recorded size the file no longer has; a spilled member past the spill file's end.
    for content in [
        file_of(4),
        file_of(6),
        slice(0, 6),
        slice(3, 3),
        slice(9, 1),
    ] {
        let mut t = FileTree::default();
        put(&mut t, "f", EntryKind::File(content), meta(0o644, 0));
        let err = write_tar(&t, 0, &mut Vec::new()).unwrap_err();
        assert!(
            matches!(err, WriteError::ContentSizeChanged { .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains(&file.display().to_string()),
            "{err}"
        );
    }
}

#[test]
fn inconsistent_trees_are_refused() {
    let cases: Vec<(&str, FileTree)> = vec![
        ("hardlink to a missing entry", {
            let mut t = FileTree::default();
            put(&mut t, "a", EntryKind::Hardlink("b".into()), meta(0o644, 0));
            t
        }),
        ("hardlink to a symlink", {
            let mut t = FileTree::default();
            put(&mut t, "a", EntryKind::Symlink("x".into()), meta(0o777, 0));
            put(&mut t, "b", EntryKind::Hardlink("a".into()), meta(0o644, 0));
            t
        }),
        ("hardlink to a directory", {
            let mut t = FileTree::default();
            put(&mut t, "a", EntryKind::Dir, meta(0o755, 0));
            put(&mut t, "b", EntryKind::Hardlink("a".into()), meta(0o644, 0));
            t
        }),
        ("opaque without a directory", {
            let mut t = FileTree::default();
            t.opaque.insert("x".into());
            t
        }),
        ("mode with file-type bits", {
            let mut t = FileTree::default();
            put(&mut t, "a", inline(b""), meta(0o100644, 0));
            t
        }),
        ("uid above 32 bits", {
            let mut t = FileTree::default();
            put(
                &mut t,
                "a",
                inline(b""),
                Metadata::new(0o644, 1 << 32, 0, 0),
            );
            t
        }),
        ("dot-dot path", {
            let mut t = FileTree::default();
            put(&mut t, "a/../b", inline(b""), meta(0o644, 0));
            t
        }),
        ("absolute path", {
            let mut t = FileTree::default();
            put(&mut t, "/etc", EntryKind::Dir, meta(0o755, 0));
            t
        }),
        // A `write` or `copy` to `/.wh.etc` would delete the base's /etc in every reader.
        ("a whiteout name", {
            let mut t = FileTree::default();
            put(&mut t, ".wh.etc", inline(b""), meta(0o644, 0));
            t
        }),
        ("below a whiteout name", {
            let mut t = FileTree::default();
            put(&mut t, ".wh.d/x", inline(b""), meta(0o644, 0));
            t
        }),
    ];
    for (what, tree) in cases {
        assert!(write_tar(&tree, 0, &mut Vec::new()).is_err(), "{what}");
    }
}

#[test]
fn opaque_root_comes_first() {
    let mut t = FileTree::default();
    t.opaque.insert(String::new());
    put(&mut t, "a", inline(b""), meta(0o644, 0));
    let mut out = Vec::new();
    write_tar(&t, 0, &mut out).unwrap();
    assert_eq!(&out[..12], b".wh..wh..opq");
    assert_eq!(&out[BLOCK..BLOCK + 2], b"a\0");
}

#[test]
fn ustar_path_split_table() {
    let d50 = "d".repeat(50);
    let f100 = "f".repeat(100);
    let cases: Vec<(String, Option<(String, String)>)> = vec![
        ("short".into(), Some((String::new(), "short".into()))),
        (f100.clone(), Some((String::new(), f100.clone()))),
        (format!("{d50}/{f100}"), Some((d50.clone(), f100.clone()))),
        (
            format!("{d50}/{d50}/x"),
            Some((d50.clone(), format!("{d50}/x"))),
        ),
        (format!("{}/", "f".repeat(101)), None),
        (format!("{d50}/{}/", "f".repeat(100)), None),
        (format!("{}/x", "p".repeat(156)), None),
        (
            format!("{}/x{}", "p".repeat(155), "y".repeat(99)),
            Some(("p".repeat(155), format!("x{}", "y".repeat(99)))),
        ),
        ("g".repeat(101), None),
    ];
    check_split(split_ustar_path, cases);
}

/// A ustar name rule: `(prefix, name)`, or `None` when the path needs PAX.
pub(crate) type SplitRule = fn(&str) -> Option<(&[u8], &[u8])>;

/// Runs `split` over `(path, expected (prefix, name))` cases.
pub(crate) fn check_split(split: SplitRule, cases: Vec<(String, Option<(String, String)>)>) {
    for (path, want) in cases {
        let got = split(&path).map(|(p, n)| {
            (
                String::from_utf8(p.to_vec()).unwrap(),
                String::from_utf8(n.to_vec()).unwrap(),
            )
        });
        assert_eq!(got, want, "{path}");
    }
}

#[test]
fn pax_record_lengths_count_themselves() {
    for value_len in [
        0usize, 1, 2, 3, 4, 5, 6, 85, 86, 87, 88, 89, 90, 95, 96, 97, 98, 993, 994, 995, 996,
    ] {
        let mut map = BTreeMap::new();
        map.insert("path".to_string(), vec![b'a'; value_len]);
        let rec = pax_records(&map);
        let (len, _) = std::str::from_utf8(&rec).unwrap().split_once(' ').unwrap();
        assert_eq!(
            len.parse::<usize>().unwrap(),
            rec.len(),
            "value length {value_len}"
        );
    }
}

#[test]
fn octal_fields_match_zero_padded_formatting() {
    for (width, value) in [
        (8, 0u64),
        (8, 0o644),
        (8, MAX_OCTAL_7),
        (12, 1),
        (12, 1_700_000_000),
        (12, MAX_OCTAL_11),
        (7, 0o177777),
    ] {
        let mut field = vec![0xffu8; width];
        octal(&mut field, value);
        let want = format!("{value:0w$o}\0", w = width - 1);
        assert_eq!(field, want.as_bytes(), "{value:#o} in {width}");
    }
}

#[test]
fn a_file_swapped_for_a_symlink_is_refused_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    fs_err::write(&secret, b"12345").unwrap();
    let listed = dir.path().join("f");
    std::os::unix::fs::symlink(&secret, &listed).unwrap();
    let mut t = FileTree::default();
    put(
        &mut t,
        "f",
        EntryKind::File(Content::File {
            path: listed.clone(),
            size: 5,
            link: None,
        }),
        meta(0o644, 0),
    );
    let mut out = Vec::new();
    let err = write_tar(&t, 0, &mut out).unwrap_err();
    assert!(matches!(err, WriteError::ReadContent { .. }), "{err}");
    assert!(
        !out.windows(5).any(|w| w == b"12345"),
        "the target's bytes never reach the tar"
    );
}

/// Issue 12.1: GNU tar writes a hard-link group's content at whichever member it meets first;
/// the layer puts it at the first path in sort order, so every archive order gives one layer.
#[test]
fn hardlink_content_goes_to_the_first_path_whatever_the_archive_order() {
    let write = |order: &[(&str, Option<&str>)]| {
        let mut t = FileTree::default();
        for (path, target) in order {
            let kind = match target {
                Some(t) => EntryKind::Hardlink(t.to_string()),
                None => inline(b"shared"),
            };
            t.insert(
                path,
                Entry {
                    kind,
                    meta: meta(0o640, 3),
                },
            )
            .unwrap();
        }
        let mut out = Vec::new();
        write_tar(&t, 10, &mut out).unwrap();
        out
    };
    let one = write(&[("z", None), ("a", Some("z")), ("m", Some("a"))]);
    let two = write(&[("a", None), ("z", Some("a")), ("m", Some("z"))]);
    let three = write(&[("m", None), ("z", Some("m")), ("a", Some("z"))]);
    assert_eq!(one, two);
    assert_eq!(one, three);
    let mut reader = crate::layer::read::TarReader::new(&one[..], Default::default());
    let mut seen = Vec::new();
    while let Some(e) = reader.next_entry().unwrap() {
        seen.push(format!(
            "{} {:?} {} {}",
            e.path, e.kind, e.link_name, e.size
        ));
    }
    assert_eq!(
        seen,
        ["a File  6", "m Hardlink a 0", "z Hardlink a 0"],
        "{seen:?}"
    );
}

/// The Go style, header by header, as podman 4.3 (buildah 1.28, Go's `archive/tar`) writes the
/// same tree: type bits in the mode field, walk order, Go's PAX header and name split. The
/// integration test `matching::podman_copy_image_rebuilds_to_same_layers` compares whole
/// layers with podman's.
#[test]
fn go_style_headers_match_go_archive_tar() {
    let mut tree = FileTree::default();
    let long = format!("srv/{}.txt", "a".repeat(120));
    put(&mut tree, "lib", EntryKind::Dir, meta(0o755, 0));
    put(&mut tree, "lib/x", inline(b"x"), meta(0o644, 0));
    put(&mut tree, "lib.so", inline(b"so"), meta(0o755, 0));
    put(&mut tree, "srv", EntryKind::Dir, meta(0o755, 0));
    put(&mut tree, &long, inline(b"long"), meta(0o644, 0));
    put(
        &mut tree,
        "sh",
        EntryKind::Symlink("busybox".into()),
        meta(0o777, 0),
    );
    let mut tar = Vec::new();
    write_tar_styled(&tree, 0, TarStyle::Go, &mut tar).unwrap();
    let mut headers = Vec::new();
    let mut pos = 0;
    while tar[pos..pos + BLOCK].iter().any(|&b| b != 0) {
        let h = &tar[pos..pos + BLOCK];
        let name = String::from_utf8(field_str(&h[..100]).to_vec()).unwrap();
        headers.push((name, h[100..108].to_vec(), h[156], h[329..345].to_vec()));
        let size = u64::from_str_radix(std::str::from_utf8(&h[124..135]).unwrap(), 8).unwrap();
        pos += BLOCK + (size as usize).div_ceil(BLOCK) * BLOCK;
    }
    let dev = b"0000000\x000000000\x00".to_vec();
    let cut = format!("srv/PaxHeaders.0/{}", "a".repeat(83));
    let want: Vec<(String, Vec<u8>, u8, Vec<u8>)> = vec![
        ("lib/".into(), b"0040755\0".to_vec(), b'5', dev.clone()),
        ("lib/x".into(), b"0100644\0".to_vec(), b'0', dev.clone()),
        ("lib.so".into(), b"0100755\0".to_vec(), b'0', dev.clone()),
        ("sh".into(), b"0120777\0".to_vec(), b'2', dev.clone()),
        ("srv/".into(), b"0040755\0".to_vec(), b'5', dev.clone()),
        (cut, b"0000000\0".to_vec(), b'x', vec![0; 16]),
        (long[..100].to_string(), b"0100644\0".to_vec(), b'0', dev),
    ];
    assert_eq!(headers, want);

    let mut kiln = Vec::new();
    write_tar(&tree, 0, &mut kiln).unwrap();
    assert_ne!(kiln, tar, "the default style is unchanged");
}

/// Whiteouts and opaque markers as podman 4.3 writes them (measured with the vfs and overlay
/// drivers): `.wh.NAME` with mode 0; `.wh..wh..opq` with its directory's permission bits and
/// owner, without type bits, right after the directory.
#[test]
fn go_style_whiteouts_and_opaque_markers() {
    let mut tree = FileTree::default();
    put(
        &mut tree,
        "d",
        EntryKind::Dir,
        Metadata::new(0o2750, 5, 6, 0),
    );
    put(&mut tree, "d/new", inline(b"n"), meta(0o644, 0));
    put(&mut tree, "gone", EntryKind::Whiteout(()), meta(0o644, 0));
    tree.opaque.insert("d".to_string());
    for style in [TarStyle::Go, TarStyle::GoBytewise] {
        let mut tar = Vec::new();
        write_tar_styled(&tree, 0, style, &mut tar).unwrap();
        let header = |i: usize| &tar[i * BLOCK..(i + 1) * BLOCK];
        assert_eq!(field_str(&header(0)[..100]), b"d/");
        assert_eq!(&header(0)[100..108], b"0042750\0");
        assert_eq!(field_str(&header(1)[..100]), b"d/.wh..wh..opq");
        assert_eq!(&header(1)[100..124], b"0000750\x000000005\x000000006\0");
        assert_eq!(field_str(&header(2)[..100]), b"d/new");
        // `d/new` has one block of content.
        assert_eq!(field_str(&header(4)[..100]), b".wh.gone");
        assert_eq!(&header(4)[100..108], b"0000000\0");
    }
}

/// In walk order the first path of a hard link group can be another than in bytewise order:
/// the content moves to it and the others link to it.
#[test]
fn go_style_moves_hard_link_content_to_the_first_path_in_walk_order() {
    let mut tree = FileTree::default();
    put(&mut tree, "a", EntryKind::Dir, meta(0o755, 0));
    put(&mut tree, "a.b", inline(b"x"), meta(0o644, 0));
    put(
        &mut tree,
        "a/x",
        EntryKind::Hardlink("a.b".into()),
        meta(0o644, 0),
    );
    put(
        &mut tree,
        "a/y",
        EntryKind::Hardlink("a.b".into()),
        meta(0o644, 0),
    );
    let mut tar = Vec::new();
    write_tar_styled(&tree, 0, TarStyle::Go, &mut tar).unwrap();
    let mut got = Vec::new();
    let mut pos = 0;
    while tar[pos..pos + BLOCK].iter().any(|&b| b != 0) {
        let h = &tar[pos..pos + BLOCK];
        let size = u64::from_str_radix(std::str::from_utf8(&h[124..135]).unwrap(), 8).unwrap();
        got.push((
            String::from_utf8(field_str(&h[..100]).to_vec()).unwrap(),
            h[156],
            String::from_utf8(field_str(&h[157..257]).to_vec()).unwrap(),
            size,
        ));
        pos += BLOCK + (size as usize).div_ceil(BLOCK) * BLOCK;
    }
    let want = [
        ("a/", b'5', "", 0),
        ("a/x", b'0', "", 1),
        ("a/y", b'1', "a/x", 0),
        ("a.b", b'1', "a/x", 0),
    ];
    let want: Vec<(String, u8, String, u64)> = want
        .iter()
        .map(|(n, t, l, s)| (n.to_string(), *t, l.to_string(), *s))
        .collect();
    assert_eq!(got, want);
    // A link to a path that is not a file of the layer is refused, as in kiln's style.
    put(
        &mut tree,
        "z",
        EntryKind::Hardlink("nowhere".into()),
        meta(0o644, 0),
    );
    let err = write_tar_styled(&tree, 0, TarStyle::Go, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, WriteError::InvalidHardlink { .. }), "{err}");
}
