//! Host files and directories as tree entries (`copy` steps, `path` inputs).
//!
//! The walk never follows symlinks, and the metadata it records is normalized so the layer
//! does not depend on the machine: not on umask, owner, mtimes or directory order. Files are
//! `0755` when any execute bit is set on disk and `0644` otherwise, directories `0755`,
//! symlinks `0777`, owner `0:0`, mtime the epoch. Files with several links inside the walk
//! become hardlinks to the first path in sort order.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::tree::{self, Content, Entry, EntryKind, FileTree, Metadata, TreeError};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostOptions {
    /// Mode for regular files (directories keep `0755`).
    pub mode: Option<u32>,
    /// Numeric `(uid, gid)`; `0:0` when absent.
    pub owner: Option<(u64, u64)>,
    pub epoch: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("failed to read host input")]
    Io(#[from] std::io::Error),
    #[error("failed to add host path `{}`: its name is not valid UTF-8", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("failed to add host path `{}`: device nodes are not allowed in inputs", path.display())]
    Device { path: PathBuf },
    #[error("failed to add host path `{}` at `{dest}`", host.display())]
    Tree {
        host: PathBuf,
        dest: String,
        #[source]
        source: TreeError,
    },
}

enum Found {
    Dir,
    File {
        size: u64,
        exec: bool,
        id: Option<(u64, u64)>,
    },
    Symlink(String),
    Fifo,
}

/// A tree holding only `host` (a directory's contents land at the root).
pub fn host_tree(host: &Path, opts: &HostOptions) -> Result<FileTree, HostError> {
    let mut t = FileTree::new();
    t.add_host_path(host, "", opts)?;
    Ok(t)
}

impl FileTree {
    /// Adds `host` (a file, symlink or directory) at `dest`. A directory's own entry is added
    /// at `dest` unless `dest` is the root; its parents are not.
    pub fn add_host_path(
        &mut self,
        host: &Path,
        dest: &str,
        opts: &HostOptions,
    ) -> Result<(), HostError> {
        let tree_err = |source| HostError::Tree {
            host: host.to_path_buf(),
            dest: dest.to_string(),
            source,
        };
        let dest = tree::normalize_dir(dest).map_err(tree_err)?;
        let mut found: BTreeMap<String, (PathBuf, Found)> = BTreeMap::new();
        walk(host, &dest, &mut found)?;
        let (uid, gid) = opts.owner.unwrap_or((0, 0));
        let meta = |mode| Metadata::new(mode, uid, gid, opts.epoch);
        let mut first_of: BTreeMap<(u64, u64), String> = BTreeMap::new();
        let mut work = self.clone();
        for (path, (hp, f)) in found {
            if path.is_empty() {
                continue; // the root directory itself
            }
            let entry = match f {
                Found::Dir => Entry {
                    kind: EntryKind::Dir,
                    meta: meta(0o755),
                },
                Found::Symlink(t) => Entry {
                    kind: EntryKind::Symlink(t),
                    meta: meta(0o777),
                },
                Found::Fifo => Entry {
                    kind: EntryKind::Fifo,
                    meta: meta(opts.mode.unwrap_or(0o644)),
                },
                Found::File { size, exec, id } => {
                    let mode = opts.mode.unwrap_or(if exec { 0o755 } else { 0o644 });
                    match id.and_then(|id| first_of.get(&id).map(|f| (id, f.clone()))) {
                        Some((_, first)) => Entry {
                            kind: EntryKind::Hardlink(first),
                            meta: meta(mode),
                        },
                        None => {
                            if let Some(id) = id {
                                first_of.insert(id, path.clone());
                            }
                            Entry {
                                kind: EntryKind::File(Content::File {
                                    path: hp.clone(),
                                    size,
                                }),
                                meta: meta(mode),
                            }
                        }
                    }
                }
            };
            work.insert(&path, entry)
                .map_err(|source| HostError::Tree {
                    host: hp.clone(),
                    dest: path.clone(),
                    source,
                })?;
        }
        *self = work;
        Ok(())
    }
}

fn walk(
    host: &Path,
    dest: &str,
    out: &mut BTreeMap<String, (PathBuf, Found)>,
) -> Result<(), HostError> {
    let md = fs_err::symlink_metadata(host)?;
    let ft = md.file_type();
    let found = if ft.is_dir() {
        Found::Dir
    } else if ft.is_file() {
        let id = (md.nlink() > 1).then(|| (md.dev(), md.ino()));
        Found::File {
            size: md.len(),
            exec: md.mode() & 0o111 != 0,
            id,
        }
    } else if ft.is_symlink() {
        let target = fs_err::read_link(host)?;
        let target = target
            .into_os_string()
            .into_string()
            .map_err(|_| HostError::NotUtf8 {
                path: host.to_path_buf(),
            })?;
        Found::Symlink(target)
    } else if ft.is_fifo() {
        Found::Fifo
    } else if ft.is_socket() {
        return Ok(());
    } else {
        return Err(HostError::Device {
            path: host.to_path_buf(),
        });
    };
    let is_dir = matches!(found, Found::Dir);
    out.insert(dest.to_string(), (host.to_path_buf(), found));
    if is_dir {
        for child in fs_err::read_dir(host)? {
            let child = child?;
            let name = child
                .file_name()
                .into_string()
                .map_err(|_| HostError::NotUtf8 { path: child.path() })?;
            walk(&child.path(), &tree::join(dest, &name), out)?;
        }
    }
    Ok(())
}
