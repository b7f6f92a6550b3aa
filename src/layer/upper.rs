//! Overlay upper directories as tree entries: what a sandboxed `run` step changed.
//!
//! The step ran over an overlay whose read-only lower directory was the rootfs so far; every
//! change it made is in the upper directory, in overlayfs's own encoding. This walk turns that
//! directory back into entries of the current layer, and unlike [`super::host`] (which
//! normalizes host inputs so they do not depend on the machine) it records metadata
//! *faithfully*, because here the metadata is the step's output: modes including setuid,
//! setgid and sticky bits, owners (host ids translated to the step's container ids), symlink
//! targets exactly as written (never followed: a step's `x -> /etc/shadow` stays a symlink),
//! device nodes and the `security.capability` xattr. Only mtimes are normalized, clamped to
//! the recipe's epoch (`min(mtime, epoch)`), so that a rebuild gives the same bytes.
//!
//! overlayfs encodes deletions as character devices 0/0 (whiteouts) and a directory that
//! replaced a lower one as a directory carrying the xattr `user.overlay.opaque` = `y` (the
//! sandbox mounts with `userxattr`). A whiteout removes the path from this layer's tree too;
//! an opaque directory drops whatever the tree held beneath it (the step saw that content as
//! lower content and hid it) and is marked opaque. Paths are applied in bytewise order, so a
//! directory always lands before its children, and files with several links inside the upper
//! directory become hardlinks to the first path in that order. Sockets cannot be represented
//! in a tar and are skipped (and counted).

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::tree::{Content, Entry, EntryKind, FileTree, Metadata, TreeError};
use super::write::CAPABILITY_XATTR;

/// The xattr overlayfs sets on an opaque directory when mounted with `userxattr`.
pub const OPAQUE_XATTR: &str = "user.overlay.opaque";

/// The xattr overlayfs (with `userxattr`) sets on an object it copied up from a lower layer
/// (when the lower file system supports file handles, as ext4, xfs, btrfs and tmpfs do).
pub const ORIGIN_XATTR: &str = "user.overlay.origin";

/// How owners and mtimes are recorded.
pub struct UpperOptions<'a> {
    /// The recipe's SOURCE_DATE_EPOCH: every mtime becomes `min(mtime, epoch)`.
    pub epoch: i64,
    /// Translates a host uid found in the upper directory to the step's container uid
    /// (`None`: the id does not exist in the step's user namespace).
    pub uid_to_container: &'a dyn Fn(u32) -> Option<u32>,
    /// The same for gids.
    pub gid_to_container: &'a dyn Fn(u32) -> Option<u32>,
    /// Called with the tree path and recorded metadata of every entry overlayfs copied up from
    /// the lower layer (marked with [`ORIGIN_XATTR`]): the caller may restore what its
    /// materialization of the lower layer could not keep (setuid bits, owners).
    pub copied_up: Option<&'a CopiedUpHook<'a>>,
}

/// See [`UpperOptions::copied_up`]: tree path, entry kind, metadata to adjust.
pub type CopiedUpHook<'a> = dyn Fn(&str, &EntryKind, &mut Metadata) + 'a;

/// What the walk recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpperStats {
    /// Entries added or replaced (whiteouts included).
    pub entries: u64,
    pub whiteouts: u64,
    pub opaque_dirs: u64,
    pub hardlinks: u64,
    /// Sockets left by the step, which a layer cannot hold.
    pub sockets_skipped: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UpperError {
    #[error("failed to read `{}` in the step's upper directory", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to record `{}`: its name is not valid UTF-8", path.display())]
    NotUtf8 { path: PathBuf },
    #[error(
        "failed to record `{path}`: its host {kind} {id} has no id in the step's user namespace"
    )]
    UnmappedOwner {
        path: String,
        kind: &'static str,
        id: u32,
    },
    #[error("failed to record `{path}` in the layer")]
    Tree {
        path: String,
        #[source]
        source: TreeError,
    },
}

/// One file system object found in the upper directory.
struct Found {
    host: PathBuf,
    meta: std::fs::Metadata,
}

