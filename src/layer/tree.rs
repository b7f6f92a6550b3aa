//! The file-tree model: what one layer contains, as entries with metadata and references to
//! their content. Non-`run` steps edit this model; the tar writer streams from it. No step needs
//! a real directory on the host to build a layer.
//!
//! Paths are stored normalized and relative to the image root (`usr/bin/env`, never with a
//! leading `/`, `.` or `..` component); the root itself is not an entry. A `BTreeMap` keyed by
//! that string gives bytewise order, which puts every parent before its children: exactly the
//! order the tar writer needs.
//!
//! Edits behave the way the same writes would inside a chroot of the image: parent components
//! are followed through this tree's symlinks (absolute targets from the image root, `..`
//! clamped there, at most [`MAX_SYMLINK_HOPS`]), so no entry ever lands outside the image.
//! Parents are never invented: a layer that writes `tmp/x` must not override the base image's
//! `/tmp` metadata. A path this layer deletes from lower layers is a `Whiteout` entry; a
//! directory whose lower contents are hidden is listed in `opaque_dirs()`.
//!
//! A host directory copied into the tree is not listed when it is copied: it becomes a *mount*,
//! a key whose contents are that directory's, read in sorted order when the layer is written
//! ([`FileTree::entries`]). So a layer of a million files costs a few directory listings of
//! memory, not a million entries. An edit that reaches below a mount (resolving a path through
//! it, inserting or removing under it) first lists the mount's directory one level into plain
//! entries, whose subdirectories become mounts in turn: only the directories along the edited
//! path are ever held in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use super::host::{self, HostError, HostMount};
use super::kind::Kind;

/// Where a regular file's bytes come from when the layer is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// Bytes held in memory (inline `write` steps, small files).
    Inline(Arc<[u8]>),
    /// A file on the host (a copied host file, a blob in the store, a file a `run` step
    /// wrote), read when the tar is written. `size` is checked then: a file that changed size is an
    /// error, never a silently different layer. Host files of one `copy` that share an inode
    /// carry the same `link`: the tar writer writes the first of them (in path order) with
    /// its content and the others as hard links to it.
    File {
        path: PathBuf,
        size: u64,
        /// Boxed: files with several links are rare, and every entry pays for the largest
        /// variant.
        link: Option<Box<HostLink>>,
    },
    /// `size` bytes at `offset` of a scratch file holding the contents of many archive
    /// members: an `extract` step writes each member's bytes there once, in archive order, so
    /// a member costs the tree a few words, not its bytes or a file of its own.
    Slice {
        file: Arc<PathBuf>,
        offset: u64,
        size: u64,
    },
}

/// One host inode as seen by one `copy` step (`copy` numbers the steps of a tree, so that two
/// copies of the same directory do not link to each other).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostLink {
    pub copy: u32,
    pub dev: u64,
    pub ino: u64,
}

impl Content {
    pub fn size(&self) -> u64 {
        match self {
            Content::Inline(b) => b.len() as u64,
            Content::File { size, .. } | Content::Slice { size, .. } => *size,
        }
    }
}

/// What an entry of this layer is: a file holds its [`Content`]; a hard link names another
/// entry of the same layer; a whiteout deletes the path from lower layers and is written as
/// `.wh.<name>`.
pub type EntryKind = Kind<Content, ()>;

/// Metadata as it goes into the tar header. `mode` holds the permission and special bits only
/// (`0o7777`); the file type comes from `EntryKind`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the Unix epoch; clamped to the recipe's epoch before writing.
    pub mtime: i64,
    /// Only `security.capability` survives into layers; kept sorted.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl Metadata {
    pub fn new(mode: u32, uid: u64, gid: u64, mtime: i64) -> Self {
        Self {
            mode,
            uid,
            gid,
            mtime,
            xattrs: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    pub meta: Metadata,
}

/// The entries of one layer, keyed by normalized path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileTree {
    pub(crate) entries: BTreeMap<String, Entry>,
    /// Directories whose lower-layer contents are hidden (`.wh..wh..opq`).
    pub(crate) opaque: BTreeSet<String>,
    /// Directory keys (`""` for the root) whose contents are a host directory not listed yet.
    /// No entry of `entries` lies below a mount, and no mount below another; every mount but
    /// the root's has its own `Dir` entry.
    pub(crate) mounts: BTreeMap<String, HostMount>,
    /// `copy` steps of host paths so far (see [`HostLink`]).
    pub(crate) copies: u32,
    /// Hard-link groups: the entry holding the content (the first of the group in archive
    /// order, never a `Hardlink`) and the paths that are `Hardlink`s to it. Kept so that
    /// replacing an entry costs O(log n), not a scan of the tree, and so the writer can put the
    /// content at the first path of each group in sort order.
    pub(crate) links: BTreeMap<String, BTreeSet<String>>,
    /// Links moved to a new content holder so far (see [`MAX_RELINKS`]).
    relinked: Relinked,
}

