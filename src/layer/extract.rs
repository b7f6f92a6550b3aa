//! The safe on-disk extractor: applies OCI layer tars onto a root directory (the rootfs of a
//! sandboxed `run` step, `kiln unpack`).
//!
//! Every lookup is made relative to a directory handle of the root with `openat2(2)` and
//! `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`, so symlinks inside the image resolve inside the
//! image, the way they would in a container. Final components are created with `*at` calls on
//! the parent handle and `O_NOFOLLOW`/`O_EXCL`; an existing entry is unlinked and recreated,
//! never opened for writing. No host path string is ever built and opened.
//! Ref: CVE-2018-20990 and CVE-2021-38511 (tar-rs), CVE-2021-32760 (containerd),
//! CVE-2021-29136 (umoci).
//!
//! Policy for what the host must not get:
//! - device nodes are never created: the entry is skipped (anything at its path in a lower
//!   layer is removed, since the device replaces it in the image) and counted in
//!   [`ApplyStats::skipped_devices`];
//! - setuid and setgid bits are stripped from every mode on the host copy;
//! - ownership is applied only when running as root (and `preserve_owner` is set);
//! - xattrs are not applied.
//!
//! What each member means is decided by [`super::member`] (the rules every layer reader
//! shares). Whiteouts apply to lower layers only: `.wh.name` removes `name` unless this layer
//! itself created it (a directory this layer created or wrote below then keeps only this
//! layer's contents), and `.wh..wh..opq` is applied after the whole layer, removing from that
//! directory everything this layer did not create, whatever the order in the archive. "Created
//! in this layer" is tracked by inode (device and inode number of every entry written, and of
//! every directory above one), so it holds whichever symlinks the paths went through; a hard
//! link to a lower layer's file shares that file's inode, so its name is tracked by path
//! instead, and the lower name stays subject to the layer's whiteouts.
//! Directory modes and mtimes are applied at the end, so a read-only directory does not block
//! later entries (as non-root, read-only lower directories are opened up for the duration and
//! restored). On error the root is left partly written: callers extract into a fresh directory
//! and discard it on failure.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps,
};
use rustix::io::Errno;

use super::in_root::{self, list, remove_all, remove_child};
use super::member::{self, MemberError, MemberKind, Names, Role};
use super::read::{ReadError, ReadLimits, TarEntry, TarReader};
use super::tree::{self, MAX_SYMLINK_HOPS};