impl FileTree {
    /// Merges the overlay upper directory `upper` into this tree (later steps override earlier
    /// ones). Regular files reference their bytes in `upper`, which must therefore exist until
    /// the layer has been written.
    pub fn add_upper_dir(
        &mut self,
        upper: &Path,
        opts: &UpperOptions<'_>,
    ) -> Result<UpperStats, UpperError> {
        let mut found = BTreeMap::new();
        walk(upper, "", &mut found)?;
        let mut stats = UpperStats::default();
        // Several links to one inode: (dev, ino) -> the tree key of the first path.
        let mut first_link: BTreeMap<(u64, u64), String> = BTreeMap::new();
        let mut work = self.clone();
        for (path, f) in &found {
            let tree_err = |source| UpperError::Tree {
                path: path.clone(),
                source,
            };
            let ft = f.meta.file_type();
            if ft.is_char_device() && f.meta.rdev() == 0 {
                work.remove(path).map_err(tree_err)?;
                stats.whiteouts += 1;
                stats.entries += 1;
                continue;
            }
            if ft.is_socket() {
                stats.sockets_skipped += 1;
                continue;
            }
            let mut meta = metadata(path, f, opts)?;
            let kind = if ft.is_dir() {
                if read_xattr(&f.host, OPAQUE_XATTR)?.as_deref() == Some(b"y") {
                    // Hide everything below, including what earlier steps of this layer put
                    // there: the step saw it as lower content.
                    work.remove(path).map_err(tree_err)?;
                    let key = work
                        .insert(
                            path,
                            Entry {
                                kind: EntryKind::Dir,
                                meta,
                            },
                        )
                        .map_err(tree_err)?;
                    work.set_opaque(&key).map_err(tree_err)?;
                    stats.opaque_dirs += 1;
                    stats.entries += 1;
                    continue;
                }
                EntryKind::Dir
            } else if ft.is_symlink() {
                let target = fs_err::read_link(&f.host).map_err(|source| UpperError::Io {
                    path: f.host.clone(),
                    source,
                })?;
                let target =
                    target
                        .into_os_string()
                        .into_string()
                        .map_err(|_| UpperError::NotUtf8 {
                            path: f.host.clone(),
                        })?;
                EntryKind::Symlink(target)
            } else if ft.is_fifo() {
                EntryKind::Fifo
            } else if ft.is_char_device() || ft.is_block_device() {
                let rdev = f.meta.rdev();
                let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
                if ft.is_char_device() {
                    EntryKind::CharDevice { major, minor }
                } else {
                    EntryKind::BlockDevice { major, minor }
                }
            } else {
                let id = (f.meta.dev(), f.meta.ino());
                match first_link.get(&id) {
                    Some(first) if f.meta.nlink() > 1 => {
                        stats.hardlinks += 1;
                        EntryKind::Hardlink(first.clone())
                    }
                    _ => EntryKind::File(Content::File {
                        path: f.host.clone(),
                        size: f.meta.len(),
                        link: None,
                    }),
                }
            };
            if let Some(restore) = opts.copied_up {
                if !ft.is_symlink() && read_xattr(&f.host, ORIGIN_XATTR)?.is_some() {
                    restore(path, &kind, &mut meta);
                }
            }
            let is_file = matches!(kind, EntryKind::File(_));
            let key = work.insert(path, Entry { kind, meta }).map_err(tree_err)?;
            if is_file && f.meta.nlink() > 1 {
                first_link.insert((f.meta.dev(), f.meta.ino()), key);
            }
            stats.entries += 1;
        }
        *self = work;
        Ok(stats)
    }
}

/// Collects every object under `dir` (never following symlinks), keyed by tree path.
fn walk(dir: &Path, rel: &str, out: &mut BTreeMap<String, Found>) -> Result<(), UpperError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| UpperError::Io { path, source }
    };
    for item in fs_err::read_dir(dir).map_err(io(dir))? {
        let item = item.map_err(io(dir))?;
        let host = item.path();
        let name = item
            .file_name()
            .into_string()
            .map_err(|_| UpperError::NotUtf8 { path: host.clone() })?;
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let meta = fs_err::symlink_metadata(&host).map_err(io(&host))?;
        let is_dir = meta.is_dir();
        out.insert(
            path.clone(),
            Found {
                host: host.clone(),
                meta,
            },
        );
        if is_dir {
            walk(&host, &path, out)?;
        }
    }
    Ok(())
}

fn metadata(path: &str, f: &Found, opts: &UpperOptions<'_>) -> Result<Metadata, UpperError> {
    let unmapped = |kind, id| UpperError::UnmappedOwner {
        path: path.to_string(),
        kind,
        id,
    };
    let uid = (opts.uid_to_container)(f.meta.uid()).ok_or_else(|| unmapped("uid", f.meta.uid()))?;
    let gid = (opts.gid_to_container)(f.meta.gid()).ok_or_else(|| unmapped("gid", f.meta.gid()))?;
    let mut meta = Metadata::new(
        f.meta.mode() & 0o7777,
        u64::from(uid),
        u64::from(gid),
        f.meta.mtime().min(opts.epoch),
    );
    if !f.meta.file_type().is_symlink() {
        if let Some(caps) = read_xattr(&f.host, CAPABILITY_XATTR)? {
            meta.xattrs.insert(CAPABILITY_XATTR.to_string(), caps);
        }
    }
    Ok(meta)
}

/// The value of xattr `name` of `path` itself (never through a symlink), if it has one.
fn read_xattr(path: &Path, name: &str) -> Result<Option<Vec<u8>>, UpperError> {
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
            Ok(len) => {
                buf.truncate(len);
                return Ok(Some(buf));
            }
            Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::NOTSUP) => return Ok(None),
            Err(rustix::io::Errno::RANGE) if buf.len() < 64 * 1024 => {
                buf.resize(buf.len() * 4, 0);
            }
            Err(e) => {
                return Err(UpperError::Io {
                    path: path.to_path_buf(),
                    source: e.into(),
                })
            }
        }
    }
}

#[cfg(test)]
#[path = "upper_tests.rs"]
mod tests;
