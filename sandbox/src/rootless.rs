//! Rootless kiln: move the whole process into a user namespace where it is root.
//!
//! With a subordinate id range, a step's `chown 65532` leaves files in the upper directory
//! owned by host id 165531 (say), which the unprivileged caller can neither read (a 0600
//! file) nor delete. Tools like buildah solve this by running themselves inside a user
//! namespace with the same mapping: there the caller is root, sees the files owned by
//! 65532, and has the capabilities to read and delete them. [`enter_user_namespace`] does
//! that for kiln; every sandbox started afterwards nests inside it with an identity mapping.
//!
//! unshare(2) refuses `CLONE_NEWUSER` in a multithreaded process, so this must run first
//! thing in `main`, before any thread exists.

use std::io::{Read, Write};

use crate::error::{Result, SandboxError};
use crate::fds::pipe;
use crate::idmap::{IdMap, IdMapError, IdMapping};

/// Makes the calling process root of a new user namespace mapped as `mapping` says
/// (`Auto`: subordinate range when granted, else a single id). A no-op returning the
/// identity mapping when already root. Must be called while the process has one thread.
pub fn enter_user_namespace(mapping: IdMapping) -> Result<IdMap> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(IdMap::resolve(IdMapping::Identity)?);
    }
    let map = IdMap::resolve(mapping)?;
    if map.mapping() == IdMapping::Single {
        unshare_user()?;
        // A process may map its own ids in the namespace it just created.
        map.apply_to("self")?;
        return Ok(map);
    }

    // newuidmap must run outside the new namespace, on our pid: a helper forked before
    // unshare (fork is safe: the process is single-threaded) waits until we are ready.
    let (go_r, go_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    // SAFETY: getpid cannot fail.
    let parent = unsafe { libc::getpid() };
    // SAFETY: single-threaded (unshare below checks it too), so the child may allocate.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(host("fork the id mapping helper"));
    }
    if pid == 0 {
        drop(go_w);
        drop(err_r);
        let mut byte = [0u8; 1];
        let ready = std::fs::File::from(go_r).read(&mut byte).unwrap_or(0) == 1;
        let result = if ready {
            map.apply_to(&parent.to_string())
        } else {
            Ok(())
        };
        if let Err(e) = &result {
            let _ = write!(std::fs::File::from(err_w), "{}", chain(e));
        }
        // SAFETY: ends the helper without running the parent's exit handlers.
        unsafe { libc::_exit(i32::from(result.is_err())) };
    }
    drop(go_r);
    drop(err_w);
    let unshared = unshare_user();
    if unshared.is_ok() {
        std::fs::File::from(go_w)
            .write_all(b"g")
            .map_err(|e| SandboxError::Host {
                action: "start the id mapping helper",
                source: e,
            })?;
    } else {
        drop(go_w);
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    unshared?;
    let mut message = String::new();
    let _ = std::fs::File::from(err_r).read_to_string(&mut message);
    if status != 0 {
        return Err(IdMapError::HelperFailed {
            helper: "newuidmap/newgidmap".into(),
            status: format!("wait status {status}"),
            stderr: message,
        }
        .into());
    }
    Ok(map)
}

fn unshare_user() -> Result<()> {
    // SAFETY: unshare with a flag only.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } < 0 {
        return Err(SandboxError::Host {
            action: "create a user namespace for kiln (unshare needs a single-threaded process \
                     and unprivileged user namespaces)",
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn host(action: &'static str) -> SandboxError {
    SandboxError::Host {
        action,
        source: std::io::Error::last_os_error(),
    }
}
