//! The parent side: prepare everything, clone the sandbox's init, write its id maps, then
//! supervise it (output, time limit, result).
//!
//! Design choice: fork without exec. The init is a raw `clone` of the calling process with
//! all namespace flags at once, so it is PID 1 of its pid namespace from its first
//! instruction and no helper binary has to be found or trusted. The price is that the child
//! runs in a copy of a possibly multithreaded process, so everything it touches (the plan's C
//! strings, argv/envp arrays, candidate program paths, descriptors) is built here, before the
//! clone; see `child.rs` and `syscall/mod.rs` for the rules the child follows.

use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::child::{self, Record, Stage, StepProcess};
use crate::error::{Result, SandboxError};
use crate::fds::{
    drain, open_file, open_path, pipe, pollfd, read_available, set_nonblocking, stream_pipe,
    write_byte, Tail,
};
use crate::idmap::IdMap;
use crate::limits::cgroup::{self, StepCgroups};
use crate::limits::upper::{written_bytes, ScanClock};
use crate::limits::{CgroupSupport, LimitPlan, Mechanism};
use crate::plan::{OpKind, Plan, PlanFds};
use crate::spec::{Mount, SandboxSpec, SpecError, Stdio, DEFAULT_PATH};
use crate::syscall::linux::Linux;

/// How the step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }

    fn from_wait(status: i32) -> ExitStatus {
        if libc::WIFSIGNALED(status) {
            ExitStatus::Signal(libc::WTERMSIG(status))
        } else {
            ExitStatus::Code(libc::WEXITSTATUS(status))
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(code) => write!(f, "exit status {code}"),
            ExitStatus::Signal(signal) => write!(f, "signal {signal}"),
        }
    }
}

/// Which stream a chunk of piped output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A step that ran to completion with exit status 0.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The last `tail_limit` bytes of stdout, when piped.
    pub stdout_tail: Vec<u8>,
    /// The last `tail_limit` bytes of stderr, when piped.
    pub stderr_tail: Vec<u8>,
    /// The mapping used: translate the owners found in the upper directory with it.
    pub id_map: IdMap,
    pub elapsed: Duration,
}

/// Runs the step described by `spec`; piped output is only kept as tails.
pub fn run(spec: &SandboxSpec) -> Result<Outcome> {
    run_with_output(spec, &mut |_, _| {})
}

