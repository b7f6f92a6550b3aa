//! Host files and directories as tree entries (`copy` steps, `path` inputs).
//!
//! The walk never follows symlinks, and the metadata it records is normalized so the layer
//! does not depend on the machine: not on umask, owner, mtimes or directory order. Files are
//! `0755` when any execute bit is set on disk and `0644` otherwise, directories `0755`,
//! symlinks `0777`, owner `0:0`, mtime the epoch. Files with several links inside one copy
//! become hardlinks to the first path in sort order (the tar writer decides, see
//! [`HostLink`]).
//!
//! A directory is not walked when it is added: it becomes a [`HostMount`] of the tree, listed
//! one directory at a time, in sorted order, when the layer is written (see
//! [`super::tree_walk`]), so memory does not grow with the number of files copied.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::tree::{self, Content, Entry, EntryKind, FileTree, HostLink, Metadata, TreeError};

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
    #[error(
        "file `{}` changed while the layer was written: expected {expected} bytes, found {found}",
        path.display()
    )]
    Changed {
        path: PathBuf,
        expected: u64,
        /// The size read, or "more than {expected}".
        found: String,
    },
    #[error("failed to add host path `{}` at `{dest}`", host.display())]
    Tree {
        host: PathBuf,
        dest: String,
        #[source]
        source: TreeError,
    },
}

/// What one host object is, from its `lstat`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    Dir,
    File {
        size: u64,
        exec: bool,
        /// `(dev, ino)` when the file has several links.
        id: Option<(u64, u64)>,
    },
    Symlink(String),
    Fifo,
}

impl Found {
    pub(crate) fn is_dir(&self) -> bool {
        matches!(self, Found::Dir)
    }

    /// `None` for a socket (skipped: it cannot be archived); an error for a device node.
    fn of(path: &Path, md: &std::fs::Metadata) -> Result<Option<Found>, HostError> {
        let ft = md.file_type();
        Ok(Some(if ft.is_dir() {
            Found::Dir
        } else if ft.is_file() {
            Found::File {
                size: md.len(),
                exec: md.mode() & 0o111 != 0,
                id: (md.nlink() > 1).then(|| (md.dev(), md.ino())),
            }
        } else if ft.is_symlink() {
            let target = fs_err::read_link(path)?;
            let target = target
                .into_os_string()
                .into_string()
                .map_err(|_| HostError::NotUtf8 {
                    path: path.to_path_buf(),
                })?;
            Found::Symlink(target)
        } else if ft.is_fifo() {
            Found::Fifo
        } else if ft.is_socket() {
            return Ok(None);
        } else {
            return Err(HostError::Device {
                path: path.to_path_buf(),
            });
        }))
    }
}

/// One object of a listed host directory.
#[derive(Clone, Debug)]
pub(crate) struct Child {
    pub name: String,
    pub host: PathBuf,
    pub found: Found,
}

/// The objects of the host directory `dir`, sorted by name (sockets left out).
pub(crate) fn read_dir_sorted(dir: &Path) -> Result<Vec<Child>, HostError> {
    let mut children = Vec::new();
    for item in fs_err::read_dir(dir)? {
        let item = item?;
        let host = item.path();
        let name = item
            .file_name()
            .into_string()
            .map_err(|_| HostError::NotUtf8 { path: host.clone() })?;
        // `lstat` relative to the open directory: no walk of the whole path per child.
        let md = item.metadata()?; // fs_err names the path
        if let Some(found) = Found::of(&host, &md)? {
            children.push(Child { name, host, found });
        }
    }
    children.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(children)
}

/// Opens a host file for reading without following a symlink in its last component: a file
/// swapped for a link after it was listed is an error (`ELOOP`), never the link's target.
pub(crate) fn open_file(path: &Path) -> std::io::Result<fs_err::File> {
    use fs_err::os::unix::fs::OpenOptionsExt;
    fs_err::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// A host directory whose contents are a directory of the tree, with the options of the
/// `copy` that put it there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostMount {
    pub(crate) host: PathBuf,
    pub(crate) opts: HostOptions,
    /// The `copy` this directory came from (scopes hardlinks, see [`HostLink`]).
    pub(crate) copy: u32,
}

