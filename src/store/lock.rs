//! Advisory locks with `flock(2)`.
//!
//! Why `flock` and not lock files created with `O_EXCL`: the kernel drops an `flock` when the
//! last descriptor of its open file description closes, which includes the process being killed
//! with SIGKILL. A stale lock can therefore never block a later run. Each lock opens its own
//! descriptor, so two threads of one process exclude each other exactly like two processes do.
//! Lock files are never deleted: deleting a lock file while another process waits on it would let
//! a third process lock a fresh file of the same name and defeat the exclusion.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::{flock, FlockOperation};

use super::error::{Result, StoreError};
use crate::digest::Sha256Digest;

/// An exclusive lock on one digest of the store, released when dropped (or when the process
/// dies). Holding it is what makes the holder the only writer of that digest.
#[derive(Debug)]
pub struct DigestLock {
    digest: Sha256Digest,
    _file: File,
}

impl DigestLock {
    /// Blocks until the lock on `digest` (file `locks_dir/<hex>.lock`) is ours.
    pub(crate) fn acquire(locks_dir: &Path, digest: &Sha256Digest) -> Result<Self> {
        let path = locks_dir.join(format!("{}.lock", digest.hex()));
        let file = lock_file(&path, FlockOperation::LockExclusive)?
            .expect("a blocking lock either succeeds or fails");
        Ok(Self {
            digest: *digest,
            _file: file,
        })
    }

    /// Like `acquire`, but returns `None` at once when another holder has the lock.
    #[cfg(test)]
    pub(crate) fn try_acquire(locks_dir: &Path, digest: &Sha256Digest) -> Result<Option<Self>> {
        let path = locks_dir.join(format!("{}.lock", digest.hex()));
        Ok(
            lock_file(&path, FlockOperation::NonBlockingLockExclusive)?.map(|file| Self {
                digest: *digest,
                _file: file,
            }),
        )
    }

    pub fn digest(&self) -> &Sha256Digest {
        &self.digest
    }
}

/// Opens (creating with mode 0600) `path` and applies `op` to it. `Ok(None)` when a
/// non-blocking lock is held elsewhere.
pub(crate) fn lock_file(path: &Path, op: FlockOperation) -> Result<Option<File>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| StoreError::Lock {
            path: path.to_path_buf(),
            source,
        })?;
    match try_flock(&file, op) {
        Ok(true) => Ok(Some(file)),
        Ok(false) => Ok(None),
        Err(source) => Err(StoreError::Lock {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `flock` retried on EINTR. `Ok(false)` when a non-blocking request would block.
pub(crate) fn try_flock(file: &File, op: FlockOperation) -> io::Result<bool> {
    loop {
        match flock(file, op) {
            Ok(()) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_same_digest_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let d = Sha256Digest::of(b"x");
        let first = DigestLock::acquire(dir.path(), &d).unwrap();
        assert!(DigestLock::try_acquire(dir.path(), &d).unwrap().is_none());
        let other = Sha256Digest::of(b"y");
        assert!(DigestLock::try_acquire(dir.path(), &other)
            .unwrap()
            .is_some());

        let (tx, rx) = std::sync::mpsc::channel();
        let locks = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let lock = DigestLock::acquire(&locks, &d).unwrap();
            tx.send(()).unwrap();
            drop(lock);
        });
        let waited = std::time::Duration::from_millis(200);
        assert!(
            rx.recv_timeout(waited).is_err(),
            "second locker got in while first held it"
        );
        // Released on drop. (Not checked with try_acquire: a child being spawned by another
        // test may briefly share our descriptor between its fork and its exec.)
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap();
        waiter.join().unwrap();
    }
}
