//! The declarative description of one sandboxed step, and its validation.
//!
//! The caller (kiln's build executor) decides *policy*: which directories form the rootfs,
//! which command runs, with which environment. This module only checks that the request is
//! well-formed before anything touches the kernel, so that a bad recipe value becomes a clear
//! error naming the field instead of an obscure `EINVAL` from deep inside the child.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::idmap::IdMapping;

/// Where a standard output stream of the step goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdio {
    /// The step writes straight to the caller's own file descriptor.
    Inherit,
    /// Discarded (`/dev/null`).
    Null,
    /// Read by [`crate::run_with_output`] as it arrives: handed to the caller's callback and
    /// its tail kept in the [`crate::Outcome`] (or the error of a failing step).
    Pipe,
}

/// An extra mount inside the sandbox, on top of the overlay rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// Bind-mount a host file or directory (recursively) at `target`.
    Bind {
        source: PathBuf,
        target: String,
        read_only: bool,
    },
    /// A fresh, empty tmpfs at `target` (its content never reaches the upper directory).
    Tmpfs { target: String },
}

impl Mount {
    pub(crate) fn target(&self) -> &str {
        match self {
            Mount::Bind { target, .. } | Mount::Tmpfs { target } => target,
        }
    }
}

/// Everything needed to run one command in a fresh sandbox.
///
/// The rootfs is an overlay of `lower_dirs` (read-only, **bottom-most first**, like image
/// layers) with `upper_dir` receiving every change the step makes. After the run, the caller
/// turns `upper_dir` into a layer: overlay whiteouts are character devices 0/0 and opaque
/// directories carry the xattr [`crate::OPAQUE_XATTR`] = `y`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    pub lower_dirs: Vec<PathBuf>,
    /// Must exist and be empty; on the same file system as `work_dir`.
    pub upper_dir: PathBuf,
    /// Overlay's scratch directory: must exist (overlayfs empties it itself).
    pub work_dir: PathBuf,
    pub mounts: Vec<Mount>,
    /// `argv[0]` without a `/` is searched in the `PATH` of `env` (or a default `PATH`).
    pub argv: Vec<String>,
    /// The whole environment of the step (nothing is inherited from the caller).
    pub env: Vec<(String, String)>,
    /// Absolute path inside the rootfs.
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub hostname: String,
    /// Wall-clock limit from the start of the sandbox to the end of its last process.
    pub timeout: Duration,
    pub id_mapping: IdMapping,
    pub stdout: Stdio,
    pub stderr: Stdio,
    /// How many trailing bytes of each piped stream the outcome keeps.
    pub tail_limit: usize,
    /// Processes, memory and written bytes; none by default.
    pub limits: crate::Limits,
}

/// Default `PATH` used to find `argv[0]` when `env` has none (the same as Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl SandboxSpec {
    /// A spec with the usual defaults: root in the sandbox, cwd `/`, hostname `kiln`,
    /// a 1-hour limit, automatic id mapping, stdout and stderr piped.
    pub fn new(
        lower_dirs: Vec<PathBuf>,
        upper_dir: impl Into<PathBuf>,
        work_dir: impl Into<PathBuf>,
        argv: Vec<String>,
    ) -> Self {
        SandboxSpec {
            lower_dirs,
            upper_dir: upper_dir.into(),
            work_dir: work_dir.into(),
            mounts: Vec::new(),
            argv,
            env: Vec::new(),
            cwd: "/".to_owned(),
            uid: 0,
            gid: 0,
            hostname: "kiln".to_owned(),
            timeout: Duration::from_secs(3600),
            id_mapping: IdMapping::Auto,
            stdout: Stdio::Pipe,
            stderr: Stdio::Pipe,
            tail_limit: 16 * 1024,
            limits: crate::Limits::default(),
        }
    }

    /// Checks every field without touching the kernel beyond `stat`/`read_dir`.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.argv.is_empty() {
            return Err(SpecError::EmptyArgv);
        }
        for arg in &self.argv {
            no_nul("argv", arg)?;
        }
        for (key, value) in &self.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(SpecError::BadEnvName { name: key.clone() });
            }
            no_nul("env", value)?;
        }
        validate_cwd(&self.cwd)?;
        validate_hostname(&self.hostname)?;
        if self.timeout.is_zero() {
            return Err(SpecError::ZeroTimeout);
        }
        let l = &self.limits;
        for (name, value) in [
            ("pids", l.pids_max),
            ("memory", l.memory_max),
            ("write", l.write_max),
        ] {
            if value == Some(0) {
                return Err(SpecError::ZeroLimit { name });
            }
        }
        if self.lower_dirs.len() > MAX_LOWER_DIRS {
            return Err(SpecError::TooManyLowerDirs {
                count: self.lower_dirs.len(),
                max: MAX_LOWER_DIRS,
            });
        }
        for dir in &self.lower_dirs {
            check_dir(dir)?;
        }
        let upper = require_empty_dir(&self.upper_dir)?;
        // overlayfs cleans up a reused work directory itself.
        let work = check_dir(&self.work_dir)?;
        if upper.dev() != work.dev() {
            return Err(SpecError::DifferentFilesystems {
                upper: self.upper_dir.clone(),
                work: self.work_dir.clone(),
            });
        }
        let mut targets = Vec::new();
        for mount in &self.mounts {
            let target = container_path(mount.target())?;
            if target.is_empty() || RESERVED_TARGETS.contains(&target[0].as_str()) {
                return Err(SpecError::ReservedMountTarget {
                    target: mount.target().to_owned(),
                });
            }
            if let Mount::Bind { source, .. } = mount {
                fs_err::metadata(source).map_err(|source_err| SpecError::BadPath {
                    path: source.clone(),
                    source: source_err,
                })?;
                no_nul_path(source)?;
            }
            if targets.contains(&target) {
                return Err(SpecError::DuplicateMountTarget {
                    target: mount.target().to_owned(),
                });
            }
            targets.push(target);
        }
        Ok(())
    }
}

