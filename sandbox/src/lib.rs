//! kiln-sandbox: run one command in fresh user, mount, pid, net, uts, ipc and cgroup
//! namespaces over a given rootfs. Mechanism only: it knows nothing of OCI images or recipes.
//!
//! The flow is spec → validate → plan → execute, as in bubblewrap: [`SandboxSpec`] says what
//! the caller wants, validation turns bad values into [`SpecError`]s, the parent renders a
//! mount plan (plain data, unit-tested against a recording `Syscall` double) and a clone of
//! the caller runs it as PID 1 of the new namespaces, then forks the step and reaps.
//!
//! What a step gets: an overlay rootfs (caller's lower dirs read-only, every change in the
//! upper dir), a fresh /proc with /proc/sys, /proc/sysrq-trigger and friends read-only or
//! masked, a minimal read-only /dev (null, zero, full, random, urandom, tty, ptmx, pts, shm,
//! fd links), only a loopback interface, a fixed hostname, exactly the given environment,
//! /dev/null as stdin, umask 022, no_new_privs, Docker's default capabilities (no
//! `CAP_SYS_ADMIN`, no `CAP_SYS_PTRACE`), and only its three standard descriptors. When it
//! ends (or its time limit passes) every process it started is killed before [`run`]
//! returns. If the caller dies, the sandbox dies with it.
//!
//! # For the caller turning the upper dir into a layer
//!
//! - Overlay whiteouts are character devices 0/0; opaque directories carry the xattr
//!   [`OPAQUE_XATTR`] = `y` (the sandbox mounts with `userxattr`).
//! - The sandbox's own mount points (/proc, /dev, extra mount targets) live in a private
//!   skeleton layer and never appear in the upper dir unless the step writes beside them.
//! - Owners in the upper dir are host ids: translate them with [`Outcome::id_map`]
//!   ([`IdMap::uid_to_container`]). As root the mapping is the identity for 0..65536.
//! - Rootless with a subordinate range, the caller cannot read or delete files the step gave
//!   to other ids; call [`enter_user_namespace`] first thing in `main` (while the process has
//!   a single thread) and kiln becomes root of a user namespace where it can, with identity
//!   mappings for every sandbox after that.
//! - Call [`run`] from a thread that lives until it returns (it is synchronous): the parent
//!   death signal is tied to the calling thread.
//! - `argv[0]` without a `/` is looked up in the spec's own `PATH` (or [`DEFAULT_PATH`]), but
//!   the step's environment is only what the spec lists. A missing working directory is an
//!   error, not created.
//!
//! Works as root (identity id mapping, so ownership inside the step is real ownership in the
//! upper dir) and rootless with unprivileged user namespaces (see [`IdMapping`]).

mod child;
mod error;
mod fds;
mod idmap;
mod limits;
mod plan;
mod rootless;
mod run;
mod spec;
mod syscall;

pub use error::{Result, SandboxError};
pub use idmap::{IdMap, IdMapError, IdMapping, IdRange, FULL_RANGE};
pub use limits::{Enforced, Limits, Mechanism, Resource};
pub use rootless::enter_user_namespace;
pub use run::{run, run_with_output, ExitStatus, Outcome, Stream};
pub use spec::{Mount, SandboxSpec, SpecError, Stdio, DEFAULT_PATH};

/// The xattr overlayfs sets (to `y`) on an opaque directory in the upper dir. The sandbox
/// mounts with `userxattr` (required inside a user namespace), hence the `user.` prefix.
/// Whiteouts are character devices 0/0.
pub const OPAQUE_XATTR: &str = "user.overlay.opaque";
