//! The sandbox side: the init process (PID 1 of the new pid namespace) and the step.
//!
//! Process model: the parent clones the init directly into fresh user, mount, pid, net, uts,
//! ipc and cgroup namespaces. The init waits until the parent has written its id maps, runs
//! the mount plan, pins down its own process state, forks the step, then only reaps: when the
//! step exits it SIGKILLs every remaining process of the namespace, reaps them all, reports
//! the step's wait status and exits. Its exit tears down whatever is left (the kernel kills a
//! pid namespace with its init), so once the parent sees the init gone, no process of the step
//! survives (SECURITY.md case 28).
//!
//! This code runs after a raw clone of a possibly multithreaded parent: it never allocates
//! and never panics; everything it needs was prepared by the parent (see [`StepProcess`]).
//! Errors travel to the parent as fixed-size [`Record`]s on a close-on-exec pipe.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

use crate::plan::Plan;
use crate::syscall::Syscall;

/// The descriptor the status pipe is moved to in the child (close-on-exec).
pub(crate) const STATUS_FD: RawFd = 3;

/// Capabilities the step keeps, by number: Docker's default set minus `NET_RAW` (there is no
/// network). Notably absent: `SYS_ADMIN` (so a step cannot unmount the read-only and masked
/// parts of /proc) and `SYS_PTRACE`.
pub(crate) const KEPT_CAPS: &[u32] = &[
    0,  // CHOWN
    1,  // DAC_OVERRIDE
    3,  // FOWNER
    4,  // FSETID
    5,  // KILL
    6,  // SETGID
    7,  // SETUID
    8,  // SETPCAP
    10, // NET_BIND_SERVICE
    18, // SYS_CHROOT
    27, // MKNOD
    29, // AUDIT_WRITE
    31, // SETFCAP
];

pub(crate) fn kept_caps_mask() -> u64 {
    KEPT_CAPS.iter().fold(0, |mask, cap| mask | (1u64 << cap))
}

/// Where the child was when something failed (`Record::index` of a `STAGE` record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Stage {
    Signals = 0,
    ParentDeathSignal,
    Stdio,
    CloseFds,
    NoNewPrivs,
    SessionKeyring,
    NotDumpable,
    Fork,
    Setsid,
    BoundingCaps,
    Groups,
    Caps,
    Ids,
    Chdir,
    CwdOutsideRoot,
    Wait,
    Rlimits,
}

impl Stage {
    pub(crate) fn from_u32(n: u32) -> Option<Stage> {
        use Stage::*;
        [
            Signals,
            ParentDeathSignal,
            Stdio,
            CloseFds,
            NoNewPrivs,
            SessionKeyring,
            NotDumpable,
            Fork,
            Setsid,
            BoundingCaps,
            Groups,
            Caps,
            Ids,
            Chdir,
            CwdOutsideRoot,
            Wait,
            Rlimits,
        ]
        .into_iter()
        .find(|s| *s as u32 == n)
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Stage::Signals => "reset signal handlers",
            Stage::ParentDeathSignal => "set the parent death signal",
            Stage::Stdio => "set up the step's standard streams",
            Stage::CloseFds => "close inherited file descriptors",
            Stage::NoNewPrivs => "set no_new_privs",
            Stage::SessionKeyring => "create a new session keyring",
            Stage::NotDumpable => "make the init process non-dumpable",
            Stage::Fork => "fork the step",
            Stage::Setsid => "start a new session for the step",
            Stage::BoundingCaps => "drop capabilities from the bounding set",
            Stage::Groups => "clear supplementary groups",
            Stage::Caps => "set the step's capabilities",
            Stage::Ids => "switch to the step's uid and gid",
            Stage::Chdir => "change to the working directory",
            Stage::CwdOutsideRoot => "check that the working directory is inside the root",
            Stage::Wait => "wait for the step",
            Stage::Rlimits => "set the step's resource limits",
        }
    }
}

/// One message from the child: 12 bytes, native endianness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    pub kind: u32,
    pub index: u32,
    pub value: i32,
}