/// Runs the step, handing every chunk of piped output to `on_output` as it arrives.
pub fn run_with_output(
    spec: &SandboxSpec,
    on_output: &mut dyn FnMut(Stream, &[u8]),
) -> Result<Outcome> {
    spec.validate()?;
    let id_map = IdMap::resolve(spec.id_mapping)?;
    check_mapped(spec, &id_map)?;

    // Descriptors the child inherits by number (all close-on-exec).
    let lowers = spec
        .lower_dirs
        .iter()
        .map(|p| open_path(p, true))
        .collect::<Result<Vec<_>>>()?;
    let upper = open_path(&spec.upper_dir, true)?;
    let work = open_path(&spec.work_dir, true)?;
    let mut binds = Vec::new();
    let mut bind_fds = Vec::new();
    for mount in &spec.mounts {
        match mount {
            Mount::Bind { source, .. } => {
                let is_dir = fs_err::metadata(source)
                    .map_err(|e| SpecError::BadPath {
                        path: source.clone(),
                        source: e,
                    })?
                    .is_dir();
                let fd = open_path(source, is_dir)?;
                binds.push(Some((fd.as_raw_fd(), is_dir)));
                bind_fds.push(fd);
            }
            Mount::Tmpfs { .. } => binds.push(None),
        }
    }
    let dev_null = open_file(Path::new("/dev/null"), libc::O_RDWR)?;
    let skel_placeholder = open_file(Path::new("/dev/null"), libc::O_RDONLY)?;

    let fds = PlanFds {
        skel: skel_placeholder.as_raw_fd(),
        lowers: lowers.iter().map(AsRawFd::as_raw_fd).collect(),
        upper: upper.as_raw_fd(),
        work: work.as_raw_fd(),
        binds,
    };
    let devpts_gid = id_map.gid_to_host(5).map(|_| 5);
    let plan = Plan::build(spec, &fds, devpts_gid)?;

    // Cgroups where kiln may make them, rlimits for the rest.
    let mut support = if spec.limits.pids_max.is_some() || spec.limits.memory_max.is_some() {
        cgroup::probe()
    } else {
        CgroupSupport::default()
    };
    let cgroups = StepCgroups::create(&mut support);
    let limits = LimitPlan::new(&spec.limits, &support);
    cgroups
        .configure(&limits)
        .map_err(|e| host("configure the step's cgroup", e))?;

    let (sync_r, sync_w) = pipe()?;
    let (status_r, status_w) = pipe()?;
    let stdout_pipe = stream_pipe(spec.stdout)?;
    let stderr_pipe = stream_pipe(spec.stderr)?;
    let child_end = |stdio: Stdio, pipe: &Option<(OwnedFd, OwnedFd)>| match (stdio, pipe) {
        (_, Some((_, w))) => Some(w.as_raw_fd()),
        (Stdio::Null, _) => Some(dev_null.as_raw_fd()),
        _ => None,
    };
    let mut step = StepProcess::new(
        sync_r.as_raw_fd(),
        status_w.as_raw_fd(),
        dev_null.as_raw_fd(),
        child_end(spec.stdout, &stdout_pipe),
        child_end(spec.stderr, &stderr_pipe),
        spec.uid,
        spec.gid,
        id_map.allows_setgroups(),
        cstring(&spec.cwd, "cwd")?,
        program_candidates(spec)?,
        spec.argv
            .iter()
            .map(|a| cstring(a, "argv"))
            .collect::<Result<_>>()?,
        spec.env
            .iter()
            .map(|(k, v)| cstring(&format!("{k}={v}"), "env"))
            .collect::<Result<_>>()?,
    );
    step.rlimits = limits.rlimits.clone();

    let start = Instant::now();
    let (pid, pidfd) = clone_init(&plan, &step)?;
    let mut guard = ChildGuard { pid, reaped: false };
    drop((sync_r, status_w, dev_null, skel_placeholder));
    let stdout_r = stdout_pipe.map(|(r, _)| r);
    let stderr_r = stderr_pipe.map(|(r, _)| r);

    id_map.apply_to(&pid.to_string())?;
    cgroups
        .attach(pid)
        .map_err(|e| host("move the sandbox into its cgroup", e))?;
    write_byte(&sync_w)?;
    drop(sync_w);
    // The child holds its own references now.
    drop((lowers, upper, work, bind_fds));

    for fd in [&stdout_r, &stderr_r].into_iter().flatten() {
        set_nonblocking(fd)?;
    }
    set_nonblocking(&status_r)?;

    let mut output = Output {
        readers: [stdout_r, stderr_r],
        tails: [Tail::new(spec.tail_limit), Tail::new(spec.tail_limit)],
        on_output,
    };
    let upper_max = limits.upper_max.map(|max| (spec.upper_dir.as_path(), max));
    let ended = supervise(&pidfd, start + spec.timeout, upper_max, &mut output)?;
    let timed_out = ended == Ended::TimedOut;
    if ended != Ended::Exited {
        // Killing the init kills the whole pid namespace.
        // SAFETY: pid is our unreaped child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let wait_status = guard.wait()?;
    // Every process of the sandbox is gone: what is in the pipes is all there will be.
    output.drain([libc::POLLIN, libc::POLLIN])?;
    let records = Record::parse_all(&read_available(&status_r)?);
    let [stdout_tail, stderr_tail] = output.tails.map(Tail::into_vec);
    if timed_out {
        return Err(SandboxError::TimedOut {
            argv: spec.argv.clone(),
            timeout: spec.timeout,
            stderr_tail,
        });
    }
    let stopped = |limit| SandboxError::LimitExceeded {
        argv: spec.argv.clone(),
        limit,
        stderr_tail: stderr_tail.clone(),
    };
    let by = |mechanism| {
        limits
            .enforced
            .iter()
            .find(|e| e.mechanism == mechanism)
            .copied()
    };
    // Once more now that nothing writes: a step may have ended between two scans.
    let usage = limits
        .upper_max
        .map(|max| (max, written_bytes(&spec.upper_dir, max)));
    if ended == Ended::WriteLimit || usage.is_some_and(|(max, u)| u.total > max) {
        return Err(stopped(
            by(Mechanism::UpperScan).expect("a write limit was planned"),
        ));
    }
    let result = step_result(spec, &plan, &records)?;
    // A step that failed, or an init that died without reporting (the cgroup's OOM killer
    // may pick the init, which is in the step's cgroup too): a limit hit says why.
    if result.is_none_or(|s| !s.success()) {
        // RLIMIT_FSIZE stops a file at exactly the limit (its writer gets SIGXFSZ or EFBIG).
        let hit = match cgroups.hit() {
            Some(resource) => limits.enforced(resource),
            None if usage.is_some_and(|(max, u)| u.largest >= max) => {
                by(Mechanism::Rlimit("RLIMIT_FSIZE"))
            }
            None => None,
        };
        if let Some(limit) = hit {
            return Err(stopped(limit));
        }
    }
    match result {
        Some(status) if status.success() => Ok(Outcome {
            stdout_tail,
            stderr_tail,
            id_map,
            elapsed: start.elapsed(),
        }),
        Some(status) => Err(SandboxError::StepFailed {
            argv: spec.argv.clone(),
            status,
            id_mapping: id_map.mapping(),
            rlimits: limits.by_rlimit(),
            stderr_tail,
        }),
        None => Err(SandboxError::InitDied {
            status: ExitStatus::from_wait(wait_status),
        }),
    }
}

/// The step's piped output: the readers still open and the tails kept so far.
struct Output<'a> {
    readers: [Option<OwnedFd>; 2],
    tails: [Tail; 2],
    on_output: &'a mut dyn FnMut(Stream, &[u8]),
}

