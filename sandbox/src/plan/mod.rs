//! The mount plan: a list of operations, rendered in the parent, executed in the child.
//!
//! Like bubblewrap's setup ops, the plan is plain data, built *before* the clone so the child
//! only walks a list of prepared C strings (no allocation after clone), and so unit tests can
//! assert its exact shape.
//!
//! Layout while the plan runs (all inside the child's private mount namespace):
//!
//! ```text
//! /tmp                 fresh tmpfs over the host's /tmp (invisible to the host)
//! /tmp/skel            skeleton: proc/, dev/ and every extra mount target; top-most lower
//! /tmp/root            the overlay: skel + caller's lower dirs, caller's upper dir
//! ```
//!
//! Why a skeleton layer: the sandbox's own mount points must exist, but creating them in the
//! rootfs would put `/proc` or `/dev` into the step's upper directory (and so into the layer),
//! and an image whose `/proc` or `/dev/null` is a symlink would redirect our mounts
//! (SECURITY.md case 26). As the top-most lower layer, the skeleton's real directories hide
//! whatever the image has at those paths, and nothing reaches the upper directory.
//!
//! Why `/proc/self/fd/N` in the overlay options: overlay's options are shown in
//! `/proc/self/mountinfo`; descriptor names keep host paths out of the sandbox's view
//! (SECURITY.md case 25) and side-step overlay's `,`/`:` escaping.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;

use crate::spec::{container_path, Mount, SandboxSpec, SpecError};
use crate::syscall::Syscall;

mod op;

use op::execute_op;
#[cfg(test)]
pub(crate) use op::flag_names;

const SCRATCH: &str = "/tmp";
const SKEL: &str = "/tmp/skel";
const ROOT: &str = "/tmp/root";

/// Read-only inside /proc (runc's `readonlyPaths`): with an identity mapping, the step's root
/// is the host's root for permission checks on these files.
const PROC_READ_ONLY: &[&str] = &["sys", "sysrq-trigger", "irq", "bus", "fs"];
/// Files hidden behind /dev/null (runc's `maskedPaths`), plus the command line of the init:
/// it is kiln's own, and may name host paths (`exe`, `environ`, `maps` are already closed to
/// the step because the init is not dumpable).
const PROC_MASKED_FILES: &[&str] = &[
    "1/cmdline",
    "kcore",
    "keys",
    "latency_stats",
    "timer_list",
    "timer_stats",
    "sched_debug",
];
const PROC_MASKED_DIRS: &[&str] = &["acpi", "asound", "scsi"];
/// Device nodes bind-mounted from the host's /dev.
pub(crate) const DEV_NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Descriptors the parent opened for the child (numbers are the same after clone).
pub(crate) struct PlanFds {
    /// Placeholder descriptor the child replaces with the skeleton directory.
    pub skel: RawFd,
    /// Bottom-most first, like `SandboxSpec::lower_dirs`.
    pub lowers: Vec<RawFd>,
    pub upper: RawFd,
    pub work: RawFd,
    /// One per `SandboxSpec::mounts`: the bind source and whether it is a directory.
    pub binds: Vec<Option<(RawFd, bool)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Overlay,
    Other,
}

#[derive(Debug)]
pub(crate) enum Op {
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: libc::c_ulong,
        data: Option<CString>,
        /// A missing target (a /proc file this kernel lacks) is not an error.
        optional: bool,
        kind: OpKind,
    },
    ReadOnly {
        target: CString,
        /// Also every mount below `target`.
        recursive: bool,
        optional: bool,
    },
    Mkdir {
        path: CString,
        mode: u32,
    },
    CreateFile {
        path: CString,
        mode: u32,
    },
    Symlink {
        target: CString,
        link: CString,
    },
    /// Opens `path` (`O_PATH`) and places it at descriptor `fd`.
    PlaceFd {
        path: CString,
        fd: RawFd,
        directory: bool,
    },
    SetHostname {
        name: CString,
    },
    LoopbackUp,
    PivotRoot {
        new_root: CString,
    },
}

#[derive(Debug)]
pub(crate) struct Plan {
    pub ops: Vec<Op>,
}

