//! SECURITY.md cases 1–12 and 14 against the on-disk extractor. "No escape": a canary
//! directory beside the root is byte- and metadata-identical afterwards (path, mode, size,
//! content hash, nlink, owner, mtime), nothing else appeared beside the root, and the host's
//! `/etc/passwd` is untouched.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::*;
use crate::layer::read::ReadError;
use crate::layer::testtar::{header, set_checksum, symlink_loop, Lazy, Tar};

type Snapshot = BTreeMap<String, (u32, u64, String, u64, u32, u32, i64)>;

fn snapshot(dir: &Path) -> Snapshot {
    let mut out = Snapshot::new();
    walk(dir, "", &mut out);
    out
}

fn walk(path: &Path, rel: &str, out: &mut Snapshot) {
    let md = fs_err::symlink_metadata(path).unwrap();
    let content = if md.is_file() {
        hex::encode(Sha256::digest(fs_err::read(path).unwrap()))
    } else if md.file_type().is_symlink() {
        fs_err::read_link(path).unwrap().display().to_string()
    } else {
        String::new()
    };
    out.insert(
        rel.to_string(),
        (
            md.mode(),
            md.len(),
            content,
            md.nlink(),
            md.uid(),
            md.gid(),
            md.mtime(),
        ),
    );
    if md.is_dir() {
        for e in fs_err::read_dir(path).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            walk(&e.path(), &format!("{rel}/{name}"), out);
        }
    }
}

fn host_passwd() -> (u32, u64, u64, i64) {
    let md = fs_err::metadata("/etc/passwd").unwrap();
    (md.mode(), md.len(), md.nlink(), md.mtime())
}

struct Fx {
    tmp: tempfile::TempDir,
    root: PathBuf,
    canary: PathBuf,
    before: Snapshot,
    passwd: (u32, u64, u64, i64),
}

