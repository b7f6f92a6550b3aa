use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use rustix::fs::{FileType, Mode, XattrFlags, CWD};

use super::*;

const EPOCH: i64 = 1_700_000_000;

fn identity(id: u32) -> Option<u32> {
    Some(id)
}

fn opts() -> UpperOptions<'static> {
    UpperOptions {
        epoch: EPOCH,
        uid_to_container: &identity,
        gid_to_container: &identity,
        copied_up: None,
    }
}

fn inline(data: &str) -> Entry {
    Entry {
        kind: EntryKind::File(Content::Inline(Arc::from(data.as_bytes()))),
        meta: Metadata::new(0o644, 0, 0, 0),
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Tests that need root (mknod, chown, security.* xattrs) fail when not root: CI runs them as
/// root (`.ci/run`), and they are not part of the rootless suites.
fn require_root(test: &str) {
    assert!(
        is_root(),
        "{test} needs root (mknod, chown, security.* xattrs): run it as root, as CI does"
    );
}

fn set_mtime(path: &Path, secs: i64) {
    filetime::set_symlink_file_times(
        path,
        filetime::FileTime::from_unix_time(secs, 0),
        filetime::FileTime::from_unix_time(secs, 0),
    )
    .unwrap();
}

#[test]
fn files_modes_links_and_mtimes_are_recorded_faithfully() {
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path();
    fs_err::write(up.join("hello"), "hi\n").unwrap();
    fs_err::set_permissions(up.join("hello"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    set_mtime(&up.join("hello"), 1000);
    fs_err::create_dir(up.join("a")).unwrap();
    fs_err::create_dir(up.join("b")).unwrap();
    fs_err::set_permissions(up.join("b"), std::fs::Permissions::from_mode(0o2775)).unwrap();
    fs_err::write(up.join("b/y"), "linked").unwrap();
    fs_err::hard_link(up.join("b/y"), up.join("a/x")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", up.join("shadow")).unwrap();
    rustix::fs::mknodat(CWD, up.join("fifo"), FileType::Fifo, Mode::from(0o600), 0).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(up.join("sock")).unwrap();

    let mut tree = FileTree::new();
    let stats = tree.add_upper_dir(up, &opts()).unwrap();
    assert_eq!(
        tree.entries.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
        ["a", "a/x", "b", "b/y", "fifo", "hello", "shadow"]
    );
    assert_eq!(stats.sockets_skipped, 1);
    assert_eq!(stats.hardlinks, 1);

    let hello = tree.get("hello").unwrap();
    assert_eq!(hello.meta.mode, 0o4755, "setuid kept");
    assert_eq!(hello.meta.mtime, 1000, "an older mtime is kept");
    assert_eq!(
        hello.kind,
        EntryKind::File(Content::File {
            path: up.join("hello"),
            size: 3,
            link: None,
        })
    );
    assert_eq!(tree.get("b").unwrap().meta.mode, 0o2775, "setgid dir kept");
    assert_eq!(
        tree.get("b").unwrap().meta.mtime,
        EPOCH,
        "a newer mtime is clamped"
    );
    // a/x sorts first: it holds the content, b/y links to it.
    assert!(matches!(tree.get("a/x").unwrap().kind, EntryKind::File(_)));
    assert_eq!(
        tree.get("b/y").unwrap().kind,
        EntryKind::Hardlink("a/x".into())
    );
    assert_eq!(
        tree.get("shadow").unwrap().kind,
        EntryKind::Symlink("/etc/shadow".into()),
        "a symlink to a host path is recorded, never followed"
    );
    assert_eq!(tree.get("fifo").unwrap().kind, EntryKind::Fifo);
    assert_eq!(tree.get("fifo").unwrap().meta.mode, 0o600);
}

#[test]
fn opaque_directory_hides_earlier_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path();
    fs_err::create_dir(up.join("d")).unwrap();
    fs_err::write(up.join("d/new"), "n").unwrap();
    rustix::fs::lsetxattr(up.join("d"), OPAQUE_XATTR, b"y", XattrFlags::empty()).unwrap();
    fs_err::write(up.join("keep"), "k").unwrap();

    let mut tree = FileTree::new();
    tree.insert(
        "d",
        Entry {
            kind: EntryKind::Dir,
            meta: Metadata::new(0o755, 0, 0, 0),
        },
    )
    .unwrap();
    tree.insert("d/old", inline("o")).unwrap();
    tree.insert("other", inline("x")).unwrap();
    let stats = tree.add_upper_dir(up, &opts()).unwrap();
    assert_eq!(stats.opaque_dirs, 1);
    assert_eq!(
        tree.entries.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
        ["d", "d/new", "keep", "other"],
        "the step hid d/old; entries outside d stay"
    );
    assert_eq!(tree.opaque_dirs().collect::<Vec<_>>(), ["d"]);
}

#[test]
fn later_step_overrides_earlier_entry() {
    let tmp = tempfile::tempdir().unwrap();
    fs_err::write(tmp.path().join("f"), "second").unwrap();
    let mut tree = FileTree::new();
    tree.insert("f", inline("first")).unwrap();
    tree.add_upper_dir(tmp.path(), &opts()).unwrap();
    assert!(matches!(
        tree.get("f").unwrap().kind,
        EntryKind::File(Content::File { size: 6, .. })
    ));
}

#[test]
fn whiteouts_devices_owners_and_capabilities() {
    require_root("whiteouts_devices_owners_and_capabilities");
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path();
    let chr = |name: &str, major, minor| {
        rustix::fs::mknodat(
            CWD,
            up.join(name),
            FileType::CharacterDevice,
            Mode::from(0o666),
            rustix::fs::makedev(major, minor),
        )
        .unwrap()
    };
    chr("gone", 0, 0);
    chr("null", 1, 3);
    fs_err::create_dir(up.join("dir")).unwrap();
    chr("dir/sub", 0, 0);
    fs_err::write(up.join("owned"), "o").unwrap();
    rustix::fs::chown(
        up.join("owned"),
        Some(rustix::fs::Uid::from_raw(165_531)),
        Some(rustix::fs::Gid::from_raw(165_531)),
    )
    .unwrap();
    fs_err::write(up.join("ping"), "p").unwrap();
    // VFS_CAP_REVISION_2, CAP_NET_RAW (13) permitted, effective.
    let caps: [u8; 20] = [
        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    rustix::fs::lsetxattr(
        up.join("ping"),
        CAPABILITY_XATTR,
        &caps,
        XattrFlags::empty(),
    )
    .unwrap();

    let mut tree = FileTree::new();
    tree.insert("gone", inline("g")).unwrap();
    tree.insert(
        "dir",
        Entry {
            kind: EntryKind::Dir,
            meta: Metadata::new(0o755, 0, 0, 0),
        },
    )
    .unwrap();
    tree.insert("dir/sub", inline("s")).unwrap();
    // A subordinate mapping: container 1.. is host 165532..
    let sub = |host: u32| match host {
        0 => Some(0),
        h if (165_531..165_531 + 65_535).contains(&h) => Some(h - 165_531 + 1),
        _ => None,
    };
    let o = UpperOptions {
        epoch: EPOCH,
        uid_to_container: &sub,
        gid_to_container: &sub,
        copied_up: None,
    };
    let stats = tree.add_upper_dir(up, &o).unwrap();
    assert_eq!(stats.whiteouts, 2);
    assert_eq!(tree.get("gone").unwrap().kind, EntryKind::Whiteout(()));
    assert_eq!(tree.get("dir/sub").unwrap().kind, EntryKind::Whiteout(()));
    assert_eq!(
        tree.get("null").unwrap().kind,
        EntryKind::CharDevice { major: 1, minor: 3 }
    );
    let owned = &tree.get("owned").unwrap().meta;
    assert_eq!(
        (owned.uid, owned.gid),
        (1, 1),
        "host ids become container ids"
    );
    assert_eq!(
        tree.get("ping")
            .unwrap()
            .meta
            .xattrs
            .get(CAPABILITY_XATTR)
            .map(Vec::as_slice),
        Some(&caps[..])
    );

    // An owner outside the step's namespace is an error naming the path.
    rustix::fs::chown(
        up.join("owned"),
        Some(rustix::fs::Uid::from_raw(4242)),
        None,
    )
    .unwrap();
    let err = FileTree::new().add_upper_dir(up, &o).unwrap_err();
    assert!(
        matches!(&err, UpperError::UnmappedOwner { path, kind: "uid", id: 4242 } if path == "owned"),
        "{err:?}"
    );
}

#[test]
fn copied_up_entries_go_through_the_hook() {
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path();
    fs_err::write(up.join("copied"), "c").unwrap();
    rustix::fs::lsetxattr(
        up.join("copied"),
        ORIGIN_XATTR,
        b"\0fh",
        XattrFlags::empty(),
    )
    .unwrap();
    fs_err::write(up.join("new"), "n").unwrap();
    let restore = |path: &str, _: &EntryKind, meta: &mut Metadata| {
        assert_eq!(path, "copied");
        meta.mode |= 0o4000;
    };
    let o = UpperOptions {
        copied_up: Some(&restore),
        ..opts()
    };
    let mut tree = FileTree::new();
    tree.add_upper_dir(up, &o).unwrap();
    assert_eq!(tree.get("copied").unwrap().meta.mode & 0o4000, 0o4000);
    assert_eq!(tree.get("new").unwrap().meta.mode & 0o4000, 0);
}
