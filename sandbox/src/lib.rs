//! kiln-sandbox: run one command in fresh user, mount, pid, net, uts, ipc and cgroup
//! namespaces over a given rootfs. Mechanism only: it knows nothing of OCI images or recipes.
//!
//! The flow is spec → validate → plan → execute, as in bubblewrap: [`SandboxSpec`] says what
//! the caller wants, validation turns bad values into [`SpecError`]s, the parent renders a
//! mount plan (plain data, unit-tested against a recording [`Syscall`](syscall) double) and a
//! clone of the caller runs it as PID 1 of the new namespaces, then forks the step and reaps.
//!
//! What a step gets: an overlay rootfs (caller's lower dirs read-only, every change in the
//! upper dir), a fresh /proc with /proc/sys and /proc/sysrq-trigger read-only, a minimal /dev,
//! only a loopback interface, a fixed hostname, exactly the given environment, umask 022,
//! no_new_privs, Docker's default capabilities (no `CAP_SYS_ADMIN`), and only its three
//! standard descriptors. When it ends (or its time limit passes) every process it started is
//! killed before [`run`] returns. If the caller dies, the sandbox dies with it.
//!
//! Works as root (identity id mapping, so ownership inside the step is real ownership in the
//! upper dir) and rootless with unprivileged user namespaces (see [`IdMapping`]).

mod child;
mod error;
mod fds;
mod idmap;
mod plan;
mod rootless;
mod run;
mod spec;
mod syscall;

pub use error::{Result, SandboxError};
pub use idmap::{IdMap, IdMapError, IdMapping, IdRange, FULL_RANGE};
pub use rootless::enter_user_namespace;
pub use run::{run, run_with_output, ExitStatus, Outcome, Stream};
pub use spec::{Mount, SandboxSpec, SpecError, Stdio, DEFAULT_PATH};

/// The xattr overlayfs sets (to `y`) on an opaque directory in the upper dir. The sandbox
/// mounts with `userxattr` (required inside a user namespace), hence the `user.` prefix.
/// Whiteouts are character devices 0/0.
pub const OPAQUE_XATTR: &str = "user.overlay.opaque";