impl Fx {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let canary = tmp.path().join("canary");
        fs_err::create_dir(&root).unwrap();
        fs_err::create_dir_all(canary.join("subdir")).unwrap();
        for (p, data, mode) in [
            ("file1", "secret", 0o640),
            ("subdir/file2", "inner", 0o600),
            ("exec", "#!", 0o755),
        ] {
            fs_err::write(canary.join(p), data).unwrap();
            fs_err::set_permissions(canary.join(p), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        fs_err::set_permissions(
            canary.join("subdir"),
            std::fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        std::os::unix::fs::symlink("file1", canary.join("link")).unwrap();
        let before = snapshot(&canary);
        Self {
            tmp,
            root,
            canary,
            before,
            passwd: host_passwd(),
        }
    }
    fn canary_abs(&self, rel: &str) -> String {
        format!("{}/{rel}", self.canary.display())
    }
    fn apply(&self, bytes: &[u8]) -> Result<ApplyStats, ExtractError> {
        apply_layer(&self.root, bytes, &ExtractOptions::default())
    }
    fn assert_no_escape(&self) {
        assert_eq!(snapshot(&self.canary), self.before, "the canary changed");
        let mut beside: Vec<String> = fs_err::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        beside.sort();
        assert_eq!(beside, ["canary", "root"]);
        assert_eq!(host_passwd(), self.passwd);
    }
    fn read(&self, rel: &str) -> String {
        fs_err::read_to_string(self.root.join(rel)).unwrap()
    }
    fn md(&self, rel: &str) -> std::fs::Metadata {
        fs_err::symlink_metadata(self.root.join(rel)).unwrap()
    }
    fn exists(&self, rel: &str) -> bool {
        self.root.join(rel).symlink_metadata().is_ok()
    }
}

#[test]
fn case1_extract_dotdot_and_absolute_names_stay_in_root() {
    let fx = Fx::new();
    let mut t = Tar::new();
    t.file("../x", b"1")
        .file("/../y", b"2")
        .file("/etc/passwd", b"3")
        .file("../canary/file1", b"4");
    fx.apply(&t.finish()).unwrap();
    assert_eq!(
        (fx.read("x"), fx.read("y"), fx.read("etc/passwd")),
        ("1".into(), "2".into(), "3".into())
    );
    assert_eq!(fx.read("canary/file1"), "4");
    fx.assert_no_escape();
}

#[test]
fn case2_extract_link_then_file_replaces_the_link() {
    let fx = Fx::new();
    let mut t = Tar::new();
    t.symlink("abs", &fx.canary_abs("file1"))
        .file("abs", b"a")
        .symlink("rel", "../canary/file1")
        .file("rel", b"r")
        .symlink("pw", "/etc/passwd")
        .file("pw", b"p")
        .file("inner", b"inner")
        .hardlink("hl", "inner")
        .file("hl", b"h");
    fx.apply(&t.finish()).unwrap();
    for (p, want) in [
        ("abs", "a"),
        ("rel", "r"),
        ("pw", "p"),
        ("inner", "inner"),
        ("hl", "h"),
    ] {
        assert!(fx.md(p).is_file(), "{p}");
        assert_eq!(fx.read(p), want);
    }
    assert_eq!(fx.md("inner").nlink(), 1);
    fx.assert_no_escape();
}

#[test]
fn case3_extract_symlink_to_dotdot_then_deep_path() {
    let fx = Fx::new();
    let mut t = Tar::new();
    t.symlink("sym", "..")
        .file("sym/a/b/c", b"c")
        .symlink("up", "../canary")
        .file("up/new/x", b"x");
    fx.apply(&t.finish()).unwrap();
    assert_eq!(fx.read("a/b/c"), "c");
    assert_eq!(fx.read("canary/new/x"), "x");
    assert_eq!(
        fx.md("a").mode() & 0o7777,
        0o755,
        "implicit parents are 0755"
    );
    fx.assert_no_escape();
}

#[test]
fn case4_extract_directory_over_symlink_leaves_outside_mode() {
    let fx = Fx::new();
    let mut t = Tar::new();
    t.symlink("foo", &fx.canary_abs("subdir"))
        .dir("foo", 0o777)
        .symlink("bar", "../canary/subdir")
        .dir("bar", 0o777)
        .file("bar/in", b"");
    fx.apply(&t.finish()).unwrap();
    assert!(fx.md("foo").is_dir());
    assert_eq!(fx.md("foo").mode() & 0o7777, 0o777);
    assert!(fx.md("bar/in").is_file());
    fx.assert_no_escape();
}

#[test]
fn case5_extract_absolute_symlinks_and_chains_land_in_root() {
    let fx = Fx::new();
    let mut t = Tar::new();
    t.dir("etc", 0o755)
        .symlink("etc2", "/etc")
        .file("etc2/passwd", b"p")
        .symlink("b", "/")
        .symlink("a", "./b/etc")
        .file("a/group", b"g")
        .file("up/../../../etc/shadow", b"s")
        .symlink("fresh", "/newdir/deeper")
        .file("fresh/f", b"f")
        .symlink("hostabs", &fx.canary_abs("subdir"))
        .file("hostabs/planted", b"in root");
    fx.apply(&t.finish()).unwrap();
    // The host path of the canary is recreated inside the root.
    assert_eq!(
        fx.read(&format!(
            "{}/planted",
            fx.canary_abs("subdir").trim_start_matches('/')
        )),
        "in root"
    );
    assert_eq!(fx.read("etc/passwd"), "p");
    assert_eq!(fx.read("etc/group"), "g");
    assert_eq!(fx.read("etc/shadow"), "s");
    assert_eq!(fx.read("newdir/deeper/f"), "f");
    fx.assert_no_escape();
}

#[test]
fn case6_extract_symlink_loop_is_eloop_quickly() {
    let fx = Fx::new();
    let start = Instant::now();
    let err = fx.apply(&symlink_loop()).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(matches!(err, ExtractError::SymlinkLoop { .. }), "{err}");
    assert!(err.to_string().contains("l0/x"));
    // A dangling loop (no existing target) takes the slow path and stops as well.
    let fx = Fx::new();
    let mut t = Tar::new();
    t.symlink("self", "self").file("self/x", b"");
    assert!(matches!(
        fx.apply(&t.finish()),
        Err(ExtractError::SymlinkLoop { .. })
    ));
    fx.assert_no_escape();
}

#[test]
fn case7_extract_symlinks_named_like_the_root_are_refused() {
    for name in [".", "/", "..", "", "./"] {
        let fx = Fx::new();
        let mut t = Tar::new();
        t.symlink(name, &fx.canary_abs(""));
        let err = fx.apply(&t.finish()).unwrap_err();
        assert!(
            matches!(err, ExtractError::Member(MemberError::RootEntry { .. })),
            "{name:?}: {err}"
        );
        assert!(fx.md("").is_dir());
        assert!(!fx.md("").file_type().is_symlink());
        fx.assert_no_escape();
    }
}

#[test]
fn case8_extract_hardlinks_resolve_in_root_or_are_refused() {
    let base = |fx: &Fx| {
        let mut t = Tar::new();
        t.file("x", b"x")
            .dir("d", 0o755)
            .file("real/f", b"f")
            .symlink("s", "real")
            .symlink("out", &fx.canary_abs(""))
            .symlink("ls", &fx.canary_abs("file1"));
        t
    };
    // Resolved inside the root.
    for (target, inode_of) in [("../x", "x"), ("s/f", "real/f"), ("ls", "ls")] {
        let fx = Fx::new();
        let mut t = base(&fx);
        t.hardlink("h", target);
        fx.apply(&t.finish()).unwrap();
        assert_eq!(fx.md("h").ino(), fx.md(inode_of).ino(), "{target}");
        fx.assert_no_escape();
    }
    // Refused: outside files, a directory, a path relative to the process cwd.
    for target in [
        "../canary/file1".to_string(),
        "@CANARY@".into(),
        "/etc/passwd".into(),
        "d".into(),
        "Cargo.toml".into(),
        "out/file1".into(),
    ] {
        let fx = Fx::new();
        let target = target.replace("@CANARY@", &fx.canary_abs("file1"));
        let mut t = base(&fx);
        t.hardlink("h", &target);
        let err = fx.apply(&t.finish()).unwrap_err();
        assert!(
            matches!(err, ExtractError::Hardlink { .. }),
            "{target}: {err}"
        );
        assert!(err.to_string().contains("`h`"), "{err}");
        assert!(!fx.exists("h"));
        fx.assert_no_escape();
    }
}

#[test]
fn case9_extract_invalid_whiteouts_delete_nothing() {
    for name in [".wh..", ".wh...", "dir/.wh..", ".wh..wh.x", ".wh.keep/"] {
        let fx = Fx::new();
        fx.apply(
            &Tar::new()
                .file("dir/keep", b"k")
                .file("keep", b"k")
                .finish(),
        )
        .unwrap();
        let lower = snapshot(&fx.root);
        let mut t = Tar::new();
        if name.ends_with('/') {
            t.dir(name, 0o755); // a whiteout must be a regular file
        } else {
            t.file(name, b"");
        }
        let err = fx.apply(&t.finish()).unwrap_err();
        assert!(
            matches!(
                err,
                ExtractError::Member(MemberError::InvalidWhiteout { .. })
            ),
            "{name}: {err}"
        );
        assert_eq!(snapshot(&fx.root), lower, "{name}");
        fx.assert_no_escape();
    }
}

#[test]
fn case9_extract_whiteout_under_symlinked_dir_stays_in_root() {
    let fx = Fx::new();
    let mut lower = Tar::new();
    lower
        .file("real/victim", b"v")
        .file("real/other", b"o")
        .symlink("link", "/real")
        .symlink("out", &fx.canary_abs(""))
        .symlink("up", "../canary");
    fx.apply(&lower.finish()).unwrap();
    let mut t = Tar::new();
    t.file("link/.wh.victim", b"")
        .file("out/.wh.file1", b"")
        .file("up/.wh.subdir", b"")
        .file("up/.wh.exec", b"");
    let stats = fx.apply(&t.finish()).unwrap();
    assert_eq!(stats.whiteouts, 4);
    assert!(!fx.exists("real/victim"));
    assert!(fx.exists("real/other"));
    fx.assert_no_escape();
}

#[test]
fn case9_extract_opaque_marker_after_siblings_hides_only_lower() {
    let fx = Fx::new();
    let mut lower = Tar::new();
    lower
        .file("d/old1", b"")
        .file("d/sub/old2", b"")
        .file("d/new1", b"lower")
        .file("keep/x", b"");
    fx.apply(&lower.finish()).unwrap();
    let mut t = Tar::new();
    t.file("d/new1", b"upper")
        .dir("d/sub", 0o755)
        .file("d/sub/new3", b"")
        .file("d/.wh..wh..opq", b"")
        .file("d/new2", b"")
        .file("x", b"x")
        .file(".wh.x", b"");
    let stats = fx.apply(&t.finish()).unwrap();
    assert_eq!(stats.opaque_dirs, 1);
    let mut names: Vec<String> = snapshot(&fx.root.join("d")).into_keys().collect();
    names.sort();
    assert_eq!(names, ["", "/new1", "/new2", "/sub", "/sub/new3"]);
    assert_eq!(fx.read("d/new1"), "upper");
    assert!(fx.exists("keep/x"));
    assert_eq!(
        fx.read("x"),
        "x",
        "a whiteout does not remove an entry of its own layer"
    );
    fx.assert_no_escape();
}

#[test]
fn case10_extract_type_changes_and_duplicates_are_deterministic() {
    let layers = || {
        let mut l1 = Tar::new();
        l1.dir("d", 0o755)
            .file("d/f", b"f")
            .file("g", b"g")
            .dir("s-target", 0o755)
            .symlink("s", "s-target");
        let mut l2 = Tar::new();
        l2.file("x", b"first")
            .file("d", b"now a file")
            .dir("g", 0o700)
            .dir("s", 0o750)
            .file("s/in", b"")
            .file("x", b"second")
            .dir("e", 0o755)
            .file("e", b"e file")
            .dir("e", 0o711);
        [l1.finish(), l2.finish()]
    };
    let run = || {
        let fx = Fx::new();
        for l in layers() {
            fx.apply(&l).unwrap();
        }
        fx.assert_no_escape();
        assert!(fx.md("d").is_file());
        assert_eq!(fx.read("d"), "now a file");
        assert!(fx.md("g").is_dir());
        assert!(fx.md("s").is_dir() && fx.md("s/in").is_file());
        assert!(!fx.exists("s-target/in"));
        assert_eq!(fx.read("x"), "second");
        assert_eq!(fx.md("e").mode() & 0o7777, 0o711);
        let mut snap = snapshot(&fx.root);
        snap.remove(""); // the root's own mtime is the test's clock
        snap
    };
    assert_eq!(run(), run());
}

#[test]
fn case11_extract_never_creates_devices_or_setuid_files() {
    let fx = Fx::new();
    let mut t = Tar::new();
    t.file("dev/null", b"lower")
        .device("dev/null", b'3', 1, 3)
        .device("dev/sda", b'4', 8, 0)
        .hardlink("dev/null2", "dev/null");
    t.raw(header(b"fifo", b'6', 0, 0o640, b""), b"")
        .file_mode("suid", b"", 0o4755)
        .file_mode("sgid", b"", 0o2755)
        .dir("sgid-dir", 0o2775)
        .dir("tmp", 0o1777)
        .pax(
            b'x',
            &[(
                "SCHILY.xattr.security.capability",
                b"\x01\x00\x00\x02\x00\x20\x00\x00",
            )],
        )
        .file_mode("cap", b"", 0o755);
    let stats = fx.apply(&t.finish()).unwrap();
    assert_eq!(stats.skipped_devices, 3);
    assert!(!fx.exists("dev/null") && !fx.exists("dev/sda") && !fx.exists("dev/null2"));
    use std::os::unix::fs::FileTypeExt;
    assert!(fx.md("fifo").file_type().is_fifo());
    assert_eq!(fx.md("fifo").mode() & 0o7777, 0o640);
    assert_eq!(fx.md("suid").mode() & 0o7777, 0o755);
    assert_eq!(fx.md("sgid").mode() & 0o7777, 0o755);
    assert_eq!(fx.md("sgid-dir").mode() & 0o7777, 0o775);
    assert_eq!(fx.md("tmp").mode() & 0o7777, 0o1777);
    let caps = rustix::fs::lgetxattr(fx.root.join("cap"), "security.capability", &mut [0u8; 64]);
    assert!(caps.is_err(), "no capability xattr on the host copy");
    fx.assert_no_escape();
}

#[test]
fn case12_extract_oversized_headers_are_refused() {
    let fx = Fx::new();
    let mut src = Lazy::gnu_long_name(1 << 30);
    let err = apply_layer(&fx.root, &mut src, &ExtractOptions::default()).unwrap_err();
    assert!(
        matches!(err, ExtractError::Read(ReadError::ExtensionTooLarge { .. })),
        "{err}"
    );
    assert!(src.pos < 1 << 20);
    let mut src = Lazy::pax(100 << 20);
    let err = apply_layer(&fx.root, &mut src, &ExtractOptions::default()).unwrap_err();
    assert!(
        matches!(err, ExtractError::Read(ReadError::ExtensionTooLarge { .. })),
        "{err}"
    );
    let mut t = Tar::new();
    t.gnu_long(b'L', "d/".repeat(2500).as_bytes())
        .file("x", b"");
    let err = fx.apply(&t.finish()).unwrap_err();
    assert!(
        matches!(err, ExtractError::Read(ReadError::PathTooLong { .. })),
        "{err}"
    );
    assert!(snapshot(&fx.root).len() == 1);
    fx.assert_no_escape();
}

#[test]
fn case14_extract_truncated_bad_checksum_short_data_trailing_nuls() {
    let mut good = Tar::new();
    good.file("a", b"1").file("b", &[2u8; 5000]);
    let full = good.finish();
    let mut corrupt = full.clone();
    corrupt[1024] ^= 0x20;
    for (bytes, what) in [
        (&full[..1024 + 700], "truncated"),
        (&corrupt[..], "checksum"),
        (&full[..1024 + 100], "truncated"),
    ] {
        let fx = Fx::new();
        let err = fx.apply(bytes).unwrap_err();
        assert!(err.to_string().contains(what), "{err}");
        fx.assert_no_escape();
    }
    // No end-of-archive marker (umoci's layers): read as complete (issue 12.3).
    let fx = Fx::new();
    assert_eq!(fx.apply(&good.out).unwrap().files, 2);
    fx.assert_no_escape();
    let fx = Fx::new();
    let mut padded = full.clone();
    padded.resize(padded.len() + 8192, 0);
    let stats = fx.apply(&padded).unwrap();
    assert_eq!((stats.files, stats.bytes), (2, 5001));
    fx.assert_no_escape();
}

#[test]
fn ownership_and_mtime_are_applied() {
    let fx = Fx::new();
    let mut h = header(b"owned", b'0', 1, 0o644, b"");
    h[108..116].copy_from_slice(b"0002322\0");
    h[116..124].copy_from_slice(b"0013056\0");
    set_checksum(&mut h);
    let mut t = Tar::new();
    t.raw(h, b"o").dir("dir", 0o555).file("dir/inside", b"i");
    fx.apply(&t.finish()).unwrap();
    assert_eq!(fx.md("owned").mtime(), 1000);
    assert_eq!(
        fx.md("dir").mtime(),
        1000,
        "directory mtimes are applied after their contents"
    );
    assert_eq!(fx.md("dir").mode() & 0o7777, 0o555);
    // chown needs root: as non-root the extractor leaves the file to the extracting user.
    let owner = (fx.md("owned").uid(), fx.md("owned").gid());
    if rustix::process::geteuid().is_root() {
        assert_eq!(owner, (1234, 5678));
    } else {
        let me = (rustix::process::geteuid(), rustix::process::getegid());
        assert_eq!(owner, (me.0.as_raw(), me.1.as_raw()));
    }
    // A later layer can still write into and remove from the read-only directory.
    let mut t = Tar::new();
    t.file("dir/new", b"n").file("dir/.wh.inside", b"");
    fx.apply(&t.finish()).unwrap();
    assert!(!fx.exists("dir/inside") && fx.exists("dir/new"));
    fx.assert_no_escape();
}

#[test]
fn extract_of_gnu_tar_matches_the_source_tree() {
    let src = crate::layer::testtar::interop_fixture(true);
    let bytes =
        crate::layer::testtar::gnu_tar(src.path(), &["--format=pax", "--mtime=@1700000000"]);
    let fx = Fx::new();
    let stats = fx.apply(&bytes).unwrap();
    assert_eq!(stats.hardlinks, 1);
    let mut want = snapshot(src.path());
    let mut got = snapshot(&fx.root);
    for (path, v) in want.iter_mut() {
        v.0 &= !0o6000; // setuid/setgid are stripped on the host copy
        if path.is_empty() {
            v.6 = 0;
        } else {
            v.6 = 1_700_000_000;
        }
    }
    got.get_mut("").unwrap().6 = 0;
    // Directory sizes depend on the file system, not on the archive.
    for v in want.values_mut().chain(got.values_mut()) {
        if v.0 & 0o170000 == 0o040000 {
            v.1 = 0;
        }
    }
    assert_eq!(got, want);
    fx.assert_no_escape();
}

#[test]
fn case9_extract_same_layer_tracking_follows_symlinked_paths() {
    let fx = Fx::new();
    let mut lower = Tar::new();
    lower
        .file("d/old", b"")
        .symlink("link", "d")
        .symlink("abs", "/d");
    fx.apply(&lower.finish()).unwrap();
    let mut t = Tar::new();
    t.file("link/new", b"n")
        .file("d/.wh..wh..opq", b"")
        .file("abs/sub/deep", b"s")
        .file("d/x", b"x")
        .file("link/.wh.x", b"");
    fx.apply(&t.finish()).unwrap();
    let names: Vec<String> = snapshot(&fx.root.join("d")).into_keys().collect();
    assert_eq!(names, ["", "/new", "/sub", "/sub/deep", "/x"]);
    fx.assert_no_escape();
}

/// Random hostile layers (fixed seed): whatever they contain and whether they apply or fail,
/// nothing outside the root changes.
#[test]
fn random_hostile_layers_never_escape() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for _ in 0..150 {
        let fx = Fx::new();
        let abs = fx.canary_abs("");
        let comps = [
            "a",
            "b",
            "sym",
            "..",
            ".",
            "canary",
            "etc",
            ".wh.a",
            ".wh..wh..opq",
        ];
        let targets = [
            "..".to_string(),
            "/".into(),
            "/etc".into(),
            "../canary".into(),
            abs.clone(),
            format!("{abs}/subdir"),
            format!("{abs}/file1"),
            "a/b".into(),
            "../../..".into(),
            "sym".into(),
            "/etc/passwd".into(),
        ];
        for _layer in 0..3 {
            let mut t = Tar::new();
            for _ in 0..20 {
                let depth = 1 + next(3);
                let path: Vec<&str> = (0..depth).map(|_| comps[next(comps.len())]).collect();
                let path = path.join("/");
                let target = &targets[next(targets.len())];
                match next(5) {
                    0 => t.file_mode(&path, b"payload", 0o4777),
                    1 => t.dir(&path, 0o777),
                    2 => t.symlink(&path, target),
                    3 => t.hardlink(&path, target),
                    _ => t.hardlink(&path, &path),
                };
            }
            let _ = fx.apply(&t.finish());
            fx.assert_no_escape();
            for (p, v) in snapshot(&fx.root) {
                assert_eq!(v.0 & 0o6000, 0, "setuid/setgid on the host copy: {p}");
            }
        }
    }
}
