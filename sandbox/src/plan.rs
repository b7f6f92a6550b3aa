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
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;

use crate::spec::{container_path, Mount, SandboxSpec, SpecError};
use crate::syscall::Syscall;

const SCRATCH: &str = "/tmp";
const SKEL: &str = "/tmp/skel";
const ROOT: &str = "/tmp/root";

/// Read-only inside /proc (runc's `readonlyPaths`): with an identity mapping, the step's root
/// is the host's root for permission checks on these files.
const PROC_READ_ONLY: &[&str] = &["sys", "sysrq-trigger", "irq", "bus", "fs"];
/// Files hidden behind /dev/null (runc's `maskedPaths`).
const PROC_MASKED_FILES: &[&str] = &[
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

fn execute_op<S: Syscall + ?Sized>(sys: &S, op: &Op) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::syscall::recording::Recording;

    fn spec() -> SandboxSpec {
        let mut spec = SandboxSpec::new(
            vec![PathBuf::from("/l0"), PathBuf::from("/l1")],
            "/u",
            "/w",
            vec!["/bin/sh".into()],
        );
        spec.hostname = "box".into();
        spec.mounts = vec![
            Mount::Bind {
                source: "/host/cache".into(),
                target: "/var/cache/x".into(),
                read_only: true,
            },
            Mount::Bind {
                source: "/host/file".into(),
                target: "/etc/resolv.conf".into(),
                read_only: false,
            },
            Mount::Tmpfs {
                target: "/scratch".into(),
            },
        ];
        spec
    }

    fn fds() -> PlanFds {
        PlanFds {
            skel: 9,
            lowers: vec![5, 6],
            upper: 7,
            work: 8,
            binds: vec![Some((10, true)), Some((11, false)), None],
        }
    }

    fn recorded() -> Vec<String> {
        let plan = Plan::build(&spec(), &fds(), Some(5)).unwrap();
        let rec = Recording::default();
        plan.execute(&rec).unwrap();
        rec.calls()
    }

    fn position(calls: &[String], needle: &str) -> usize {
        calls
            .iter()
            .position(|c| c == needle)
            .unwrap_or_else(|| panic!("{needle:?} not in {calls:#?}"))
    }

    #[test]
    fn starts_private_and_ends_with_pivot() {
        let calls = recorded();
        assert_eq!(calls[0], "mount - / - rec,private -");
        assert_eq!(calls[1], "open /l0 at 5 dir");
        assert_eq!(calls.last().unwrap(), "pivot-root /tmp/root");
        assert_eq!(calls[calls.len() - 2], "loopback-up");
        assert_eq!(calls[calls.len() - 3], "sethostname box");
    }

    #[test]
    fn overlay_uses_descriptors_with_skeleton_on_top() {
        let calls = recorded();
        let overlay = "mount overlay /tmp/root overlay - lowerdir=/proc/self/fd/9:/proc/self/fd/6:\
                       /proc/self/fd/5,upperdir=/proc/self/fd/7,workdir=/proc/self/fd/8,userxattr";
        let at = position(&calls, overlay);
        assert!(position(&calls, "open /tmp/skel at 9 dir") < at);
        // Host paths are opened before /tmp is covered, and never named in mount options.
        let covered = position(&calls, "mount tmpfs /tmp tmpfs nosuid,nodev mode=0755");
        for (path, fd) in [
            ("/l0", 5),
            ("/l1", 6),
            ("/u", 7),
            ("/w", 8),
            ("/host/cache", 10),
        ] {
            assert!(position(&calls, &format!("open {path} at {fd} dir")) < covered);
        }
        assert!(position(&calls, "open /host/file at 11 file") < covered);
        assert!(!calls
            .iter()
            .any(|c| c.starts_with("mount") && (c.contains("/l0") || c.contains("/u,"))));
    }

    #[test]
    fn skeleton_holds_every_mount_point_before_the_overlay() {
        let calls = recorded();
        let overlay = calls
            .iter()
            .position(|c| c.starts_with("mount overlay"))
            .unwrap();
        for entry in [
            "mkdir /tmp/skel/proc 755",
            "mkdir /tmp/skel/dev 755",
            "mkdir /tmp/skel/var 755",
            "mkdir /tmp/skel/var/cache 755",
            "mkdir /tmp/skel/var/cache/x 755",
            "mkdir /tmp/skel/etc 755",
            "create /tmp/skel/etc/resolv.conf 644",
            "mkdir /tmp/skel/scratch 755",
        ] {
            assert!(position(&calls, entry) < overlay, "{entry}");
        }
        // Parents come before children.
        assert!(
            position(&calls, "mkdir /tmp/skel/var 755")
                < position(&calls, "mkdir /tmp/skel/var/cache/x 755")
        );
    }

    #[test]
    fn proc_is_fresh_and_its_sensitive_parts_read_only() {
        let calls = recorded();
        let proc_mount = position(
            &calls,
            "mount proc /tmp/root/proc proc nosuid,nodev,noexec -",
        );
        for name in ["sys", "sysrq-trigger"] {
            let path = format!("/tmp/root/proc/{name}");
            let bind = position(&calls, &format!("mount {path} {path} - bind,rec -"));
            let ro = position(&calls, &format!("read-only {path} recursive"));
            assert!(proc_mount < bind && bind < ro, "{name}");
        }
        position(&calls, "mount /dev/null /tmp/root/proc/kcore - bind,rec -");
    }

    #[test]
    fn dev_is_minimal() {
        let calls = recorded();
        position(
            &calls,
            "mount tmpfs /tmp/root/dev tmpfs nosuid,noexec mode=0755,size=64k",
        );
        let ro = position(&calls, "read-only /tmp/root/dev");
        for node in DEV_NODES {
            let path = format!("/tmp/root/dev/{node}");
            let create = position(&calls, &format!("create {path} 666"));
            let bind = position(&calls, &format!("mount /dev/{node} {path} - bind,rec -"));
            assert!(create < ro && ro < bind);
        }
        position(
            &calls,
            "mount devpts /tmp/root/dev/pts devpts nosuid,noexec newinstance,ptmxmode=0666,mode=0620,gid=5",
        );
        position(&calls, "symlink /tmp/root/dev/ptmx -> pts/ptmx");
        position(
            &calls,
            "mount tmpfs /tmp/root/dev/shm tmpfs nosuid,nodev,noexec mode=1777",
        );
        let dev_nodes: Vec<_> = calls
            .iter()
            .filter(|c| c.starts_with("create /tmp/root/dev/"))
            .collect();
        assert_eq!(dev_nodes.len(), DEV_NODES.len());
    }

    #[test]
    fn extra_mounts_after_dev_and_read_only_when_asked() {
        let calls = recorded();
        let bind = position(
            &calls,
            "mount /proc/self/fd/10 /tmp/root/var/cache/x - bind,rec -",
        );
        let ro = position(&calls, "read-only /tmp/root/var/cache/x recursive");
        assert!(bind < ro);
        position(
            &calls,
            "mount /proc/self/fd/11 /tmp/root/etc/resolv.conf - bind,rec -",
        );
        assert!(!calls
            .iter()
            .any(|c| c.starts_with("read-only /tmp/root/etc/resolv.conf")));
        position(
            &calls,
            "mount tmpfs /tmp/root/scratch tmpfs nosuid,nodev mode=0755",
        );
        assert!(position(&calls, "read-only /tmp/root/dev") < bind);
    }

    #[test]
    fn failure_reports_the_failing_op_and_stops() {
        let plan = Plan::build(&spec(), &fds(), None).unwrap();
        let rec = Recording::failing("mount overlay", libc::EPERM);
        let (index, err) = plan.execute(&rec).unwrap_err();
        assert_eq!(plan.ops[index].kind(), OpKind::Overlay);
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
        assert!(rec.calls().last().unwrap().starts_with("mount overlay"));
        assert!(plan.ops[index]
            .to_string()
            .starts_with("mount overlay (overlay) on /tmp/root"));
    }

    #[test]
    fn optional_masks_tolerate_missing_paths() {
        let plan = Plan::build(&spec(), &fds(), None).unwrap();
        let rec = Recording::failing("mount /dev/null /tmp/root/proc/timer_stats", libc::ENOENT);
        plan.execute(&rec).unwrap();
        let rec = Recording::failing("mount tmpfs /tmp/root/dev ", libc::ENOENT);
        assert!(plan.execute(&rec).is_err());
    }
}
