use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::layer::host::HostOptions;
use crate::layer::read::{ReadLimits, TarKind, TarReader};
use crate::layer::tree::{Content, EntryKind, Metadata, TreeError};
use crate::layer::write::{write_tar, WriteError};

/// Names that sort around `/` (0x2f): space, `!`, `-`, `.` below it, `0`, `A`, `_`, `~` and
/// a multi-byte name above it; directories and files of the same prefix side by side.
fn tricky_dir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for dir in ["a", "a/x", "a/x/deep", "a b", "a-c", "b", "é"] {
        fs_err::create_dir_all(d.join(dir)).unwrap();
    }
    for file in [
        "a.b",
        "a!",
        "a/x/deep/f",
        "a/x.y",
        "a/x-z",
        "a/0",
        "a b/c",
        "a-c/d",
        "a0",
        "aA",
        "a_",
        "a~",
        "b/.hidden",
        "é/ü",
        "z",
    ] {
        fs_err::write(d.join(file), file).unwrap();
    }
    std::os::unix::fs::symlink("x", d.join("a/lnk")).unwrap();
    tmp
}

/// Every path under `dir` (not `dir` itself), sorted bytewise: what a `BTreeMap` of the full
/// paths, the writer's order before host directories were read lazily, gives.
fn sorted_paths(dir: &Path, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), prefix.to_string())];
    while let Some((d, p)) = stack.pop() {
        for item in fs_err::read_dir(&d).unwrap() {
            let item = item.unwrap();
            let path = tree::join(&p, item.file_name().to_str().unwrap());
            if item.file_type().unwrap().is_dir() {
                stack.push((item.path(), path.clone()));
            }
            out.push(path);
        }
    }
    out.sort();
    out
}

fn walked(t: &FileTree) -> Vec<String> {
    t.entries().map(|e| e.unwrap().0.into_owned()).collect()
}

fn inline(data: &str) -> Entry {
    Entry {
        kind: EntryKind::File(Content::Inline(Arc::from(data.as_bytes()))),
        meta: Metadata::new(0o644, 0, 0, 0),
    }
}

/// `(path, kind, link target)` of every member of the tar `t` writes.
fn tar_members(t: &FileTree) -> Vec<(String, TarKind, String)> {
    let mut tar = Vec::new();
    write_tar(t, 0, &mut tar).unwrap();
    let mut r = TarReader::new(&tar[..], ReadLimits::default());
    let mut out = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        out.push((e.path, e.kind, e.link_name));
    }
    out
}

#[test]
fn a_copied_directory_walks_in_bytewise_path_order() {
    let host = tricky_dir();
    let opts = HostOptions::default();
    let mut t = FileTree::new();
    t.add_host_path(host.path(), "/data", &opts).unwrap();
    assert_eq!(t.entries.len(), 1, "only the destination is listed");
    let mut want = vec!["data".to_string()];
    want.extend(sorted_paths(host.path(), "data"));
    assert_eq!(walked(&t), want);

    // At the root, too, and the same order when every directory has been listed by hand.
    let mut root = crate::layer::host::host_tree(host.path(), &opts).unwrap();
    assert_eq!(walked(&root), sorted_paths(host.path(), ""));
    let before = walked(&root);
    let mut tar_before = Vec::new();
    write_tar(&root, 0, &mut tar_before).unwrap();
    for p in ["a/x/deep/new", "a b/new", "é/new", "b/new"] {
        root.resolve(p).unwrap();
    }
    assert_eq!(root.mounts.keys().collect::<Vec<_>>(), ["a-c"]);
    assert_eq!(walked(&root), before);
    let mut tar_after = Vec::new();
    write_tar(&root, 0, &mut tar_after).unwrap();
    assert!(
        tar_before == tar_after,
        "listing directories changes no byte"
    );
}

