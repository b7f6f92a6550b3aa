//! Comparing two applied filesystems path by path, classifying every difference.

use std::collections::BTreeMap;
use std::iter::Peekable;

use super::applied::{AppliedFs, FsNode};
use super::glob::Glob;
use super::report::{Class, FileDiff, FileFacts};
use super::scan::{FileDigest, NodeKind};

/// The differing paths of `a` and `b`, sorted, minus those an `ignore` pattern matches.
pub fn compare(a: &AppliedFs, b: &AppliedFs, ignore: &[Glob]) -> Vec<FileDiff> {
    let mut out = Vec::new();
    let mut ia = a.nodes.iter().peekable();
    let mut ib = b.nodes.iter().peekable();
    while let Some((path, na, nb)) = next_pair(&mut ia, &mut ib) {
        let shown = format!("/{path}");
        if ignore.iter().any(|g| g.matches(&shown)) {
            continue;
        }
        let classes = match (na, nb) {
            (Some(x), Some(y)) => classify(x, y),
            (Some(_), None) => vec![Class::Removed],
            (None, Some(_)) => vec![Class::Added],
            (None, None) => unreachable!("next_pair yields at least one side"),
        };
        if !classes.is_empty() {
            out.push(FileDiff {
                path: shown,
                classes,
                a: na.map(facts),
                b: nb.map(facts),
            });
        }
    }
    out
}

/// Directories that are a tar entry on one side and only implied by deeper paths on the other
/// (no layer names them): `(explicit in a, explicit in b)`, sorted, minus ignored paths.
pub fn parent_entries(a: &AppliedFs, b: &AppliedFs, ignore: &[Glob]) -> (Vec<String>, Vec<String>) {
    let mut out = (Vec::new(), Vec::new());
    let mut ia = a.nodes.iter().peekable();
    let mut ib = b.nodes.iter().peekable();
    while let Some((path, na, nb)) = next_pair(&mut ia, &mut ib) {
        let (Some(x), Some(y)) = (na, nb) else {
            continue;
        };
        if x.implicit == y.implicit {
            continue;
        }
        let shown = format!("/{path}");
        if ignore.iter().any(|g| g.matches(&shown)) {
            continue;
        }
        if y.implicit {
            out.0.push(shown);
        } else {
            out.1.push(shown);
        }
    }
    out
}

type It<'a> = Peekable<std::collections::btree_map::Iter<'a, String, FsNode>>;

/// Merges two sorted iterators by key.
fn next_pair<'a>(
    ia: &mut It<'a>,
    ib: &mut It<'a>,
) -> Option<(&'a String, Option<&'a FsNode>, Option<&'a FsNode>)> {
    match (ia.peek(), ib.peek()) {
        (None, None) => None,
        (Some(_), None) => ia.next().map(|(p, n)| (p, Some(n), None)),
        (None, Some(_)) => ib.next().map(|(p, n)| (p, None, Some(n))),
        (Some((pa, _)), Some((pb, _))) => match pa.as_bytes().cmp(pb.as_bytes()) {
            std::cmp::Ordering::Less => ia.next().map(|(p, n)| (p, Some(n), None)),
            std::cmp::Ordering::Greater => ib.next().map(|(p, n)| (p, None, Some(n))),
            std::cmp::Ordering::Equal => {
                let (p, x) = ia.next()?;
                let (_, y) = ib.next()?;
                Some((p, Some(x), Some(y)))
            }
        },
    }
}

fn classify(x: &FsNode, y: &FsNode) -> Vec<Class> {
    let (a, b) = (&x.node, &y.node);
    let mut classes = Vec::new();
    if std::mem::discriminant(&a.kind) != std::mem::discriminant(&b.kind) {
        classes.push(Class::Type);
    } else {
        match (&a.kind, &b.kind) {
            (
                NodeKind::File(FileDigest { sha256: s, size: n }),
                NodeKind::File(FileDigest { sha256: t, size: m }),
            ) if s != t || n != m => classes.push(Class::Content),
            (NodeKind::Symlink(s), NodeKind::Symlink(t)) if s != t => {
                classes.push(Class::LinkTarget)
            }
            (NodeKind::Hardlink(s), NodeKind::Hardlink(t)) if s != t => {
                classes.push(Class::Hardlink)
            }
            (
                NodeKind::CharDevice { major, minor } | NodeKind::BlockDevice { major, minor },
                NodeKind::CharDevice { major: j, minor: n }
                | NodeKind::BlockDevice { major: j, minor: n },
            ) if (major, minor) != (j, n) => classes.push(Class::Content),
            _ => {}
        }
    }
    if x.link_group != y.link_group {
        classes.push(Class::Hardlink);
    }
    if a.mode != b.mode {
        classes.push(Class::Mode);
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        classes.push(Class::Owner);
    }
    if a.xattrs != b.xattrs {
        classes.push(Class::Xattr);
    }
    if a.mtime != b.mtime {
        classes.push(Class::Mtime);
    }
    classes.sort();
    classes.dedup();
    classes
}