/// Mode bits kept on the host copy: permissions and sticky, never setuid/setgid.
const HOST_MODE_MASK: u32 = 0o1777;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtractOptions {
    pub limits: ReadLimits,
    /// chown entries to the archive's uid/gid (only takes effect when running as root).
    pub preserve_owner: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        Self {
            limits: ReadLimits::default(),
            preserve_owner: true,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyStats {
    pub entries: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub fifos: u64,
    pub whiteouts: u64,
    pub opaque_dirs: u64,
    pub skipped_devices: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("failed to open extraction root `{}`", root.display())]
    OpenRoot {
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Member(#[from] MemberError),
    #[error("failed to resolve `{path}` inside the root: too many symlinks (more than {MAX_SYMLINK_HOPS})")]
    SymlinkLoop { path: String },
    #[error("failed to resolve `{path}` inside the root: a component is not a directory")]
    NotADirectory { path: String },
    #[error(
        "failed to extract `{path}` (byte {offset}): owner {uid}:{gid} does not fit a 32-bit id"
    )]
    OwnerOutOfRange {
        path: String,
        offset: u64,
        uid: u64,
        gid: u64,
    },
    #[error("failed to link `{path}` to `{target}` inside the root: {reason}")]
    Hardlink {
        path: String,
        target: String,
        reason: &'static str,
    },
    #[error("failed to {op} `{path}` inside the root")]
    Io {
        path: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

type Result<T, E = ExtractError> = std::result::Result<T, E>;

pub(crate) fn io_err<'a>(
    path: &'a str,
    op: &'static str,
) -> impl FnOnce(Errno) -> ExtractError + 'a {
    move |e| ExtractError::Io {
        path: path.to_string(),
        op,
        source: e.into(),
    }
}

/// Applies one (uncompressed) layer tar onto `root`; see the module docs for the policy.
pub fn apply_layer(root: &Path, reader: impl Read, opts: &ExtractOptions) -> Result<ApplyStats> {
    let root_fd = rfs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ExtractError::OpenRoot {
        root: root.to_path_buf(),
        source: e.into(),
    })?;
    let st = rfs::fstat(&root_fd).map_err(|e| ExtractError::OpenRoot {
        root: root.to_path_buf(),
        source: e.into(),
    })?;
    let root_id = ino(&st);
    let mut ap = Applier {
        root: root_fd,
        chown: opts.preserve_owner && rustix::process::geteuid().is_root(),
        is_root: rustix::process::geteuid().is_root(),
        restore: BTreeMap::new(),
        skipped: BTreeSet::new(),
        created: BTreeSet::new(),
        ancestors: BTreeSet::new(),
        linked: BTreeSet::new(),
        root_id,
        opaque: BTreeSet::new(),
        dirs: BTreeMap::new(),
        stats: ApplyStats::default(),
    };
    let mut tar = TarReader::new(reader, opts.limits);
    while let Some(entry) = tar.next_entry()? {
        ap.stats.entries += 1;
        ap.apply(&entry, &mut tar)?;
    }
    tar.drain()?;
    ap.finish()?;
    Ok(ap.stats)
}

/// A file's identity: (device, inode number).
type Ino = (u64, u64);

// The field types differ between architectures.
#[allow(clippy::unnecessary_cast)]
fn ino(st: &rfs::Stat) -> Ino {
    (st.st_dev as u64, st.st_ino as u64)
}

struct DirMeta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: i64,
}