#[test]
fn listed_entries_interleave_with_a_copied_directory() {
    let host = tricky_dir();
    let mut t = FileTree::new();
    t.insert("data.b", inline("1")).unwrap();
    t.insert("data-a", inline("2")).unwrap();
    t.insert("datum", inline("3")).unwrap();
    t.add_host_path(host.path(), "data", &HostOptions::default())
        .unwrap();
    t.insert("data0", inline("4")).unwrap();
    let got = walked(&t);
    let mut want: Vec<String> = ["data", "data.b", "data-a", "datum", "data0"]
        .map(String::from)
        .to_vec();
    want.extend(sorted_paths(host.path(), "data"));
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn edits_below_a_copied_directory_list_only_the_path_to_them() {
    let host = tricky_dir();
    let mut t = FileTree::new();
    t.add_host_path(host.path(), "data", &HostOptions::default())
        .unwrap();
    // Through the copied symlink `a/lnk -> x`, as in a chroot.
    let landed = t.insert("data/a/lnk/new", inline("n")).unwrap();
    assert_eq!(landed, "data/a/x/new");
    t.remove("data/a b").unwrap();
    // data and data/a are listed (their children too); a/x's own children are, as the
    // parent of the new file; every other directory is still a mount.
    assert!(t.entries.contains_key("data/a/x/deep"));
    assert!(!t.entries.contains_key("data/a/x/deep/f"));
    assert!(t.mounts.contains_key("data/a/x/deep"));
    assert!(t.mounts.contains_key("data/é"));
    assert!(!t.mounts.contains_key("data/a b"), "removed with its mount");

    let mut want: Vec<String> = sorted_paths(host.path(), "data")
        .into_iter()
        .filter(|p| p != "data/a b" && !p.starts_with("data/a b/"))
        .collect();
    want.extend(["data".into(), "data/a b".into(), "data/a/x/new".into()]);
    want.sort();
    assert_eq!(walked(&t), want);
    assert_eq!(t.get("data/a b").unwrap().kind, EntryKind::Whiteout(()));

    // A file replacing a copied directory takes the directory's contents with it.
    t.insert("data/a", inline("flat")).unwrap();
    assert!(walked(&t).iter().all(|p| !p.starts_with("data/a/")));
}

#[test]
fn a_second_copy_onto_the_same_directory_merges_and_wins() {
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    for (d, files) in [
        (one.path(), &["same", "only-one", "sub/a"][..]),
        (two.path(), &["same", "only-two", "sub/b", "new/c"][..]),
    ] {
        for f in files {
            let p = d.join(f);
            fs_err::create_dir_all(p.parent().unwrap()).unwrap();
            fs_err::write(&p, format!("{} {f}", d.display())).unwrap();
        }
    }
    let mut t = FileTree::new();
    let opts = HostOptions::default();
    t.add_host_path(one.path(), "app", &opts).unwrap();
    t.add_host_path(two.path(), "app", &opts).unwrap();
    assert!(
        t.mounts.contains_key("app/new"),
        "a new directory stays a mount"
    );
    let got: Vec<(String, Option<std::path::PathBuf>)> = t
        .entries()
        .map(|e| {
            let (p, e) = e.unwrap();
            let host = match &e.kind {
                EntryKind::File(Content::File { path, .. }) => Some(path.clone()),
                _ => None,
            };
            (p.into_owned(), host)
        })
        .collect();
    let f = |p: &str, host: Option<&Path>, rel: &str| (p.to_string(), host.map(|h| h.join(rel)));
    assert_eq!(
        got,
        [
            f("app", None, ""),
            f("app/new", None, ""),
            f("app/new/c", Some(two.path()), "new/c"),
            f("app/only-one", Some(one.path()), "only-one"),
            f("app/only-two", Some(two.path()), "only-two"),
            f("app/same", Some(two.path()), "same"),
            f("app/sub", None, ""),
            f("app/sub/a", Some(one.path()), "sub/a"),
            f("app/sub/b", Some(two.path()), "sub/b"),
        ]
    );
}

#[test]
fn host_hardlinks_are_written_as_links_to_the_first_path_of_their_copy() {
    let host = tempfile::tempdir().unwrap();
    let d = host.path();
    fs_err::create_dir_all(d.join("sub")).unwrap();
    fs_err::write(d.join("sub/z-first"), "linked").unwrap();
    fs_err::hard_link(d.join("sub/z-first"), d.join("sub/a-second")).unwrap();
    fs_err::hard_link(d.join("sub/z-first"), d.join("m")).unwrap();
    let opts = HostOptions::default();
    let mut t = FileTree::new();
    t.add_host_path(d, "one", &opts).unwrap();
    t.add_host_path(d, "two", &opts).unwrap();
    let links: Vec<(String, TarKind, String)> = tar_members(&t)
        .into_iter()
        .filter(|(_, k, _)| matches!(k, TarKind::File | TarKind::Hardlink))
        .collect();
    let m = |p: &str, k, l: &str| (p.to_string(), k, l.to_string());
    assert_eq!(
        links,
        [
            m("one/m", TarKind::File, ""),
            m("one/sub/a-second", TarKind::Hardlink, "one/m"),
            m("one/sub/z-first", TarKind::Hardlink, "one/m"),
            // Another copy of the same inode is not linked to the first copy.
            m("two/m", TarKind::File, ""),
            m("two/sub/a-second", TarKind::Hardlink, "two/m"),
            m("two/sub/z-first", TarKind::Hardlink, "two/m"),
        ]
    );
    // Removing the first path passes the content to the next one; a hardlink an archive adds
    // to a path that is written as a link follows it to the file.
    t.remove("one/m").unwrap();
    t.insert(
        "three",
        Entry {
            kind: EntryKind::Hardlink("one/sub/z-first".into()),
            meta: Metadata::new(0o644, 0, 0, 0),
        },
    )
    .unwrap();
    let members = tar_members(&t);
    let find = |p: &str| members.iter().find(|(q, _, _)| q == p).unwrap().clone();
    assert_eq!(
        find("three"),
        m("three", TarKind::Hardlink, "one/sub/a-second")
    );
    assert_eq!(
        find("one/sub/a-second"),
        m("one/sub/a-second", TarKind::File, "")
    );
    assert_eq!(
        find("one/sub/z-first"),
        m("one/sub/z-first", TarKind::Hardlink, "one/sub/a-second")
    );
}

/// An error and its sources, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out = format!("{out}: {s}");
        source = s.source();
    }
    out
}

