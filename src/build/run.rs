//! `run` steps: a program runs over the rootfs so far, and what it changed becomes entries of
//! the current layer.
//!
//! Why a real directory here, when every other step only edits the file-tree model: a program
//! needs a file system. The rootfs below the step (base layers, earlier layers of this recipe,
//! and the current layer's tree so far) is materialized with the safe extractor into a fresh
//! scratch directory, which the sandbox mounts read-only as the lower layer of an overlay. The
//! step writes only to the overlay's upper directory; afterwards [`FileTree::add_upper_dir`]
//! turns that directory (whiteouts and opaque directories included) into entries, with mtimes
//! clamped to the epoch. The materialized rootfs is removed as soon as the step ends; the
//! upper directory lives until the layer is written (its files are the entries' contents) and
//! is removed with the build's scratch directory, on success and on failure.
//!
//! Nothing of the host leaks in: the environment is cleared and rebuilt from fixed values plus
//! the step's own `env`, the hostname is fixed, the umask is 022 (the sandbox's), and the
//! network is only loopback. Correctness first: every `run` step materializes the whole rootfs
//! again (no snapshot cache).

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln_sandbox::{
    Enforced, ExitStatus, IdMapping, Limits, Resource, SandboxError, SandboxSpec, Stdio, Stream,
};

use super::lower::{restore, LowerIndex};
use super::user::{resolve_user, UserError};
use super::{Blob, BuildEvent, BuildObserver, OutputStream};
use crate::layer::decompress::{self, DecompressError};
use crate::layer::extract::{apply_layer, ExtractError, ExtractOptions};
use crate::layer::tree::{EntryKind, FileTree, Metadata};
use crate::layer::upper::{UpperError, UpperOptions};
use crate::layer::write::{write_tar, WriteError};
use crate::recipe::ImagePath;

/// The `PATH` a step gets unless its `env` sets one (Docker's default).
pub const DEFAULT_PATH: &str = kiln_sandbox::DEFAULT_PATH;

/// How many trailing bytes of the step's stderr a failure reports.
const STDERR_TAIL: usize = 4096;

/// A line of step output longer than this is passed on in pieces.
const MAX_LINE: usize = 8192;

/// What a `run` step needs from the build around it.
pub struct RunContext<'a> {
    /// The layers below the current one, bottom first (base layers, then earlier built ones).
    pub below: &'a [Blob],
    pub epoch: i64,
    pub timeout: Duration,
    /// Processes, memory and written bytes of the step.
    pub limits: Limits,
    /// Where the step's directories go (the build's scratch directory).
    pub scratch: &'a Path,
    pub observer: &'a dyn BuildObserver,
    /// `file:line:column` of the step, for events.
    pub location: &'a str,
}

/// A `run` step as the recipe gives it.
pub struct RunStep<'a> {
    pub argv: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    pub workdir: Option<&'a ImagePath>,
    pub user: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("failed to create the step's scratch directory under {}", dir.display())]
    Scratch {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to open layer {} to materialize the rootfs", path.display())]
    OpenLayer {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to decompress layer {} to materialize the rootfs", path.display())]
    Decompress {
        path: PathBuf,
        #[source]
        source: DecompressError,
    },
    #[error("failed to materialize layer {} into the step's rootfs", what)]
    Materialize {
        what: String,
        #[source]
        source: ExtractError,
    },
    #[error("failed to stream the current layer's entries into the step's rootfs")]
    StreamTree {
        #[source]
        source: WriteError,
    },
    #[error(transparent)]
    User(#[from] UserError),
    #[error("failed to run {argv:?} in the build sandbox")]
    Sandbox {
        argv: Vec<String>,
        #[source]
        source: SandboxError,
    },
    #[error(
        "{argv:?} failed with {status}{}{}",
        stderr_section(stderr_tail),
        rlimit_note(rlimits)
    )]
    Failed {
        argv: Vec<String>,
        status: ExitStatus,
        stderr_tail: String,
        /// kiln runs rootless with a single-id mapping: a `chown` cannot be honoured.
        single_id: bool,
        /// The step's limits that an rlimit enforced (no cgroup): one may be why it failed.
        rlimits: Vec<Enforced>,
    },
    #[error(
        "{argv:?} was stopped at its limit of {limit}{}",
        stderr_section(stderr_tail)
    )]
    LimitExceeded {
        argv: Vec<String>,
        limit: Enforced,
        stderr_tail: String,
    },
    #[error("{argv:?} was killed after exceeding its time limit of {}s{}", timeout.as_secs(), stderr_section(stderr_tail))]
    TimedOut {
        argv: Vec<String>,
        timeout: Duration,
        stderr_tail: String,
    },
    #[error("failed to record the files the step wrote")]
    Upper(#[from] UpperError),
}