/// Links handed to a new content holder (when a group's holder is replaced or removed) in one
/// tree, at most. Each handover costs the size of the group, so without a cap an archive that
/// replaces the holder of a large group again and again would take quadratic time; no real
/// archive comes near it.
pub const MAX_RELINKS: u64 = 1 << 22;

/// A work counter that two otherwise equal trees may differ in.
#[derive(Clone, Copy, Debug, Default)]
struct Relinked(u64);

impl PartialEq for Relinked {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Relinked {}

/// Symlinks followed while resolving one path before giving up (the kernel's `MAXSYMLINKS`).
pub const MAX_SYMLINK_HOPS: u32 = 40;

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error(
        "failed to use path `{path}`: it names the image root, where an entry name is required"
    )]
    RootPath { path: String },
    #[error("failed to use path `{path}`: it contains a NUL byte")]
    NulInPath { path: String },
    #[error("failed to resolve `{path}`: more than {MAX_SYMLINK_HOPS} symlinks (loop)")]
    SymlinkLoop { path: String },
    #[error("failed to resolve `{path}`: `{parent}` is not a directory")]
    NotADirectory { path: String, parent: String },
    #[error("failed to resolve `{path}`: `{parent}` is removed in this layer")]
    ParentRemoved { path: String, parent: String },
    #[error("failed to add hardlink `{path}` -> `{target}`: {reason}")]
    BadHardlink {
        path: String,
        target: String,
        reason: &'static str,
    },
    #[error("failed to replace `{path}`: hard links were handed to a new target more than {MAX_RELINKS} times in this layer")]
    TooManyRelinks { path: String },
    #[error("failed to mark `{path}` opaque: it is not a directory in this layer")]
    OpaqueNotDir { path: String },
    #[error("failed to list host directory copied to `{path}`")]
    Host {
        path: String,
        #[source]
        source: Box<HostError>,
    },
}

/// Lexically normalizes `path` relative to the image root: a leading `/` and `.` components
/// are dropped, `..` pops a component and is clamped at the root (`../x` and `/../x` are
/// `x`). The root itself (an empty result) is an error because an entry name is required.
pub fn normalize(path: &str) -> Result<String, TreeError> {
    let parts = normalize_components(path)?;
    if parts.is_empty() {
        return Err(TreeError::RootPath {
            path: path.to_string(),
        });
    }
    Ok(parts.join("/"))
}

/// Like [`normalize`], but the root (empty string) is allowed (a `dest` of `/`).
pub fn normalize_dir(path: &str) -> Result<String, TreeError> {
    Ok(normalize_components(path)?.join("/"))
}

