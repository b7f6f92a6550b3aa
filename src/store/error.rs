//! `StoreError`: every failure of the cache names the path, digest or input it is about, so a
//! user reading `Caused by:` knows which file to look at and what to do.

use std::io;
use std::path::PathBuf;

use crate::digest::Sha256Digest;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no cache directory: neither XDG_CACHE_HOME nor HOME is an absolute path")]
    NoDefaultRoot,

    #[error("failed to create cache directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "cache directory {path} has mode {mode:04o}, writable by other users, who could \
         change what later builds produce"
    )]
    InsecureRoot { path: PathBuf, mode: u32 },

    #[error(
        "cache directory {path} belongs to uid {owner}, not to you, so its owner could change \
         what your builds produce"
    )]
    ForeignRoot { path: PathBuf, owner: u32 },

    #[error("failed to read or create the cache's record key {path}")]
    Key {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("failed to list {path}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("failed to remove unused cache file {path}")]
    Gc {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("failed to create temporary cache file {path}")]
    CreateTemp {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "failed to write {path}: no space left on device; free some space or point the cache \
         elsewhere with --cache"
    )]
    NoSpace {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("failed to write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("failed to read {what}")]
    Read {
        what: String,
        #[source]
        source: io::Error,
    },

    #[error("digest mismatch for {input}: expected {expected}, got {actual}")]
    DigestMismatch {
        input: String,
        expected: Sha256Digest,
        actual: Sha256Digest,
    },

    #[error("failed to move {from} into the cache at {to}")]
    Commit {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("failed to lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("failed to read cache entry {digest} at {path}")]
    ReadEntry {
        digest: Sha256Digest,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "cache entry {digest} at {path} is corrupt (its content hashes to {actual}); \
         it was moved to {quarantined} and must be fetched again"
    )]
    Corrupt {
        digest: Sha256Digest,
        path: PathBuf,
        actual: Sha256Digest,
        quarantined: PathBuf,
    },

    #[error("failed to move corrupt cache entry {path} to {quarantine}")]
    Quarantine {
        path: PathBuf,
        quarantine: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("failed to clean temporary cache file {path}")]
    CleanTemp {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    /// A write failure on `path`, told apart when the disk is full so the message can say so.
    pub(crate) fn write(path: PathBuf, source: io::Error) -> Self {
        let full = source.kind() == io::ErrorKind::StorageFull
            || matches!(
                source.raw_os_error(),
                Some(libc::ENOSPC) | Some(libc::EDQUOT)
            );
        if full {
            StoreError::NoSpace { path, source }
        } else {
            StoreError::Write { path, source }
        }
    }
}

impl StoreError {
    /// What the user can do about it, when kiln knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::InsecureRoot { path, .. } => Some(format!(
                "check its contents, then run `chmod 700 {}`, or choose another cache directory \
                 with --cache",
                path.display()
            )),
            Self::NoDefaultRoot => Some("set XDG_CACHE_HOME or HOME, or pass --cache".to_string()),
            Self::ForeignRoot { .. } => {
                Some("choose a cache directory of your own with --cache".to_string())
            }
            _ => None,
        }
    }
}
