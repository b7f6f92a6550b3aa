//! The image's own metadata for the rootfs below a `run` step, by path.
//!
//! Why: the safe extractor materializes the rootfs for the host's sake, not the image's. It
//! strips setuid and setgid bits, and it can keep owners only as root of a full id range (as
//! real root, or rootless with a subordinate mapping). When a step merely writes *into* a lower
//! directory or modifies a lower file, overlayfs copies the object up with the materialized
//! metadata, and the layer would record `/var/mail` as 0775 instead of 2775, or (rootless with
//! a single id) a `65532`-owned file as root's. The step could neither see nor change those
//! values (it saw the materialized ones), so for copied-up objects they are restored from this
//! index, built from the layer tars themselves (and the current layer's tree so far), applying
//! whiteouts and opaque markers the way the extractor does: members are read with the rules
//! every layer reader shares ([`crate::layer::member`]), so a layer the extractor refuses is
//! refused here too, with the same error.

use std::collections::BTreeMap;
use std::io::Read;

use crate::layer::extract::ExtractError;
use crate::layer::host::HostError;
use crate::layer::member::{self, MemberKind, Names, Role};
use crate::layer::read::{ReadLimits, TarReader};
use crate::layer::tree::{EntryKind, FileTree, Metadata};

/// What the image says about one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LowerEntry {
    pub dir: bool,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

#[derive(Debug, Default)]
pub struct LowerIndex {
    entries: BTreeMap<String, LowerEntry>,
}

impl LowerIndex {
    pub fn get(&self, path: &str) -> Option<&LowerEntry> {
        self.entries.get(path)
    }

    /// Applies one uncompressed layer tar: its whiteouts and opaque markers hide what lower
    /// layers put there, then its entries are recorded.
    pub fn add_tar(&mut self, reader: impl Read) -> Result<(), ExtractError> {
        let mut tar = TarReader::new(reader, ReadLimits::default());
        let mut hide = Vec::new();
        let mut clear = Vec::new();
        let mut found = Vec::new();
        while let Some(e) = tar.next_entry()? {
            let member = member::classify(&e, Names::Layer)?;
            match member.role {
                Role::Root => {}
                Role::Opaque { dir } => clear.push(dir),
                Role::Whiteout { target } => hide.push(target),
                Role::Entry(kind) => {
                    let entry = LowerEntry {
                        dir: kind == MemberKind::Dir,
                        mode: e.mode,
                        uid: e.uid,
                        gid: e.gid,
                    };
                    found.push((member.name, entry));
                }
            }
        }
        tar.drain()?;
        for path in hide {
            self.remove_under(&path);
            self.entries.remove(&path);
        }
        for dir in clear {
            self.remove_under(&dir);
        }
        for (path, entry) in found {
            if !entry.dir {
                self.remove_under(&path);
            }
            self.entries.insert(path, entry);
        }
        Ok(())
    }

    /// Applies the current layer's tree so far (its entries carry the image's metadata).
    pub fn add_tree(&mut self, tree: &FileTree) -> Result<(), HostError> {
        for dir in tree.opaque_dirs() {
            self.remove_under(dir);
        }
        for item in tree.entries() {
            let (path, entry) = item?;
            match &entry.kind {
                EntryKind::Whiteout(()) => {
                    self.remove_under(&path);
                    self.entries.remove(path.as_ref());
                }
                kind => {
                    let dir = matches!(kind, EntryKind::Dir);
                    if !dir {
                        self.remove_under(&path);
                    }
                    self.entries
                        .insert(path.into_owned(), lower_entry(dir, &entry.meta));
                }
            }
        }
        Ok(())
    }

    fn remove_under(&mut self, dir: &str) {
        if dir.is_empty() {
            self.entries.clear();
            return;
        }
        let prefix = format!("{dir}/");
        let doomed: Vec<String> = self
            .entries
            .range(prefix.clone()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        for k in doomed {
            self.entries.remove(&k);
        }
    }
}

fn lower_entry(dir: bool, meta: &Metadata) -> LowerEntry {
    LowerEntry {
        dir,
        mode: meta.mode,
        uid: meta.uid,
        gid: meta.gid,
    }
}

/// Restores on a copied-up object what materialization lost: setuid/setgid bits when the mode
/// is otherwise unchanged, and (when `owners_kept` is false, so the step saw every lower file
/// as owned by 0) the image's owner where the recorded one is still 0.
pub fn restore(lower: &LowerEntry, is_dir: bool, owners_kept: bool, meta: &mut Metadata) {
    if lower.dir != is_dir {
        return;
    }
    if lower.mode & 0o6000 != 0 && meta.mode == lower.mode & 0o1777 {
        meta.mode = lower.mode;
    }
    if !owners_kept {
        if meta.uid == 0 {
            meta.uid = lower.uid;
        }
        if meta.gid == 0 {
            meta.gid = lower.gid;
        }
    }
}

#[cfg(test)]
#[path = "lower_agreement_tests.rs"]
mod agreement_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::tree::{Content, Entry};
    use crate::layer::write::write_tar;