/// overlayfs accepts up to 500 lower layers; the `lowerdir=` option must also fit in one page.
const MAX_LOWER_DIRS: usize = 128;

/// Top-level directories that the sandbox itself mounts; the caller cannot mount over them.
const RESERVED_TARGETS: &[&str] = &["proc", "dev"];

/// Why a [`SandboxSpec`] was refused.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("the step has an empty argv")]
    EmptyArgv,
    #[error("{field} value {value:?} contains a NUL byte")]
    Nul { field: &'static str, value: String },
    #[error("environment variable name {name:?} is empty or contains '=' or NUL")]
    BadEnvName { name: String },
    #[error("path {path:?} inside the sandbox must be absolute, without '..' or NUL")]
    BadContainerPath { path: String },
    // Ref: CVE-2024-21626 (runc): a working directory of /proc/self/fd/N reached a leaked host
    // directory. Nothing under /proc is a legitimate build directory.
    #[error("working directory {cwd:?} is under /proc, which is refused (runc CVE-2024-21626)")]
    CwdInProc { cwd: String },
    #[error("hostname {hostname:?} must be 1-64 characters of [A-Za-z0-9.-]")]
    BadHostname { hostname: String },
    #[error("the time limit must be longer than zero")]
    ZeroTimeout,
    #[error("the {name} limit must be above zero")]
    ZeroLimit { name: &'static str },
    #[error("{count} lower directories given, at most {max} are supported")]
    TooManyLowerDirs { count: usize, max: usize },
    #[error("failed to use {path}")]
    BadPath {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("{path} must be an empty directory")]
    NotEmpty { path: PathBuf },
    #[error("path {path:?} contains a NUL byte")]
    UnsupportedPath { path: PathBuf },
    #[error("upper directory {upper} and work directory {work} are not on the same file system")]
    DifferentFilesystems { upper: PathBuf, work: PathBuf },
    #[error("mount target {target:?} is reserved by the sandbox (/proc, /dev) or is the root")]
    ReservedMountTarget { target: String },
    #[error("two mounts have the same target {target:?}")]
    DuplicateMountTarget { target: String },
    #[error("step runs as {kind} {id}, which the id mapping ({mapping}) does not map; {hint}")]
    UnmappedId {
        kind: &'static str,
        id: u32,
        mapping: String,
        hint: &'static str,
    },
}

fn no_nul(field: &'static str, value: &str) -> Result<(), SpecError> {
    if value.contains('\0') {
        return Err(SpecError::Nul {
            field,
            value: value.to_owned(),
        });
    }
    Ok(())
}

fn no_nul_path(path: &Path) -> Result<(), SpecError> {
    if path.as_os_str().as_bytes().contains(&0) {
        return Err(SpecError::UnsupportedPath {
            path: path.to_owned(),
        });
    }
    Ok(())
}

fn check_dir(path: &Path) -> Result<std::fs::Metadata, SpecError> {
    no_nul_path(path)?;
    let meta = fs_err::metadata(path).map_err(|source| SpecError::BadPath {
        path: path.to_owned(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(SpecError::NotADirectory {
            path: path.to_owned(),
        });
    }
    Ok(meta)
}

fn require_empty_dir(path: &Path) -> Result<std::fs::Metadata, SpecError> {
    let meta = check_dir(path)?;
    let mut entries = fs_err::read_dir(path).map_err(|source| SpecError::BadPath {
        path: path.to_owned(),
        source,
    })?;
    if entries.next().is_some() {
        return Err(SpecError::NotEmpty {
            path: path.to_owned(),
        });
    }
    Ok(meta)
}

/// Splits an absolute path inside the sandbox into its normal components (`.` dropped).
pub(crate) fn container_path(path: &str) -> Result<Vec<String>, SpecError> {
    let bad = || SpecError::BadContainerPath {
        path: path.to_owned(),
    };
    if !path.starts_with('/') || path.contains('\0') {
        return Err(bad());
    }
    let mut out = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err(bad()),
            other => out.push(other.to_owned()),
        }
    }
    Ok(out)
}

fn validate_cwd(cwd: &str) -> Result<(), SpecError> {
    let components = container_path(cwd)?;
    if components.first().map(String::as_str) == Some("proc") {
        return Err(SpecError::CwdInProc {
            cwd: cwd.to_owned(),
        });
    }
    Ok(())
}

fn validate_hostname(hostname: &str) -> Result<(), SpecError> {
    let ok = !hostname.is_empty()
        && hostname.len() <= 64
        && hostname
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SpecError::BadHostname {
            hostname: hostname.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_in(dir: &Path) -> SandboxSpec {
        let lower = dir.join("lower");
        let upper = dir.join("upper");
        let work = dir.join("work");
        for d in [&lower, &upper, &work] {
            fs_err::create_dir(d).unwrap();
        }
        SandboxSpec::new(vec![lower], upper, work, vec!["/bin/true".to_owned()])
    }

    #[test]
    fn container_path_table() {
        let cases: &[(&str, Option<&[&str]>)] = &[
            ("/", Some(&[])),
            ("/a/b", Some(&["a", "b"])),
            ("/a/./b/", Some(&["a", "b"])),
            ("//a//b", Some(&["a", "b"])),
            ("a/b", None),
            ("", None),
            ("/a/../b", None),
            ("/..", None),
            ("/a\0b", None),
        ];
        for (input, expected) in cases {
            let got = container_path(input).ok();
            let expected = expected.map(|e| e.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(got, expected, "input {input:?}");
        }
    }

    #[test]
    fn field_validation_table() {
        let tmp = tempfile::tempdir().unwrap();
        let base = spec_in(tmp.path());
        type Edit = fn(&mut SandboxSpec);
        let cases: &[(&str, Edit, &str)] = &[
            ("ok", |_| {}, ""),
            ("empty argv", |s| s.argv.clear(), "EmptyArgv"),
            ("nul argv", |s| s.argv.push("a\0b".into()), "Nul"),
            (
                "env =",
                |s| s.env.push(("A=B".into(), "x".into())),
                "BadEnvName",
            ),
            (
                "env empty",
                |s| s.env.push(("".into(), "x".into())),
                "BadEnvName",
            ),
            ("cwd relative", |s| s.cwd = "src".into(), "BadContainerPath"),
            (
                "cwd dotdot",
                |s| s.cwd = "/a/../..".into(),
                "BadContainerPath",
            ),
            (
                "cwd proc fd",
                |s| s.cwd = "/proc/self/fd/7".into(),
                "CwdInProc",
            ),
            (
                "cwd proc dot",
                |s| s.cwd = "/./proc/self/cwd".into(),
                "CwdInProc",
            ),
            ("cwd procfoo ok", |s| s.cwd = "/procfoo".into(), ""),
            ("hostname empty", |s| s.hostname = "".into(), "BadHostname"),
            (
                "hostname slash",
                |s| s.hostname = "a/b".into(),
                "BadHostname",
            ),
            (
                "zero timeout",
                |s| s.timeout = Duration::ZERO,
                "ZeroTimeout",
            ),
            (
                "mount on proc",
                |s| {
                    s.mounts.push(Mount::Tmpfs {
                        target: "/proc/x".into(),
                    })
                },
                "ReservedMountTarget",
            ),
            (
                "mount on root",
                |s| s.mounts.push(Mount::Tmpfs { target: "/".into() }),
                "ReservedMountTarget",
            ),
            (
                "duplicate mount",
                |s| {
                    s.mounts.push(Mount::Tmpfs {
                        target: "/t".into(),
                    });
                    s.mounts.push(Mount::Tmpfs {
                        target: "/t/".into(),
                    });
                },
                "DuplicateMountTarget",
            ),
            (
                "bind missing source",
                |s| {
                    s.mounts.push(Mount::Bind {
                        source: "/nonexistent/kiln".into(),
                        target: "/x".into(),
                        read_only: true,
                    })
                },
                "BadPath",
            ),
            (
                "missing lower",
                |s| s.lower_dirs.push("/nonexistent/kiln".into()),
                "BadPath",
            ),
            (
                "lower is a file",
                |s| s.lower_dirs.push("/etc/hostname".into()),
                "NotADirectory",
            ),
        ];
        for (name, edit, expected) in cases {
            let mut spec = base.clone();
            edit(&mut spec);
            let got = match spec.validate() {
                Ok(()) => String::new(),
                Err(e) => format!("{e:?}")
                    .split([' ', '{', '('])
                    .next()
                    .unwrap()
                    .to_owned(),
            };
            assert_eq!(&got, expected, "case {name}");
        }
    }

    #[test]
    fn upper_must_be_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = spec_in(tmp.path());
        fs_err::write(spec.upper_dir.join("x"), "x").unwrap();
        assert!(
            matches!(spec.validate(), Err(SpecError::NotEmpty { path }) if path == spec.upper_dir)
        );
    }
}