fn stderr_section(tail: &str) -> String {
    if tail.trim().is_empty() {
        return String::new();
    }
    let mut out = String::from("; the end of its stderr:");
    for line in tail.trim_end().lines() {
        out.push_str("\n    ");
        out.push_str(line);
    }
    out
}

/// The `kiln build` option that sets the limit of `resource`.
fn limit_flag(resource: Resource) -> &'static str {
    match resource {
        Resource::Pids => "--step-pids-max",
        Resource::Memory => "--step-memory-max",
        Resource::Write => "--step-write-max",
    }
}

fn rlimit_note(rlimits: &[Enforced]) -> String {
    let limits: Vec<String> = rlimits
        .iter()
        .map(|e| format!("{e} from {}", limit_flag(e.resource)))
        .collect();
    if limits.is_empty() {
        return String::new();
    }
    format!(
        "\nnote: no cgroup was available, so the step ran under rlimits, which leave no trace \
         when they stop a program: {}",
        limits.join(", ")
    )
}

impl RunError {
    /// What the user can do about it, when kiln knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Failed {
                single_id: true, ..
            } => Some(
                "kiln runs rootless with a single-id mapping, where only uid/gid 0 exist, so a \
                 chown to any other owner fails; grant the user 65536 ids in /etc/subuid and \
                 /etc/subgid, or run kiln as root"
                    .to_string(),
            ),
            Self::LimitExceeded { limit, .. } => Some(format!(
                "raise {} if the step needs more",
                limit_flag(limit.resource)
            )),
            _ => None,
        }
    }
}

/// Runs `step` over the rootfs so far and merges what it changed into `tree`. The returned
/// directory holds the contents of the new entries: keep it until the layer is written.
pub fn run_step(
    tree: &mut FileTree,
    step: &RunStep<'_>,
    ctx: &RunContext<'_>,
) -> Result<tempfile::TempDir, RunError> {
    let scratch_err = |source| RunError::Scratch {
        dir: ctx.scratch.to_path_buf(),
        source,
    };
    let outputs = tempfile::Builder::new()
        .prefix("kiln-step-")
        .tempdir_in(ctx.scratch)
        .map_err(scratch_err)?;
    let upper = outputs.path().join("upper");
    let work = outputs.path().join("work");
    for dir in [&upper, &work] {
        fs_err::create_dir(dir).map_err(scratch_err)?;
    }

    // The rootfs lives only as long as the step.
    let rootfs_dir = tempfile::Builder::new()
        .prefix("kiln-rootfs-")
        .tempdir_in(ctx.scratch)
        .map_err(scratch_err)?;
    let rootfs = rootfs_dir.path().join("rootfs");
    fs_err::create_dir(&rootfs).map_err(scratch_err)?;
    set_mode(&rootfs, 0o755).map_err(scratch_err)?;
    let owners_kept = can_chown();
    let lower = materialize(&rootfs, ctx.below, tree, ctx.epoch, owners_kept)?;

    let (uid, gid) = resolve_user(step.user, &rootfs)?;
    let mut spec = SandboxSpec::new(vec![rootfs.clone()], &upper, &work, step.argv.to_vec());
    spec.env = environment(step.env, uid, ctx.epoch);
    spec.cwd = step.workdir.map_or("/", ImagePath::as_str).to_owned();
    spec.uid = uid;
    spec.gid = gid;
    spec.timeout = ctx.timeout;
    spec.limits = ctx.limits;
    spec.id_mapping = IdMapping::Auto;
    spec.stdout = Stdio::Pipe;
    spec.stderr = Stdio::Pipe;
    spec.tail_limit = STDERR_TAIL;

    ctx.observer.event(BuildEvent::StepStarted {
        location: ctx.location,
        argv: step.argv,
    });
    let mut lines = LineSplitter::new(ctx.observer);
    let result =
        kiln_sandbox::run_with_output(&spec, &mut |stream, bytes| lines.push(stream, bytes));
    lines.flush();
    drop(rootfs_dir);
    let outcome = result.map_err(|e| step_error(step.argv, e))?;

    let map = &outcome.id_map;
    let uid_to_container = |h| map.uid_to_container(h);
    let gid_to_container = |h| map.gid_to_container(h);
    let copied_up = |path: &str, kind: &EntryKind, meta: &mut Metadata| {
        if let Some(l) = lower.get(path) {
            restore(l, matches!(kind, EntryKind::Dir), owners_kept, meta);
        }
    };
    tree.add_upper_dir(
        &upper,
        &UpperOptions {
            epoch: ctx.epoch,
            uid_to_container: &uid_to_container,
            gid_to_container: &gid_to_container,
            copied_up: Some(&copied_up),
        },
    )?;
    Ok(outputs)
}

