//! Executing one plan operation, and describing it for error messages.

use std::ffi::CString;
use std::fmt;
use std::io;

use super::{Op, OpKind};
use crate::syscall::Syscall;

pub(super) fn execute_op<S: Syscall + ?Sized>(sys: &S, op: &Op) -> io::Result<()> {
    let tolerate_missing = |optional: bool, result: io::Result<()>| match result {
        Err(e) if optional && e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    };
    match op {
        Op::Mount {
            source,
            target,
            fstype,
            flags,
            data,
            optional,
            ..
        } => tolerate_missing(
            *optional,
            sys.mount(
                source.as_deref(),
                target,
                fstype.as_deref(),
                *flags,
                data.as_deref(),
            ),
        ),
        Op::ReadOnly {
            target,
            recursive,
            optional,
        } => {
            // Also tolerate EINVAL: a masked path that does not exist was never mounted.
            match sys.set_read_only(target, *recursive) {
                Err(e) if *optional && e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
                other => tolerate_missing(*optional, other),
            }
        }
        Op::Mkdir { path, mode } => sys.mkdir(path, *mode),
        Op::CreateFile { path, mode } => sys.create_file(path, *mode),
        Op::Symlink { target, link } => sys.symlink(target, link),
        Op::PlaceFd {
            path,
            fd,
            directory,
        } => sys.open_at_fd(path, *fd, *directory),
        Op::SetHostname { name } => sys.sethostname(name),
        Op::LoopbackUp => sys.loopback_up(),
        Op::PivotRoot { new_root } => sys.pivot_root(new_root),
    }
}

/// Human-readable mount flags, for error messages and the recording double.
pub(crate) fn flag_names(flags: libc::c_ulong) -> String {
    let names = [
        (libc::MS_BIND, "bind"),
        (libc::MS_REC, "rec"),
        (libc::MS_PRIVATE, "private"),
        (libc::MS_RDONLY, "ro"),
        (libc::MS_NOSUID, "nosuid"),
        (libc::MS_NODEV, "nodev"),
        (libc::MS_NOEXEC, "noexec"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    if set.is_empty() {
        "-".to_owned()
    } else {
        set.join(",")
    }
}

impl Op {
    pub(crate) fn kind(&self) -> OpKind {
        match self {
            Op::Mount { kind, .. } => *kind,
            _ => OpKind::Other,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |c: &CString| c.to_string_lossy().into_owned();
        match self {
            Op::Mount {
                source,
                target,
                fstype,
                flags,
                data,
                ..
            } => write!(
                f,
                "mount {} ({}) on {} with flags {} and options {}",
                source.as_ref().map_or_else(|| "-".to_owned(), s),
                fstype.as_ref().map_or_else(|| "-".to_owned(), s),
                s(target),
                flag_names(*flags),
                data.as_ref().map_or_else(|| "-".to_owned(), s),
            ),
            Op::ReadOnly {
                target, recursive, ..
            } => {
                let scope = if *recursive { " and its submounts" } else { "" };
                write!(f, "make {}{scope} read-only", s(target))
            }
            Op::Mkdir { path, .. } => write!(f, "create directory {}", s(path)),
            Op::CreateFile { path, .. } => write!(f, "create mount point {}", s(path)),
            Op::Symlink { target, link } => {
                write!(f, "create symlink {} -> {}", s(link), s(target))
            }
            Op::PlaceFd { path, fd, .. } => write!(f, "open {} as descriptor {fd}", s(path)),
            Op::SetHostname { name } => write!(f, "set hostname {}", s(name)),
            Op::LoopbackUp => f.write_str("bring up the loopback interface"),
            Op::PivotRoot { new_root } => write!(f, "pivot_root into {}", s(new_root)),
        }
    }
}
