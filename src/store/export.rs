//! Blobs leaving the store for an output.
//!
//! An output never shares an inode with the cache: a later change to one (bit rot, an edit, a
//! `gc`) must not reach the other. Each blob is cloned with `FICLONE` where the file system can
//! (btrfs, XFS: no data is copied) and copied otherwise.
//!
//! And the bytes that leave are hashed again unless this process already hashed or wrote that
//! entry: a warm build trusts verification stamps (inode, size, mtime) to *find* a layer, but a
//! flipped byte with the mtime set back would fool a stamp, so the copy, which reads every byte
//! anyway, hashes them on the way. A mismatch quarantines the entry, removes the partial copy
//! and fails; nothing is ever written under a digest it does not have.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::error::{Result, StoreError};
use super::Store;
use crate::digest::{Hasher, Sha256Digest};

/// Bytes read and written at a time when copying.
const CHUNK: usize = 1024 * 1024;

impl Store {
    /// Writes entry `digest` to `dest` (a new file, mode `mode`, through a temp file beside it
    /// and a rename), re-hashing its bytes unless this process verified or wrote the entry.
    /// `Ok(false)` when the store has no such entry.
    pub fn export(&self, digest: &Sha256Digest, dest: &Path, mode: u32) -> Result<bool> {
        let src_path = self.path_unverified(digest);
        let src = match File::open(&src_path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(StoreError::ReadEntry {
                    digest: *digest,
                    path: src_path,
                    source,
                })
            }
        };
        super::usage::touch(&src_path);
        let rehash = !self.verified_in_session(digest);
        let tmp = dest.with_extension(format!("tmp{}", std::process::id()));
        let write_err = |source| StoreError::write(tmp.clone(), source);
        let mut out = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(write_err)?;
        let copied = copy_out(&src, &mut out, rehash).map_err(|e| match e {
            CopyError::Read(source) => StoreError::ReadEntry {
                digest: *digest,
                path: src_path.clone(),
                source,
            },
            CopyError::Write(source) => StoreError::write(tmp.clone(), source),
        });
        let actual = match copied {
            Ok(actual) => actual,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if let Some(actual) = actual {
            if actual != *digest {
                let _ = std::fs::remove_file(&tmp);
                return Err(self.quarantine(digest, &src, actual, None)?);
            }
            self.mark_verified(digest);
        }
        let finish = out
            .set_permissions(Permissions::from_mode(mode))
            .and_then(|()| std::fs::rename(&tmp, dest));
        if let Err(source) = finish {
            let _ = std::fs::remove_file(&tmp);
            return Err(StoreError::write(dest.to_path_buf(), source));
        }
        Ok(true)
    }
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Clones or copies `src` into the empty file `out`; with `rehash`, returns the digest of the
/// bytes that `out` now holds.
fn copy_out(
    src: &File,
    out: &mut File,
    rehash: bool,
) -> std::result::Result<Option<Sha256Digest>, CopyError> {
    // SAFETY: FICLONE takes the source descriptor as its argument; both descriptors are open.
    let cloned = unsafe { libc::ioctl(out.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) } == 0;
    if cloned {
        if !rehash {
            return Ok(None);
        }
        // The clone shares the source's blocks: hashing it checks exactly what was written.
        let (digest, _) = Sha256Digest::of_reader(&*out).map_err(CopyError::Read)?;
        return Ok(Some(digest));
    }
    if !rehash {
        // The kernel copies (copy_file_range) without passing the bytes through us.
        io::copy(&mut &*src, out).map_err(CopyError::Write)?;
        return Ok(None);
    }
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match (&*src).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(CopyError::Write)?;
    }
    Ok(Some(hasher.finish()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn export_copies_and_rehashes_what_a_stamp_vouched_for() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("c");
        let data = vec![5u8; 300_000];
        let d = {
            let store = Store::open(&root).unwrap();
            let (d, _) = store.insert_reader(None, "x", &data[..]).unwrap();
            assert!(store.open_verified_cached(&d).unwrap().is_some());
            d
        };
        // A new process (a new session): the stamp vouches, export re-hashes.
        let store = Store::open(&root).unwrap();
        assert!(store.open_verified_cached(&d).unwrap().is_some());
        let out = tmp.path().join("out");
        assert!(store.export(&d, &out, 0o644).unwrap());
        assert_eq!(std::fs::read(&out).unwrap(), data);
        let (a, b) = (
            std::fs::metadata(&out).unwrap(),
            std::fs::metadata(store.path_unverified(&d)).unwrap(),
        );
        assert_ne!(a.ino(), b.ino());
        assert_eq!(a.mode() & 0o7777, 0o644);

        // Bit rot with the mtime set back: the stamp still matches, export refuses.
        let path = store.path_unverified(&d);
        let mtime = filetime::FileTime::from_last_modification_time(&b);
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        let mut bytes = data.clone();
        bytes[1234] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        filetime::set_file_mtime(&path, mtime).unwrap();
        let store = Store::open(&root).unwrap();
        let out2 = tmp.path().join("out2");
        let err = store.export(&d, &out2, 0o644).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(!out2.exists());
        assert!(!store.contains(&d), "quarantined");
        assert_eq!(std::fs::read(&out).unwrap(), data, "earlier output intact");
        assert!(!store.export(&d, &out2, 0o644).unwrap());
    }
}
