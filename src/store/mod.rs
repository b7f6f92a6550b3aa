//! The content-addressed cache: atomic writes, a lock per digest, verification on use.
//!
//! Layout under the root (mode 0700, whatever the umask, because cached inputs may be private;
//! a root that group or others can write is refused):
//!
//! ```text
//! blobs/sha256/<hex>   committed entries, mode 0444, named by the sha256 of their bytes
//! tmp/<pid>-<n>.part   entries being written, 0600, each flock'ed by its writer
//! locks/<hex>.lock     one flock per digest: whoever holds it is the only writer of <hex>
//! locks/tmp.lock       orders temp-file creation against `clean_tmp`
//! locks/gc.lock        shared by every open store, exclusive during `gc`
//! quarantine/<hex>     entries that failed verification, kept for inspection
//! key                  the secret that authenticates records (0600)
//! refs/<kind>/<hex>    records: layer cache, directory digests, verification stamps, diff_ids
//! scratch/kiln-*       per-process scratch directories (see `scratch`)
//! ```
//!
//! Every path under the root is made and read through this module; directories are 0700 and
//! files 0600 (entries 0444) whatever the umask.
//!
//! Why this shape: builds on one machine share the cache concurrently and can be killed at any
//! moment. Writes go through a temp file and an atomic rename, so an entry is either absent or
//! whole; the digest is checked before the rename, so nothing unverified is ever visible under
//! `blobs/`; locks are `flock`s, which the kernel drops when their owner dies; and every use
//! re-hashes the entry (or, for hot layer blobs, checks a stamp, and re-hashes when the blob
//! leaves kiln: see `export`), so on-disk damage is caught and the entry fetched again.

mod error;
mod export;
mod lock;
mod records;
pub mod scratch;
mod usage;
mod verify;
mod writer;

#[cfg(test)]
pub(crate) mod process_tests;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{File, Permissions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustix::fs::FlockOperation;

pub use self::error::{Result, StoreError};
pub use self::lock::DigestLock;
use self::lock::{lock_file, try_flock};
use self::records::RecordKey;
pub use self::records::{LayerRecord, RecordKind};
pub use self::writer::BlobWriter;
use crate::digest::Sha256Digest;

const ROOT_MODE: u32 = 0o700;

/// A handle on a cache directory. Cheap to clone; every method is safe to call from several
/// threads and processes at once.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    key: RecordKey,
    /// Entries this handle (and its clones) hashed or wrote: `export` need not hash them again.
    session: Arc<Mutex<BTreeSet<Sha256Digest>>>,
    /// A shared flock on `locks/gc.lock` for as long as the store is open.
    gc_lock: Arc<File>,
}