fn step_error(argv: &[String], e: SandboxError) -> RunError {
    let argv = argv.to_vec();
    match e {
        SandboxError::StepFailed {
            status,
            id_mapping,
            stderr_tail,
            rlimits,
            ..
        } => RunError::Failed {
            argv,
            status,
            stderr_tail: String::from_utf8_lossy(&stderr_tail).into_owned(),
            single_id: id_mapping == IdMapping::Single || namespace_id_count() == 1,
            rlimits,
        },
        SandboxError::LimitExceeded {
            limit, stderr_tail, ..
        } => RunError::LimitExceeded {
            argv,
            limit,
            stderr_tail: String::from_utf8_lossy(&stderr_tail).into_owned(),
        },
        SandboxError::TimedOut {
            timeout,
            stderr_tail,
            ..
        } => RunError::TimedOut {
            argv,
            timeout,
            stderr_tail: String::from_utf8_lossy(&stderr_tail).into_owned(),
        },
        source => RunError::Sandbox { argv, source },
    }
}

/// How many uids the process's user namespace maps (`u64::MAX` when it cannot be read).
fn namespace_id_count() -> u64 {
    let Ok(map) = std::fs::read_to_string("/proc/self/uid_map") else {
        return u64::MAX;
    };
    map.lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum()
}

/// Whether materialized files may keep their owners: only as root of a namespace holding a
/// full range of ids (as real root, or rootless with a subordinate range). With a single id,
/// every file stays owned by that id (the invoking user).
fn can_chown() -> bool {
    rustix::process::geteuid().is_root()
        && namespace_id_count() >= u64::from(kiln_sandbox::FULL_RANGE)
}

/// Applies every layer below, then the current layer's tree so far, onto `rootfs`; returns the
/// image's own metadata of what it materialized.
fn materialize(
    rootfs: &Path,
    below: &[Blob],
    tree: &FileTree,
    epoch: i64,
    owners_kept: bool,
) -> Result<LowerIndex, RunError> {
    let opts = ExtractOptions {
        preserve_owner: owners_kept,
        ..ExtractOptions::default()
    };
    let mut index = LowerIndex::default();
    for blob in below {
        let failed = |source| RunError::Materialize {
            what: blob.digest.to_string(),
            source,
        };
        apply_layer(rootfs, open_layer(blob)?, &opts).map_err(failed)?;
        index.add_tar(open_layer(blob)?).map_err(failed)?;
    }
    index.add_tree(tree).map_err(|e| RunError::StreamTree {
        source: WriteError::Host {
            source: Box::new(e),
        },
    })?;
    if tree.is_empty() && tree.opaque_dirs().next().is_none() {
        return Ok(index);
    }
    // The tree so far streams through a pipe: the writer on its own thread, the extractor here.
    let (reader, writer) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| {
            RunError::StreamTree {
                source: WriteError::Output {
                    path: String::new(),
                    source: e.into(),
                },
            }
        })?;
    let (reader, mut writer) = (std::fs::File::from(reader), std::fs::File::from(writer));
    std::thread::scope(|scope| {
        let written = scope.spawn(move || write_tar(tree, epoch, &mut writer));
        let applied = apply_layer(rootfs, DrainOnDrop(reader), &opts);
        let written = written.join().expect("the tar writer does not panic");
        // A write error explains an extraction error (a truncated stream), so it comes first.
        written.map_err(|source| RunError::StreamTree { source })?;
        applied.map_err(|source| RunError::Materialize {
            what: "entries of the current layer".into(),
            source,
        })?;
        Ok(index)
    })
}

/// The tar stream of a layer blob.
pub(super) fn open_layer(blob: &Blob) -> Result<decompress::ArchiveReader<'static>, RunError> {
    let file = fs_err::File::open(&blob.path).map_err(|source| RunError::OpenLayer {
        path: blob.path.clone(),
        source,
    })?;
    decompress::open_archive(BufReader::new(file), &blob.path.to_string_lossy()).map_err(|source| {
        RunError::Decompress {
            path: blob.path.clone(),
            source,
        }
    })
}

