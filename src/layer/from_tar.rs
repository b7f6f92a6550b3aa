//! Reading an archive into the file-tree model (`extract` steps, base layers turned into
//! entries). Contents of members are spilled to files under a scratch directory so a large
//! archive never sits in memory; the tar writer reads them back when the layer is written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::read::{ReadError, TarEntry, TarKind, TarReader};
use super::tree::{self, Content, Entry, EntryKind, FileTree, Metadata, TreeError};

/// Members up to this size are kept in memory instead of being spilled.
pub const INLINE_MAX: u64 = 4096;
/// The OCI whiteout prefix and opaque marker.
pub const WHITEOUT_PREFIX: &str = ".wh.";
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The only xattr carried into layers (see DESIGN.md).
pub const KEPT_XATTR: &str = "security.capability";

#[derive(Clone, Debug)]
pub struct AddTarOptions<'a> {
    /// Archive mtimes later than this are clamped to it.
    pub epoch: i64,
    /// Scratch directory for member contents larger than [`INLINE_MAX`]; the caller owns it
    /// and must keep it until the layer is written.
    pub spill_dir: &'a Path,
    /// Interpret `.wh.` names as OCI whiteouts (layers) or refuse them (plain archives).
    pub whiteouts: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AddTarError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("failed to add tar entry `{path}` (byte {offset})")]
    Tree {
        path: String,
        offset: u64,
        #[source]
        source: TreeError,
    },
    #[error("failed to add tar entry `{path}` (byte {offset}): invalid whiteout name")]
    InvalidWhiteout { path: String, offset: u64 },
    #[error("failed to add tar entry `{path}` (byte {offset}): whiteout names are not allowed in this archive")]
    WhiteoutNotAllowed { path: String, offset: u64 },
    #[error(
        "failed to add tar entry `{path}` (byte {offset}): a {kind} cannot replace the image root"
    )]
    RootEntry {
        path: String,
        offset: u64,
        kind: &'static str,
    },
    #[error("failed to spill tar entry `{path}` to `{}`", spill.display())]
    Spill {
        path: String,
        spill: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

enum Action {
    Skip,
    Opaque(String),
    Whiteout(String),
    Add(String),
}

impl FileTree {
    /// Adds every member of `reader` under `dest`. Entry paths are normalized on their own
    /// (so `../x` is clamped at `dest`, never above it) then joined to `dest`; hardlink
    /// targets likewise. On error the tree is left unchanged.
    pub fn add_tar<R: std::io::Read>(
        &mut self,
        reader: &mut TarReader<R>,
        dest: &str,
        opts: &AddTarOptions<'_>,
    ) -> Result<(), AddTarError> {
        let dest = tree::normalize_dir(dest).map_err(|source| AddTarError::Tree {
            path: dest.to_string(),
            offset: 0,
            source,
        })?;
        let mut work = self.clone();
        while let Some(entry) = reader.next_entry()? {
            let tree_err = |source| AddTarError::Tree {
                path: entry.path.clone(),
                offset: entry.offset,
                source,
            };
            match classify(&entry, &dest, opts.whiteouts)? {
                Action::Skip => {}
                Action::Opaque(dir) => {
                    work.set_opaque(&dir).map_err(tree_err)?;
                }
                Action::Whiteout(path) => {
                    // A whiteout only hides lower layers: an entry this archive already added
                    // at that path stays (a directory then hides its lower contents).
                    let key = work.resolve(&path).map_err(tree_err)?;
                    match work.get(&key).map(|e| &e.kind) {
                        None | Some(EntryKind::Whiteout) => {
                            work.remove(&key).map_err(tree_err)?;
                        }
                        Some(EntryKind::Dir) => {
                            work.set_opaque(&key).map_err(tree_err)?;
                        }
                        Some(_) => {}
                    }
                }
                Action::Add(path) => {
                    let kind = entry_kind(&entry, &dest, reader, opts)?;
                    let mut meta = Metadata::new(
                        entry.mode,
                        entry.uid,
                        entry.gid,
                        entry.mtime.min(opts.epoch),
                    );
                    if let Some(v) = entry.xattrs.get(KEPT_XATTR) {
                        meta.xattrs.insert(KEPT_XATTR.to_string(), v.clone());
                    }
                    work.insert(&path, Entry { kind, meta }).map_err(tree_err)?;
                }
            }
        }
        *self = work;
        Ok(())
    }
}

/// Decides what an archive member means; whiteout names are validated here.
fn classify(entry: &TarEntry, dest: &str, whiteouts: bool) -> Result<Action, AddTarError> {
    let rel = tree::normalize_dir(&entry.path).map_err(|source| AddTarError::Tree {
        path: entry.path.clone(),
        offset: entry.offset,
        source,
    })?;
    if rel.is_empty() {
        // `./` and `/`: the root's own metadata is not part of a layer's entries.
        return match entry.kind {
            TarKind::Dir => Ok(Action::Skip),
            TarKind::Symlink => Err(root_entry(entry, "symlink")),
            TarKind::Hardlink => Err(root_entry(entry, "hardlink")),
            _ => Err(root_entry(entry, "non-directory")),
        };
    }
    let (parent, base) = rel.rsplit_once('/').unwrap_or(("", rel.as_str()));
    if let Some(name) = base.strip_prefix(WHITEOUT_PREFIX) {
        let invalid = || AddTarError::InvalidWhiteout {
            path: entry.path.clone(),
            offset: entry.offset,
        };
        if !whiteouts {
            return Err(AddTarError::WhiteoutNotAllowed {
                path: entry.path.clone(),
                offset: entry.offset,
            });
        }
        if base == OPAQUE_MARKER {
            return Ok(Action::Opaque(tree::join(dest, parent)));
        }
        if name.is_empty() || name == "." || name == ".." || name.starts_with(WHITEOUT_PREFIX) {
            return Err(invalid());
        }
        if entry.kind != TarKind::File {
            return Err(invalid());
        }
        return Ok(Action::Whiteout(tree::join(
            dest,
            &tree::join(parent, name),
        )));
    }
    Ok(Action::Add(tree::join(dest, &rel)))
}

fn root_entry(entry: &TarEntry, kind: &'static str) -> AddTarError {
    AddTarError::RootEntry {
        path: entry.path.clone(),
        offset: entry.offset,
        kind,
    }
}

fn entry_kind<R: std::io::Read>(
    entry: &TarEntry,
    dest: &str,
    reader: &mut TarReader<R>,
    opts: &AddTarOptions<'_>,
) -> Result<EntryKind, AddTarError> {
    Ok(match entry.kind {
        TarKind::Dir => EntryKind::Dir,
        TarKind::Symlink => EntryKind::Symlink(entry.link_name.clone()),
        TarKind::Hardlink => {
            let rel = tree::normalize(&entry.link_name).map_err(|source| AddTarError::Tree {
                path: entry.path.clone(),
                offset: entry.offset,
                source,
            })?;
            EntryKind::Hardlink(tree::join(dest, &rel))
        }
        TarKind::CharDevice => EntryKind::CharDevice {
            major: entry.dev_major,
            minor: entry.dev_minor,
        },
        TarKind::BlockDevice => EntryKind::BlockDevice {
            major: entry.dev_major,
            minor: entry.dev_minor,
        },
        TarKind::Fifo => EntryKind::Fifo,
        TarKind::File if entry.size <= INLINE_MAX => {
            let mut buf = Vec::with_capacity(entry.size as usize);
            reader.read_data(&mut buf)?;
            EntryKind::File(Content::Inline(Arc::from(buf)))
        }
        TarKind::File => {
            let spill_err = |source| AddTarError::Spill {
                path: entry.path.clone(),
                spill: opts.spill_dir.to_path_buf(),
                source,
            };
            let tmp = tempfile::Builder::new()
                .prefix("member-")
                .tempfile_in(opts.spill_dir)
                .map_err(spill_err)?;
            let (file, path) = tmp.keep().map_err(|e| spill_err(e.error))?;
            let mut w = std::io::BufWriter::new(file);
            let size = reader.read_data(&mut w)?;
            std::io::Write::flush(&mut w).map_err(spill_err)?;
            EntryKind::File(Content::File {
                path,
                size,
                link: None,
            })
        }
    })
}

#[cfg(test)]
#[path = "from_tar_tests.rs"]
mod tests;
