//! Keeping the cache honest and bounded: `kiln cache verify` and `kiln cache gc`.
//!
//! Last use: every time kiln uses a blob or a record it sets the file's access time to now
//! (explicitly, so `noatime` mounts do not matter; the modification time, which verification
//! stamps depend on, is left alone). An entry's last use is the later of its access and
//! modification times. The cache root is 0700, so nobody else can read or move these times.
//!
//! Concurrency: every open [`Store`] holds a shared `flock` on `locks/gc.lock` for its whole
//! life; `gc` converts its own to exclusive, so it runs only while no other kiln process uses
//! the cache, and no build can find an entry gone between checking and using it.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::FlockOperation;

use super::error::{Result, StoreError};
use super::lock::try_flock;
use super::records::RecordKind;
use super::Store;
use crate::digest::Sha256Digest;

/// Marks `path` as used now (its access time); best effort.
pub(crate) fn touch(path: &Path) {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return;
    };
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
    ];
    // SAFETY: `c` is a valid NUL-terminated path and `times` two valid timespecs.
    unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        );
    }
}

/// The later of a file's access and modification times.
fn last_use(md: &std::fs::Metadata) -> SystemTime {
    let secs = md.atime().max(md.mtime()).max(0) as u64;
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// What `verify_all` found.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// Blobs re-hashed.
    pub checked: usize,
    pub bytes: u64,
    /// Blobs whose bytes did not match their name, now in `quarantine/`.
    pub quarantined: Vec<Sha256Digest>,
    /// Records that were not authentic (removed).
    pub bad_records: usize,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.quarantined.is_empty() && self.bad_records == 0
    }
}

/// What `gc` removed and kept.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    pub removed_blobs: usize,
    pub removed_bytes: u64,
    pub removed_records: usize,
    pub removed_quarantined: usize,
    pub kept_blobs: usize,
    pub kept_bytes: u64,
}

impl Store {
    /// Re-hashes every blob (quarantining the bad ones) and checks every record's
    /// authenticity (removing the bad ones).
    pub fn verify_all(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        for digest in self.list_blobs()? {
            match self.open_verified(&digest) {
                Ok(Some(b)) => {
                    report.checked += 1;
                    report.bytes += b.size;
                }
                Ok(None) => {}
                Err(StoreError::Corrupt { .. }) => {
                    report.checked += 1;
                    self.remove_record(RecordKind::Verified, &digest);
                    report.quarantined.push(digest);
                }
                Err(e) => return Err(e),
            }
        }
        for kind in RecordKind::ALL {
            for path in list_dir(&self.records_dir(kind))? {
                if !self.record_is_authentic(kind, &path) {
                    let _ = std::fs::remove_file(&path);
                    report.bad_records += 1;
                }
            }
        }
        Ok(report)
    }

    /// Removes blobs, records and quarantined entries not used for `keep` before `now`, and
    /// records that point at a removed blob. Waits until no other kiln process has the cache
    /// open.
    pub fn gc(&self, keep: Duration, now: SystemTime) -> Result<GcReport> {
        let lock_err = |source| StoreError::Lock {
            path: self.gc_lock_path(),
            source,
        };
        try_flock(&self.gc_lock, FlockOperation::LockExclusive).map_err(lock_err)?;
        let result = self.gc_locked(keep, now);
        try_flock(&self.gc_lock, FlockOperation::LockShared).map_err(lock_err)?;
        result
    }

    fn gc_locked(&self, keep: Duration, now: SystemTime) -> Result<GcReport> {
        let stale = |md: &std::fs::Metadata| {
            now.duration_since(last_use(md))
                .is_ok_and(|age| age >= keep)
        };
        let mut report = GcReport::default();
        let remove = |path: &Path| match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Gc {
                path: path.to_path_buf(),
                source,
            }),
        };
        for digest in self.list_blobs()? {
            let path = self.path_unverified(&digest);
            let Ok(md) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if stale(&md) {
                remove(&path)?;
                report.removed_blobs += 1;
                report.removed_bytes += md.len();
            } else {
                report.kept_blobs += 1;
                report.kept_bytes += md.len();
            }
        }
        for kind in RecordKind::ALL {
            for path in list_dir(&self.records_dir(kind))? {
                let Ok(md) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                if stale(&md) || !self.record_target_exists(kind, &path) {
                    remove(&path)?;
                    report.removed_records += 1;
                }
            }
        }
        for path in list_dir(&self.quarantine_dir())? {
            if std::fs::symlink_metadata(&path).is_ok_and(|md| stale(&md)) {
                remove(&path)?;
                report.removed_quarantined += 1;
            }
        }
        self.clean_tmp()?;
        self.remove_stale_scratch()?;
        Ok(report)
    }

    /// Whether the blob a record is about is still in the store (records about a blob:
    /// layers, verification stamps, diff_ids; directory records name no blob).
    fn record_target_exists(&self, kind: RecordKind, path: &Path) -> bool {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| Sha256Digest::from_hex(n).ok());
        let Some(name) = name else { return false };
        match kind {
            RecordKind::Dir => true,
            RecordKind::Verified | RecordKind::DiffId => self.contains(&name),
            RecordKind::Layer => self
                .read_record(kind, &name)
                .and_then(|p| serde_json::from_slice::<super::LayerRecord>(&p).ok())
                .is_some_and(|r| self.contains(&r.digest)),
        }
    }

    /// Every entry name under `blobs/sha256` that is a digest.
    pub(crate) fn list_blobs(&self) -> Result<Vec<Sha256Digest>> {
        let mut out: Vec<Sha256Digest> = list_dir(&self.blobs_dir())?
            .iter()
            .filter_map(|p| p.file_name()?.to_str())
            .filter_map(|n| Sha256Digest::from_hex(n).ok())
            .collect();
        out.sort();
        Ok(out)
    }
}

/// The entries of `dir`, sorted; none when it does not exist.
fn list_dir(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StoreError::ReadDir {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(|source| StoreError::ReadDir {
            path: dir.to_path_buf(),
            source,
        })?;
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gc_removes_what_was_not_used_within_the_window() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("c")).unwrap();
        let (old, _) = store.insert_reader(None, "old", &b"old"[..]).unwrap();
        let (new, _) = store.insert_reader(None, "new", &b"new"[..]).unwrap();
        store.write_record(RecordKind::Verified, &old, b"stamp");
        let day = Duration::from_secs(86400);
        let now = SystemTime::now();
        let long_ago = filetime::FileTime::from_system_time(now - 10 * day);
        for path in [
            store.path_unverified(&old),
            store.records_dir(RecordKind::Verified).join(old.hex()),
        ] {
            filetime::set_file_times(&path, long_ago, long_ago).unwrap();
        }
        let report = store.gc(7 * day, now).unwrap();
        assert_eq!((report.removed_blobs, report.kept_blobs), (1, 1));
        assert_eq!(report.removed_records, 1);
        assert!(!store.contains(&old) && store.contains(&new));
        // Keep 0 days: everything goes.
        let report = store.gc(Duration::ZERO, now + day).unwrap();
        assert_eq!((report.removed_blobs, report.kept_blobs), (1, 0));
        assert!(store.list_blobs().unwrap().is_empty());
    }
}
