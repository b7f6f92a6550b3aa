//! `BlobWriter`: the only way bytes enter the store.
//!
//! Bytes go to a private temp file in `tmp/` and are hashed on the way; `commit` fsyncs, checks
//! the digest, makes the file read-only and renames it into `blobs/sha256/<hex>`, then fsyncs
//! the directory. A rename is atomic, so a reader sees either no entry or the whole entry, and
//! nothing reaches `blobs/` before its hash is known to match.
//!
//! Every temp file is `flock`ed by its writer for its whole life. A writer killed with SIGKILL
//! leaves its temp file behind but loses the lock, which is how `Store::clean_tmp` tells an
//! abandoned temp file from one still being written, without looking at any clock.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::FlockOperation;

use super::error::{Result, StoreError};
use super::lock::{lock_file, try_flock};
use super::Store;
use crate::digest::{Hasher, Sha256Digest};

/// Mode of committed entries: readable, never writable, whatever the umask.
pub(crate) const ENTRY_MODE: u32 = 0o444;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A streaming writer into the store. Dropping it without `commit` removes its temp file.
pub struct BlobWriter {
    store: Store,
    input: String,
    temp_path: PathBuf,
    /// Whether `temp_path` is still ours to remove (false once committed or removed).
    temp_exists: bool,
    /// `None` once committed or failed.
    file: Option<File>,
    hasher: Hasher,
}

impl BlobWriter {
    pub(crate) fn create(store: &Store, input: &str) -> Result<Self> {
        // Creating the temp file and locking it must look atomic to `clean_tmp`, which would
        // otherwise see a fresh, not yet locked temp file as abandoned: `clean_tmp` holds the
        // tmp lock exclusively, creators hold it shared.
        let guard = lock_file(&store.tmp_lock_path(), FlockOperation::LockShared)?;
        let pid = std::process::id();
        let mut attempt = 0;
        let (temp_path, file) = loop {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = store.tmp_dir().join(format!("{pid}-{n}.part"));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC)
                .open(&path)
            {
                Ok(file) => break (path, file),
                // A temp file left by a dead process that had our pid: try the next name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 1000 => {
                    attempt += 1;
                }
                Err(source) => return Err(StoreError::CreateTemp { path, source }),
            }
        };
        let locked = try_flock(&file, FlockOperation::NonBlockingLockExclusive).map_err(|source| {
            StoreError::Lock {
                path: temp_path.clone(),
                source,
            }
        });
        drop(guard);
        let writer = Self {
            store: store.clone(),
            input: input.to_string(),
            temp_path,
            temp_exists: true,
            file: Some(file),
            hasher: Hasher::new(),
        };
        match locked {
            Ok(true) => Ok(writer),
            Ok(false) => Err(StoreError::Lock {
                path: writer.temp_path.clone(),
                source: io::Error::from(io::ErrorKind::WouldBlock),
            }),
            Err(e) => Err(e),
        }
    }

    /// The temp file being written (for messages and tests).
    pub fn temp_path(&self) -> &std::path::Path {
        &self.temp_path
    }

    /// The digest of the bytes written so far.
    pub fn digest(&self) -> Sha256Digest {
        self.hasher.clone().finish()
    }

    /// Writes all of `buf`, with an error that names the temp file (and says when the disk is
    /// full). After an error the temp file is removed and further writes fail.
    pub fn write_chunk(&mut self, buf: &[u8]) -> Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Err(StoreError::Write {
                path: self.temp_path.clone(),
                source: io::Error::other("an earlier write failed"),
            });
        };
        if let Err(source) = file.write_all(buf) {
            let err = StoreError::write(self.temp_path.clone(), source);
            self.discard();
            return Err(err);
        }
        self.hasher.update(buf);
        Ok(())
    }

    /// Finishes the entry: fsync, check `expected` (when given), make it read-only, rename it
    /// into `blobs/`, fsync the directory. Returns the digest and size of what was written.
    pub fn commit(mut self, expected: Option<&Sha256Digest>) -> Result<(Sha256Digest, u64)> {
        let Some(file) = self.file.take() else {
            return Err(StoreError::Write {
                path: self.temp_path.clone(),
                source: io::Error::other("an earlier write failed"),
            });
        };
        let hasher = std::mem::take(&mut self.hasher);
        let len = hasher.len();
        let actual = hasher.finish();
        if let Some(expected) = expected {
            if *expected != actual {
                drop(file);
                self.remove_temp();
                return Err(StoreError::DigestMismatch {
                    input: self.input.clone(),
                    expected: *expected,
                    actual,
                });
            }
        }
        let finish = || -> Result<()> {
            file.sync_all()
                .map_err(|e| StoreError::write(self.temp_path.clone(), e))?;
            file.set_permissions(Permissions::from_mode(ENTRY_MODE))
                .map_err(|e| StoreError::write(self.temp_path.clone(), e))?;
            let dest = self.store.path_unverified(&actual);
            std::fs::rename(&self.temp_path, &dest).map_err(|source| StoreError::Commit {
                from: self.temp_path.clone(),
                to: dest.clone(),
                source,
            })?;
            sync_dir(&self.store.blobs_dir())
        };
        match finish() {
            Ok(()) => {
                // The temp name is gone, so there is nothing left for Drop to remove.
                self.temp_exists = false;
                self.store.mark_verified(&actual);
                Ok((actual, len))
            }
            Err(e) => {
                drop(file);
                self.remove_temp();
                Err(e)
            }
        }
    }

    fn discard(&mut self) {
        self.file = None;
        self.remove_temp();
    }

    fn remove_temp(&mut self) {
        if std::mem::take(&mut self.temp_exists) {
            // Best effort: a temp file that cannot be removed is collected by `clean_tmp`.
            let _ = std::fs::remove_file(&self.temp_path);
        }
    }
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("input", &self.input)
            .field("temp_path", &self.temp_path)
            .field("len", &self.hasher.len())
            .finish()
    }
}

impl Write for BlobWriter {
    /// Through `io::Write` (e.g. behind a compressor) the error is the `StoreError`, which
    /// names the temp file, wrapped with the kind of the underlying I/O error.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_chunk(buf).map_err(|e| {
            let kind = match &e {
                StoreError::NoSpace { source, .. } | StoreError::Write { source, .. } => {
                    source.kind()
                }
                _ => io::ErrorKind::Other,
            };
            io::Error::new(kind, e)
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        self.file = None;
        self.remove_temp();
    }
}

/// fsync a directory so a rename into it survives a crash.
pub(crate) fn sync_dir(dir: &std::path::Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Write {
            path: dir.to_path_buf(),
            source,
        })
}
