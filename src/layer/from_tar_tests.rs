//! SECURITY.md cases 1–12 and 14 against the file-tree model (`add_tar`).

use std::time::{Duration, Instant};

use super::*;
use crate::layer::read::{ReadLimits, MAX_GNU_LONG_NAME};
use crate::layer::testtar::{header, set_checksum, symlink_loop, Lazy, Tar};

struct Ctx {
    spill: tempfile::TempDir,
}

impl Ctx {
    fn new() -> Self {
        Self {
            spill: tempfile::tempdir().unwrap(),
        }
    }
    fn opts(&self) -> AddTarOptions<'_> {
        AddTarOptions {
            epoch: 2_000,
            spill_dir: self.spill.path(),
            whiteouts: true,
        }
    }
    fn add(&self, tree: &mut FileTree, bytes: &[u8], dest: &str) -> Result<(), AddTarError> {
        let mut r = TarReader::new(bytes, ReadLimits::default());
        tree.add_tar(&mut r, dest, &self.opts())
    }
    fn tree(&self, bytes: &[u8]) -> Result<FileTree, AddTarError> {
        let mut t = FileTree::new();
        self.add(&mut t, bytes, "/")?;
        Ok(t)
    }
}

fn keys(t: &FileTree) -> Vec<&str> {
    t.entries.keys().map(|k| k.as_str()).collect()
}

fn kind<'a>(t: &'a FileTree, p: &str) -> &'a EntryKind {
    &t.get(p).unwrap_or_else(|| panic!("no entry {p}")).kind
}

fn inline(data: &[u8]) -> EntryKind {
    EntryKind::File(Content::Inline(Arc::from(data)))
}

#[test]
fn case1_tree_dotdot_and_absolute_names_stay_under_dest() {
    let ctx = Ctx::new();
    let mut t = Tar::new();
    t.file("../x", b"1")
        .file("/../y", b"2")
        .file("/etc/passwd", b"3")
        .file("a/../../../z", b"4");
    let mut tree = FileTree::new();
    ctx.add(&mut tree, &t.finish(), "/srv").unwrap();
    assert_eq!(keys(&tree), ["srv/etc/passwd", "srv/x", "srv/y", "srv/z"]);
}

#[test]
fn case2_tree_link_then_file_replaces_the_link() {
    let ctx = Ctx::new();
    let mut t = Tar::new();
    t.symlink("foo", "/etc/passwd")
        .file("foo", b"mine")
        .file("t", b"t")
        .hardlink("bar", "t")
        .file("bar", b"b");
    let tree = ctx.tree(&t.finish()).unwrap();
    assert_eq!(kind(&tree, "foo"), &inline(b"mine"));
    assert_eq!(kind(&tree, "bar"), &inline(b"b"));
    assert_eq!(kind(&tree, "t"), &inline(b"t"));
    assert!(tree.get("etc/passwd").is_none());
}

#[test]
fn case3_tree_symlink_to_dotdot_then_deep_path() {
    let ctx = Ctx::new();
    let mut t = Tar::new();
    t.symlink("sym", "..").file("sym/a/b/c", b"x");
    let mut tree = FileTree::new();
    ctx.add(&mut tree, &t.finish(), "/srv").unwrap();
    // srv/sym -> .. is the image root; no parent entries are invented.
    assert_eq!(keys(&tree), ["a/b/c", "srv/sym"]);
}

#[test]
fn case4_tree_directory_over_symlink_replaces_it() {
    let ctx = Ctx::new();
    let mut t = Tar::new();
    t.symlink("foo", "/outside/dir").dir("foo", 0o777);
    let tree = ctx.tree(&t.finish()).unwrap();
    assert_eq!(keys(&tree), ["foo"]);
    assert_eq!(kind(&tree, "foo"), &EntryKind::Dir);
    assert_eq!(tree.get("foo").unwrap().meta.mode, 0o777);
}

#[test]
fn case5_tree_absolute_symlinks_and_chains() {
    let ctx = Ctx::new();
    let mut t = Tar::new();
    t.dir("etc", 0o755)
        .symlink("etc2", "/etc")
        .file("etc2/passwd", b"p")
        .symlink("a", "./b/etc")
        .symlink("b", "/")
        .file("a/group", b"g")
        .file("up/../../../etc/shadow", b"s");
    let tree = ctx.tree(&t.finish()).unwrap();
    assert_eq!(
        keys(&tree),
        [
            "a",
            "b",
            "etc",
            "etc/group",
            "etc/passwd",
            "etc/shadow",
            "etc2"
        ]
    );
}

