use std::sync::Arc;

use super::*;

fn file(data: &str) -> Entry {
    Entry {
        kind: EntryKind::File(Content::Inline(Arc::from(data.as_bytes()))),
        meta: Metadata::new(0o644, 0, 0, 0),
    }
}
fn dir(mode: u32) -> Entry {
    Entry {
        kind: EntryKind::Dir,
        meta: Metadata::new(mode, 0, 0, 0),
    }
}
fn sym(t: &str) -> Entry {
    Entry {
        kind: EntryKind::Symlink(t.to_string()),
        meta: Metadata::new(0o777, 0, 0, 0),
    }
}
fn link(t: &str) -> Entry {
    Entry {
        kind: EntryKind::Hardlink(t.to_string()),
        meta: Metadata::new(0o644, 0, 0, 0),
    }
}
fn keys(t: &FileTree) -> Vec<&str> {
    t.entries.keys().map(|k| k.as_str()).collect()
}

#[test]
fn normalize_table() {
    for (input, want) in [
        ("a/b", Some("a/b")),
        ("/a/b/", Some("a/b")),
        ("./a/./b", Some("a/b")),
        ("a//b", Some("a/b")),
        ("../x", Some("x")),
        ("/../x", Some("x")),
        ("a/../../../x", Some("x")),
        ("a/b/..", Some("a")),
        ("/etc/passwd", Some("etc/passwd")),
        (".wh..", Some(".wh..")),
        ("", None),
        ("/", None),
        (".", None),
        ("..", None),
        ("a/..", None),
        ("a\0b", None),
    ] {
        assert_eq!(normalize(input).ok().as_deref(), want, "{input:?}");
    }
    assert!(matches!(normalize("a\0"), Err(TreeError::NulInPath { .. })));
    assert!(matches!(normalize("/"), Err(TreeError::RootPath { .. })));
    assert_eq!(normalize_dir("/").unwrap(), "");
}

#[test]
fn insert_resolves_parents_through_symlinks() {
    let mut t = FileTree::new();
    t.insert("sym", sym("..")).unwrap();
    assert_eq!(t.insert("sym/a/b/c", file("1")).unwrap(), "a/b/c");
    t.insert("etc2", sym("/etc")).unwrap();
    assert_eq!(t.insert("etc2/passwd", file("2")).unwrap(), "etc/passwd");
    t.insert("srv/rel", sym("../usr/lib")).unwrap();
    assert_eq!(t.insert("srv/rel/x", file("3")).unwrap(), "usr/lib/x");
    // The last component is never followed: the symlink itself is replaced.
    assert_eq!(t.insert("etc2", file("4")).unwrap(), "etc2");
    // No implicit parents.
    assert_eq!(
        keys(&t),
        ["a/b/c", "etc/passwd", "etc2", "srv/rel", "sym", "usr/lib/x"]
    );
}

#[test]
fn symlink_loop_is_eloop() {
    let mut t = FileTree::new();
    for i in 0..45 {
        t.insert(&format!("l{i}"), sym(&format!("l{}", i + 1)))
            .unwrap();
    }
    t.insert("l45", dir(0o755)).unwrap();
    // 41 hops and more fail; a shorter chain resolves.
    assert!(matches!(
        t.insert("l0/x", file("")),
        Err(TreeError::SymlinkLoop { .. })
    ));
    assert_eq!(t.insert("l10/x", file("")).unwrap(), "l45/x");
    t.insert("self", sym("self")).unwrap();
    assert!(matches!(
        t.resolve("self/x"),
        Err(TreeError::SymlinkLoop { .. })
    ));
}

#[test]
fn parent_that_is_a_file_or_removed_is_refused() {
    let mut t = FileTree::new();
    t.insert("f", file("")).unwrap();
    assert!(matches!(
        t.insert("f/x", file("")),
        Err(TreeError::NotADirectory { .. })
    ));
    t.remove("gone").unwrap();
    assert!(matches!(
        t.insert("gone/x", file("")),
        Err(TreeError::ParentRemoved { .. })
    ));
}

