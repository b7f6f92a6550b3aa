//! The crate's error type: each variant says what it is about.

use std::path::PathBuf;
use std::time::Duration;

use crate::idmap::{IdMapError, IdMapping};
use crate::limits::Enforced;
use crate::spec::SpecError;
use crate::ExitStatus;

pub type Result<T, E = SandboxError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid sandbox spec")]
    Spec(#[from] SpecError),
    #[error("failed to set up the sandbox's id mapping")]
    IdMap(#[from] IdMapError),
    #[error("failed to {action}")]
    Host {
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to open {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "failed to create the sandbox's namespaces (are unprivileged user namespaces enabled? \
         see /proc/sys/user/max_user_namespaces)"
    )]
    Namespaces {
        #[source]
        source: std::io::Error,
    },
    #[error("failed to mount the overlay rootfs with upper directory {upper_dir} (overlayfs in a user namespace needs Linux 5.11 or later, and the upper directory's file system must support it)")]
    Overlay {
        upper_dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to {operation} while setting up the sandbox")]
    Setup {
        operation: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to execute {program:?} in the sandbox")]
    Exec {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the sandbox's init process ended without a result ({status})")]
    InitDied { status: ExitStatus },
    #[error("step {argv:?} failed with {status}{}{}", single_id_hint(*id_mapping), rlimit_note(rlimits))]
    StepFailed {
        argv: Vec<String>,
        status: ExitStatus,
        /// The mapping the step ran with: under a single-id mapping, a chown to any other
        /// owner fails (EINVAL) rather than silently keeping the file owned by root.
        id_mapping: IdMapping,
        /// The limits an rlimit enforced: one may be why the step failed, which leaves no
        /// trace to check.
        rlimits: Vec<Enforced>,
        /// The last bytes the step wrote to stderr (when stderr was piped).
        stderr_tail: Vec<u8>,
    },
    #[error("step {argv:?} was stopped at its limit of {limit}")]
    LimitExceeded {
        argv: Vec<String>,
        limit: Enforced,
        stderr_tail: Vec<u8>,
    },
    #[error("step {argv:?} was killed after exceeding its time limit of {}s", timeout.as_secs_f64())]
    TimedOut {
        argv: Vec<String>,
        timeout: Duration,
        stderr_tail: Vec<u8>,
    },
}

fn rlimit_note(rlimits: &[Enforced]) -> String {
    if rlimits.is_empty() {
        return String::new();
    }
    let list: Vec<String> = rlimits.iter().map(|e| e.to_string()).collect();
    format!(
        " (it ran limited to {}; a process past an rlimit gets an error or a signal, which \
         may be why it failed)",
        list.join(", ")
    )
}

fn single_id_hint(mapping: IdMapping) -> &'static str {
    if mapping == IdMapping::Single {
        " (rootless single-id sandbox: only uid/gid 0 exist, so chown to any other owner \
         fails; grant the user 65536 ids in /etc/subuid and /etc/subgid)"
    } else {
        ""
    }
}

impl SandboxError {
    /// The tail of the step's stderr, for a step that ran and failed or timed out.
    pub fn stderr_tail(&self) -> Option<&[u8]> {
        match self {
            SandboxError::StepFailed { stderr_tail, .. }
            | SandboxError::LimitExceeded { stderr_tail, .. }
            | SandboxError::TimedOut { stderr_tail, .. } => Some(stderr_tail),
            _ => None,
        }
    }
}
