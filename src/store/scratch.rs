//! Scratch and staging directories that do not outlive their owner (SECURITY.md 40).
//!
//! Builds spill archive members, materialize root file systems and stage outputs in temporary
//! directories: `scratch/kiln-*` under the cache and `.kiln-out-*` beside an output. Each one's
//! name carries its owner's tag, `<pid>.<start time>` (the start time from `/proc/<pid>/stat`,
//! in clock ticks since boot), which no other process can share even when pids are reused.
//!
//! - Normal exit and errors: the directories are `TempDir`s, removed on drop.
//! - SIGINT/SIGTERM: the CLI calls [`on_termination`]; its handler only writes to a pipe, and a
//!   thread then removes every directory carrying this process's tag in the places registered
//!   with [`watch`] before handing control back to the CLI (which exits; the library never does).
//! - `kill -9`, power loss: the next kiln that opens the cache (or stages an output in the same
//!   directory) removes the directories whose owner process is gone.
//!
//! Rootless `run` steps can leave files owned by subordinate ids, which the user cannot delete
//! without entering a user namespace; those are removed as far as the user's own permissions
//! go (see the README).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};

use super::error::{Result, StoreError};
use super::Store;

/// This process's tag, `<pid>.<start time>`.
pub fn owner_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let pid = std::process::id();
        format!("{pid}.{}", start_time(pid).unwrap_or(0))
    })
}

/// `prefix` followed by this process's tag and a dash, for `tempfile::Builder::prefix`.
pub fn tagged_prefix(prefix: &str) -> String {
    format!("{prefix}{}-", owner_tag())
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: skip past it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The owner tag in an entry name `<prefix><pid>.<start>-…`, if it has one.
fn tag_of(name: &str, prefix: &str) -> Option<(u32, u64)> {
    let rest = name.strip_prefix(prefix)?;
    let (tag, _) = rest.split_once('-')?;
    let (pid, start) = tag.split_once('.')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

/// Whether the process that made a directory tagged `(pid, start)` still runs.
fn owner_alive(pid: u32, start: u64) -> bool {
    start_time(pid) == Some(start)
}

/// Removes the entries of `dir` named `<prefix><tag>-…` whose owner is gone (or, with
/// `only_ours`, whose owner is this process). Returns how many were removed; best effort.
pub fn remove_tagged(dir: &Path, prefixes: &[&str], only_ours: bool) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let ours = owner_tag();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        for prefix in prefixes {
            let Some((pid, start)) = tag_of(name, prefix) else {
                continue;
            };
            let remove = if only_ours {
                format!("{pid}.{start}") == ours
            } else {
                !owner_alive(pid, start)
            };
            if remove && remove_tree(&entry.path()) {
                removed += 1;
            }
        }
    }
    removed
}

/// Removes a directory tree, first making directories writable where the user owns them (a
/// step may leave read-only directories behind). Returns whether it is gone.
fn remove_tree(path: &Path) -> bool {
    if std::fs::remove_dir_all(path).is_ok() {
        return true;
    }
    make_writable(path);
    std::fs::remove_dir_all(path).is_ok() || !path.exists()
}

fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(md) = std::fs::symlink_metadata(path) else {
        return;
    };
    if md.is_dir() {
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
        if let Ok(entries) = std::fs::read_dir(path) {
            for e in entries.flatten() {
                make_writable(&e.path());
            }
        }
    }
}

/// Where the termination handler looks for this process's directories, with the prefixes.
static WATCHED: Mutex<Vec<(PathBuf, &'static [&'static str])>> = Mutex::new(Vec::new());

/// Registers `dir` as a place where this process makes directories named `<prefix><tag>-…`.
/// The first registration starts the termination thread (see [`on_termination`]).
pub fn watch(dir: &Path, prefixes: &'static [&'static str]) {
    {
        let mut watched = WATCHED.lock().unwrap_or_else(|e| e.into_inner());
        if !watched.iter().any(|(d, _)| d == dir) {
            watched.push((dir.to_path_buf(), prefixes));
        }
    }
    start_termination_thread();
}

/// Removes every directory this process made in the watched places.
pub fn remove_own_leftovers() -> usize {
    let watched = WATCHED.lock().unwrap_or_else(|e| e.into_inner()).clone();
    watched
        .iter()
        .map(|(dir, prefixes)| remove_tagged(dir, prefixes, true))
        .sum()
}

/// The write end of the pipe the signal handler writes to (-1: no handler installed).
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);
/// Whether the thread that reads the pipe runs; until it does, a signal has its default effect.
static THREAD_STARTED: AtomicBool = AtomicBool::new(false);
/// The read end of the signal pipe and what to call after cleaning up.
type Termination = (OwnedFd, fn(i32));
/// The termination thread's work, until the thread takes it.
static PENDING: Mutex<Option<Termination>> = Mutex::new(None);