fn normalize_components(path: &str) -> Result<Vec<&str>, TreeError> {
    if path.contains('\0') {
        return Err(TreeError::NulInPath {
            path: path.to_string(),
        });
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    Ok(parts)
}

/// Joins a normalized directory (possibly the root, `""`) and a normalized relative path.
pub fn join(dir: &str, rel: &str) -> String {
    match (dir.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_string(),
        (_, true) => dir.to_string(),
        _ => format!("{dir}/{rel}"),
    }
}

/// Whether `path` lies strictly below the directory `dir` (everything does below the root).
fn is_under(path: &str, dir: &str) -> bool {
    if dir.is_empty() {
        return !path.is_empty();
    }
    path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/'
}

impl FileTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// The entry at the tree key `path`, when it is listed: contents of a copied host
    /// directory are not, until [`FileTree::resolve`] reaches below them (or see
    /// [`FileTree::entries`]).
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// Whether the layer has no entries at all (copied host directories count as entries).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.mounts.is_empty()
    }

    /// Whether nothing of this layer lies below the directory `key` (`""`: the whole tree).
    fn nothing_below(&self, key: &str) -> bool {
        if self.mounts.contains_key(key) {
            return false;
        }
        if key.is_empty() {
            return self.entries.is_empty();
        }
        let prefix = format!("{key}/");
        self.entries
            .range(prefix.clone()..)
            .next()
            .is_none_or(|(k, _)| !k.starts_with(&prefix))
    }

    /// Puts the contents of the host directory `mount.host` below the directory `key`, which
    /// is already in the tree (or is the root). Where nothing of this layer lies below `key`
    /// that is one mount; otherwise every child is inserted (replacing what is there, the way
    /// `cp -r` onto an existing directory would) and child directories recurse.
    pub(crate) fn merge_host_dir(&mut self, key: &str, mount: HostMount) -> Result<(), HostError> {
        if self.nothing_below(key) {
            self.mounts.insert(key.to_string(), mount);
            return Ok(());
        }
        for child in host::read_dir_sorted(&mount.host)? {
            let path = join(key, &child.name);
            let is_dir = child.found.is_dir();
            let host = child.host.clone();
            let landed =
                self.insert(&path, mount.entry(child))
                    .map_err(|source| HostError::Tree {
                        host: host.clone(),
                        dest: path.clone(),
                        source,
                    })?;
            if is_dir {
                self.merge_host_dir(&landed, mount.below(host))?;
            }
        }
        Ok(())
    }

    /// Lists the mount at `key` (if any) one level: its children become entries, child
    /// directories mounts of their own. Nothing changes when the listing fails.
    fn expand(&mut self, key: &str) -> Result<(), TreeError> {
        let Some(mount) = self.mounts.get(key) else {
            return Ok(());
        };
        let children = host::read_dir_sorted(&mount.host).map_err(|e| TreeError::Host {
            path: key.to_string(),
            source: Box::new(e),
        })?;
        let mount = self.mounts.remove(key).expect("looked up above");
        for child in children {
            let path = join(key, &child.name);
            if child.found.is_dir() {
                self.mounts
                    .insert(path.clone(), mount.below(child.host.clone()));
            }
            self.entries.insert(path, mount.entry(child));
        }
        Ok(())
    }

    /// Directories whose lower-layer contents this layer hides, sorted.
    pub fn opaque_dirs(&self) -> impl Iterator<Item = &String> {
        self.opaque.iter()
    }

    /// Resolves `path` the way the kernel would inside a chroot of the image root: every
    /// component but the last is followed through symlinks of this tree (absolute targets from
    /// the image root, `..` clamped at the root, at most [`MAX_SYMLINK_HOPS`]). Components not
    /// in this tree are taken as plain directories of a lower layer. The last component is
    /// never followed: an entry there replaces whatever is there. Copied host directories on
    /// the way are listed (see the module docs), which is why this takes `&mut self`.
    pub fn resolve(&mut self, path: &str) -> Result<String, TreeError> {
        let normalized = normalize(path)?;
        self.expand("")?;
        let mut queue: std::collections::VecDeque<String> =
            normalized.split('/').map(str::to_string).collect();
        let last = queue.pop_back().unwrap_or_default();
        let mut resolved: Vec<String> = Vec::new();
        let mut hops = 0u32;
        while let Some(c) = queue.pop_front() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            resolved.push(c);
            let here = resolved.join("/");
            self.expand(&here)?;
            match self.entries.get(&here).map(|e| &e.kind) {
                None | Some(EntryKind::Dir) => {}
                Some(EntryKind::Symlink(target)) => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(TreeError::SymlinkLoop {
                            path: path.to_string(),
                        });
                    }
                    resolved.pop();
                    if target.starts_with('/') {
                        resolved.clear();
                    }
                    for t in target.split('/').rev() {
                        queue.push_front(t.to_string());
                    }
                }
                Some(EntryKind::Whiteout(())) => {
                    return Err(TreeError::ParentRemoved {
                        path: path.to_string(),
                        parent: here,
                    })
                }
                Some(_) => {
                    return Err(TreeError::NotADirectory {
                        path: path.to_string(),
                        parent: here,
                    })
                }
            }
        }
        resolved.push(last);
        Ok(resolved.join("/"))
    }

    /// Adds or replaces the entry at `path` (resolved with [`FileTree::resolve`]); returns the
    /// tree path it landed at. No parent directory entries are created: a layer that writes
    /// `tmp/x` must not override the base image's `/tmp` metadata. The last entry for a path
    /// wins; a non-directory replacing a directory drops its children; a directory replacing a
    /// whiteout becomes opaque (the lower contents stay deleted). A hardlink's target must be an
    /// existing non-directory entry of this tree (a symlink is allowed, as tar allows it; the
    /// link then names the symlink itself, as `linkat` without `AT_SYMLINK_FOLLOW` does);
    /// chains collapse to the entry holding the content, whichever path sorts first (the
    /// writer moves the content to the first path). A link shares the content it had when it
    /// was added: replacing its target later hands the old content on to the links (as a
    /// link keeps its inode when tar replaces the target's path).
    pub fn insert(&mut self, path: &str, entry: Entry) -> Result<String, TreeError> {
        let key = self.resolve(path)?;
        let mut entry = entry;
        let mut holder = None;
        if let EntryKind::Hardlink(target) = &entry.kind {
            let first = self.hardlink_target(&key, target)?;
            if is_under(&first, &key) {
                return Err(TreeError::BadHardlink {
                    path: key,
                    target: target.clone(),
                    reason: "the target is below the link, which replaces it",
                });
            }
            if first == key {
                // Linked to a member of its own group (`a`, `b` -> `a`, then `a` -> `b`): it
                // already shares that content, as GNU tar finds when it extracts it.
                return Ok(key);
            }
            entry.kind = EntryKind::Hardlink(first.clone());
            holder = Some(first);
        }
        let was_whiteout = matches!(
            self.entries.get(&key).map(|e| &e.kind),
            Some(EntryKind::Whiteout(()))
        );
        let new_is_dir = matches!(entry.kind, EntryKind::Dir);
        // A directory replaces a directory (explicit, or implied by entries below it) and keeps
        // its contents; only a non-directory takes its children with it.
        if !new_is_dir {
            self.drop_subtree(&key)?;
        }
        if let Some(old) = self.take(&key) {
            self.detach(vec![(key.clone(), old)])?;
        }
        if new_is_dir && was_whiteout {
            self.opaque.insert(key.clone());
        }
        if let Some(first) = holder {
            self.links.entry(first).or_default().insert(key.clone());
        }
        self.entries.insert(key.clone(), entry);
        Ok(key)
    }

    /// Deletes `path` from lower layers: a `Whiteout` entry, and this layer's entries under it
    /// are dropped.
    pub fn remove(&mut self, path: &str) -> Result<String, TreeError> {
        let key = self.resolve(path)?;
        self.drop_subtree(&key)?;
        if let Some(old) = self.take(&key) {
            self.detach(vec![(key.clone(), old)])?;
        }
        self.entries.insert(
            key.clone(),
            Entry {
                kind: EntryKind::Whiteout(()),
                meta: Metadata::new(0, 0, 0, 0),
            },
        );
        Ok(key)
    }

    /// Hides the lower-layer contents of directory `dir` (`.wh..wh..opq`); this layer's own
    /// entries under it stay. The root (`""`, `/`) may be opaque: it hides every lower layer.
    pub fn set_opaque(&mut self, dir: &str) -> Result<String, TreeError> {
        if normalize_dir(dir)?.is_empty() {
            self.opaque.insert(String::new());
            return Ok(String::new());
        }
        let key = self.resolve(dir)?;
        match self.entries.get(&key).map(|e| &e.kind) {
            None | Some(EntryKind::Dir) => {}
            Some(_) => return Err(TreeError::OpaqueNotDir { path: key }),
        }
        self.opaque.insert(key.clone());
        Ok(key)
    }

    fn hardlink_target(&mut self, key: &str, target: &str) -> Result<String, TreeError> {
        let bad = |reason| TreeError::BadHardlink {
            path: key.to_string(),
            target: target.to_string(),
            reason,
        };
        let resolved = self
            .resolve(target)
            .map_err(|_| bad("the target does not resolve inside the image"))?;
        match self.entries.get(&resolved).map(|e| &e.kind) {
            None => Err(bad("the target is not an entry of this layer")),
            Some(EntryKind::Dir) => Err(bad("the target is a directory")),
            Some(EntryKind::Whiteout(())) => Err(bad("the target is removed in this layer")),
            Some(EntryKind::Hardlink(first)) => Ok(first.clone()),
            Some(_) if resolved == key => Err(bad("the link names itself")),
            Some(_) => Ok(resolved),
        }
    }

    /// Removes the entry at `key`, keeping the hard-link index in step: a link leaves its
    /// group (a group's content holder is for [`FileTree::detach`] to hand on).
    fn take(&mut self, key: &str) -> Option<Entry> {
        let old = self.entries.remove(key)?;
        if let EntryKind::Hardlink(first) = &old.kind {
            if let Some(group) = self.links.get_mut(first) {
                group.remove(key);
                if group.is_empty() {
                    self.links.remove(first);
                }
            }
        }
        Some(old)
    }

    /// Drops every entry (and opaque marker) strictly under `dir`, and the host directory
    /// mounted at `dir` or below it. Costs O(log n) plus what is dropped.
    fn drop_subtree(&mut self, dir: &str) -> Result<(), TreeError> {
        let prefix = format!("{dir}/");
        let below = |k: &String| dir.is_empty() || k.starts_with(&prefix);
        let mounts: Vec<String> = self
            .mounts
            .range(dir.to_string()..)
            .map(|(k, _)| k)
            .take_while(|k| *k == dir || below(k))
            .cloned()
            .collect();
        for k in mounts {
            self.mounts.remove(&k);
        }
        let opaque: Vec<String> = self
            .opaque
            .range(prefix.clone()..)
            .take_while(|k| below(k))
            .cloned()
            .collect();
        for k in opaque {
            self.opaque.remove(&k);
        }
        let children: Vec<String> = self
            .entries
            .range(prefix.clone()..)
            .map(|(k, _)| k)
            .take_while(|k| below(k))
            .cloned()
            .collect();
        let mut removed = Vec::with_capacity(children.len());
        for k in children {
            if let Some(e) = self.take(&k) {
                removed.push((k, e));
            }
        }
        self.detach(removed)
    }

    /// Entries that hardlinks of this tree pointed at are going away: the first remaining link
    /// (in path order) inherits the content and metadata, the others point at it. Costs
    /// O(log n) per entry without links, O(k log n) for one with k links (see
    /// [`MAX_RELINKS`]).
    fn detach(&mut self, removed: Vec<(String, Entry)>) -> Result<(), TreeError> {
        for (gone, old) in removed {
            let Some(mut group) = self.links.remove(&gone) else {
                continue;
            };
            self.relinked.0 += group.len() as u64;
            if self.relinked.0 > MAX_RELINKS {
                return Err(TreeError::TooManyRelinks { path: gone });
            }
            let Some(first) = group.pop_first() else {
                continue;
            };
            if let Some(e) = self.entries.get_mut(&first) {
                e.kind = old.kind;
                e.meta = old.meta;
            }
            for k in &group {
                if let Some(e) = self.entries.get_mut(k) {
                    e.kind = EntryKind::Hardlink(first.clone());
                }
            }
            if !group.is_empty() {
                self.links.insert(first, group);
            }
        }
        Ok(())
    }

    /// The first path (bytewise) of the hard-link group of `holder`, the entry holding its
    /// content: where the tar writer puts the content.
    pub(crate) fn first_of_group<'a>(&'a self, holder: &'a str) -> &'a str {
        match self.links.get(holder).and_then(|g| g.first()) {
            Some(link) if link.as_str() < holder => link,
            _ => holder,
        }
    }
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