    fn entry(kind: EntryKind, mode: u32, uid: u64) -> Entry {
        Entry {
            kind,
            meta: Metadata::new(mode, uid, uid, 0),
        }
    }

    fn file() -> EntryKind {
        EntryKind::File(Content::Inline(std::sync::Arc::from(&b"x"[..])))
    }

    fn tar_of(tree: &FileTree) -> Vec<u8> {
        let mut out = Vec::new();
        write_tar(tree, 0, &mut out).unwrap();
        out
    }

    #[test]
    fn layers_stack_with_whiteouts_and_opaque_dirs() {
        let mut one = FileTree::new();
        one.insert("var", entry(EntryKind::Dir, 0o755, 0)).unwrap();
        one.insert("var/mail", entry(EntryKind::Dir, 0o2775, 8))
            .unwrap();
        one.insert("var/mail/x", entry(file(), 0o600, 8)).unwrap();
        one.insert("bin", entry(EntryKind::Dir, 0o755, 0)).unwrap();
        one.insert("bin/su", entry(file(), 0o4755, 0)).unwrap();
        one.insert("gone", entry(file(), 0o644, 7)).unwrap();
        let mut two = FileTree::new();
        two.remove("gone").unwrap();
        two.insert("var", entry(EntryKind::Dir, 0o755, 0)).unwrap();
        two.set_opaque("var").unwrap();
        two.insert("var/new", entry(file(), 0o640, 3)).unwrap();

        let mut idx = LowerIndex::default();
        idx.add_tar(&tar_of(&one)[..]).unwrap();
        assert_eq!(idx.get("var/mail").unwrap().mode, 0o2775);
        idx.add_tar(&tar_of(&two)[..]).unwrap();
        assert_eq!(idx.get("gone"), None);
        assert_eq!(idx.get("var/mail"), None, "hidden by the opaque var");
        assert_eq!(idx.get("var/new").unwrap().uid, 3);
        assert_eq!(idx.get("bin/su").unwrap().mode, 0o4755);

        let mut so_far = FileTree::new();
        so_far.remove("bin/su").unwrap();
        so_far
            .insert("etc", entry(EntryKind::Dir, 0o750, 5))
            .unwrap();
        idx.add_tree(&so_far).unwrap();
        assert_eq!(idx.get("bin/su"), None);
        assert_eq!(idx.get("etc").unwrap().gid, 5);
    }

    #[test]
    fn restore_table() {
        let lower = |dir, mode, uid| LowerEntry {
            dir,
            mode,
            uid,
            gid: uid,
        };
        // (lower, is_dir, owners_kept, recorded (mode, uid), expected (mode, uid))
        let cases = [
            (lower(true, 0o2775, 8), true, true, (0o775, 8), (0o2775, 8)),
            (lower(true, 0o2775, 8), true, false, (0o775, 0), (0o2775, 8)),
            (
                lower(false, 0o4755, 0),
                false,
                true,
                (0o755, 0),
                (0o4755, 0),
            ),
            // The step changed the mode: kept.
            (lower(false, 0o4755, 0), false, true, (0o700, 0), (0o700, 0)),
            // Owners were materialized faithfully: a recorded 0 is the step's chown.
            (
                lower(false, 0o644, 65532),
                false,
                true,
                (0o644, 0),
                (0o644, 0),
            ),
            (
                lower(false, 0o644, 65532),
                false,
                false,
                (0o644, 0),
                (0o644, 65532),
            ),
            // A different kind is not a copy-up of this entry.
            (lower(true, 0o2775, 8), false, false, (0o775, 0), (0o775, 0)),
        ];
        for (i, (lower, is_dir, kept, (mode, uid), want)) in cases.into_iter().enumerate() {
            let mut meta = Metadata::new(mode, uid, uid, 0);
            restore(&lower, is_dir, kept, &mut meta);
            assert_eq!((meta.mode, meta.uid), want, "case {i}");
        }
    }
}
