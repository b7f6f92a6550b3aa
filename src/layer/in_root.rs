//! Operations relative to a directory handle of the extraction root. Nothing here builds a
//! host path string: lookups go through `openat2(2)` with `RESOLVE_IN_ROOT` (or, to create
//! missing parents, a component-by-component walk that follows symlinks by hand and clamps
//! `..` at the root), and removals walk directory handles opened with `O_NOFOLLOW`.

use std::collections::VecDeque;
use std::io::Read;
use std::os::fd::OwnedFd;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::extract::{io_err, ExtractError};
use super::tree::MAX_SYMLINK_HOPS;

type Result<T, E = ExtractError> = std::result::Result<T, E>;

/// Opens directory `dir` (relative to the root, `""` = root) resolving symlinks inside the
/// root. Missing components are created (0755) when `create`; otherwise `None`.
pub(crate) fn lookup_dir(
    root: &OwnedFd,
    dir: &str,
    create: bool,
    for_path: &str,
) -> Result<Option<OwnedFd>> {
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let target = if dir.is_empty() { "." } else { dir };
    for _ in 0..8 {
        match rfs::openat2(root, target, flags, Mode::empty(), how) {
            Ok(fd) => return Ok(Some(fd)),
            Err(Errno::AGAIN) => continue,
            Err(Errno::NOENT) if create => return walk_create(root, dir, for_path).map(Some),
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::NOTDIR) => {
                return Err(ExtractError::NotADirectory {
                    path: for_path.to_string(),
                })
            }
            Err(Errno::LOOP) => {
                return Err(ExtractError::SymlinkLoop {
                    path: for_path.to_string(),
                })
            }
            Err(e) => return Err(io_err(for_path, "resolve parent of")(e)),
        }
    }
    Err(io_err(for_path, "resolve parent of")(Errno::AGAIN))
}

/// The slow path of `lookup_dir`: one component at a time, following symlinks inside the
/// root by hand (absolute targets from the root, `..` clamped), creating what is missing.
fn walk_create(root: &OwnedFd, dir: &str, for_path: &str) -> Result<OwnedFd> {
    let mut queue: VecDeque<Vec<u8>> = dir.split('/').map(|c| c.as_bytes().to_vec()).collect();
    let mut resolved: Vec<Vec<u8>> = Vec::new();
    let mut cur = open_resolved(root, &resolved, for_path)?;
    let mut hops = 0u32;
    while let Some(c) = queue.pop_front() {
        match c.as_slice() {
            b"" | b"." => continue,
            b".." => {
                resolved.pop();
                cur = open_resolved(root, &resolved, for_path)?;
                continue;
            }
            _ => {}
        }
        let st = match rfs::statat(&cur, c.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => {
                match rfs::mkdirat(&cur, c.as_slice(), Mode::from_raw_mode(0o755)) {
                    // Implicit parents are 0755 whatever the umask.
                    Ok(()) => rfs::chmodat(
                        &cur,
                        c.as_slice(),
                        Mode::from_raw_mode(0o755),
                        AtFlags::empty(),
                    )
                    .map_err(io_err(for_path, "chmod parent of"))?,
                    Err(Errno::EXIST) => {}
                    Err(e) => return Err(io_err(for_path, "create parent of")(e)),
                }
                rfs::statat(&cur, c.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(io_err(for_path, "stat parent of"))?
            }
            Err(e) => return Err(io_err(for_path, "stat parent of")(e)),
            Ok(st) => st,
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let next = rfs::openat(
                    &cur,
                    c.as_slice(),
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io_err(for_path, "open parent of"))?;
                resolved.push(c);
                cur = next;
            }
            FileType::Symlink => {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(ExtractError::SymlinkLoop {
                        path: for_path.to_string(),
                    });
                }
                let target = rfs::readlinkat(&cur, c.as_slice(), Vec::new())
                    .map_err(io_err(for_path, "read symlink in parent of"))?
                    .into_bytes();
                if target.starts_with(b"/") {
                    resolved.clear();
                    cur = open_resolved(root, &resolved, for_path)?;
                }
                for t in target.split(|&b| b == b'/').rev() {
                    queue.push_front(t.to_vec());
                }
            }
            _ => {
                return Err(ExtractError::NotADirectory {
                    path: for_path.to_string(),
                })
            }
        }
    }
    Ok(cur)
}

/// Opens a path made only of real directories, refusing any symlink on the way.
fn open_resolved(root: &OwnedFd, resolved: &[Vec<u8>], for_path: &str) -> Result<OwnedFd> {
    let joined = if resolved.is_empty() {
        b".".to_vec()
    } else {
        resolved.join(&b'/')
    };
    let how = ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    rfs::openat2(
        root,
        joined.as_slice(),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        how,
    )
    .map_err(io_err(for_path, "open parent of"))
}