struct Applier {
    root: OwnedFd,
    chown: bool,
    is_root: bool,
    /// Modes of lower-layer directories made writable by `ensure_writable` (non-root only).
    restore: BTreeMap<String, u32>,
    /// Device nodes (and links to them) that were not created.
    skipped: BTreeSet<String>,
    /// Inodes written by this layer, and the directories above them (up to the root).
    created: BTreeSet<Ino>,
    ancestors: BTreeSet<Ino>,
    /// Names this layer gave, by a hard link, to a lower layer's inode. That inode is the
    /// lower name's too, so these are this layer's by path (the lower name stays subject to
    /// the layer's whiteouts and opaque markers).
    linked: BTreeSet<String>,
    root_id: Ino,
    opaque: BTreeSet<String>,
    dirs: BTreeMap<String, DirMeta>,
    stats: ApplyStats,
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

fn times(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

impl Applier {
    fn apply<R: Read>(&mut self, e: &TarEntry, tar: &mut TarReader<R>) -> Result<()> {
        let member = member::classify(e, Names::Layer)?;
        let kind = match member.role {
            // `./`: the root keeps its own metadata.
            Role::Root => return Ok(()),
            Role::Opaque { dir } => {
                self.opaque.insert(dir);
                self.stats.opaque_dirs += 1;
                return Ok(());
            }
            Role::Whiteout { target } => return self.whiteout(&target),
            Role::Entry(kind) => kind,
        };
        let rel = member.name;
        let (parent, base) = split(&rel);
        if self.chown && (e.uid >= u64::from(u32::MAX) || e.gid >= u64::from(u32::MAX)) {
            // u32::MAX means "unchanged" to chown; larger ids would wrap (maybe to root).
            return Err(ExtractError::OwnerOutOfRange {
                path: rel,
                offset: e.offset,
                uid: e.uid,
                gid: e.gid,
            });
        }
        let pfd = in_root::lookup_dir(&self.root, parent, true, &rel)?
            .ok_or_else(|| ExtractError::NotADirectory { path: rel.clone() })?;
        self.ensure_writable(&pfd, parent)?;
        let mode = Mode::from_raw_mode(e.mode & HOST_MODE_MASK);
        match kind {
            MemberKind::Dir => {
                let existing = self.remove_existing(&pfd, base, true, &rel)?;
                if existing != Some(FileType::Directory) {
                    rfs::mkdirat(&pfd, base, Mode::from_raw_mode(0o700))
                        .map_err(io_err(&rel, "create directory"))?;
                }
                self.dirs.insert(
                    rel.clone(),
                    DirMeta {
                        mode: e.mode,
                        uid: e.uid,
                        gid: e.gid,
                        mtime: e.mtime,
                    },
                );
                self.stats.dirs += 1;
            }
            MemberKind::File(()) => {
                self.remove_existing(&pfd, base, false, &rel)?;
                let fd = rfs::openat(
                    &pfd,
                    base,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(io_err(&rel, "create file"))?;
                let mut file = std::fs::File::from(fd);
                let n = tar.read_data(&mut file)?;
                self.stats.bytes += n;
                self.stats.files += 1;
                if self.chown {
                    rfs::fchown(&file, Some(uid(e.uid)), Some(gid(e.gid)))
                        .map_err(io_err(&rel, "chown"))?;
                }
                rfs::fchmod(&file, mode).map_err(io_err(&rel, "chmod"))?;
                rfs::futimens(&file, &times(e.mtime)).map_err(io_err(&rel, "set mtime of"))?;
            }
            MemberKind::Symlink(target) => {
                self.remove_existing(&pfd, base, false, &rel)?;
                rfs::symlinkat(target.as_str(), &pfd, base)
                    .map_err(io_err(&rel, "create symlink"))?;
                self.finish_nofollow(&pfd, base, &rel, e)?;
                self.stats.symlinks += 1;
            }
            MemberKind::Hardlink(target) => {
                if self.hardlink(&pfd, base, &rel, &target)? {
                    self.linked.insert(rel.clone());
                    return self.mark_ancestors(&pfd, &rel);
                }
            }
            MemberKind::Fifo => {
                self.remove_existing(&pfd, base, false, &rel)?;
                rfs::mknodat(&pfd, base, FileType::Fifo, mode, 0)
                    .map_err(io_err(&rel, "create fifo"))?;
                self.finish_nofollow(&pfd, base, &rel, e)?;
                // mknodat applies the umask: set the exact mode (after chown).
                rfs::chmodat(&pfd, base, mode, AtFlags::empty()).map_err(io_err(&rel, "chmod"))?;
                self.stats.fifos += 1;
            }
            MemberKind::CharDevice { .. } | MemberKind::BlockDevice { .. } => {
                self.remove_existing(&pfd, base, false, &rel)?;
                self.skipped.insert(rel.clone());
                self.stats.skipped_devices += 1;
                return Ok(());
            }
        }
        self.mark_created(&pfd, base, &rel)
    }

    /// Records the inode just written at `base` and every directory from its parent up to the
    /// root (each directory once).
    fn mark_created(&mut self, pfd: &OwnedFd, base: &str, rel: &str) -> Result<()> {
        match rfs::statat(pfd, base, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                self.created.insert(ino(&st));
            }
            Err(Errno::NOENT) => return Ok(()), // a link to a skipped device
            Err(e) => return Err(io_err(rel, "stat")(e)),
        }
        self.mark_ancestors(pfd, rel)
    }

    /// Records every directory from `pfd` (the parent of `rel`) up to the root.
    fn mark_ancestors(&mut self, pfd: &OwnedFd, rel: &str) -> Result<()> {
        let mut owned: Option<OwnedFd> = None;
        loop {
            let cur = owned.as_ref().unwrap_or(pfd);
            let st = rfs::fstat(cur).map_err(io_err(rel, "stat parent of"))?;
            let id = ino(&st);
            if id == self.root_id || !self.ancestors.insert(id) {
                return Ok(());
            }
            let up = rfs::openat(
                cur,
                "..",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io_err(rel, "open parent of"))?;
            owned = Some(up);
        }
    }

    /// As non-root, a read-only directory from a lower layer would block this layer's writes:
    /// give the owner rwx for the duration and restore the mode in `finish`.
    fn ensure_writable(&mut self, pfd: &OwnedFd, parent: &str) -> Result<()> {
        if self.is_root {
            return Ok(());
        }
        let st = rfs::fstat(pfd).map_err(io_err(parent, "stat"))?;
        if st.st_mode & 0o700 == 0o700 {
            return Ok(());
        }
        let fd = rfs::openat(
            pfd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err(parent, "open directory"))?;
        rfs::fchmod(&fd, Mode::from_raw_mode((st.st_mode | 0o700) & 0o7777))
            .map_err(io_err(parent, "chmod"))?;
        self.restore
            .entry(parent.to_string())
            .or_insert(st.st_mode & 0o7777);
        Ok(())
    }

    /// chown (when root) and mtime without following the final component.
    fn finish_nofollow(&self, pfd: &OwnedFd, base: &str, rel: &str, e: &TarEntry) -> Result<()> {
        if self.chown {
            rfs::chownat(
                pfd,
                base,
                Some(uid(e.uid)),
                Some(gid(e.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(io_err(rel, "chown"))?;
        }
        rfs::utimensat(pfd, base, &times(e.mtime), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io_err(rel, "set mtime of"))
    }

    /// A hard link to `target` (normalized: a path inside the image, never relative to the
    /// process's cwd). Returns whether the link names a lower layer's inode.
    fn hardlink(&mut self, pfd: &OwnedFd, base: &str, rel: &str, target: &str) -> Result<bool> {
        let bad = |reason| ExtractError::Hardlink {
            path: rel.to_string(),
            target: target.to_string(),
            reason,
        };
        if self.skipped.contains(target) {
            // A link to a device node that was not created: not created either.
            self.remove_existing(pfd, base, false, rel)?;
            self.skipped.insert(rel.to_string());
            self.stats.skipped_devices += 1;
            return Ok(false);
        }
        let (tparent, tbase) = split(target);
        let tfd = match in_root::lookup_dir(&self.root, tparent, false, target) {
            Ok(Some(fd)) => fd,
            Ok(None) | Err(ExtractError::NotADirectory { .. }) => {
                return Err(bad("the target does not exist"))
            }
            Err(other) => return Err(other),
        };
        let to_lower = match rfs::statat(&tfd, tbase, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => return Err(bad("the target does not exist")),
            Err(e) => return Err(io_err(target, "stat")(e)),
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                return Err(bad("the target is a directory"))
            }
            Ok(st) => {
                let same = rfs::statat(pfd, base, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|o| o.st_dev == st.st_dev && o.st_ino == st.st_ino);
                let to_lower = !self.created.contains(&ino(&st));
                if same {
                    // Already the same inode (the entry names itself or is repeated).
                    self.stats.hardlinks += 1;
                    return Ok(to_lower);
                }
                to_lower
            }
        };
        self.remove_existing(pfd, base, false, rel)?;
        // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
        rfs::linkat(&tfd, tbase, pfd, base, AtFlags::empty()).map_err(io_err(rel, "hardlink"))?;
        self.stats.hardlinks += 1;
        Ok(to_lower)
    }

    fn whiteout(&mut self, target: &str) -> Result<()> {
        self.stats.whiteouts += 1;
        let (parent, base) = split(target);
        match in_root::lookup_dir(&self.root, parent, false, target) {
            Ok(Some(pfd)) => {
                if let Ok(st) = rfs::statat(&pfd, base, AtFlags::SYMLINK_NOFOLLOW) {
                    let id = ino(&st);
                    if self.created.contains(&id)
                        || self.ancestors.contains(&id)
                        || self.linked.contains(target)
                    {
                        // Whiteouts hide lower layers only: a directory this layer created or
                        // wrote below keeps only what this layer put in it (umoci's rule).
                        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                            self.opaque.insert(target.to_string());
                        }
                        return Ok(());
                    }
                }
                self.ensure_writable(&pfd, parent)?;
                self.remove_existing(&pfd, base, false, target)?;
                Ok(())
            }
            Ok(None) | Err(ExtractError::NotADirectory { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes `name` under `pfd` unless it is a directory and `keep_dir`; returns its type.
    fn remove_existing(
        &self,
        pfd: &OwnedFd,
        name: &str,
        keep_dir: bool,
        rel: &str,
    ) -> Result<Option<FileType>> {
        let st = match rfs::statat(pfd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(io_err(rel, "stat")(e)),
            Ok(st) => st,
        };
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::Directory {
            if !keep_dir {
                remove_all(pfd, name, rel)?;
            }
        } else {
            rfs::unlinkat(pfd, name, AtFlags::empty()).map_err(io_err(rel, "remove"))?;
        }
        Ok(Some(ft))
    }

    /// Removes from `dir` every entry this layer did not create, recursing into the
    /// directories it created or wrote below.
    fn clear_lower(&self, fd: &OwnedFd, dir: &str) -> Result<()> {
        for (child, ft) in list(fd, dir)? {
            let path = tree::join(dir, &String::from_utf8_lossy(&child));
            let st = rfs::statat(fd, child.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(io_err(&path, "stat"))?;
            let id = ino(&st);
            let ours = self.created.contains(&id)
                || self.ancestors.contains(&id)
                || self.linked.contains(&path);
            if !ours {
                remove_child(fd, &child, ft, &path)?;
            } else if ft == FileType::Directory {
                let sub = rfs::openat(
                    fd,
                    child.as_slice(),
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io_err(&path, "open directory"))?;
                self.clear_lower(&sub, &path)?;
            }
        }
        Ok(())
    }

    /// Opaque directories, then directory metadata (deferred so read-only directories do not
    /// block the layer's own entries).
    fn finish(&mut self) -> Result<()> {
        for dir in std::mem::take(&mut self.opaque) {
            if let Ok(Some(fd)) = in_root::lookup_dir(&self.root, &dir, false, &dir) {
                self.clear_lower(&fd, &dir)?;
            }
        }
        let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        for (path, mode) in self.restore.iter().rev() {
            if self.dirs.contains_key(path) {
                continue;
            }
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let target = if path.is_empty() { "." } else { path.as_str() };
            if let Ok(fd) = rfs::openat2(&self.root, target, flags, Mode::empty(), how) {
                rfs::fchmod(&fd, Mode::from_raw_mode(*mode)).map_err(io_err(path, "chmod"))?;
            }
        }
        for (path, m) in self.dirs.iter().rev() {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = match rfs::openat2(&self.root, path.as_str(), flags, Mode::empty(), how) {
                Ok(fd) => fd,
                // Replaced by a later non-directory entry: nothing to apply.
                Err(Errno::NOTDIR | Errno::LOOP | Errno::NOENT) => continue,
                Err(e) => return Err(io_err(path, "open directory")(e)),
            };
            if self.chown {
                rfs::fchown(&fd, Some(uid(m.uid)), Some(gid(m.gid)))
                    .map_err(io_err(path, "chown"))?;
            }
            rfs::fchmod(&fd, Mode::from_raw_mode(m.mode & HOST_MODE_MASK))
                .map_err(io_err(path, "chmod"))?;
            rfs::futimens(&fd, &times(m.mtime)).map_err(io_err(path, "set mtime of"))?;
        }
        Ok(())
    }
}

/// Callers checked that the id fits (see `OwnerOutOfRange`).
fn uid(v: u64) -> rustix::process::Uid {
    rustix::process::Uid::from_raw(v as u32)
}

fn gid(v: u64) -> rustix::process::Gid {
    rustix::process::Gid::from_raw(v as u32)
}

#[cfg(test)]
#[path = "extract_tests.rs"]
mod tests;