impl Store {
    /// Opens the cache at `root`, creating it (mode 0700) and its subdirectories as needed, and
    /// removes temp files abandoned by killed writers.
    pub fn open(root: &Path) -> Result<Store> {
        let create_err = |source| StoreError::CreateDir {
            path: root.to_path_buf(),
            source,
        };
        if !root.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(ROOT_MODE)
                .create(root)
                .map_err(create_err)?;
            // The umask may have taken bits away from (or, at 000, left) the mode: set it exactly.
            std::fs::set_permissions(root, Permissions::from_mode(ROOT_MODE))
                .map_err(create_err)?;
        }
        let meta = fs_err::metadata(root).map_err(create_err)?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(StoreError::InsecureRoot {
                path: root.to_path_buf(),
                mode,
            });
        }
        if meta.uid() != rustix::process::geteuid().as_raw() {
            return Err(StoreError::ForeignRoot {
                path: root.to_path_buf(),
                owner: meta.uid(),
            });
        }
        let locks = root.join("locks");
        for dir in [
            root.join("blobs").join("sha256"),
            root.join("tmp"),
            locks.clone(),
        ] {
            create_private_dir(&dir)?;
        }
        let gc_lock = lock_file(&locks.join("gc.lock"), FlockOperation::LockShared)?
            .expect("a blocking lock either succeeds or fails");
        let store = Store {
            root: root.to_path_buf(),
            key: RecordKey::load_or_create(&root.join("key"))?,
            session: Arc::default(),
            gc_lock: Arc::new(gc_lock),
        };
        store.clean_tmp()?;
        store.remove_stale_scratch()?;
        scratch::watch(&store.scratch_dir()?, scratch::SCRATCH_PREFIXES);
        Ok(store)
    }

    /// `$XDG_CACHE_HOME/kiln`, else `$HOME/.cache/kiln` (relative values are ignored, as the
    /// XDG spec asks).
    pub fn default_root() -> Option<PathBuf> {
        default_root_from(std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether an entry exists (cheap; says nothing about its content).
    pub fn contains(&self, digest: &Sha256Digest) -> bool {
        self.path_unverified(digest).is_file()
    }

    /// Where the entry for `digest` lives. For hot paths that verified it already in this
    /// process; everyone else uses `open_verified`.
    pub fn path_unverified(&self, digest: &Sha256Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// A writer for a new entry; see `BlobWriter`.
    pub fn writer(&self) -> Result<BlobWriter> {
        self.writer_for("blob")
    }

    /// A writer whose digest-mismatch error names `input`.
    pub fn writer_for(&self, input: &str) -> Result<BlobWriter> {
        BlobWriter::create(self, input)
    }

    /// Streams `reader` into a new entry, checking `expected` when given. `what` names the input
    /// in errors. Returns the digest and the size.
    pub fn insert_reader(
        &self,
        expected: Option<&Sha256Digest>,
        what: &str,
        mut reader: impl Read,
    ) -> Result<(Sha256Digest, u64)> {
        let mut writer = self.writer_for(what)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(StoreError::Read {
                        what: what.to_string(),
                        source,
                    })
                }
            };
            writer.write_chunk(&buf[..n])?;
        }
        writer.commit(expected)
    }

    /// Blocks until this caller is the only writer of `digest` (across threads and processes).
    /// Released on drop, or by the kernel when the process dies.
    pub fn lock(&self, digest: &Sha256Digest) -> Result<DigestLock> {
        DigestLock::acquire(&self.locks_dir(), digest)
    }

    /// Like `lock`, but `None` at once when someone else holds it.
    #[cfg(test)]
    pub fn try_lock(&self, digest: &Sha256Digest) -> Result<Option<DigestLock>> {
        DigestLock::try_acquire(&self.locks_dir(), digest)
    }

    /// Removes temp files whose writer is gone (their flock is free). Returns how many were
    /// removed. Skipped (returning 0) while another process is creating a temp file.
    pub fn clean_tmp(&self) -> Result<usize> {
        let Some(_guard) = lock_file(
            &self.tmp_lock_path(),
            FlockOperation::NonBlockingLockExclusive,
        )?
        else {
            return Ok(0);
        };
        let tmp = self.tmp_dir();
        let entries = fs_err::read_dir(&tmp).map_err(|source| StoreError::CleanTemp {
            path: tmp.clone(),
            source,
        })?;
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(|source| StoreError::CleanTemp {
                path: tmp.clone(),
                source,
            })?;
            let path = entry.path();
            let file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(StoreError::CleanTemp { path, source }),
            };
            let free =
                try_flock(&file, FlockOperation::NonBlockingLockExclusive).map_err(|source| {
                    StoreError::CleanTemp {
                        path: path.clone(),
                        source,
                    }
                })?;
            if free {
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => return Err(StoreError::CleanTemp { path, source }),
                }
            }
        }
        Ok(removed)
    }

    /// Creates `dir` and missing parents under the root, private (0700) whatever the umask.
    pub(crate) fn create_private_dir(&self, dir: &Path) -> Result<()> {
        create_private_dir(dir)
    }

    /// Whether this handle hashed or wrote entry `digest` itself.
    pub(crate) fn verified_in_session(&self, digest: &Sha256Digest) -> bool {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(digest)
    }

    /// Notes that this handle just hashed or wrote entry `digest`.
    pub(crate) fn mark_verified(&self, digest: &Sha256Digest) {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(*digest);
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    pub(crate) fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    pub(crate) fn tmp_lock_path(&self) -> PathBuf {
        self.locks_dir().join("tmp.lock")
    }

    pub(crate) fn gc_lock_path(&self) -> PathBuf {
        self.locks_dir().join("gc.lock")
    }
}

/// `mkdir -p` with mode 0700 (the umask can only take bits away from 0700, never add any).
fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(ROOT_MODE)
        .create(dir)
        .map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })
}

