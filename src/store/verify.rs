//! Verification on use.
//!
//! A cache entry is trusted only after its bytes hash to its name again: disks flip bits, people
//! edit files under `~/.cache`, and a truncated entry must never reach a build. A bad entry is
//! moved to `quarantine/` (kept for inspection, out of the way of the next fetch), under the
//! digest's lock and only if the file we hashed is still the one at the entry's path, so a
//! concurrent writer's fresh, good entry is never the one moved away.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::error::{Result, StoreError};
use super::lock::DigestLock;
use super::records::RecordKind;
use super::Store;
use crate::digest::Sha256Digest;

/// A store entry whose bytes were hashed and matched its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBlob {
    pub digest: Sha256Digest,
    pub path: PathBuf,
    pub size: u64,
}

impl Store {
    /// The verified entry for `digest`: `Ok(None)` when there is none, `Err(Corrupt)` when there
    /// was one whose bytes do not match (it has been quarantined; fetch it again).
    ///
    /// Do not call this while holding the digest's `DigestLock` in the same process (it would
    /// wait for itself); use `open_verified_locked` then.
    pub fn open_verified(&self, digest: &Sha256Digest) -> Result<Option<VerifiedBlob>> {
        self.verify_entry(digest, None)
    }

    /// `open_verified` for the holder of the digest's lock.
    pub fn open_verified_locked(&self, lock: &DigestLock) -> Result<Option<VerifiedBlob>> {
        self.verify_entry(lock.digest(), Some(lock))
    }

    /// Records that the entry for `digest` is verified as it is now, so the next
    /// `open_verified_cached` need not hash it. Only for an entry this process has just
    /// verified or written (a freshly built layer blob).
    pub fn stamp_verified(&self, digest: &Sha256Digest) {
        if let Ok(md) = std::fs::symlink_metadata(self.path_unverified(digest)) {
            self.write_record(RecordKind::Verified, digest, verified_stamp(&md).as_bytes());
        }
    }

    /// `open_verified` for large, hot entries (layer blobs on a warm rebuild): the hash is
    /// skipped when the entry's `lstat` data (inode, size, mtime in nanoseconds) is what it was
    /// when it last verified. Any write to the entry (a flipped byte, a truncation) moves its
    /// mtime, so damage done through the file system is still caught on use; damage that keeps
    /// the mtime (bit rot, or an mtime set back) is caught when the blob leaves kiln, because
    /// `export` re-hashes every entry this handle did not hash itself.
    pub fn open_verified_cached(&self, digest: &Sha256Digest) -> Result<Option<VerifiedBlob>> {
        let path = self.path_unverified(digest);
        if let Ok(md) = std::fs::symlink_metadata(&path) {
            if self.read_record(RecordKind::Verified, digest).as_deref()
                == Some(verified_stamp(&md).as_bytes())
            {
                super::usage::touch(&path);
                return Ok(Some(VerifiedBlob {
                    digest: *digest,
                    path,
                    size: md.len(),
                }));
            }
        }
        let verified = self.open_verified(digest)?;
        if verified.is_some() {
            self.stamp_verified(digest);
        }
        Ok(verified)
    }

    /// Hashes entry `digest` unless this handle already did (or wrote it): for bytes that are
    /// about to be read as what the digest names. A missing entry is an error here.
    pub fn ensure_verified(&self, digest: &Sha256Digest) -> Result<()> {
        if self.verified_in_session(digest) {
            return Ok(());
        }
        match self.open_verified(digest)? {
            Some(_) => Ok(()),
            None => Err(StoreError::ReadEntry {
                digest: *digest,
                path: self.path_unverified(digest),
                source: io::ErrorKind::NotFound.into(),
            }),
        }
    }

