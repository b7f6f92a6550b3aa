//! The file-tree model: what one layer contains, as entries with metadata and references to
//! their content. Non-`run` steps edit this model; the tar writer streams from it. No step needs
//! a real directory on the host to build a layer.
//!
//! Paths are stored normalized and relative to the image root (`usr/bin/env`, never with a
//! leading `/`, `.` or `..` component); the root itself is not an entry. A `BTreeMap` keyed by
//! that string gives bytewise order, which puts every parent before its children: exactly the
//! order the tar writer needs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a regular file's bytes come from when the layer is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// Bytes held in memory (inline `write` steps, small files).
    Inline(Arc<[u8]>),
    /// A file on the host (a `path` input, a blob in the store, a spilled archive member),
    /// read when the tar is written. `size` is checked then: a file that changed size is an
    /// error, never a silently different layer.
    File { path: PathBuf, size: u64 },
}

impl Content {
    pub fn size(&self) -> u64 {
        match self {
            Content::Inline(b) => b.len() as u64,
            Content::File { size, .. } => *size,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File(Content),
    /// The target exactly as written (relative or absolute); resolved inside the image root.
    Symlink(String),
    /// A hard link to another entry of the same layer (a normalized tree path).
    Hardlink(String),
    CharDevice { major: u32, minor: u32 },
    BlockDevice { major: u32, minor: u32 },
    Fifo,
    /// Deletes the path from lower layers; written as `.wh.<name>`.
    Whiteout,
}

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
        Self { mode, uid, gid, mtime, xattrs: BTreeMap::new() }
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
    pub(crate) opaque: std::collections::BTreeSet<String>,
}