impl HostMount {
    /// The mount of the subdirectory `host` of this one.
    pub(crate) fn below(&self, host: PathBuf) -> HostMount {
        HostMount { host, ..*self }
    }

    /// The tree entry of one host object, with normalized metadata.
    pub(crate) fn entry(&self, child: Child) -> Entry {
        host_entry(child.found, child.host, &self.opts, self.copy)
    }
}

fn host_entry(found: Found, host: PathBuf, opts: &HostOptions, copy: u32) -> Entry {
    let (uid, gid) = opts.owner.unwrap_or((0, 0));
    let meta = |mode| Metadata::new(mode, uid, gid, opts.epoch);
    match found {
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
        Found::File { size, exec, id } => Entry {
            kind: EntryKind::File(Content::File {
                path: host,
                size,
                link: id.map(|(dev, ino)| Box::new(HostLink { copy, dev, ino })),
            }),
            meta: meta(opts.mode.unwrap_or(if exec { 0o755 } else { 0o644 })),
        },
    }
}

/// A tree holding only `host` (a directory's contents land at the root).
pub fn host_tree(host: &Path, opts: &HostOptions) -> Result<FileTree, HostError> {
    let mut t = FileTree::new();
    t.add_host_path(host, "", opts)?;
    Ok(t)
}

impl FileTree {
    /// Adds `host` (a file, symlink or directory) at `dest`. A directory's own entry is added
    /// at `dest` unless `dest` is the root; its parents are not. A directory's contents are
    /// read when the layer is written (see the module docs). On error the tree is unchanged.
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
        let md = fs_err::symlink_metadata(host)?;
        let Some(found) = Found::of(host, &md)? else {
            return Ok(()); // a socket
        };
        let mut work = self.clone();
        work.copies += 1;
        let mount = HostMount {
            host: host.to_path_buf(),
            opts: *opts,
            copy: work.copies,
        };
        let is_dir = found.is_dir();
        let key = if is_dir && dest.is_empty() {
            String::new() // the root directory itself is not an entry
        } else {
            let entry = host_entry(found, host.to_path_buf(), opts, work.copies);
            work.insert(&dest, entry).map_err(tree_err)?
        };
        if is_dir {
            work.merge_host_dir(&key, mount)?;
        }
        *self = work;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn set_mode(p: &Path, mode: u32) {
        fs_err::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A directory with odd modes and mtimes, a symlink, a hardlinked pair and a socket.
    fn fixture() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        fs_err::create_dir_all(d.join("sub/deeper")).unwrap();
        fs_err::write(d.join("plain"), "p").unwrap();
        fs_err::write(d.join("tool"), "#!/bin/sh").unwrap();
        fs_err::write(d.join("sub/z-first"), "linked").unwrap();
        fs_err::hard_link(d.join("sub/z-first"), d.join("sub/a-second")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("sub/link")).unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(d.join("sock")).unwrap();
        set_mode(&d.join("plain"), 0o600);
        set_mode(&d.join("tool"), 0o710);
        set_mode(&d.join("sub"), 0o700);
        let t = filetime::FileTime::from_unix_time(123_456_789, 0);
        filetime::set_file_mtime(d.join("plain"), t).unwrap();
        tmp
    }

    fn summary(t: &FileTree) -> Vec<(String, String, u32, u64, u64, i64)> {
        t.entries()
            .map(|item| {
                let (k, e) = item.unwrap();
                let kind = match &e.kind {
                    EntryKind::File(Content::File {
                        link: Some(_),
                        size,
                        ..
                    }) => {
                        format!("file {size} (linked)")
                    }
                    EntryKind::File(c) => format!("file {}", c.size()),
                    EntryKind::Hardlink(t) => format!("hardlink {t}"),
                    EntryKind::Symlink(t) => format!("symlink {t}"),
                    other => format!("{other:?}"),
                };
                (
                    k.into_owned(),
                    kind,
                    e.meta.mode,
                    e.meta.uid,
                    e.meta.gid,
                    e.meta.mtime,
                )
            })
            .collect()
    }