#[test]
fn replacing_entries() {
    let mut t = FileTree::new();
    t.insert("d", dir(0o700)).unwrap();
    t.insert("d/f", file("a")).unwrap();
    t.set_opaque("d/sub").unwrap();
    // dir over dir: metadata replaced, children kept
    t.insert("d", dir(0o755)).unwrap();
    assert_eq!(t.get("d").unwrap().meta.mode, 0o755);
    assert!(t.get("d/f").is_some());
    // file over dir: children and opaque markers dropped
    t.insert("d", file("now a file")).unwrap();
    assert_eq!(keys(&t), ["d"]);
    assert_eq!(t.opaque_dirs().count(), 0);
    // duplicates: the last wins
    t.insert("d", file("last")).unwrap();
    assert_eq!(t.get("d"), Some(&file("last")));
    assert_eq!(t.entries.len(), 1);
}

#[test]
fn remove_and_opaque() {
    let mut t = FileTree::new();
    t.insert("var/cache/a", file("")).unwrap();
    t.remove("/var/cache").unwrap();
    assert_eq!(keys(&t), ["var/cache"]);
    assert_eq!(t.get("var/cache").unwrap().kind, EntryKind::Whiteout(()));
    // A directory over a whiteout hides the lower contents: it becomes opaque.
    t.insert("var/cache", dir(0o755)).unwrap();
    assert_eq!(t.opaque_dirs().collect::<Vec<_>>(), ["var/cache"]);
    t.insert("f", file("")).unwrap();
    assert!(matches!(
        t.set_opaque("f"),
        Err(TreeError::OpaqueNotDir { .. })
    ));
    // Symlinked parent: the whiteout lands at the resolved path.
    t.insert("l", sym("/real")).unwrap();
    assert_eq!(t.remove("l/victim").unwrap(), "real/victim");
}

#[test]
fn hardlink_rules() {
    let mut t = FileTree::new();
    t.insert("a", file("content")).unwrap();
    t.insert("d", dir(0o755)).unwrap();
    t.insert("s", sym("/etc/passwd")).unwrap();
    t.insert("ls", sym("/")).unwrap();
    assert_eq!(t.insert("h1", link("/a")).unwrap(), "h1");
    assert_eq!(t.get("h1").unwrap().kind, EntryKind::Hardlink("a".into()));
    // chains collapse to the first non-link entry; a symlinked parent resolves in the tree
    t.insert("h2", link("ls/h1")).unwrap();
    assert_eq!(t.get("h2").unwrap().kind, EntryKind::Hardlink("a".into()));
    // a link to a symlink names the symlink itself
    t.insert("h3", link("s")).unwrap();
    assert_eq!(t.get("h3").unwrap().kind, EntryKind::Hardlink("s".into()));
    for (target, reason) in [
        ("../etc/passwd", "not an entry"),
        ("/etc/passwd", "not an entry"),
        ("d", "directory"),
        ("/", "does not resolve"),
    ] {
        let err = t.insert("bad", link(target)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("bad") && msg.contains(target) && msg.contains(reason),
            "{msg}"
        );
    }
    assert!(t.get("bad").is_none());
}

#[test]
fn removing_a_link_target_promotes_the_first_link() {
    let mut t = FileTree::new();
    t.insert("z", file("orig")).unwrap();
    t.insert("b", link("z")).unwrap();
    t.insert("c", link("z")).unwrap();
    t.insert("z", file("new")).unwrap();
    assert_eq!(
        t.get("b"),
        Some(&Entry {
            meta: Metadata::new(0o644, 0, 0, 0),
            ..file("orig")
        })
    );
    assert_eq!(t.get("c").unwrap().kind, EntryKind::Hardlink("b".into()));
    t.insert("dd/x", file("in dir")).unwrap();
    t.insert("y", link("dd/x")).unwrap();
    t.insert("dd", file("")).unwrap();
    assert_eq!(t.get("y"), Some(&file("in dir")));
}

#[test]
fn root_is_never_replaced() {
    let mut t = FileTree::new();
    for name in [".", "/", "..", "", "a/.."] {
        assert!(
            matches!(t.insert(name, sym("/etc")), Err(TreeError::RootPath { .. })),
            "{name:?}"
        );
    }
    assert!(t.is_empty());
}

