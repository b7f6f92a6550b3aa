//! Resource limits on a real kernel (issue 11): processes, memory and written bytes. As root
//! kiln makes a cgroup for the step where the host lets it (this CI host has cgroup v1 pids
//! and memory hierarchies); rootless it falls back to rlimits. Either way the step is stopped
//! and the error says by what.

use kiln_sandbox::{Limits, Mechanism, Resource, SandboxError};

use crate::common::Ctx;

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn run_limited(script: &str, limits: Limits) -> SandboxError {
    let ctx = Ctx::new();
    let mut spec = ctx.spec(script);
    spec.limits = limits;
    let started = std::time::Instant::now();
    let err = kiln_sandbox::run(&spec).expect_err("the step must be stopped");
    assert!(started.elapsed().as_secs() < 50, "stopped promptly: {err}");
    err
}

/// As root the limit is a cgroup's and the error says it was hit; rootless it is an rlimit,
/// which the failure names.
fn assert_stopped(err: &SandboxError, resource: Resource, rlimit: &str, amount: &str) {
    let text = err.to_string();
    assert!(text.contains(amount), "{text}");
    if is_root() {
        match err {
            SandboxError::LimitExceeded { limit, .. } => {
                assert_eq!(limit.resource, resource, "{text}");
                assert!(
                    matches!(limit.mechanism, Mechanism::CgroupV1 | Mechanism::CgroupV2),
                    "{text}"
                );
                assert!(
                    text.contains("was stopped at its limit of") && text.contains("(cgroup v"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
    } else {
        assert!(text.contains(&format!("{amount} ({rlimit})")), "{text}");
    }
}

#[test]
fn fork_bomb_is_stopped_at_the_process_limit() {
    let err = run_limited(
        "i=0; while [ $i -lt 2000 ]; do sleep 30 & i=$((i+1)); done; wait",
        Limits {
            pids_max: Some(32),
            ..Limits::default()
        },
    );
    assert_stopped(&err, Resource::Pids, "RLIMIT_NPROC", "32 processes");
}

#[test]
fn memory_hog_is_stopped_at_the_memory_limit() {
    let err = run_limited(
        "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}",
        Limits {
            memory_max: Some(32 << 20),
            ..Limits::default()
        },
    );
    assert_stopped(
        &err,
        Resource::Memory,
        "RLIMIT_DATA",
        "33554432 bytes of memory",
    );
}

#[test]
fn one_big_file_is_stopped_at_the_write_limit() {
    let err = run_limited(
        "head -c 50000000 /dev/zero > /big",
        Limits {
            write_max: Some(1 << 20),
            ..Limits::default()
        },
    );
    match &err {
        SandboxError::LimitExceeded { limit, .. } => {
            assert_eq!(limit.resource, Resource::Write);
            assert_eq!(limit.mechanism, Mechanism::Rlimit("RLIMIT_FSIZE"));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .contains("stopped at its limit of 1048576 written bytes (RLIMIT_FSIZE)"),
        "{err}"
    );
}

#[test]
fn many_files_are_stopped_at_the_write_limit() {
    // Each file is under the limit; together they are not. The step keeps running: the
    // parent's scan of the upper directory stops it.
    let err = run_limited(
        "i=0; while [ $i -lt 64 ]; do head -c 500000 /dev/zero > /f$i; i=$((i+1)); done; sleep 40",
        Limits {
            write_max: Some(1 << 20),
            ..Limits::default()
        },
    );
    match &err {
        SandboxError::LimitExceeded { limit, .. } => {
            assert_eq!(limit.mechanism, Mechanism::UpperScan, "{err}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string().contains("the size of the upper directory"),
        "{err}"
    );
    // A step that ends before a scan is caught by the last one.
    let err = run_limited(
        "head -c 700000 /dev/zero > /a; head -c 700000 /dev/zero > /b",
        Limits {
            write_max: Some(1 << 20),
            ..Limits::default()
        },
    );
    assert!(matches!(err, SandboxError::LimitExceeded { .. }), "{err:?}");
}

#[test]
fn steps_within_their_limits_succeed() {
    let ctx = Ctx::new();
    let mut spec = ctx.spec("sleep 0.1 & sleep 0.1 & wait; head -c 1000 /dev/zero > /f; echo ok");
    spec.limits = Limits {
        pids_max: Some(32),
        memory_max: Some(256 << 20),
        write_max: Some(1 << 20),
    };
    let out = kiln_sandbox::run(&spec).unwrap();
    assert_eq!(out.stdout_tail, b"ok\n");
}