impl Output<'_> {
    fn raw(&self, index: usize) -> RawFd {
        self.readers[index].as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    fn drain(&mut self, revents: [libc::c_short; 2]) -> Result<()> {
        for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            let (reader, tail) = (&mut self.readers[i], &mut self.tails[i]);
            drain(reader, stream, tail, self.on_output, revents[i])?;
        }
        Ok(())
    }
}

/// How supervision ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Exited,
    TimedOut,
    /// The upper directory grew past the write limit.
    WriteLimit,
}

/// Forwards output until the init exits, the deadline passes, or the upper directory (when
/// `upper_max` is given) holds more than its limit.
fn supervise(
    pidfd: &OwnedFd,
    deadline: Instant,
    upper_max: Option<(&Path, u64)>,
    output: &mut Output<'_>,
) -> Result<Ended> {
    let mut clock = ScanClock::new(Instant::now());
    loop {
        let now = Instant::now();
        let remaining = deadline.saturating_duration_since(now);
        if remaining.is_zero() {
            return Ok(Ended::TimedOut);
        }
        let mut wake = remaining;
        if let Some((upper, max)) = upper_max {
            if now >= clock.next {
                if written_bytes(upper, max).total > max {
                    return Ok(Ended::WriteLimit);
                }
                clock.scanned(now, Instant::now());
            }
            wake = wake.min(clock.next.saturating_duration_since(Instant::now()));
        }
        let mut pfds = [
            pollfd(pidfd.as_raw_fd()),
            pollfd(output.raw(0)),
            pollfd(output.raw(1)),
        ];
        let ms = wake.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: pfds is a valid array of 3 pollfd.
        let rc = unsafe { libc::poll(pfds.as_mut_ptr(), 3, ms) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(host("poll the sandbox", e));
        }
        output.drain([pfds[1].revents, pfds[2].revents])?;
        if pfds[0].revents != 0 {
            return Ok(Ended::Exited);
        }
    }
}

/// Reads the child's records: a setup failure, or the step's exit status (`None`: the init
/// died without reporting one).
fn step_result(spec: &SandboxSpec, plan: &Plan, records: &[Record]) -> Result<Option<ExitStatus>> {
    let mut exited = None;
    for record in records {
        let source = std::io::Error::from_raw_os_error(record.value);
        match record.kind {
            Record::PLAN => {
                let op = plan.ops.get(record.index as usize);
                return Err(match op {
                    Some(op) if op.kind() == OpKind::Overlay => SandboxError::Overlay {
                        upper_dir: spec.upper_dir.clone(),
                        source,
                    },
                    _ => SandboxError::Setup {
                        operation: op
                            .map_or_else(|| "run the mount plan".to_owned(), |o| o.to_string()),
                        source,
                    },
                });
            }
            Record::STAGE => {
                let stage = Stage::from_u32(record.index);
                let operation = match stage {
                    Some(stage @ (Stage::Chdir | Stage::CwdOutsideRoot)) => {
                        format!("{} {}", stage.describe(), spec.cwd)
                    }
                    Some(stage) => stage.describe().to_owned(),
                    None => "set up the step".to_owned(),
                };
                return Err(SandboxError::Setup { operation, source });
            }
            Record::EXEC => {
                return Err(SandboxError::Exec {
                    program: spec.argv[0].clone(),
                    source,
                })
            }
            Record::EXITED => exited = Some(ExitStatus::from_wait(record.value)),
            _ => {}
        }
    }
    Ok(exited)
}