fn default_root_from(xdg: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let absolute = |v: Option<OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    absolute(xdg)
        .map(|p| p.join("kiln"))
        .or_else(|| absolute(home).map(|p| p.join(".cache").join("kiln")))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn tmp_is_empty(store: &Store) -> bool {
        std::fs::read_dir(store.tmp_dir()).unwrap().next().is_none()
    }

    #[test]
    fn open_creates_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("a/b/kiln");
        let store = Store::open(&root).unwrap();
        for sub in ["blobs/sha256", "tmp", "locks"] {
            assert!(root.join(sub).is_dir(), "{sub}");
        }
        let mode = std::fs::metadata(&root).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700);
        assert_eq!(store.root(), root);
        // Opening again is fine.
        Store::open(&root).unwrap();
    }

    #[test]
    fn open_refuses_a_root_writable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), Permissions::from_mode(0o777)).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, StoreError::InsecureRoot { mode: 0o777, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(&dir.path().display().to_string()));
    }

    #[test]
    fn insert_then_open_verified() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let expected = Sha256Digest::of(b"hello");
        assert!(!store.contains(&expected));
        assert_eq!(store.open_verified(&expected).unwrap(), None);

        let (d, n) = store
            .insert_reader(Some(&expected), "greeting", &b"hello"[..])
            .unwrap();
        assert_eq!((d, n), (expected, 5));
        let blob = store.open_verified(&d).unwrap().unwrap();
        assert_eq!(blob.path, store.path_unverified(&d));
        assert_eq!(blob.size, 5);
        assert_eq!(std::fs::read(&blob.path).unwrap(), b"hello");
        let mode = std::fs::metadata(&blob.path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o444);
        assert!(tmp_is_empty(&store));
    }

    #[test]
    fn digest_mismatch_stores_nothing_and_cleans_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let expected = Sha256Digest::of(b"good");
        let actual = Sha256Digest::of(b"evil");
        let err = store
            .insert_reader(Some(&expected), "busybox", &b"evil"[..])
            .unwrap_err();
        match &err {
            StoreError::DigestMismatch {
                input,
                expected: e,
                actual: a,
            } => {
                assert_eq!((input.as_str(), e, a), ("busybox", &expected, &actual));
            }
            other => panic!("{other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("busybox") && msg.contains(&expected.to_string()),
            "{msg}"
        );
        assert!(msg.contains(&actual.to_string()), "{msg}");
        assert!(!store.contains(&expected) && !store.contains(&actual));
        assert!(tmp_is_empty(&store));
    }

    #[test]
    fn blob_writer_streams_and_drop_removes_temp() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut w = store.writer().unwrap();
        for _ in 0..100 {
            w.write_all(b"0123456789").unwrap();
        }
        let temp = w.temp_path().to_path_buf();
        assert!(temp.starts_with(store.tmp_dir()) && temp.exists());
        let (d, n) = w.commit(None).unwrap();
        assert_eq!(n, 1000);
        assert_eq!(d, Sha256Digest::of(&b"0123456789".repeat(100)));
        assert!(!temp.exists());

        let mut w = store.writer().unwrap();
        w.write_all(b"abandoned").unwrap();
        let temp = w.temp_path().to_path_buf();
        assert!(temp.exists());
        drop(w);
        assert!(!temp.exists());
        assert!(!store.contains(&Sha256Digest::of(b"abandoned")));
    }

    #[test]
    fn clean_tmp_spares_live_writers_and_removes_abandoned_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let live = store.writer().unwrap();
        let abandoned = store.tmp_dir().join("999999-0.part");
        std::fs::write(&abandoned, b"left by a killed writer").unwrap();
        assert_eq!(store.clean_tmp().unwrap(), 1);
        assert!(!abandoned.exists());
        assert!(live.temp_path().exists());
        live.commit(None).unwrap();
    }

    #[test]
    fn reader_failure_leaves_no_entry_and_no_temp() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "peer went away",
                    ));
                }
                self.0 -= 1;
                buf[0] = b'x';
                Ok(1)
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let err = store.insert_reader(None, "flaky", Failing(10)).unwrap_err();
        assert!(matches!(err, StoreError::Read { .. }), "{err:?}");
        assert!(tmp_is_empty(&store));
        assert!(std::fs::read_dir(store.blobs_dir())
            .unwrap()
            .next()
            .is_none());
    }

    #[test]
    fn default_root_follows_xdg_then_home() {
        let cases: [(Option<&str>, Option<&str>, Option<&str>); 6] = [
            (Some("/x/cache"), Some("/home/u"), Some("/x/cache/kiln")),
            (None, Some("/home/u"), Some("/home/u/.cache/kiln")),
            (Some(""), Some("/home/u"), Some("/home/u/.cache/kiln")),
            (
                Some("relative"),
                Some("/home/u"),
                Some("/home/u/.cache/kiln"),
            ),
            (None, Some("relative"), None),
            (None, None, None),
        ];
        for (xdg, home, want) in cases {
            let got = default_root_from(xdg.map(OsString::from), home.map(OsString::from));
            assert_eq!(
                got,
                want.map(PathBuf::from),
                "XDG_CACHE_HOME={xdg:?} HOME={home:?}"
            );
        }
    }
}