    fn verify_entry(
        &self,
        digest: &Sha256Digest,
        held: Option<&DigestLock>,
    ) -> Result<Option<VerifiedBlob>> {
        let path = self.path_unverified(digest);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::ReadEntry {
                    digest: *digest,
                    path,
                    source,
                })
            }
        };
        let read_err = |source| StoreError::ReadEntry {
            digest: *digest,
            path: path.clone(),
            source,
        };
        let (actual, size) = Sha256Digest::of_reader(&file).map_err(read_err)?;
        if actual == *digest {
            self.mark_verified(digest);
            super::usage::touch(&path);
            return Ok(Some(VerifiedBlob {
                digest: *digest,
                path,
                size,
            }));
        }
        Err(self.quarantine(digest, &file, actual, held)?)
    }

    /// Moves the entry away if it is still the file `hashed`; returns the error to report.
    pub(crate) fn quarantine(
        &self,
        digest: &Sha256Digest,
        hashed: &File,
        actual: Sha256Digest,
        held: Option<&DigestLock>,
    ) -> Result<StoreError> {
        let path = self.path_unverified(digest);
        let _own;
        if held.is_none() {
            _own = self.lock(digest)?;
        }
        let ours = hashed.metadata().map_err(|source| StoreError::ReadEntry {
            digest: *digest,
            path: path.clone(),
            source,
        })?;
        let quarantined = self.quarantine_dir().join(digest.hex());
        match std::fs::symlink_metadata(&path) {
            Ok(now) if now.dev() == ours.dev() && now.ino() == ours.ino() => {
                self.create_private_dir(&self.quarantine_dir())?;
                std::fs::rename(&path, &quarantined).map_err(|source| StoreError::Quarantine {
                    path: path.clone(),
                    quarantine: quarantined.clone(),
                    source,
                })?;
            }
            // Replaced or removed meanwhile by someone holding the lock: leave it alone.
            _ => {}
        }
        Ok(StoreError::Corrupt {
            digest: *digest,
            path,
            actual,
            quarantined,
        })
    }
}

/// What `open_verified_cached` compares: inode, size and mtime (nanoseconds). Not ctime: kiln
/// itself moves it when it records a use (the access time). Entries are read-only, so changing
/// one takes a chmod and a write, and a write moves the mtime; an mtime set back (or bit rot,
/// which never touches it) is caught by the re-hash in `export` before the blob leaves kiln.
fn verified_stamp(md: &std::fs::Metadata) -> String {
    format!(
        "{} {} {}.{}",
        md.ino(),
        md.len(),
        md.mtime(),
        md.mtime_nsec()
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;

    fn tamper(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
        let mut bytes = std::fs::read(path).unwrap();
        f(&mut bytes);
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// SECURITY.md 33: a flipped byte and a truncated entry are both caught on use, the bad
    /// entry is quarantined, and a fresh insert repairs the cache.
    #[test]
    fn flipped_byte_or_truncation_is_detected_on_use() {
        type Damage = fn(&mut Vec<u8>);
        let cases: [(&str, Damage); 3] = [
            ("flipped byte", |b| b[3] ^= 0x01),
            ("truncated", |b| b.truncate(b.len() - 1)),
            ("appended", |b| b.push(0)),
        ];
        for (name, damage) in cases {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("c")).unwrap();
            let content = b"the content of a cached input".to_vec();
            let (d, _) = store.insert_reader(None, "input", &content[..]).unwrap();
            tamper(&store.path_unverified(&d), damage);

            assert!(
                store.contains(&d),
                "{name}: contains is only an existence check"
            );
            let err = store.open_verified(&d).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{name}: {err:?}");
            assert!(msg.contains(&d.to_string()), "{name}: {msg}");
            assert!(
                msg.contains(&store.path_unverified(&d).display().to_string()),
                "{msg}"
            );
            assert!(
                !store.contains(&d),
                "{name}: corrupt entry must leave blobs/"
            );
            assert!(
                store.root().join("quarantine").join(d.hex()).exists(),
                "{name}"
            );
            assert_eq!(store.open_verified(&d).unwrap(), None, "{name}");

            store
                .insert_reader(Some(&d), "input", &content[..])
                .unwrap();
            let blob = store.open_verified(&d).unwrap().unwrap();
            assert_eq!(std::fs::read(&blob.path).unwrap(), content, "{name}");
        }
    }
}

#[cfg(test)]
mod cached_tests {
    use super::*;

    #[test]
    fn cached_verification_still_catches_a_flipped_byte() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("s")).unwrap();
        let data = vec![7u8; 100_000];
        let (d, _) = store.insert_reader(None, "x", &data[..]).unwrap();
        assert!(store.open_verified_cached(&d).unwrap().is_some());
        assert!(
            store.open_verified_cached(&d).unwrap().is_some(),
            "from the stamp"
        );

        // Damage the entry in place (as a user editing the cache would).
        let path = store.path_unverified(&d);
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
        std::fs::set_permissions(&path, perms).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[500] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            store.open_verified_cached(&d),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