fn check_mapped(spec: &SandboxSpec, map: &IdMap) -> Result<(), SpecError> {
    let hint = "run kiln as root, or grant the user a range of 65536 ids in /etc/subuid and \
                /etc/subgid";
    let unmapped = |kind, id| SpecError::UnmappedId {
        kind,
        id,
        mapping: map.mapping().to_string(),
        hint,
    };
    if map.uid_to_host(spec.uid).is_none() {
        return Err(unmapped("uid", spec.uid));
    }
    if map.gid_to_host(spec.gid).is_none() {
        return Err(unmapped("gid", spec.gid));
    }
    Ok(())
}

/// argv[0] itself when it has a `/`, else every `PATH` entry joined with it (as execvp).
fn program_candidates(spec: &SandboxSpec) -> Result<Vec<CString>> {
    let argv0 = &spec.argv[0];
    if argv0.contains('/') {
        return Ok(vec![cstring(argv0, "argv")?]);
    }
    let path = spec
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
    path.split(':')
        .map(|dir| {
            let dir = if dir.is_empty() { "." } else { dir };
            cstring(&format!("{}/{argv0}", dir.trim_end_matches('/')), "argv")
        })
        .collect()
}

fn clone_init(plan: &Plan, step: &StepProcess) -> Result<(libc::pid_t, OwnedFd)> {
    let flags = (libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWCGROUP
        | libc::CLONE_PIDFD) as libc::c_ulong
        | libc::SIGCHLD as libc::c_ulong;
    let mut pidfd: libc::c_int = -1;
    // SAFETY: a fork-like clone (no CLONE_VM, no new stack). The child only runs
    // `init_main`, which does not allocate or return (see the module docs).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            0usize,
            &mut pidfd as *mut libc::c_int,
            0usize,
            0usize,
        )
    };
    if rc < 0 {
        return Err(SandboxError::Namespaces {
            source: std::io::Error::last_os_error(),
        });
    }
    if rc == 0 {
        child::init_main(&Linux, plan, step);
    }
    // SAFETY: CLONE_PIDFD stored a new descriptor that we own.
    Ok((rc as libc::pid_t, unsafe { OwnedFd::from_raw_fd(pidfd) }))
}

/// Kills and reaps the init if supervision ends early (error or panic).
struct ChildGuard {
    pid: libc::pid_t,
    reaped: bool,
}

impl ChildGuard {
    fn wait(&mut self) -> Result<i32> {
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child.
            let rc = unsafe { libc::waitpid(self.pid, &mut status, libc::__WALL) };
            if rc >= 0 {
                self.reaped = true;
                return Ok(status);
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(host("wait for the sandbox", e));
            }
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: pid is our unreaped child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.wait();
        }
    }
}

fn host(action: &'static str, source: std::io::Error) -> SandboxError {
    SandboxError::Host { action, source }
}

fn cstring(s: &str, field: &'static str) -> Result<CString> {
    CString::new(s).map_err(|_| {
        SandboxError::Spec(SpecError::Nul {
            field,
            value: s.to_owned(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_candidates_follow_path() {
        let mut spec = SandboxSpec::new(vec![], "/u", "/w", vec!["sh".into()]);
        spec.env = vec![("PATH".into(), "/bin:/usr/bin/:".into())];
        let got: Vec<_> = program_candidates(&spec)
            .unwrap()
            .into_iter()
            .map(|c| c.into_string().unwrap())
            .collect();
        assert_eq!(got, ["/bin/sh", "/usr/bin/sh", "./sh"]);
        spec.argv[0] = "./x".into();
        assert_eq!(program_candidates(&spec).unwrap().len(), 1);
        spec.env.clear();
        spec.argv[0] = "ls".into();
        assert_eq!(program_candidates(&spec).unwrap().len(), 6);
    }

    #[test]
    fn exit_status_from_wait() {
        assert_eq!(ExitStatus::from_wait(3 << 8), ExitStatus::Code(3));
        assert_eq!(ExitStatus::from_wait(libc::SIGKILL), ExitStatus::Signal(9));
        assert!(ExitStatus::from_wait(0).success());
    }
}
