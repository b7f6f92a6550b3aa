//! The applied filesystem: what a container sees once every layer is stacked, with whiteouts
//! and opaque directories applied. Comparing this, not the layers, is what lets an image of one
//! layer be compared with the same tree spread over three.
//!
//! Per layer, whiteouts and opaque markers act on the lower layers only (wherever they sit in
//! the archive), then entries are applied in archive order, the last duplicate winning. A
//! non-directory replacing a directory removes what was below it. Parents that no entry names
//! are implied as directories (`0755 0:0`, mtime 0) and marked so. Hard links are resolved to
//! the object they share when their layer is applied (a later layer that rewrites or removes
//! the target leaves the link as it was, and so does the link's own layer removing a lower
//! target): they take its content and metadata, and every member
//! of a link group records the group's first path, so which member a tool chose as the link
//! target does not matter.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use super::scan::{Change, LayerScan, Node, NodeKind};
use super::{DiffError, Result};

/// One object of the applied filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsNode {
    pub node: Node,
    /// Index of the layer that last set it.
    pub layer: usize,
    /// A parent directory that no layer names.
    pub implicit: bool,
    /// The first path (bytewise) of this object's hard-link group, when it has one.
    pub link_group: Option<String>,
}

/// The hard links `layer` puts: (path, target).
fn links_of(layer: &LayerScan) -> impl Iterator<Item = (&String, &String)> {
    layer
        .changes
        .iter()
        .filter_map(|(path, change)| match change {
            Change::Put(Node {
                kind: NodeKind::Hardlink(target),
                ..
            }) => Some((path, target)),
            _ => None,
        })
}

/// The proper ancestors of `path` (`a`, `a/b` of `a/b/c`).
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

/// The hard-link group of each path that was linked: the layer that formed (or last joined)
/// the group, and its first path then.
type LinkGroups = BTreeMap<String, (usize, String)>;

/// The applied filesystem, keyed by normalized path (no leading `/`).
#[derive(Clone, Debug, Default)]
pub struct AppliedFs {
    pub nodes: BTreeMap<String, FsNode>,
}