    #[test]
    fn host_tree_normalizes_metadata() {
        let tmp = fixture();
        let t = host_tree(
            tmp.path(),
            &HostOptions {
                epoch: 42,
                ..HostOptions::default()
            },
        )
        .unwrap();
        let s = |a: &str, b: &str, m| (a.to_string(), b.to_string(), m, 0, 0, 42);
        assert_eq!(
            summary(&t),
            [
                s("plain", "file 1", 0o644),
                s("sub", "Dir", 0o755),
                s("sub/a-second", "file 6 (linked)", 0o644),
                s("sub/deeper", "Dir", 0o755),
                s("sub/link", "symlink /etc/passwd", 0o777),
                s("sub/z-first", "file 6 (linked)", 0o644),
                s("tool", "file 9", 0o755),
            ]
        );
        let (_, plain) = t.entries().map(Result::unwrap).next().unwrap();
        match &plain.kind {
            EntryKind::File(Content::File { path, .. }) => {
                assert_eq!(path, &tmp.path().join("plain"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn host_options_mode_owner_and_dest() {
        let tmp = fixture();
        let opts = HostOptions {
            mode: Some(0o600),
            owner: Some((1000, 1001)),
            epoch: 7,
        };
        let mut t = FileTree::new();
        t.add_host_path(tmp.path(), "/srv/www/", &opts).unwrap();
        let get = |p: &str| {
            t.entries()
                .map(Result::unwrap)
                .find(|(k, _)| k == p)
                .unwrap_or_else(|| panic!("{p}"))
                .1
                .meta
                .clone()
        };
        assert!(t.get("srv").is_none(), "no implicit parents");
        assert_eq!(get("srv/www").mode, 0o755);
        assert_eq!(get("srv/www/sub").mode, 0o755);
        assert_eq!(get("srv/www/tool").mode, 0o600);
        assert_eq!(
            (get("srv/www/plain").uid, get("srv/www/plain").gid),
            (1000, 1001)
        );
        // A single file lands exactly at dest.
        let mut t = FileTree::new();
        t.add_host_path(
            &tmp.path().join("tool"),
            "/usr/bin/tool",
            &HostOptions::default(),
        )
        .unwrap();
        assert_eq!(
            summary(&t),
            [(
                "usr/bin/tool".to_string(),
                "file 9".to_string(),
                0o755,
                0,
                0,
                0
            )]
        );
        // A top-level symlink is recorded, not followed.
        let mut t = FileTree::new();
        t.add_host_path(&tmp.path().join("sub/link"), "l", &HostOptions::default())
            .unwrap();
        assert_eq!(
            t.get("l").unwrap().kind,
            EntryKind::Symlink("/etc/passwd".into())
        );
    }

    #[test]
    fn host_tree_does_not_depend_on_mtimes_or_modes_on_disk() {
        let a = fixture();
        let b = fixture();
        set_mode(&b.path().join("plain"), 0o664);
        set_mode(&b.path().join("sub"), 0o755);
        let now = filetime::FileTime::from_unix_time(1_900_000_000, 0);
        filetime::set_file_mtime(b.path().join("tool"), now).unwrap();
        let opts = HostOptions::default();
        let (ta, tb) = (
            host_tree(a.path(), &opts).unwrap(),
            host_tree(b.path(), &opts).unwrap(),
        );
        assert_eq!(summary(&ta), summary(&tb));
    }

    #[test]
    fn host_devices_are_refused() {
        let err = FileTree::new()
            .add_host_path(Path::new("/dev/null"), "x", &HostOptions::default())
            .unwrap_err();
        assert!(matches!(err, HostError::Device { .. }), "{err}");
        assert!(err.to_string().contains("/dev/null"));
        let tmp = fixture();
        assert!(matches!(
            FileTree::new().add_host_path(&tmp.path().join("plain"), "/", &HostOptions::default()),
            Err(HostError::Tree {
                source: TreeError::RootPath { .. },
                ..
            })
        ));
    }
}