fn facts(n: &FsNode) -> FileFacts {
    let node = &n.node;
    let (size, sha256, target, device) = match &node.kind {
        NodeKind::File(FileDigest { size, sha256 }) => {
            (Some(*size), Some(sha256.to_string()), None, None)
        }
        NodeKind::Symlink(target) | NodeKind::Hardlink(target) => {
            (None, None, Some(target.clone()), None)
        }
        NodeKind::CharDevice { major, minor } | NodeKind::BlockDevice { major, minor } => {
            (None, None, None, Some(format!("{major}:{minor}")))
        }
        NodeKind::Dir | NodeKind::Fifo => (None, None, None, None),
        NodeKind::Whiteout(never) => match *never {},
    };
    FileFacts {
        kind: node.kind.type_name(),
        mode: format!("{:04o}", node.mode),
        uid: node.uid,
        gid: node.gid,
        mtime: node.mtime,
        size,
        sha256,
        target,
        device,
        xattrs: node
            .xattrs
            .iter()
            .map(|(k, v)| (k.clone(), hex::encode(v)))
            .collect::<BTreeMap<_, _>>(),
        hardlink_group: n.link_group.as_ref().map(|g| format!("/{g}")),
        layer: n.layer,
        implicit: n.implicit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::scan::Node;
    use crate::digest::Sha256Digest;

    fn fs(entries: &[(&str, NodeKind, u32, u64, i64)]) -> AppliedFs {
        let mut fs = AppliedFs::default();
        for (path, kind, mode, uid, mtime) in entries {
            fs.nodes.insert(
                path.to_string(),
                FsNode {
                    node: Node {
                        kind: kind.clone(),
                        mode: *mode,
                        uid: *uid,
                        gid: *uid,
                        mtime: *mtime,
                        xattrs: BTreeMap::new(),
                    },
                    layer: 0,
                    implicit: false,
                    link_group: None,
                },
            );
        }
        fs
    }

    fn file(s: &str) -> NodeKind {
        NodeKind::File(FileDigest {
            size: s.len() as u64,
            sha256: Sha256Digest::of(s.as_bytes()),
        })
    }

    fn link(s: &str) -> NodeKind {
        NodeKind::Symlink(s.into())
    }

    #[test]
    fn every_class_is_found_and_ignores_apply() {
        let a = fs(&[
            ("content", file("1"), 0o644, 0, 0),
            ("mode", file("x"), 0o644, 0, 0),
            ("owner", file("x"), 0o644, 0, 0),
            ("mtime", file("x"), 0o644, 0, 0),
            ("link", link("a"), 0o777, 0, 0),
            ("kind", file("x"), 0o644, 0, 0),
            ("removed", file("x"), 0o644, 0, 0),
            ("same", file("x"), 0o644, 0, 0),
            ("var/log/x", file("1"), 0o644, 0, 0),
        ]);
        let b = fs(&[
            ("added", file("x"), 0o644, 0, 0),
            ("content", file("2"), 0o644, 0, 0),
            ("mode", file("x"), 0o755, 0, 0),
            ("owner", file("x"), 0o644, 1000, 0),
            ("mtime", file("x"), 0o644, 0, 5),
            ("link", link("b"), 0o777, 0, 0),
            ("kind", NodeKind::Dir, 0o644, 0, 0),
            ("same", file("x"), 0o644, 0, 0),
            ("var/log/x", file("2"), 0o644, 0, 0),
        ]);
        let got: Vec<(String, Vec<Class>)> = compare(&a, &b, &[Glob::new("/var/log/**")])
            .into_iter()
            .map(|d| (d.path, d.classes))
            .collect();
        let want: Vec<(String, Vec<Class>)> = [
            ("/added", vec![Class::Added]),
            ("/content", vec![Class::Content]),
            ("/kind", vec![Class::Type]),
            ("/link", vec![Class::LinkTarget]),
            ("/mode", vec![Class::Mode]),
            ("/mtime", vec![Class::Mtime]),
            ("/owner", vec![Class::Owner]),
            ("/removed", vec![Class::Removed]),
        ]
        .into_iter()
        .map(|(p, c)| (p.to_string(), c))
        .collect();
        assert_eq!(got, want);
    }
}