impl Record {
    /// A plan operation failed: `index` is the op, `value` the errno.
    pub const PLAN: u32 = 1;
    /// A process setup stage failed: `index` is the [`Stage`], `value` the errno.
    pub const STAGE: u32 = 2;
    /// execve failed for every candidate program: `value` is the errno.
    pub const EXEC: u32 = 3;
    /// The step ended: `value` is its wait status.
    pub const EXITED: u32 = 4;
    pub const SIZE: usize = 12;

    pub fn to_bytes(self) -> [u8; Record::SIZE] {
        let mut out = [0u8; Record::SIZE];
        out[0..4].copy_from_slice(&self.kind.to_ne_bytes());
        out[4..8].copy_from_slice(&self.index.to_ne_bytes());
        out[8..12].copy_from_slice(&self.value.to_ne_bytes());
        out
    }

    pub fn parse_all(bytes: &[u8]) -> Vec<Record> {
        bytes
            .chunks_exact(Record::SIZE)
            .map(|b| Record {
                kind: u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
                index: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
                value: i32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
            })
            .collect()
    }
}

/// Everything the child needs after the mount plan, prepared by the parent.
pub(crate) struct StepProcess {
    pub sync_fd: RawFd,
    pub status_fd: RawFd,
    pub stdin: RawFd,
    pub stdout: Option<RawFd>,
    pub stderr: Option<RawFd>,
    pub uid: u32,
    pub gid: u32,
    pub setgroups: bool,
    /// `setrlimit` calls made just before exec: (resource, soft = hard value).
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
    pub cwd: CString,
    /// Candidate paths for argv[0], tried in order (PATH search done in advance).
    pub programs: Vec<CString>,
    // Owners of the pointer arrays below.
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
}

impl StepProcess {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        sync_fd: RawFd,
        status_fd: RawFd,
        stdin: RawFd,
        stdout: Option<RawFd>,
        stderr: Option<RawFd>,
        uid: u32,
        gid: u32,
        setgroups: bool,
        cwd: CString,
        programs: Vec<CString>,
        argv: Vec<CString>,
        envp: Vec<CString>,
    ) -> StepProcess {
        let ptrs = |v: &[CString]| {
            v.iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        StepProcess {
            sync_fd,
            status_fd,
            stdin,
            stdout,
            stderr,
            uid,
            gid,
            setgroups,
            rlimits: Vec::new(),
            cwd,
            programs,
            argv_ptrs: ptrs(&argv),
            envp_ptrs: ptrs(&envp),
            _argv: argv,
            _envp: envp,
        }
    }
}