/// A pipe reader that reads to the end when dropped, so the writer never blocks on a full pipe
/// after the extractor stopped early.
struct DrainOnDrop(std::fs::File);

impl Read for DrainOnDrop {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let _ = std::io::copy(&mut self.0, &mut std::io::sink());
    }
}

/// The step's whole environment: fixed values, then the step's own `env` on top.
fn environment(step_env: &BTreeMap<String, String>, uid: u32, epoch: i64) -> Vec<(String, String)> {
    let home = if uid == 0 { "/root" } else { "/" };
    let mut env: BTreeMap<String, String> = [
        ("PATH", DEFAULT_PATH),
        ("HOME", home),
        ("TZ", "UTC"),
        ("LANG", "C.UTF-8"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.insert("SOURCE_DATE_EPOCH".into(), epoch.to_string());
    env.extend(step_env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.into_iter().collect()
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Turns chunks of output into whole lines for the observer.
struct LineSplitter<'a> {
    observer: &'a dyn BuildObserver,
    pending: [Vec<u8>; 2],
}

impl<'a> LineSplitter<'a> {
    fn new(observer: &'a dyn BuildObserver) -> Self {
        Self {
            observer,
            pending: [Vec::new(), Vec::new()],
        }
    }

    fn push(&mut self, stream: Stream, mut bytes: &[u8]) {
        let (i, which) = match stream {
            Stream::Stdout => (0, OutputStream::Stdout),
            Stream::Stderr => (1, OutputStream::Stderr),
        };
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            self.pending[i].extend_from_slice(&bytes[..nl]);
            let line = std::mem::take(&mut self.pending[i]);
            self.emit(which, &line);
            bytes = &bytes[nl + 1..];
        }
        self.pending[i].extend_from_slice(bytes);
        if self.pending[i].len() >= MAX_LINE {
            let line = std::mem::take(&mut self.pending[i]);
            self.emit(which, &line);
        }
    }

    fn flush(&mut self) {
        for (i, which) in [(0, OutputStream::Stdout), (1, OutputStream::Stderr)] {
            if !self.pending[i].is_empty() {
                let line = std::mem::take(&mut self.pending[i]);
                self.emit(which, &line);
            }
        }
    }

    fn emit(&self, stream: OutputStream, line: &[u8]) {
        self.observer.event(BuildEvent::StepOutput { stream, line });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_xattr_matches_the_sandbox() {
        assert_eq!(
            crate::layer::upper::OPAQUE_XATTR,
            kiln_sandbox::OPAQUE_XATTR
        );
    }

    #[test]
    fn environment_is_fixed_then_the_steps() {
        let step: BTreeMap<String, String> = [
            ("PATH".to_string(), "/x".to_string()),
            ("A".to_string(), "b".to_string()),
        ]
        .into();
        let env = environment(&step, 0, 42);
        let keys: Vec<_> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            keys,
            [
                "A=b",
                "HOME=/root",
                "LANG=C.UTF-8",
                "PATH=/x",
                "SOURCE_DATE_EPOCH=42",
                "TZ=UTC"
            ]
        );
        let env = environment(&BTreeMap::new(), 1000, 0);
        assert!(env.contains(&("HOME".into(), "/".into())));
        assert!(env.contains(&("PATH".into(), DEFAULT_PATH.into())));
    }

    struct Collect(std::sync::Mutex<Vec<(bool, String)>>);
    impl BuildObserver for Collect {
        fn event(&self, event: BuildEvent<'_>) {
            if let BuildEvent::StepOutput { stream, line } = event {
                self.0.lock().unwrap().push((
                    stream == OutputStream::Stderr,
                    String::from_utf8_lossy(line).into_owned(),
                ));
            }
        }
    }

    #[test]
    fn output_is_split_into_lines() {
        let obs = Collect(Default::default());
        let mut s = LineSplitter::new(&obs);
        s.push(Stream::Stdout, b"a\nb");
        s.push(Stream::Stderr, b"err\n");
        s.push(Stream::Stdout, b"c\n\nd");
        s.flush();
        let got = obs.0.lock().unwrap().clone();
        let want: Vec<(bool, String)> = [
            (false, "a"),
            (true, "err"),
            (false, "bc"),
            (false, ""),
            (false, "d"),
        ]
        .iter()
        .map(|(e, l)| (*e, l.to_string()))
        .collect();
        assert_eq!(got, want);
    }
}