#[test]
fn case6_tree_symlink_loop_is_eloop_quickly() {
    let ctx = Ctx::new();
    let start = Instant::now();
    let err = ctx.tree(&symlink_loop()).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(
        matches!(
            err,
            AddTarError::Tree {
                source: TreeError::SymlinkLoop { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("l0/x"));
}

#[test]
fn case7_tree_symlinks_named_like_the_root_are_refused() {
    let ctx = Ctx::new();
    for name in [".", "/", "..", "", "./", "a/.."] {
        let mut t = Tar::new();
        t.symlink(name, "/etc");
        let err = ctx.tree(&t.finish()).unwrap_err();
        assert!(
            matches!(
                err,
                AddTarError::Member(MemberError::RootEntry {
                    kind: "symlink",
                    ..
                })
            ),
            "{name:?}: {err}"
        );
    }
    // `./` as a directory is the root's own metadata: skipped, not an entry.
    let mut t = Tar::new();
    t.dir("./", 0o755).file("./f", b"");
    assert_eq!(keys(&ctx.tree(&t.finish()).unwrap()), ["f"]);
}

#[test]
fn case8_tree_hardlinks_resolve_in_the_tree_or_are_refused() {
    let ctx = Ctx::new();
    let base = || {
        let mut t = Tar::new();
        t.file("x", b"x")
            .dir("d", 0o755)
            .file("real/f", b"f")
            .symlink("s", "real")
            .symlink("ls", "/etc/passwd");
        t
    };
    // ../x is x inside the archive.
    let mut t = base();
    t.hardlink("h", "../x");
    assert_eq!(
        kind(&ctx.tree(&t.finish()).unwrap(), "h"),
        &EntryKind::Hardlink("x".into())
    );
    // through a symlinked parent
    let mut t = base();
    t.hardlink("h", "s/f");
    assert_eq!(
        kind(&ctx.tree(&t.finish()).unwrap(), "h"),
        &EntryKind::Hardlink("real/f".into())
    );
    // to a symlink: allowed, names the symlink itself
    let mut t = base();
    t.hardlink("h", "ls");
    assert_eq!(
        kind(&ctx.tree(&t.finish()).unwrap(), "h"),
        &EntryKind::Hardlink("ls".into())
    );
    // refused: outside paths, a directory, something relative to the cwd
    for target in ["/etc/passwd", "d", "Cargo.toml", "../../etc/passwd"] {
        let mut t = base();
        t.hardlink("h", target);
        let err = ctx.tree(&t.finish()).unwrap_err();
        let msg = format!("{err} {}", std::error::Error::source(&err).unwrap());
        assert!(
            msg.contains("`h`") && msg.contains(target.trim_start_matches(['.', '/'])),
            "{msg}"
        );
    }
    // Under dest, ../x is clamped at dest.
    let mut t = Tar::new();
    t.file("x", b"").hardlink("h", "../../x");
    let mut tree = FileTree::new();
    ctx.add(&mut tree, &t.finish(), "opt").unwrap();
    assert_eq!(kind(&tree, "opt/h"), &EntryKind::Hardlink("opt/x".into()));
}

#[test]
fn case9_tree_invalid_whiteouts_change_nothing() {
    let ctx = Ctx::new();
    let mut lower = FileTree::new();
    ctx.add(&mut lower, &Tar::new().file("keep", b"k").finish(), "/")
        .unwrap();
    for name in [".wh..", ".wh...", "dir/.wh..", ".wh..wh.x", ".wh."] {
        let mut t = Tar::new();
        t.file("other", b"").file(name, b"");
        let mut tree = lower.clone();
        let err = ctx.add(&mut tree, &t.finish(), "/").unwrap_err();
        assert!(
            matches!(
                err,
                AddTarError::Member(MemberError::InvalidWhiteout { .. })
            ),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(name));
        assert_eq!(tree, lower, "tree unchanged after {name}");
    }
}

#[test]
fn case9_tree_whiteout_under_symlinked_dir_and_late_opaque_marker() {
    let ctx = Ctx::new();
    let mut t = Tar::new();
    t.symlink("link", "/real").file("link/.wh.victim", b"");
    let tree = ctx.tree(&t.finish()).unwrap();
    assert_eq!(kind(&tree, "real/victim"), &EntryKind::Whiteout(()));
    // The opaque marker after its siblings keeps them (it hides lower layers only).
    let mut t = Tar::new();
    t.dir("d", 0o755)
        .file("d/new1", b"1")
        .file("d/.wh..wh..opq", b"")
        .file("d/new2", b"2");
    let tree = ctx.tree(&t.finish()).unwrap();
    assert_eq!(keys(&tree), ["d", "d/new1", "d/new2"]);
    assert_eq!(tree.opaque_dirs().collect::<Vec<_>>(), ["d"]);
    // A whiteout after an entry of the same layer keeps the entry.
    let mut t = Tar::new();
    t.file("x", b"x").file(".wh.x", b"");
    assert_eq!(kind(&ctx.tree(&t.finish()).unwrap(), "x"), &inline(b"x"));
    // With whiteouts off (plain archives), `.wh.` names are refused.
    let mut tree = FileTree::new();
    let bytes = Tar::new().file(".wh.x", b"").finish();
    let mut r = TarReader::new(&bytes[..], ReadLimits::default());
    let opts = AddTarOptions {
        whiteouts: false,
        ..ctx.opts()
    };
    assert!(matches!(
        tree.add_tar(&mut r, "/", &opts),
        Err(AddTarError::Member(MemberError::WhiteoutNotAllowed { .. }))
    ));
}

#[test]
fn case10_tree_type_changes_and_duplicates_are_deterministic() {
    let ctx = Ctx::new();
    let build = || {
        let mut t = Tar::new();
        t.dir("d", 0o755)
            .file("d/f", b"f")
            .file("g", b"g")
            .symlink("s", "d")
            .file("x", b"first")
            .file("d", b"d is a file")
            .dir("g", 0o700)
            .dir("s", 0o750)
            .file("x", b"second");
        ctx.tree(&t.finish()).unwrap()
    };
    let tree = build();
    assert_eq!(keys(&tree), ["d", "g", "s", "x"]);
    assert_eq!(kind(&tree, "d"), &inline(b"d is a file"));
    assert_eq!(kind(&tree, "g"), &EntryKind::Dir);
    assert_eq!(
        (kind(&tree, "s"), tree.get("s").unwrap().meta.mode),
        (&EntryKind::Dir, 0o750)
    );
    assert_eq!(kind(&tree, "x"), &inline(b"second"));
    assert_eq!(tree, build());
}

#[test]
fn case11_tree_keeps_devices_fifos_setuid_and_capabilities() {
    let ctx = Ctx::new();
    let mut t = Tar::new();
    t.device("dev/null", b'3', 1, 3)
        .device("dev/sda", b'4', 8, 0)
        .raw(header(b"fifo", b'6', 0, 0o600, b""), b"")
        .file_mode("suid", b"", 0o4755)
        .file_mode("sgid", b"", 0o2755)
        .pax(
            b'x',
            &[
                ("SCHILY.xattr.security.capability", b"\x01cap"),
                ("SCHILY.xattr.user.junk", b"j"),
            ],
        )
        .file("ping", b"");
    let tree = ctx.tree(&t.finish()).unwrap();
    assert_eq!(
        kind(&tree, "dev/null"),
        &EntryKind::CharDevice { major: 1, minor: 3 }
    );
    assert_eq!(
        kind(&tree, "dev/sda"),
        &EntryKind::BlockDevice { major: 8, minor: 0 }
    );
    assert_eq!(kind(&tree, "fifo"), &EntryKind::Fifo);
    assert_eq!(tree.get("suid").unwrap().meta.mode, 0o4755);
    assert_eq!(tree.get("sgid").unwrap().meta.mode, 0o2755);
    let xattrs = &tree.get("ping").unwrap().meta.xattrs;
    assert_eq!(xattrs.keys().collect::<Vec<_>>(), ["security.capability"]);
    assert_eq!(xattrs["security.capability"], b"\x01cap");
}

#[test]
fn case12_tree_oversized_headers_are_refused() {
    let ctx = Ctx::new();
    let mut src = Lazy::gnu_long_name(1 << 30);
    let mut r = TarReader::new(&mut src, ReadLimits::default());
    let mut tree = FileTree::new();
    let err = tree.add_tar(&mut r, "/", &ctx.opts()).unwrap_err();
    assert!(matches!(
        err,
        AddTarError::Read(ReadError::ExtensionTooLarge {
            limit: MAX_GNU_LONG_NAME,
            ..
        })
    ));
    assert!(src.pos < 1 << 20);
    let mut t = Tar::new();
    t.pax(b'x', &[("path", "p".repeat(5000).as_bytes())])
        .file("f", b"");
    assert!(matches!(
        ctx.tree(&t.finish()),
        Err(AddTarError::Read(ReadError::PathTooLong { .. }))
    ));
    let mut src = Lazy::pax(100 << 20);
    let mut r = TarReader::new(&mut src, ReadLimits::default());
    assert!(tree.add_tar(&mut r, "/", &ctx.opts()).is_err());
    assert!(tree.is_empty());
}

#[test]
fn case14_tree_truncated_bad_checksum_short_data_leave_tree_unchanged() {
    let ctx = Ctx::new();
    let mut good = Tar::new();
    good.file("a", b"1").file("b", &[2u8; 5000]);
    let full = good.finish();
    let mut corrupt = full.clone();
    corrupt[1024] ^= 0x20; // the name of `b`
    for (bytes, what) in [
        (&full[..1024 + 700], "truncated"),
        (&corrupt[..], "checksum"),
        (&full[..1024 + 512 + 100], "truncated"),
    ] {
        let mut tree = FileTree::new();
        let err = ctx.add(&mut tree, bytes, "/").unwrap_err();
        assert!(err.to_string().contains(what), "{err}");
        assert!(tree.is_empty());
    }
    // No end-of-archive marker (umoci's layers): read as complete (issue 12.3).
    assert_eq!(keys(&ctx.tree(&good.out).unwrap()), ["a", "b"]);
    // trailing NULs are fine
    let mut padded = full.clone();
    padded.resize(padded.len() + 8192, 0);
    assert_eq!(keys(&ctx.tree(&padded).unwrap()), ["a", "b"]);
}

#[test]
fn members_are_spilled_to_one_file_and_mtimes_clamped() {
    let ctx = Ctx::new();
    let big: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let mut h = header(b"big", b'0', big.len() as u64, 0o644, b"");
    h[136..148].copy_from_slice(b"77777777777\0");
    set_checksum(&mut h);
    let mut t = Tar::new();
    t.raw(h, &big)
        .file("small", &[1u8; 4096])
        .file("tiny", b"12345");
    let tree = ctx.tree(&t.finish()).unwrap();
    let spilled: Vec<_> = fs_err::read_dir(ctx.spill.path()).unwrap().collect();
    assert_eq!(spilled.len(), 1, "one spill file for the whole archive");
    for (name, want_offset, want) in [("big", 0, &big[..]), ("small", 10_000, &[1u8; 4096][..])] {
        match kind(&tree, name) {
            EntryKind::File(Content::Slice { file, offset, size }) => {
                assert!(file.starts_with(ctx.spill.path()));
                assert_eq!((*offset, *size), (want_offset, want.len() as u64));
                let bytes = fs_err::read(file.as_path()).unwrap();
                assert_eq!(&bytes[*offset as usize..][..*size as usize], want, "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    assert!(
        matches!(kind(&tree, "tiny"), EntryKind::File(Content::Inline(b)) if &b[..] == b"12345")
    );
    assert_eq!(tree.get("big").unwrap().meta.mtime, 2_000);
    assert_eq!(tree.get("small").unwrap().meta.mtime, 1_000);
    // The writer reads the slices back in any order (a later member can replace an earlier
    // one, so the tree's order is not the file's).
    let mut out = Vec::new();
    crate::layer::write::write_tar(&tree, 2_000, &mut out).unwrap();
    let mut r = crate::layer::read::TarReader::new(&out[..], ReadLimits::default());
    let mut got = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        let mut data = Vec::new();
        r.read_data(&mut data).unwrap();
        got.push((e.path, data));
    }
    assert_eq!(
        got,
        [
            ("big".to_string(), big.clone()),
            ("small".to_string(), vec![1u8; 4096]),
            ("tiny".to_string(), b"12345".to_vec())
        ]
    );
}

/// Random hostile archives (fixed seed): every key the tree ends up with is a normalized path
/// inside the image, whatever the archive did.
#[test]
fn random_hostile_archives_keep_tree_paths_normalized() {
    let ctx = Ctx::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let comps = [
        "a",
        "b",
        "sym",
        "..",
        ".",
        "",
        "etc",
        ".wh.a",
        ".wh..wh..opq",
    ];
    let targets = [
        "..",
        "/",
        "/etc",
        "a/b",
        "../../..",
        "sym",
        "/etc/passwd",
        "a",
        "b/../a",
    ];
    for _ in 0..300 {
        let mut tree = FileTree::new();
        for _layer in 0..3 {
            let mut t = Tar::new();
            for _ in 0..15 {
                let depth = 1 + next(3);
                let path = (0..depth)
                    .map(|_| comps[next(comps.len())])
                    .collect::<Vec<_>>()
                    .join("/");
                let target = targets[next(targets.len())];
                match next(4) {
                    0 => t.file(&path, b"x"),
                    1 => t.dir(&path, 0o755),
                    2 => t.symlink(&path, target),
                    _ => t.hardlink(&path, target),
                };
            }
            let before = tree.clone();
            if ctx.add(&mut tree, &t.finish(), "/srv").is_err() {
                assert_eq!(tree, before, "a failed add_tar leaves the tree unchanged");
            }
            for (k, e) in tree.entries.iter() {
                assert_eq!(tree::normalize(k).unwrap(), *k);
                if let EntryKind::Hardlink(t) = &e.kind {
                    assert!(
                        matches!(tree.get(t).map(|e| &e.kind), Some(k) if !matches!(k, EntryKind::Dir | EntryKind::Hardlink(_) | EntryKind::Whiteout(()))),
                        "hardlink {k} -> {t} dangles"
                    );
                }
            }
            for d in tree.opaque_dirs() {
                assert_eq!(tree::normalize(d).unwrap(), *d);
            }
        }
    }
}