#[test]
fn a_directory_gone_before_it_is_listed_is_an_error_naming_it() {
    let host = tricky_dir();
    let mut t = FileTree::new();
    t.add_host_path(host.path(), "data", &HostOptions::default())
        .unwrap();
    // Lists data and data/a: data/a/x is a mount of a directory that then goes away.
    t.resolve("data/a/x").unwrap();
    fs_err::remove_dir_all(host.path().join("a/x")).unwrap();
    let before = t.clone();
    let err = t.insert("data/a/x/new", inline("n")).unwrap_err();
    assert!(matches!(err, TreeError::Host { .. }), "{err}");
    assert!(chain(&err).contains("a/x"), "{}", chain(&err));
    assert_eq!(t, before, "a failed listing changes nothing");

    let err = write_tar(&t, 0, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, WriteError::Host { .. }), "{err}");
    let gone = host.path().join("a/x").display().to_string();
    assert!(chain(&err).contains(&gone), "{}", chain(&err));
}

#[test]
fn a_device_node_in_a_copied_directory_is_refused_when_the_layer_is_written() {
    // /dev always holds device nodes (null, zero, …), and listing a directory looks at every
    // child, so this needs no privileges to make one.
    let mut t = FileTree::new();
    t.add_host_path(Path::new("/dev"), "d", &HostOptions::default())
        .unwrap();
    let err = write_tar(&t, 0, &mut Vec::new()).unwrap_err();
    assert!(
        chain(&err).contains("device nodes are not allowed") && chain(&err).contains("/dev/"),
        "{}",
        chain(&err)
    );
}

#[test]
fn reading_ahead_gives_the_same_walk_and_the_same_bytes() {
    let host = tricky_dir();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    fs_err::write(host.path().join("a/x/big"), &big).unwrap();
    let mut t = FileTree::new();
    t.insert("data.b", inline("1")).unwrap();
    t.add_host_path(host.path(), "data", &HostOptions::default())
        .unwrap();
    let ahead: Vec<(String, Entry)> = t
        .entries_read_ahead()
        .map(|e| e.map(|(p, e)| (p.into_owned(), e.into_owned())).unwrap())
        .collect();
    let here: Vec<(String, Entry)> = t
        .entries()
        .map(|e| e.map(|(p, e)| (p.into_owned(), e.into_owned())).unwrap())
        .collect();
    assert_eq!(ahead.len(), here.len());
    for ((pa, ea), (ph, eh)) in ahead.iter().zip(&here) {
        assert_eq!((pa, &ea.meta), (ph, &eh.meta));
        match (&ea.kind, &eh.kind) {
            // Small files come back with their contents, large ones as references.
            (
                EntryKind::File(Content::Inline(bytes)),
                EntryKind::File(Content::File { path, .. }),
            ) => {
                assert_eq!(&bytes[..], &fs_err::read(path).unwrap()[..], "{pa}");
            }
            (a, h) => {
                assert_eq!(a, h, "{pa}");
                if pa == "data/a/x/big" {
                    assert!(matches!(a, EntryKind::File(Content::File { .. })));
                }
            }
        }
    }
}

#[test]
fn a_small_file_that_changed_size_is_an_error_naming_it() {
    let host = tempfile::tempdir().unwrap();
    let file = host.path().join("f");
    fs_err::write(&file, "12345").unwrap();
    for (recorded, found) in [(3, "more than 3"), (7, "5")] {
        let entry = Entry {
            kind: EntryKind::File(Content::File {
                path: file.clone(),
                size: recorded,
                link: None,
            }),
            meta: Metadata::new(0o644, 0, 0, 0),
        };
        let err = read_small(("f".into(), entry)).unwrap_err();
        assert!(err.to_string().contains("changed"), "{err}");
        assert!(
            matches!(&err, HostError::Changed { expected, found: f, .. } if *expected == recorded && f == found),
            "{err}"
        );
        assert!(err.to_string().contains(&file.display().to_string()));
    }
}

#[test]
fn a_small_file_swapped_for_a_symlink_is_refused_not_followed() {
    let host = tempfile::tempdir().unwrap();
    fs_err::write(host.path().join("secret"), "12345").unwrap();
    std::os::unix::fs::symlink(host.path().join("secret"), host.path().join("f")).unwrap();
    let entry = Entry {
        kind: EntryKind::File(Content::File {
            path: host.path().join("f"),
            size: 5,
            link: None,
        }),
        meta: Metadata::new(0o644, 0, 0, 0),
    };
    let err = read_small(("f".into(), entry)).unwrap_err();
    assert!(matches!(err, HostError::Io(_)), "{err}");
}