/// Regression: `write /var/log/app.log` then `mkdir /var/log` lost `app.log`, because a
/// directory inserted over an implicit directory dropped the entries below it.
#[test]
fn mkdir_over_an_implicit_directory_keeps_its_contents() {
    let mut t = FileTree::default();
    t.insert("var/log/app.log", file("x")).unwrap();
    t.insert("var/log", dir(0o750)).unwrap();
    assert!(
        t.get("var/log/app.log").is_some(),
        "the file survives the mkdir"
    );
    assert_eq!(t.get("var/log").unwrap().meta.mode, 0o750);

    // A file over the directory still takes its contents with it.
    t.insert("var/log", file("y")).unwrap();
    assert!(t.get("var/log/app.log").is_none());
}

/// Regression (issue 11.5): `N` files followed by the same `N` names took quadratic time,
/// because every replacement scanned the whole tree for hard links to the replaced entry.
#[test]
fn replacing_many_entries_is_not_quadratic() {
    let n = 40_000;
    let mut t = FileTree::new();
    let start = std::time::Instant::now();
    for round in 0..2 {
        for i in 0..n {
            t.insert(
                &format!("d/f{i:06}"),
                file(if round == 0 { "a" } else { "b" }),
            )
            .unwrap();
        }
    }
    // A group with many links whose members are replaced one after the other.
    t.insert("g/0", file("shared")).unwrap();
    for i in 1..2_000 {
        t.insert(&format!("g/{i}"), link("g/0")).unwrap();
    }
    assert_eq!(t.entries.len(), n + 2_000);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(t.get("d/f000007"), Some(&file("b")));
}

#[test]
fn hardlink_groups_survive_any_order_of_links_and_replacements() {
    let mut t = FileTree::new();
    // The content is held by the first member in archive order, even when a later link sorts
    // first: the writer moves it (see write_tests).
    t.insert("z", file("z")).unwrap();
    t.insert("a", link("z")).unwrap();
    assert_eq!(t.first_of_group("z"), "a");
    // A link to a link joins the same group.
    t.insert("m", link("a")).unwrap();
    assert_eq!(t.get("m").unwrap().kind, EntryKind::Hardlink("z".into()));
    // Linking a member to its own group again changes nothing.
    t.insert("z", link("m")).unwrap();
    assert_eq!(t.get("z"), Some(&file("z")));
    // The holder replaced: the first remaining link (`a`) keeps the old content, `m` follows.
    t.insert("z", file("new")).unwrap();
    assert_eq!(t.get("a"), Some(&file("z")));
    assert_eq!(t.get("m").unwrap().kind, EntryKind::Hardlink("a".into()));
    assert_eq!(t.first_of_group("a"), "a");
    assert_eq!(t.links.get("z"), None);
    // A link replaced by a file leaves the group.
    t.insert("m", file("m")).unwrap();
    assert_eq!(t.links.get("a"), None);
    // A link to a later member (not yet in the tree) is refused, as GNU tar fails to link it.
    let err = t.insert("early", link("later")).unwrap_err().to_string();
    assert!(err.contains("not an entry of this layer"), "{err}");
    // A link that would replace the directory holding its own target.
    t.insert("dir/f", file("f")).unwrap();
    let err = t.insert("dir", link("dir/f")).unwrap_err().to_string();
    assert!(err.contains("below the link"), "{err}");
    assert_eq!(t.get("dir/f"), Some(&file("f")));
}

/// Handing a large group's content on again and again is quadratic: capped, with an error
/// naming the path (no real archive comes near the cap).
#[test]
fn replacing_the_holder_of_a_large_group_again_and_again_is_capped() {
    let n = 3_000;
    let mut t = FileTree::new();
    t.insert("a", file("shared")).unwrap();
    for i in 0..n {
        t.insert(&format!("g/{i:05}"), link("a")).unwrap();
    }
    let start = std::time::Instant::now();
    let mut err = None;
    t.insert("a", file("other")).unwrap();
    for i in 0..n {
        if let Err(e) = t.insert(&format!("g/{i:05}"), file("x")) {
            err = Some((i, e));
            break;
        }
    }
    let (i, err) = err.expect("the cap is reached");
    assert!(i > 2_000, "{i}");
    assert!(
        matches!(&err, TreeError::TooManyRelinks { path } if path == &format!("g/{i:05}")),
        "{err}"
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(30));
}