fn report<S: Syscall + ?Sized>(sys: &S, fd: RawFd, kind: u32, index: u32, value: i32) {
    sys.write_all(fd, &Record { kind, index, value }.to_bytes());
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// Runs a stage; on failure reports it and exits the current process.
fn stage<S: Syscall + ?Sized>(sys: &S, fd: RawFd, which: Stage, result: io::Result<()>) {
    if let Err(e) = result {
        report(sys, fd, Record::STAGE, which as u32, errno(&e));
        sys.exit(1);
    }
}

/// The init process. Never returns.
pub(crate) fn init_main<S: Syscall + ?Sized>(sys: &S, plan: &Plan, step: &StepProcess) -> ! {
    let status = step.status_fd;
    stage(sys, status, Stage::Signals, sys.reset_signals());
    // The parent's death kills the sandbox: init's death takes the whole pid namespace.
    stage(
        sys,
        status,
        Stage::ParentDeathSignal,
        sys.parent_death_signal(libc::SIGKILL),
    );
    // Also covers a parent that died before the prctl: the pipe then reads EOF.
    if !sys.wait_for_parent(step.sync_fd) {
        sys.exit(1);
    }
    sys.umask(0);
    if let Err((index, e)) = plan.execute(sys) {
        report(sys, status, Record::PLAN, index as u32, errno(&e));
        sys.exit(1);
    }

    let stdio = (|| {
        sys.dup_onto(step.stdin, 0, false)?;
        if let Some(fd) = step.stdout {
            sys.dup_onto(fd, 1, false)?;
        }
        if let Some(fd) = step.stderr {
            sys.dup_onto(fd, 2, false)?;
        }
        sys.dup_onto(status, STATUS_FD, true)
    })();
    stage(sys, status, Stage::Stdio, stdio);
    let status = STATUS_FD;
    // Ref: CVE-2024-21626 (runc leaked a host directory descriptor into the container): the
    // step inherits stdio and the close-on-exec status pipe, nothing else.
    stage(sys, status, Stage::CloseFds, sys.close_from(STATUS_FD + 1));
    stage(sys, status, Stage::NoNewPrivs, sys.no_new_privs());
    // Keys in kiln's session keyring (a login's credentials, say) stay out of reach; with an
    // identity mapping the step's root would otherwise possess them. runc does the same.
    stage(
        sys,
        status,
        Stage::SessionKeyring,
        sys.new_session_keyring(),
    );
    // Ref: CVE-2019-5736 (runc binary overwritten through /proc/self/exe): this process is
    // a fork of kiln, so /proc/1/exe is kiln's binary. A non-dumpable process's /proc entries
    // (exe, mem, fd, root) and ptrace are reserved to CAP_SYS_PTRACE in the user namespace
    // kiln was started in, which the step never has.
    stage(sys, status, Stage::NotDumpable, sys.set_dumpable(false));
    sys.umask(0o022);

    let pid = match sys.fork() {
        Ok(0) => step_main(sys, step),
        Ok(pid) => pid,
        Err(e) => {
            report(sys, status, Record::STAGE, Stage::Fork as u32, errno(&e));
            sys.exit(1);
        }
    };

    let mut step_status = None;
    loop {
        match sys.wait_any() {
            Ok(Some((reaped, wait_status))) => {
                if reaped == pid {
                    step_status = Some(wait_status);
                }
                if step_status.is_some() {
                    // Every reap may have raced with a fork: kill again until none is left.
                    sys.kill_all();
                }
            }
            Ok(None) => break,
            Err(e) => {
                report(sys, status, Record::STAGE, Stage::Wait as u32, errno(&e));
                sys.exit(1);
            }
        }
    }
    if let Some(wait_status) = step_status {
        report(sys, status, Record::EXITED, 0, wait_status);
    }
    sys.exit(0)
}

/// The step, between fork and exec. Never returns.
fn step_main<S: Syscall + ?Sized>(sys: &S, step: &StepProcess) -> ! {
    let status = STATUS_FD;
    // Ref: CVE-2017-5226 (bubblewrap): with an inherited terminal on stdio, TIOCSTI could
    // type commands into the user's shell; a new session has no controlling terminal.
    stage(sys, status, Stage::Setsid, sys.setsid());
    let keep = kept_caps_mask();
    stage(
        sys,
        status,
        Stage::BoundingCaps,
        sys.drop_bounding_caps(keep),
    );
    if step.setgroups {
        stage(sys, status, Stage::Groups, sys.clear_groups());
    }
    stage(sys, status, Stage::Caps, sys.set_caps(keep));
    stage(sys, status, Stage::Ids, sys.set_ids(step.uid, step.gid));
    // Last, so that nothing of the setup counts against them (RLIMIT_NPROC is checked at
    // fork, per user of the step's user namespace).
    for &(resource, value) in &step.rlimits {
        stage(sys, status, Stage::Rlimits, sys.set_rlimit(resource, value));
    }
    stage(sys, status, Stage::Chdir, sys.chdir(&step.cwd));
    match sys.cwd_reachable() {
        Ok(true) => {}
        Ok(false) => {
            report(
                sys,
                status,
                Record::STAGE,
                Stage::CwdOutsideRoot as u32,
                libc::EPERM,
            );
            sys.exit(1);
        }
        Err(e) => {
            report(
                sys,
                status,
                Record::STAGE,
                Stage::CwdOutsideRoot as u32,
                errno(&e),
            );
            sys.exit(1);
        }
    }
    let mut first_error = libc::ENOENT;
    for program in &step.programs {
        let e = sys.execve(program, step.argv_ptrs.as_ptr(), step.envp_ptrs.as_ptr());
        let code = errno(&e);
        // As execvp(3): keep searching past missing entries, remember a real failure.
        if code != libc::ENOENT && code != libc::ENOTDIR && first_error == libc::ENOENT {
            first_error = code;
        }
    }
    report(sys, status, Record::EXEC, 0, first_error);
    sys.exit(127)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::plan::PlanFds;
    use crate::spec::SandboxSpec;
    use crate::syscall::recording::{until_exit, Recording};

    fn plan() -> Plan {
        let spec = SandboxSpec::new(vec![PathBuf::from("/l")], "/u", "/w", vec!["sh".into()]);
        let fds = PlanFds {
            skel: 20,
            lowers: vec![21],
            upper: 22,
            work: 23,
            binds: vec![],
        };
        Plan::build(&spec, &fds, None).unwrap()
    }

    fn step(setgroups: bool) -> StepProcess {
        let c = |s: &str| CString::new(s).unwrap();
        StepProcess::new(
            10,
            11,
            12,
            Some(13),
            None,
            65532,
            65532,
            setgroups,
            c("/src"),
            vec![c("/usr/bin/sh"), c("/bin/sh")],
            vec![c("sh")],
            vec![c("A=1")],
        )
    }

    fn index(calls: &[String], call: &str) -> usize {
        calls
            .iter()
            .position(|c| c == call)
            .unwrap_or_else(|| panic!("{call:?} not in {calls:#?}"))
    }

    #[test]
    fn init_prepares_itself_before_forking_the_step() {
        let rec = Recording::default();
        let calls = until_exit(&rec, || init_main(&rec, &plan(), &step(true)));
        assert_eq!(
            &calls[..3],
            ["reset-signals", "pdeathsig 9", "wait-for-parent 10"]
        );
        let pivot = index(&calls, "pivot-root /tmp/root");
        let fork = index(&calls, "fork");
        let ordered = [
            "dup 12 -> 0 cloexec=false",
            "dup 13 -> 1 cloexec=false",
            "dup 11 -> 3 cloexec=true",
            "close-from 4",
            "no-new-privs",
            "new-session-keyring",
            "dumpable false",
            "umask 22",
        ];
        let mut last = pivot;
        for call in ordered {
            let at = index(&calls, call);
            assert!(last < at && at < fork, "{call} out of order: {calls:#?}");
            last = at;
        }
        // stderr was not redirected (Stdio::Inherit).
        assert!(!calls.iter().any(|c| c.ends_with("-> 2 cloexec=false")));
        // The init then only reaps; with no child left it exits without a status record.
        assert_eq!(&calls[fork + 1..], ["wait", "exit 0"]);
    }

    #[test]
    fn init_stops_when_the_parent_is_gone() {
        let rec = Recording::failing("wait-for-parent", libc::EPIPE);
        let calls = until_exit(&rec, || init_main(&rec, &plan(), &step(true)));
        assert_eq!(calls.last().unwrap(), "exit 1");
        assert!(!calls.iter().any(|c| c.starts_with("mount")));
    }

    #[test]
    fn plan_failure_is_reported_with_its_index() {
        let rec = Recording::failing("mount overlay", libc::EPERM);
        let calls = until_exit(&rec, || init_main(&rec, &plan(), &step(true)));
        let index = plan()
            .ops
            .iter()
            .position(|op| op.kind() == crate::plan::OpKind::Overlay)
            .unwrap() as u32;
        let record = Record {
            kind: Record::PLAN,
            index,
            value: libc::EPERM,
        }
        .to_bytes();
        assert_eq!(calls[calls.len() - 2], format!("write 11 {record:?}"));
        assert_eq!(calls.last().unwrap(), "exit 1");
    }

    #[test]
    fn step_drops_privileges_then_searches_the_path() {
        let rec = Recording {
            fork_as_child: true,
            ..Recording::default()
        };
        let calls = until_exit(&rec, || init_main(&rec, &plan(), &step(true)));
        let fork = index(&calls, "fork");
        let keep = format!("{:#x}", kept_caps_mask());
        let expected = [
            "setsid".to_owned(),
            format!("bounding-caps {keep}"),
            "setgroups []".to_owned(),
            format!("caps {keep}"),
            "set-ids 65532:65532".to_owned(),
            "chdir /src".to_owned(),
            "getcwd".to_owned(),
            "execve /usr/bin/sh".to_owned(),
            "execve /bin/sh".to_owned(),
        ];
        assert_eq!(&calls[fork + 1..fork + 1 + expected.len()], expected);
        let record = Record {
            kind: Record::EXEC,
            index: 0,
            value: libc::ENOENT,
        }
        .to_bytes();
        assert_eq!(calls[calls.len() - 2], format!("write 3 {record:?}"));
        assert_eq!(calls.last().unwrap(), "exit 127");
    }

    #[test]
    fn rlimits_are_set_after_the_ids_and_a_failure_stops_the_step() {
        let rec = Recording {
            fork_as_child: true,
            ..Recording::default()
        };
        let mut s = step(true);
        s.rlimits = vec![(libc::RLIMIT_NPROC, 64), (libc::RLIMIT_FSIZE, 4096)];
        let calls = until_exit(&rec, || init_main(&rec, &plan(), &s));
        let ids = index(&calls, "set-ids 65532:65532");
        assert_eq!(
            calls[ids + 1..ids + 3],
            [
                format!("rlimit {} 64", libc::RLIMIT_NPROC),
                format!("rlimit {} 4096", libc::RLIMIT_FSIZE)
            ]
        );
        assert!(ids + 3 == index(&calls, "chdir /src"));

        let rec = Recording {
            fork_as_child: true,
            ..Recording::failing("rlimit", libc::EPERM)
        };
        let calls = until_exit(&rec, || init_main(&rec, &plan(), &s));
        let record = Record {
            kind: Record::STAGE,
            index: Stage::Rlimits as u32,
            value: libc::EPERM,
        }
        .to_bytes();
        assert_eq!(calls[calls.len() - 2], format!("write 3 {record:?}"));
        assert!(!calls.iter().any(|c| c.starts_with("execve")));
    }

    #[test]
    fn step_skips_setgroups_when_the_mapping_denies_it() {
        let rec = Recording {
            fork_as_child: true,
            ..Recording::default()
        };
        let calls = until_exit(&rec, || init_main(&rec, &plan(), &step(false)));
        assert!(!calls.iter().any(|c| c.starts_with("setgroups")));
    }

    #[test]
    fn records_round_trip() {
        let records = [
            Record {
                kind: Record::PLAN,
                index: 7,
                value: libc::EPERM,
            },
            Record {
                kind: Record::EXITED,
                index: 0,
                value: 0x0100,
            },
        ];
        let bytes: Vec<u8> = records.iter().flat_map(|r| r.to_bytes()).collect();
        assert_eq!(Record::parse_all(&bytes), records);
    }

    #[test]
    fn stages_round_trip() {
        for n in 0..=Stage::Wait as u32 {
            assert_eq!(Stage::from_u32(n).map(|s| s as u32), Some(n));
        }
        assert_eq!(Stage::from_u32(999), None);
    }

    #[test]
    fn kept_caps_exclude_sys_admin_and_ptrace() {
        let mask = kept_caps_mask();
        assert_eq!(mask & (1 << 21), 0, "CAP_SYS_ADMIN");
        assert_eq!(mask & (1 << 19), 0, "CAP_SYS_PTRACE");
        assert_eq!(mask & (1 << 13), 0, "CAP_NET_RAW");
        assert_ne!(mask & 1, 0, "CAP_CHOWN");
    }
}