fn c(s: impl Into<Vec<u8>>) -> Result<CString, SpecError> {
    let bytes = s.into();
    CString::new(bytes.clone()).map_err(|_| SpecError::Nul {
        field: "path",
        value: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

struct Builder {
    ops: Vec<Op>,
}

impl Builder {
    fn mount(
        &mut self,
        source: Option<&str>,
        target: &str,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: Option<&str>,
        optional: bool,
    ) -> Result<(), SpecError> {
        self.ops.push(Op::Mount {
            source: source.map(c).transpose()?,
            target: c(target)?,
            fstype: fstype.map(c).transpose()?,
            flags,
            data: data.map(c).transpose()?,
            optional,
            kind: OpKind::Other,
        });
        Ok(())
    }

    fn bind(&mut self, source: &str, target: &str, optional: bool) -> Result<(), SpecError> {
        let flags = libc::MS_BIND | libc::MS_REC;
        self.mount(Some(source), target, None, flags, None, optional)
    }

    fn read_only(
        &mut self,
        target: &str,
        recursive: bool,
        optional: bool,
    ) -> Result<(), SpecError> {
        self.ops.push(Op::ReadOnly {
            target: c(target)?,
            recursive,
            optional,
        });
        Ok(())
    }

    fn mkdir(&mut self, path: &str, mode: u32) -> Result<(), SpecError> {
        self.ops.push(Op::Mkdir {
            path: c(path)?,
            mode,
        });
        Ok(())
    }

    fn symlink(&mut self, target: &str, link: &str) -> Result<(), SpecError> {
        self.ops.push(Op::Symlink {
            target: c(target)?,
            link: c(link)?,
        });
        Ok(())
    }
}

fn fd_path(fd: RawFd) -> String {
    format!("/proc/self/fd/{fd}")
}

impl Plan {
    /// Renders the plan for an already validated `spec`. `devpts_gid` is the tty group when
    /// the id mapping has it.
    pub(crate) fn build(
        spec: &SandboxSpec,
        fds: &PlanFds,
        devpts_gid: Option<u32>,
    ) -> Result<Plan, SpecError> {
        let mut b = Builder { ops: Vec::new() };
        let nosuid_nodev = libc::MS_NOSUID | libc::MS_NODEV;

        // Nothing we mount may propagate back to the host (SECURITY.md case 25).
        b.mount(
            None,
            "/",
            None,
            libc::MS_REC | libc::MS_PRIVATE,
            None,
            false,
        )?;
        // overlayfs and bind mounts only take directories of the caller's own mount
        // namespace, so the host paths are opened again here, at the numbers the parent
        // reserved, before anything covers them.
        let host_paths = spec
            .lower_dirs
            .iter()
            .zip(&fds.lowers)
            .map(|(p, fd)| (p, *fd, true))
            .chain([
                (&spec.upper_dir, fds.upper, true),
                (&spec.work_dir, fds.work, true),
            ]);
        let bind_paths = spec
            .mounts
            .iter()
            .zip(&fds.binds)
            .filter_map(|(m, b)| match (m, b) {
                (Mount::Bind { source, .. }, Some((fd, is_dir))) => Some((source, *fd, *is_dir)),
                _ => None,
            });
        for (path, fd, directory) in host_paths.chain(bind_paths) {
            b.ops.push(Op::PlaceFd {
                path: c(path.as_os_str().as_bytes())?,
                fd,
                directory,
            });
        }
        b.mount(
            Some("tmpfs"),
            SCRATCH,
            Some("tmpfs"),
            nosuid_nodev,
            Some("mode=0755"),
            false,
        )?;

        // Skeleton: mount points in a lower layer of their own (see module docs).
        b.mkdir(SKEL, 0o755)?;
        let mut skel_dirs = BTreeSet::from(["proc".to_owned(), "dev".to_owned()]);
        let mut skel_files = BTreeSet::new();
        for (mount, bind) in spec.mounts.iter().zip(&fds.binds) {
            let parts = container_path(mount.target())?;
            for end in 1..parts.len() {
                skel_dirs.insert(parts[..end].join("/"));
            }
            let is_file = matches!(bind, Some((_, false)));
            if is_file {
                skel_files.insert(parts.join("/"));
            } else {
                skel_dirs.insert(parts.join("/"));
            }
        }
        for dir in &skel_dirs {
            b.mkdir(&format!("{SKEL}/{dir}"), 0o755)?;
        }
        for file in &skel_files {
            b.ops.push(Op::CreateFile {
                path: c(format!("{SKEL}/{file}"))?,
                mode: 0o644,
            });
        }
        b.ops.push(Op::PlaceFd {
            path: c(SKEL)?,
            fd: fds.skel,
            directory: true,
        });

        // The rootfs. overlay lists lower layers top-most first.
        b.mkdir(ROOT, 0o755)?;
        let lowers: Vec<String> = std::iter::once(fds.skel)
            .chain(fds.lowers.iter().rev().copied())
            .map(fd_path)
            .collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={},userxattr",
            lowers.join(":"),
            fd_path(fds.upper),
            fd_path(fds.work)
        );
        b.ops.push(Op::Mount {
            source: Some(c("overlay")?),
            target: c(ROOT)?,
            fstype: Some(c("overlay")?),
            flags: 0,
            data: Some(c(data)?),
            optional: false,
            kind: OpKind::Overlay,
        });

        // A fresh /proc for the new pid namespace, with the host-sensitive parts read-only or
        // masked.
        let proc_dir = format!("{ROOT}/proc");
        let proc_flags = nosuid_nodev | libc::MS_NOEXEC;
        b.mount(
            Some("proc"),
            &proc_dir,
            Some("proc"),
            proc_flags,
            None,
            false,
        )?;
        for name in PROC_READ_ONLY {
            let path = format!("{proc_dir}/{name}");
            b.bind(&path, &path, true)?;
            b.read_only(&path, true, true)?;
        }
        for name in PROC_MASKED_FILES {
            b.bind("/dev/null", &format!("{proc_dir}/{name}"), true)?;
        }
        for name in PROC_MASKED_DIRS {
            let path = format!("{proc_dir}/{name}");
            let flags = nosuid_nodev | libc::MS_NOEXEC | libc::MS_RDONLY;
            b.mount(
                Some("tmpfs"),
                &path,
                Some("tmpfs"),
                flags,
                Some("size=0"),
                true,
            )?;
        }

        // A minimal /dev: entries first, then the tmpfs itself read-only (a step cannot add
        // device nodes or files there), then the mounts on top of it.
        let dev = format!("{ROOT}/dev");
        let dev_flags = libc::MS_NOSUID | libc::MS_NOEXEC;
        b.mount(
            Some("tmpfs"),
            &dev,
            Some("tmpfs"),
            dev_flags,
            Some("mode=0755,size=64k"),
            false,
        )?;
        for node in DEV_NODES {
            b.ops.push(Op::CreateFile {
                path: c(format!("{dev}/{node}"))?,
                mode: 0o666,
            });
        }
        b.mkdir(&format!("{dev}/pts"), 0o755)?;
        b.mkdir(&format!("{dev}/shm"), 0o1777)?;
        b.symlink("pts/ptmx", &format!("{dev}/ptmx"))?;
        b.symlink("/proc/self/fd", &format!("{dev}/fd"))?;
        for (i, name) in ["stdin", "stdout", "stderr"].iter().enumerate() {
            b.symlink(&format!("/proc/self/fd/{i}"), &format!("{dev}/{name}"))?;
        }
        b.read_only(&dev, false, false)?;
        for node in DEV_NODES {
            b.bind(&format!("/dev/{node}"), &format!("{dev}/{node}"), false)?;
        }
        let pts_data = match devpts_gid {
            Some(gid) => format!("newinstance,ptmxmode=0666,mode=0620,gid={gid}"),
            None => "newinstance,ptmxmode=0666,mode=0620".to_owned(),
        };
        let pts = format!("{dev}/pts");
        b.mount(
            Some("devpts"),
            &pts,
            Some("devpts"),
            dev_flags,
            Some(&pts_data),
            false,
        )?;
        let shm_flags = nosuid_nodev | libc::MS_NOEXEC;
        let shm = format!("{dev}/shm");
        b.mount(
            Some("tmpfs"),
            &shm,
            Some("tmpfs"),
            shm_flags,
            Some("mode=1777"),
            false,
        )?;

        // The caller's extra mounts.
        for (mount, bind) in spec.mounts.iter().zip(&fds.binds) {
            let target = format!("{ROOT}/{}", container_path(mount.target())?.join("/"));
            match (mount, bind) {
                (Mount::Bind { read_only, .. }, Some((fd, _))) => {
                    b.bind(&fd_path(*fd), &target, false)?;
                    if *read_only {
                        b.read_only(&target, true, false)?;
                    }
                }
                _ => {
                    let data = Some("mode=0755");
                    b.mount(
                        Some("tmpfs"),
                        &target,
                        Some("tmpfs"),
                        nosuid_nodev,
                        data,
                        false,
                    )?;
                }
            }
        }

        b.ops.push(Op::SetHostname {
            name: c(spec.hostname.as_str())?,
        });
        b.ops.push(Op::LoopbackUp);
        b.ops.push(Op::PivotRoot { new_root: c(ROOT)? });
        Ok(Plan { ops: b.ops })
    }

    /// Runs every operation in order; on failure returns the index of the failing one.
    pub(crate) fn execute<S: Syscall + ?Sized>(&self, sys: &S) -> Result<(), (usize, io::Error)> {
        for (index, op) in self.ops.iter().enumerate() {
            execute_op(sys, op).map_err(|e| (index, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
