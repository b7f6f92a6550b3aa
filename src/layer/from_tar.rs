//! Reading an archive into the file-tree model (`extract` steps, base layers turned into
//! entries). Contents of members are spilled, one after the other, to a single file under a
//! scratch directory, and the tree refers to each by offset ([`Content::Slice`]): a large
//! archive never sits in memory, and a million small members are not a million files; the tar
//! writer reads them back when the layer is written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::member::{self, MemberError, MemberKind, Names, Role};
use super::read::{ReadError, TarEntry, TarReader};
use super::tree::{self, Content, Entry, EntryKind, FileTree, Metadata, TreeError};

/// Members up to this size are kept in memory instead of being spilled (they take no more room
/// than the slice that would point at them).
pub const INLINE_MAX: u64 = 32;
/// The only xattr carried into layers (see DESIGN.md).
pub const KEPT_XATTR: &str = "security.capability";

#[derive(Clone, Debug)]
pub struct AddTarOptions<'a> {
    /// Archive mtimes later than this are clamped to it.
    pub epoch: i64,
    /// Scratch directory for the file of member contents larger than [`INLINE_MAX`]; the
    /// caller owns it and must keep it until the layer is written.
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
    #[error(transparent)]
    Member(#[from] MemberError),
    #[error("failed to spill tar entry `{path}` to `{}`", spill.display())]
    Spill {
        path: String,
        spill: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write archive member contents to `{}`", spill.display())]
    SpillFlush {
        spill: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
        let mut spill = Spill {
            dir: opts.spill_dir,
            out: None,
        };
        while let Some(entry) = reader.next_entry()? {
            let tree_err = |source| AddTarError::Tree {
                path: entry.path.clone(),
                offset: entry.offset,
                source,
            };
            let names = if opts.whiteouts {
                Names::Layer
            } else {
                Names::Plain
            };
            let member = member::classify(&entry, names)?;
            let path = tree::join(&dest, &member.name);
            match member.role {
                Role::Root => {}
                Role::Opaque { dir } => {
                    work.set_opaque(&tree::join(&dest, &dir))
                        .map_err(tree_err)?;
                }
                Role::Whiteout { target } => {
                    // A whiteout only hides lower layers: an entry this archive already added
                    // at that path stays (a directory then hides its lower contents).
                    let key = work
                        .resolve(&tree::join(&dest, &target))
                        .map_err(tree_err)?;
                    match work.get(&key).map(|e| &e.kind) {
                        None | Some(EntryKind::Whiteout(())) => {
                            work.remove(&key).map_err(tree_err)?;
                        }
                        Some(EntryKind::Dir) => {
                            work.set_opaque(&key).map_err(tree_err)?;
                        }
                        Some(_) => {}
                    }
                }
                Role::Entry(kind) => {
                    let kind = entry_kind(kind, &entry, &dest, reader, &mut spill)?;
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
        // The whole input, not just the tar: a gzip member with a bad CRC, a missing trailer or
        // trailing garbage is refused, as `gzip -t` refuses it.
        reader.drain()?;
        spill.finish()?;
        *self = work;
        Ok(())
    }
}

fn entry_kind<R: std::io::Read>(
    kind: MemberKind,
    entry: &TarEntry,
    dest: &str,
    reader: &mut TarReader<R>,
    spill: &mut Spill<'_>,
) -> Result<EntryKind, AddTarError> {
    let kind = match kind {
        MemberKind::Hardlink(target) => MemberKind::Hardlink(tree::join(dest, &target)),
        other => other,
    };
    kind.try_map_file(|()| {
        if entry.size <= INLINE_MAX {
            let mut buf = Vec::with_capacity(entry.size as usize);
            reader.read_data(&mut buf)?;
            Ok(Content::Inline(Arc::from(buf)))
        } else {
            spill.append(entry, reader)
        }
    })
}

/// The scratch file of one archive's member contents, created on the first member spilled.
struct Spill<'a> {
    dir: &'a Path,
    /// The file, its writer and how many bytes it holds.
    out: Option<(Arc<PathBuf>, std::io::BufWriter<std::fs::File>, u64)>,
}

impl Spill<'_> {
    fn err(&self, path: &str) -> impl FnOnce(std::io::Error) -> AddTarError {
        let (path, spill) = (path.to_string(), self.dir.to_path_buf());
        move |source| AddTarError::Spill {
            path,
            spill,
            source,
        }
    }

    /// Copies the data of `entry` to the end of the file.
    fn append<R: std::io::Read>(
        &mut self,
        entry: &TarEntry,
        reader: &mut TarReader<R>,
    ) -> Result<Content, AddTarError> {
        if self.out.is_none() {
            let tmp = tempfile::Builder::new()
                .prefix("members-")
                .tempfile_in(self.dir)
                .map_err(self.err(&entry.path))?;
            let (file, path) = tmp.keep().map_err(|e| self.err(&entry.path)(e.error))?;
            let writer = std::io::BufWriter::with_capacity(256 * 1024, file);
            self.out = Some((Arc::new(path), writer, 0));
        }
        let (file, writer, len) = self.out.as_mut().expect("created above");
        let size = reader.read_data(writer)?;
        let offset = *len;
        *len += size;
        Ok(Content::Slice {
            file: file.clone(),
            offset,
            size,
        })
    }

    /// Flushes what was spilled to the file.
    fn finish(self) -> Result<(), AddTarError> {
        if let Some((file, mut writer, _)) = self.out {
            std::io::Write::flush(&mut writer).map_err(|source| AddTarError::SpillFlush {
                spill: file.to_path_buf(),
                source,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "from_tar_tests.rs"]
mod tests;
