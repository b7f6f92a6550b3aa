//! Every entry of a [`FileTree`] in bytewise path order, copied host directories included.
//!
//! The listed entries come from the tree's map; the contents of each host directory mounted in
//! the tree (see [`super::host`]) are read while the walk passes them, one directory listing at
//! a time, and merged in. Memory is bounded by the listings of the directories on the current
//! path, never by the number of files.
//!
//! Bytewise order of full paths is not the order of a plain depth-first walk: `a.b` sorts
//! between the directory `a` and its child `a/x`, because `.` (0x2e) is below `/` (0x2f). So a
//! directory contributes two items to its parent's sorted listing: its own entry under its
//! name, and its contents under its name followed by `/`. Walking those items in order, and
//! descending into a directory's listing when its contents item comes up, yields exactly the
//! order of a `BTreeMap` of the full paths (every path below `name/` sorts before any sibling
//! that comes after `name/`).

use std::borrow::Cow;
use std::collections::btree_map;
use std::iter::Peekable;

use super::host::{self, HostError, HostMount};
use super::tree::{self, Entry, FileTree};

/// One entry of the walk: borrowed from the tree, or read from a host directory.
pub type WalkEntry<'t> = (Cow<'t, str>, Cow<'t, Entry>);

impl FileTree {
    /// Every entry in bytewise path order (parents before children), reading copied host
    /// directories as it goes; a host directory that cannot be listed ends the walk with its
    /// error. Opaque markers are not entries (see [`FileTree::opaque_dirs`]).
    pub fn entries(&self) -> Entries<'_> {
        let mut walk = Entries {
            tree: self,
            listed: self.entries.iter().peekable(),
            mounts: Vec::new(),
            failed: None,
        };
        if let Some(root) = self.mounts.get("") {
            walk.start_mount("", root);
        }
        walk
    }
}

/// A host directory being walked and its next entry.
struct Pending {
    path: String,
    entry: Entry,
    walk: MountWalk,
}

/// The iterator of [`FileTree::entries`].
pub struct Entries<'t> {
    tree: &'t FileTree,
    listed: Peekable<btree_map::Iter<'t, String, Entry>>,
    /// Host directories being walked, each with its next entry read ahead.
    mounts: Vec<Pending>,
    /// An error to report on the next call (then the walk ends).
    failed: Option<HostError>,
}

impl<'t> Entries<'t> {
    fn start_mount(&mut self, key: &str, mount: &HostMount) {
        if let Err(e) = MountWalk::new(key, mount).and_then(|walk| self.push(walk)) {
            self.failed = Some(e);
        }
    }

    /// Reads the next entry of `walk` and keeps the walk if it has one.
    fn push(&mut self, mut walk: MountWalk) -> Result<(), HostError> {
        if let Some((path, entry)) = walk.next().transpose()? {
            self.mounts.push(Pending { path, entry, walk });
        }
        Ok(())
    }
}

impl<'t> Iterator for Entries<'t> {
    type Item = Result<WalkEntry<'t>, HostError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.failed.take() {
            self.mounts.clear();
            self.listed = btree_map::Iter::default().peekable();
            return Some(Err(e));
        }
        // The smallest next path among the listed entries and every walked directory.
        let best = (0..self.mounts.len()).min_by(|&a, &b| {
            let (a, b) = (&self.mounts[a], &self.mounts[b]);
            a.path.cmp(&b.path)
        });
        let listed_first = match (self.listed.peek(), best) {
            (Some(_), None) => true,
            (Some((key, _)), Some(b)) => **key < self.mounts[b].path,
            (None, _) => false,
        };
        if listed_first {
            let (key, entry) = self.listed.next().expect("peeked");
            if let Some(mount) = self.tree.mounts.get(key) {
                self.start_mount(key, mount);
            }
            return Some(Ok((Cow::Borrowed(key.as_str()), Cow::Borrowed(entry))));
        }
        let b = best?;
        let Pending { path, entry, walk } = self.mounts.swap_remove(b);
        if let Err(e) = self.push(walk) {
            self.failed = Some(e);
        }
        Some(Ok((Cow::Owned(path), Cow::Owned(entry))))
    }
}

/// The entries below one mounted host directory, in bytewise path order.
struct MountWalk {
    mount: HostMount,
    /// The directories being listed, outermost first.
    frames: Vec<Frame>,
}

struct Frame {
    /// The tree path of the directory listed.
    dir: String,
    items: std::vec::IntoIter<Item>,
}

/// A child's own entry (`child` is `Some`), or the contents of a child directory.
struct Item {
    name: String,
    host: std::path::PathBuf,
    child: Option<host::Child>,
}

impl Item {
    /// The bytes this item sorts by: the name, and `/` after it for a directory's contents.
    fn sort_key(&self) -> impl Iterator<Item = &u8> {
        let slash: &[u8] = if self.child.is_none() { b"/" } else { b"" };
        self.name.as_bytes().iter().chain(slash)
    }
}

impl MountWalk {
    fn new(key: &str, mount: &HostMount) -> Result<Self, HostError> {
        let items = list(&mount.host)?;
        Ok(MountWalk {
            mount: mount.clone(),
            frames: vec![Frame {
                dir: key.to_string(),
                items,
            }],
        })
    }

    fn next(&mut self) -> Option<Result<(String, Entry), HostError>> {
        loop {
            let frame = self.frames.last_mut()?;
            let Some(item) = frame.items.next() else {
                self.frames.pop();
                continue;
            };
            let path = tree::join(&frame.dir, &item.name);
            match item.child {
                Some(child) => return Some(Ok((path, self.mount.entry(child)))),
                None => match list(&item.host) {
                    Ok(items) => self.frames.push(Frame { dir: path, items }),
                    Err(e) => {
                        self.frames.clear();
                        return Some(Err(e));
                    }
                },
            }
        }
    }
}

/// The sorted items of one host directory.
fn list(dir: &std::path::Path) -> Result<std::vec::IntoIter<Item>, HostError> {
    let mut items = Vec::new();
    for child in host::read_dir_sorted(dir)? {
        if child.found.is_dir() {
            items.push(Item {
                name: child.name.clone(),
                host: child.host.clone(),
                child: None,
            });
        }
        items.push(Item {
            name: child.name.clone(),
            host: child.host.clone(),
            child: Some(child),
        });
    }
    items.sort_by(|a, b| a.sort_key().cmp(b.sort_key()));
    Ok(items.into_iter())
}

#[cfg(test)]
#[path = "tree_walk_tests.rs"]
mod tests;
