//! Results, failures, time limits and the end of every process (SECURITY.md cases 28, 30).

use std::process::Command;
use std::time::{Duration, Instant};

use kiln_sandbox::{ExitStatus, SandboxError, Stdio};

use crate::common::{host_processes_with, Ctx};

#[test]
fn failing_step_reports_status_and_stderr_tail() {
    let ctx = Ctx::new();
    let mut spec = ctx.spec("echo progress; echo first >&2; echo 'it broke' >&2; exit 3");
    spec.tail_limit = 9;
    let err = kiln_sandbox::run(&spec).unwrap_err();
    match &err {
        SandboxError::StepFailed {
            status,
            stderr_tail,
            ..
        } => {
            assert_eq!(*status, ExitStatus::Code(3));
            assert_eq!(stderr_tail, b"it broke\n");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("exit status 3"), "{err}");

    let err = ctx.run("kill -9 $$").unwrap_err();
    assert!(
        matches!(
            err,
            SandboxError::StepFailed {
                status: ExitStatus::Signal(9),
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn missing_program_is_an_exec_error() {
    let ctx = Ctx::new();
    let mut spec = ctx.spec("");
    spec.argv = vec!["/bin/does-not-exist".into()];
    let err = kiln_sandbox::run(&spec).unwrap_err();
    match err {
        SandboxError::Exec { program, source } => {
            assert_eq!(program, "/bin/does-not-exist");
            assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn null_and_inherited_streams() {
    let ctx = Ctx::new();
    let mut spec = ctx.spec("echo out; echo err >&2");
    spec.stdout = Stdio::Null;
    spec.stderr = Stdio::Null;
    let outcome = kiln_sandbox::run(&spec).unwrap();
    assert!(outcome.stdout_tail.is_empty() && outcome.stderr_tail.is_empty());
    let mut spec = ctx.spec("true");
    spec.stdout = Stdio::Inherit;
    spec.stderr = Stdio::Inherit;
    kiln_sandbox::run(&spec).unwrap();
}

// Case 28: leftover background processes are gone when the step ends.
#[test]
fn leftover_processes_are_killed_when_the_step_ends() {
    let ctx = Ctx::new();
    let start = Instant::now();
    let sleep = unique_sleep(0);
    ctx.stdout(&format!(
        "setsid {sleep} & setsid sh -c 'sleep 2; echo alive > /survivor' & echo started"
    ));
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(host_processes_with(&sleep), Vec::<String>::new());
    std::thread::sleep(Duration::from_secs(3));
    assert!(!ctx.upper.join("survivor").exists());
}

// Case 30: a step past its time limit is killed, with a clear error.
#[test]
fn step_past_its_time_limit_is_killed() {
    let ctx = Ctx::new();
    let (first, second) = (unique_sleep(1), unique_sleep(2));
    let mut spec = ctx.spec(&format!("echo waiting >&2; setsid {first} & {second}"));
    spec.timeout = Duration::from_secs(1);
    let start = Instant::now();
    let err = kiln_sandbox::run(&spec).unwrap_err();
    let elapsed = start.elapsed();
    match &err {
        SandboxError::TimedOut {
            timeout,
            stderr_tail,
            ..
        } => {
            assert_eq!(*timeout, Duration::from_secs(1));
            assert_eq!(stderr_tail, b"waiting\n");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("time limit of 1s"), "{err}");
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    for marker in [first, second] {
        assert_eq!(host_processes_with(&marker), Vec::<String>::new());
    }
}

/// A `sleep` command line no other test (or test run) uses: `sleep 1<n><pid>`.
fn unique_sleep(n: u32) -> String {
    unique_sleep_of(n, std::process::id())
}

fn unique_sleep_of(n: u32, pid: u32) -> String {
    format!("sleep 1{n}{pid:07}")
}

const HELPER_ENV: &str = "KILN_SANDBOX_TEST_PARENT_DEATH";

/// Not a test on its own: the body of `parent_death_kills_the_sandbox`'s child process.
#[test]
fn helper_parent_death() {
    let Ok(dir) = std::env::var(HELPER_ENV) else {
        return;
    };
    // Everything in the parent test's directory: this process is killed, its temp dirs would
    // leak.
    let dir = std::path::PathBuf::from(dir);
    let mut spec = kiln_sandbox::SandboxSpec::new(
        vec![dir.join("lower")],
        dir.join("upper"),
        dir.join("work"),
        vec![
            "/bin/sh".into(),
            "-c".into(),
            format!(
                "touch /data/started; exec {}",
                unique_sleep_of(3, std::os::unix::process::parent_id())
            ),
        ],
    );
    spec.id_mapping = crate::common::requested_mapping();
    let _ = kiln_sandbox::run(&spec);
}

#[test]
fn parent_death_kills_the_sandbox() {
    let ctx = Ctx::new();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lifecycle::helper_parent_death",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, ctx.path())
        .spawn()
        .unwrap();
    let started = ctx.upper.join("data/started");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !started.exists() {
        assert!(Instant::now() < deadline, "the helper's step never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sleep = unique_sleep(3);
    assert_eq!(host_processes_with(&sleep).len(), 1);
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !host_processes_with(&sleep).is_empty() {
        assert!(Instant::now() < deadline, "the sandbox outlived its parent");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// The test harness (like kiln) ignores SIGPIPE; the step must start with default signals.
#[test]
fn step_starts_with_default_signal_dispositions() {
    let ctx = Ctx::new();
    let mut spec = ctx.spec("");
    spec.argv = ["/bin/grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]
        .map(String::from)
        .to_vec();
    let out = kiln_sandbox::run(&spec).unwrap();
    assert_eq!(
        String::from_utf8(out.stdout_tail).unwrap(),
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
    );
    let out = ctx.run("yes | head -n 1").unwrap();
    assert_eq!(
        (&out.stdout_tail[..], &out.stderr_tail[..]),
        (&b"y\n"[..], &b""[..])
    );
}