pub(crate) fn list(fd: &OwnedFd, rel: &str) -> Result<Vec<(Vec<u8>, FileType)>> {
    let dir = rfs::openat(
        fd,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err(rel, "open directory"))?;
    let mut out = Vec::new();
    for ent in rfs::Dir::new(dir).map_err(io_err(rel, "read directory"))? {
        let ent = ent.map_err(io_err(rel, "read directory"))?;
        let name = ent.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let mut ft = ent.file_type();
        if ft == FileType::Unknown {
            let st =
                rfs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW).map_err(io_err(rel, "stat"))?;
            ft = FileType::from_raw_mode(st.st_mode);
        }
        out.push((name.to_vec(), ft));
    }
    Ok(out)
}

/// Why [`read_regular`] refused a file inside a root.
#[derive(Debug, thiserror::Error)]
pub enum ReadInRootError {
    #[error("failed to open it")]
    Open(#[source] std::io::Error),
    #[error("it is a {kind}, not a regular file")]
    NotRegular { kind: &'static str },
    #[error("it holds more than {max} bytes")]
    TooLarge { max: u64 },
    #[error("failed to read it")]
    Read(#[source] std::io::Error),
}

/// Reads the regular file `rel` inside the root directory `root`, at most `max` bytes.
///
/// The path resolves inside the root (`RESOLVE_IN_ROOT`: a symlink to `/etc/shadow` names the
/// image's own file) and is first opened `O_PATH`, which has no side effects on any file type;
/// only a regular file is then opened for reading, `O_NONBLOCK` and checked again with
/// `fstat`, so a FIFO or device put in its place meanwhile is refused instead of blocking the
/// build forever (a FIFO opened for reading waits for a writer that never comes).
pub fn read_regular(root: &OwnedFd, rel: &str, max: u64) -> Result<Vec<u8>, ReadInRootError> {
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let open = |flags: OFlags| {
        rfs::openat2(root, rel, flags | OFlags::CLOEXEC, Mode::empty(), how)
            .map_err(|e| ReadInRootError::Open(e.into()))
    };
    let check = |fd: &OwnedFd| -> Result<u64, ReadInRootError> {
        let st = rfs::fstat(fd).map_err(|e| ReadInRootError::Open(e.into()))?;
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile if st.st_size as u64 > max => {
                return Err(ReadInRootError::TooLarge { max })
            }
            FileType::RegularFile => return Ok(st.st_size as u64),
            FileType::Directory => "directory",
            FileType::Symlink => "symlink",
            FileType::Fifo => "fifo",
            FileType::Socket => "socket",
            FileType::CharacterDevice => "character device",
            FileType::BlockDevice => "block device",
            FileType::Unknown => "special file",
        };
        Err(ReadInRootError::NotRegular { kind })
    };
    check(&open(OFlags::PATH)?)?;
    let fd = open(OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY)?;
    let size = check(&fd)?;
    let mut out = Vec::with_capacity(size as usize);
    std::fs::File::from(fd)
        .take(max + 1)
        .read_to_end(&mut out)
        .map_err(ReadInRootError::Read)?;
    if out.len() as u64 > max {
        return Err(ReadInRootError::TooLarge { max });
    }
    Ok(out)
}

/// Removes directory `name` under `pfd` and everything in it, never following a symlink.
pub(crate) fn remove_all(pfd: &OwnedFd, name: impl AsRef<[u8]>, rel: &str) -> Result<()> {
    let name = name.as_ref();
    let open = || {
        rfs::openat(
            pfd,
            name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    if !rustix::process::geteuid().is_root() {
        // A read-only directory from a lower layer: make it ours to empty. The caller saw a
        // directory here (no symlink), and nothing else writes inside the root meanwhile.
        let _ = rfs::chmodat(pfd, name, Mode::from_raw_mode(0o700), AtFlags::empty());
    }
    let fd = open().map_err(io_err(rel, "open directory"))?;
    for (child, ft) in list(&fd, rel)? {
        if ft == FileType::Directory {
            remove_all(&fd, &child, rel)?;
        } else {
            rfs::unlinkat(&fd, child.as_slice(), AtFlags::empty())
                .map_err(io_err(rel, "remove"))?;
        }
    }
    drop(fd);
    rfs::unlinkat(pfd, name, AtFlags::REMOVEDIR).map_err(io_err(rel, "remove directory"))
}

pub(crate) fn remove_child(fd: &OwnedFd, name: &[u8], ft: FileType, rel: &str) -> Result<()> {
    if ft == FileType::Directory {
        remove_all(fd, name, rel)
    } else {
        rfs::unlinkat(fd, name, AtFlags::empty()).map_err(io_err(rel, "remove"))
    }
}