extern "C" fn on_signal(signal: libc::c_int) {
    if !THREAD_STARTED.load(Ordering::SeqCst) {
        // Nothing registered to clean up yet: behave as if there were no handler.
        // SAFETY: signal(2) and raise(3) are async-signal-safe.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
        return;
    }
    let fd = SIGNAL_PIPE.load(Ordering::SeqCst);
    let byte = signal as u8;
    // SAFETY: write(2) is async-signal-safe; `byte` outlives the call.
    unsafe {
        libc::write(fd, (&byte as *const u8).cast(), 1);
    }
}

/// On SIGINT or SIGTERM: remove this process's scratch and staging directories, then call
/// `then` with the signal number (the CLI exits there; the library never does). The handler
/// itself only writes to a pipe; a thread does the work. That thread starts only when the
/// first directory is registered ([`watch`], from `Store::open`), because a rootless build must
/// still be single-threaded when it enters its user namespace; until then a signal has its
/// default effect (there is nothing to clean up).
pub fn on_termination(then: fn(i32)) -> io::Result<()> {
    let (read, write): (OwnedFd, OwnedFd) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    *PENDING.lock().unwrap_or_else(|e| e.into_inner()) = Some((read, then));
    SIGNAL_PIPE.store(write.as_raw_fd(), Ordering::SeqCst);
    std::mem::forget(write);
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a valid handler and an empty mask is well formed.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Starts the thread that waits for a signal, if `on_termination` was called and it has not
/// started yet. Best effort: without it, signals keep their default effect and the next kiln
/// removes what this one leaves.
fn start_termination_thread() {
    let Some((read, then)) = PENDING.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("kiln-signals".into())
        .spawn(move || {
            let mut byte = [0u8];
            loop {
                match rustix::io::read(&read, &mut byte) {
                    Ok(1) => break,
                    Err(rustix::io::Errno::INTR) => continue,
                    _ => return,
                }
            }
            remove_own_leftovers();
            then(i32::from(byte[0]));
        });
    if spawned.is_ok() {
        THREAD_STARTED.store(true, Ordering::SeqCst);
    }
}

/// The prefixes of the directories kiln makes under `scratch/`.
pub(crate) const SCRATCH_PREFIXES: &[&str] = &["kiln-build-", "kiln-image-", "kiln-docker-"];

impl Store {
    /// `scratch/`: private, beside the store (same file system), for archive extractions,
    /// spilled members, root file systems of `run` steps and staged archives.
    pub fn scratch_dir(&self) -> Result<PathBuf> {
        let dir = self.root().join("scratch");
        self.create_private_dir(&dir)?;
        Ok(dir)
    }

    /// A new private directory under `scratch/` named `<prefix><tag>-…` (`prefix` is one of
    /// `kiln-build-`, `kiln-image-`, `kiln-docker-`), removed when dropped, on SIGINT/SIGTERM,
    /// or by the next kiln once this process is gone.
    pub fn scratch(&self, prefix: &str) -> Result<tempfile::TempDir> {
        debug_assert!(SCRATCH_PREFIXES.contains(&prefix), "{prefix}");
        let dir = self.scratch_dir()?;
        tempfile::Builder::new()
            .prefix(&tagged_prefix(prefix))
            .tempdir_in(&dir)
            .map_err(|source| StoreError::CreateDir { path: dir, source })
    }

    /// Removes scratch directories whose owner is gone; returns how many.
    pub fn remove_stale_scratch(&self) -> Result<usize> {
        let dir = self.scratch_dir()?;
        Ok(remove_tagged(&dir, SCRATCH_PREFIXES, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_name_a_live_or_a_dead_owner() {
        let tag = owner_tag();
        let (pid, start) = tag_of(&format!("kiln-build-{tag}-abc"), "kiln-build-").unwrap();
        assert_eq!(pid, std::process::id());
        assert!(owner_alive(pid, start));
        assert!(!owner_alive(pid, start + 1), "same pid, other start time");
        assert_eq!(tag_of("kiln-build-abc", "kiln-build-"), None);
        assert_eq!(tag_of("other-1.2-x", "kiln-build-"), None);

        let tmp = tempfile::tempdir().unwrap();
        let mine = tmp.path().join(format!("kiln-build-{tag}-x"));
        let dead = tmp.path().join(format!("kiln-build-{pid}.{}-y", start + 1));
        let foreign = tmp.path().join("kiln-build-untagged");
        for d in [&mine, &dead, &foreign] {
            std::fs::create_dir_all(d.join("sub")).unwrap();
        }
        assert_eq!(remove_tagged(tmp.path(), SCRATCH_PREFIXES, false), 1);
        assert!(mine.exists() && !dead.exists() && foreign.exists());
        assert_eq!(remove_tagged(tmp.path(), SCRATCH_PREFIXES, true), 1);
        assert!(!mine.exists() && foreign.exists());
    }
}