impl AppliedFs {
    /// Stacks `layers` bottom to top. A hard link to a directory, or to a path that neither a
    /// lower layer nor its own layer has, is refused (as the extractor refuses it).
    pub fn apply<'a>(layers: impl IntoIterator<Item = &'a LayerScan>) -> Result<Self> {
        let mut fs = AppliedFs::default();
        let mut groups = LinkGroups::new();
        for (index, layer) in layers.into_iter().enumerate() {
            let below = fs.link_targets_below(layer);
            fs.apply_layer(index, layer);
            fs.check_links(layer, &below)?;
            fs.resolve_hardlinks(index, &below, &mut groups);
        }
        fs.name_link_groups(&groups);
        Ok(fs)
    }

    /// The targets of `layer`'s hard links as lower layers have them (the layer may remove
    /// them after linking).
    fn link_targets_below(&self, layer: &LayerScan) -> BTreeMap<String, FsNode> {
        links_of(layer)
            .filter_map(|(_, target)| Some((target.clone(), self.nodes.get(target)?.clone())))
            .collect()
    }

    /// Refuses a hard link of `layer` that the extractor, which links in archive order, could
    /// not make: its target is a directory, or is not there when the link comes (put neither
    /// earlier in the layer nor by a lower layer, or removed from below earlier in the layer by
    /// a whiteout or by a non-directory put over one of its parents).
    fn check_links(&self, layer: &LayerScan, below: &BTreeMap<String, FsNode>) -> Result<()> {
        if links_of(layer).next().is_none() {
            return Ok(());
        }
        // What the layer put so far (whether each is a directory), and the whiteouts so far
        // that removed lower paths (not one the layer had put, or had put something below).
        let mut put: BTreeMap<&str, bool> = BTreeMap::new();
        let mut removed: BTreeSet<&str> = BTreeSet::new();
        for (path, change) in &layer.changes {
            let node = match change {
                Change::Put(node) => node,
                Change::Whiteout => {
                    let below_own = format!("{path}/");
                    let own = put.contains_key(path.as_str())
                        || put
                            .range::<str, _>((
                                Bound::Included(below_own.as_str()),
                                Bound::Unbounded,
                            ))
                            .next()
                            .is_some_and(|(p, _)| p.starts_with(&below_own));
                    if !own {
                        removed.insert(path);
                    }
                    continue;
                }
                // Applied after the whole layer.
                Change::Opaque => continue,
            };
            if let NodeKind::Hardlink(target) = &node.kind {
                let gone = || {
                    removed.contains(target.as_str())
                        || ancestors(target)
                            .any(|a| removed.contains(a) || put.get(a) == Some(&false))
                };
                let is_dir = match put.get(target.as_str()) {
                    Some(is_dir) => Some(*is_dir),
                    None => below
                        .get(target)
                        .filter(|_| !gone())
                        .map(|n| n.node.kind == NodeKind::Dir),
                };
                let reason = match is_dir {
                    Some(false) => None,
                    Some(true) => Some("the target is a directory"),
                    None => Some("the target does not exist when the link comes in the layer"),
                };
                if let Some(reason) = reason {
                    return Err(DiffError::Hardlink {
                        digest: layer.digest,
                        path: path.clone(),
                        target: target.clone(),
                        reason,
                    });
                }
            }
            put.insert(path, node.kind == NodeKind::Dir);
        }
        Ok(())
    }

    fn apply_layer(&mut self, index: usize, layer: &LayerScan) {
        for (path, change) in &layer.changes {
            match change {
                Change::Whiteout => {
                    self.nodes.remove(path);
                    self.remove_below(path);
                }
                Change::Opaque => self.remove_below(path),
                Change::Put(_) => {}
            }
        }
        for (path, change) in &layer.changes {
            let Change::Put(node) = change else { continue };
            if node.kind != NodeKind::Dir {
                self.remove_below(path);
            }
            self.ensure_parents(path, index);
            self.nodes.insert(
                path.clone(),
                FsNode {
                    node: node.clone(),
                    layer: index,
                    implicit: false,
                    link_group: None,
                },
            );
        }
    }

    fn remove_below(&mut self, dir: &str) {
        if dir.is_empty() {
            // An opaque root hides every lower layer.
            self.nodes.clear();
            return;
        }
        let prefix = format!("{dir}/");
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }

    fn ensure_parents(&mut self, path: &str, layer: usize) {
        let mut end = 0;
        while let Some(pos) = path[end..].find('/') {
            let parent = &path[..end + pos];
            let is_dir = self
                .nodes
                .get(parent)
                .is_some_and(|n| n.node.kind == NodeKind::Dir);
            if !is_dir {
                self.remove_below(parent);
                self.nodes.insert(
                    parent.to_string(),
                    FsNode {
                        node: Node {
                            kind: NodeKind::Dir,
                            mode: 0o755,
                            uid: 0,
                            gid: 0,
                            mtime: 0,
                            xattrs: BTreeMap::new(),
                        },
                        layer,
                        implicit: true,
                        link_group: None,
                    },
                );
            }
            end += pos + 1;
        }
    }

    /// Gives the hard links layer `index` put their target's content and metadata (the layer's
    /// own entry there, else the lower one in `below`), and records the groups they form in
    /// `known`.
    fn resolve_hardlinks(
        &mut self,
        index: usize,
        below: &BTreeMap<String, FsNode>,
        known: &mut LinkGroups,
    ) {
        let links: Vec<(String, String)> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.layer == index)
            .filter_map(|(p, n)| match &n.node.kind {
                NodeKind::Hardlink(target) => Some((p.clone(), target.clone())),
                _ => None,
            })
            .collect();
        if links.is_empty() {
            return;
        }
        // The members of each group lower layers formed that are still one object.
        let mut lower_groups: BTreeMap<(usize, String), Vec<String>> = BTreeMap::new();
        for path in known.keys() {
            if let Some(group) = self.live_group(known, path) {
                lower_groups
                    .entry(group.clone())
                    .or_default()
                    .push(path.clone());
            }
        }
        // Union-find over paths (with path halving, so a hostile chain of links costs
        // O(n log n), not O(n²)); the representative is resolved to a real object.
        let mut parent: HashMap<String, String> = HashMap::new();
        fn find(parent: &mut HashMap<String, String>, x: &str) -> String {
            let mut cur = x.to_string();
            while let Some(p) = parent.get(&cur).cloned() {
                if p == cur {
                    break;
                }
                match parent.get(&p).cloned() {
                    Some(grand) if grand != p => {
                        parent.insert(cur, grand.clone());
                        cur = grand;
                    }
                    _ => return p,
                }
            }
            cur
        }
        for (path, target) in &links {
            // A target in a lower group stands for its group's first member, so the links of
            // this layer into one lower group form one group here (and it is joined once).
            let target = self
                .live_group(known, target)
                .and_then(|g| lower_groups.get(g))
                .and_then(|m| m.first())
                .unwrap_or(target);
            let a = find(&mut parent, path);
            let b = find(&mut parent, target);
            if a != b {
                parent.insert(a, b);
            }
        }
        let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let members: Vec<String> = parent
            .keys()
            .cloned()
            .chain(parent.values().cloned())
            .collect();
        for m in members {
            let root = find(&mut parent, &m);
            groups.entry(root).or_default().insert(m);
        }
        for members in groups.values() {
            // The object the group shares: the one member that is not itself a link.
            let object = members.iter().find_map(|m| {
                let own = self
                    .nodes
                    .get(m)
                    .filter(|n| n.layer == index || !below.contains_key(m));
                own.or_else(|| below.get(m))
                    .filter(|n| !matches!(n.node.kind, NodeKind::Hardlink(_)))
                    .map(|n| n.node.clone())
            });
            let mut present: BTreeSet<String> = members
                .iter()
                .filter(|m| self.nodes.contains_key(*m))
                .cloned()
                .collect();
            for m in members {
                if let (Some(n), Some(obj)) = (self.nodes.get_mut(m), &object) {
                    n.node = obj.clone();
                }
            }
            // A lower member brings the rest of its own group: they are one object.
            let joined: BTreeSet<(usize, String)> = present
                .iter()
                .filter_map(|m| self.live_group(known, m).cloned())
                .collect();
            for group in &joined {
                present.extend(lower_groups.get(group).into_iter().flatten().cloned());
            }
            if let Some(first) = present.first().cloned() {
                for m in present {
                    known.insert(m, (index, first.clone()));
                }
            }
        }
    }

    /// The group `path` joined, unless a later layer rewrote or removed it since.
    fn live_group<'g>(&self, groups: &'g LinkGroups, path: &str) -> Option<&'g (usize, String)> {
        let group = groups.get(path)?;
        self.nodes
            .get(path)
            .is_some_and(|n| n.layer <= group.0)
            .then_some(group)
    }

    /// Records on every member of a link group that still has two members its first path.
    fn name_link_groups(&mut self, groups: &LinkGroups) {
        let mut members: BTreeMap<&(usize, String), BTreeSet<&String>> = BTreeMap::new();
        for (path, group) in groups {
            if self.live_group(groups, path).is_some() {
                members.entry(group).or_default().insert(path);
            }
        }
        for paths in members.values().filter(|m| m.len() > 1) {
            let first = paths.first().map(|p| p.to_string());
            for p in paths {
                if let Some(n) = self.nodes.get_mut(*p) {
                    n.link_group = first.clone();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::compression::CompressionFacts;
    use crate::diff::scan::{FileDigest, TarFacts};
    use crate::digest::Sha256Digest;

    fn node(kind: NodeKind) -> Node {
        Node {
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1,
            xattrs: BTreeMap::new(),
        }
    }

    fn file(content: &str) -> Change {
        Change::Put(node(NodeKind::File(FileDigest {
            size: content.len() as u64,
            sha256: Sha256Digest::of(content.as_bytes()),
        })))
    }

    fn layer(changes: Vec<(&str, Change)>) -> LayerScan {
        LayerScan {
            digest: Sha256Digest::of(b""),
            diff_id: Sha256Digest::of(b""),
            compression: CompressionFacts::Uncompressed,
            changes: changes
                .into_iter()
                .map(|(p, c)| (p.to_string(), c))
                .collect(),
            tar: TarFacts::default(),
        }
    }

    fn paths(fs: &AppliedFs) -> Vec<String> {
        fs.nodes
            .iter()
            .map(|(p, n)| {
                format!(
                    "{p}{}{}",
                    if n.implicit { " (implicit)" } else { "" },
                    n.link_group
                        .as_ref()
                        .map(|g| format!(" group={g}"))
                        .unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn whiteouts_and_opaque_dirs_act_on_lower_layers_only() {
        let lower = layer(vec![
            ("a", Change::Put(node(NodeKind::Dir))),
            ("a/old", file("1")),
            ("b", Change::Put(node(NodeKind::Dir))),
            ("b/gone", file("2")),
            ("b/kept", file("3")),
        ]);
        // The opaque marker comes after a sibling of the same layer: that sibling stays.
        let upper = layer(vec![
            ("a/new", file("4")),
            ("a", Change::Opaque),
            ("b/gone", Change::Whiteout),
        ]);
        let fs = AppliedFs::apply([&lower, &upper]).unwrap();
        assert_eq!(paths(&fs), ["a", "a/new", "b", "b/kept"]);
    }

    #[test]
    fn type_changes_replace_subtrees_and_parents_are_implied() {
        let lower = layer(vec![
            ("d", Change::Put(node(NodeKind::Dir))),
            ("d/x", file("x")),
        ]);
        let upper = layer(vec![
            ("d", Change::Put(node(NodeKind::Symlink("/tmp".into())))),
            ("p/q/r", file("r")),
        ]);
        let fs = AppliedFs::apply([&lower, &upper]).unwrap();
        assert_eq!(paths(&fs), ["d", "p (implicit)", "p/q (implicit)", "p/q/r"]);
    }

    #[test]
    fn hardlink_groups_do_not_depend_on_which_member_is_the_target() {
        let one = layer(vec![
            ("a", file("same")),
            ("b", Change::Put(node(NodeKind::Hardlink("a".into())))),
        ]);
        let other = layer(vec![
            ("b", file("same")),
            ("a", Change::Put(node(NodeKind::Hardlink("b".into())))),
        ]);
        let (x, y) = (
            AppliedFs::apply([&one]).unwrap(),
            AppliedFs::apply([&other]).unwrap(),
        );
        assert_eq!(x.nodes, y.nodes);
        assert_eq!(paths(&x), ["a group=a", "b group=a"]);
        assert!(matches!(
            x.nodes["b"].node.kind,
            NodeKind::File(FileDigest { size: 4, .. })
        ));
    }

    /// A hard link shares the object its target is when the link's layer is applied: a later
    /// layer that rewrites or removes the target gives that path a new object (or none) and
    /// leaves the link as it was. Links were resolved after every layer was stacked, so `h`
    /// took the later content of `a`, or stayed an unresolved link once `a` was whited out.
    #[test]
    fn a_later_layer_that_rewrites_a_link_target_leaves_the_link_alone() {
        let linked = layer(vec![
            ("a", file("1")),
            ("h", Change::Put(node(NodeKind::Hardlink("a".into())))),
        ]);
        let rewritten = layer(vec![("a", file("2"))]);
        let fs = AppliedFs::apply([&linked, &rewritten]).unwrap();
        assert_eq!(fs.nodes["h"].node, node_of(&file("1")));
        assert_eq!(fs.nodes["a"].node, node_of(&file("2")));
        assert_eq!(paths(&fs), ["a", "h"], "no longer one object");

        let removed = layer(vec![("a", Change::Whiteout)]);
        let fs = AppliedFs::apply([&linked, &removed]).unwrap();
        assert_eq!(paths(&fs), ["h"]);
        assert_eq!(fs.nodes["h"].node, node_of(&file("1")));

        // A link in a later layer to a lower file joins that file's group.
        let relinked = layer(vec![(
            "h2",
            Change::Put(node(NodeKind::Hardlink("h".into()))),
        )]);
        let fs = AppliedFs::apply([&linked, &relinked]).unwrap();
        assert_eq!(paths(&fs), ["a group=a", "h group=a", "h2 group=a"]);
        assert_eq!(fs.nodes["h2"].node, node_of(&file("1")));
        // And a group whose first member was rewritten is named by its next one.
        let fs = AppliedFs::apply([&linked, &relinked, &rewritten]).unwrap();
        assert_eq!(paths(&fs), ["a", "h group=h", "h2 group=h"]);
    }

    /// A link to a lower file that its own layer whites out or hides under an opaque marker
    /// keeps that file's object: it was left an unresolved link.
    #[test]
    fn a_link_to_a_lower_file_its_layer_removes_keeps_the_file() {
        let lower = layer(vec![
            ("d", Change::Put(node(NodeKind::Dir))),
            ("d/old", file("old")),
            ("gone", file("gone")),
        ]);
        let link = |target: &str| Change::Put(node(NodeKind::Hardlink(target.into())));
        let upper = layer(vec![
            ("h", link("gone")),
            ("gone", Change::Whiteout),
            ("d", Change::Opaque),
            ("d/h", link("d/old")),
        ]);
        let fs = AppliedFs::apply([&lower, &upper]).unwrap();
        assert_eq!(paths(&fs), ["d", "d/h", "h"]);
        assert_eq!(fs.nodes["h"].node, node_of(&file("gone")));
        assert_eq!(fs.nodes["d/h"].node, node_of(&file("old")));
    }

    fn node_of(change: &Change) -> Node {
        match change {
            Change::Put(n) => n.clone(),
            _ => unreachable!(),
        }
    }
}
