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
use std::sync::mpsc;

use super::error::{Result, StoreError};
use super::Store;
use crate::digest::{Hasher, Sha256Digest};

/// Bytes read and written at a time when copying.
const CHUNK: usize = 4 * 1024 * 1024;

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
    match kernel_copy_hashing(src, out)? {
        Some(digest) => Ok(Some(digest)),
        None => copy_hashing(src, out),
    }
}

/// The kernel copies `src` to `out` (`copy_file_range`, no pass through user space) a chunk at
/// a time, while a second thread hashes each chunk of `out` as soon as it is written: exactly
/// the bytes written are hashed, and the copy and the hash overlap. `Ok(None)`, with nothing
/// written, when the kernel cannot copy between these files (then the caller copies itself).
fn kernel_copy_hashing(
    src: &File,
    out: &File,
) -> std::result::Result<Option<Sha256Digest>, CopyError> {
    use std::os::unix::fs::FileExt;
    let (tx, rx) = mpsc::sync_channel::<usize>(4);
    std::thread::scope(|scope| {
        let hashing = std::thread::Builder::new()
            .name("kiln-export-hash".into())
            .spawn_scoped(scope, move || -> io::Result<Sha256Digest> {
                let mut hasher = Hasher::new();
                let mut buf = Vec::new();
                let mut offset = 0u64;
                for n in rx {
                    // Hashed where the page cache holds it (no copy into a buffer of ours);
                    // read into a buffer when the file cannot be mapped.
                    if !hash_mapped(out, offset, n, &mut hasher) {
                        buf.resize(CHUNK, 0);
                        out.read_exact_at(&mut buf[..n], offset)?;
                        hasher.update(&buf[..n]);
                    }
                    offset += n as u64;
                }
                Ok(hasher.finish())
            });
        let Ok(hashing) = hashing else {
            return Ok(None);
        };
        let mut copied = 0u64;
        let result = loop {
            match rustix::fs::copy_file_range(src, None, out, None, CHUNK) {
                Ok(0) => break Ok(true),
                Ok(n) => {
                    copied += n as u64;
                    if tx.send(n).is_err() {
                        break Ok(true);
                    }
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(
                    rustix::io::Errno::XDEV
                    | rustix::io::Errno::NOSYS
                    | rustix::io::Errno::INVAL
                    | rustix::io::Errno::OPNOTSUPP,
                ) if copied == 0 => break Ok(false),
                Err(e) => break Err(CopyError::Write(e.into())),
            }
        };
        drop(tx);
        let digest = hashing
            .join()
            .expect("the hashing thread does not panic")
            .map_err(CopyError::Read)?;
        match result? {
            true => Ok(Some(digest)),
            false => Ok(None),
        }
    })
}

/// Hashes bytes `offset..offset + len` of `file` through a read-only mapping; `false` (nothing
/// hashed) when it cannot be mapped. `offset` is a multiple of [`CHUNK`], so of the page size.
fn hash_mapped(file: &File, offset: u64, len: usize, hasher: &mut Hasher) -> bool {
    let Ok(off) = libc::off_t::try_from(offset) else {
        return false;
    };
    if len == 0 {
        return true;
    }
    // SAFETY: a new read-only mapping of `len` bytes of an open file, unmapped below
    // before the slice over it goes out of scope. The file is the export's own temp file,
    // which this process has just written up to `offset + len` and nobody else truncates
    // (a truncation would raise SIGBUS, never return wrong bytes).
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            file.as_raw_fd(),
            off,
        );
        if addr == libc::MAP_FAILED {
            return false;
        }
        hasher.update(std::slice::from_raw_parts(addr.cast::<u8>(), len));
        libc::munmap(addr, len);
    }
    true
}

/// Copies `src` to `out` and hashes exactly the bytes written, the hashing on a second thread
/// (SHA-256 is slower than the copy, so the copy costs little on top of the hash). Falls back
/// to one thread when none can be started.
fn copy_hashing(
    src: &File,
    out: &mut File,
) -> std::result::Result<Option<Sha256Digest>, CopyError> {
    let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(2);
    let (empty_tx, empty_rx) = mpsc::sync_channel::<Vec<u8>>(3);
    for _ in 0..3 {
        empty_tx
            .send(vec![0u8; CHUNK])
            .expect("the channel has room");
    }
    std::thread::scope(|scope| {
        let hashing = std::thread::Builder::new()
            .name("kiln-export-hash".into())
            .spawn_scoped(scope, move || {
                let mut hasher = Hasher::new();
                for buf in full_rx {
                    hasher.update(&buf);
                    // The copier may have stopped: then the buffer is simply dropped.
                    let _ = empty_tx.send(buf);
                }
                hasher.finish()
            });
        let Ok(hashing) = hashing else {
            return copy_hashing_here(src, out);
        };
        let copied = (|| {
            for mut buf in empty_rx.iter() {
                buf.resize(CHUNK, 0);
                let n = read_full(src, &mut buf).map_err(CopyError::Read)?;
                if n == 0 {
                    return Ok(());
                }
                buf.truncate(n);
                out.write_all(&buf).map_err(CopyError::Write)?;
                if full_tx.send(buf).is_err() {
                    break;
                }
            }
            Err(CopyError::Read(io::Error::other(
                "the hashing thread stopped",
            )))
        })();
        drop(full_tx);
        let digest = hashing.join().expect("the hashing thread does not panic");
        copied.map(|()| Some(digest))
    })
}

/// [`copy_hashing`] on the calling thread alone.
fn copy_hashing_here(
    src: &File,
    out: &mut File,
) -> std::result::Result<Option<Sha256Digest>, CopyError> {
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = read_full(src, &mut buf).map_err(CopyError::Read)?;
        if n == 0 {
            return Ok(Some(hasher.finish()));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(CopyError::Write)?;
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(mut src: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn export_copies_and_rehashes_what_a_stamp_vouched_for() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("c");
        let data: Vec<u8> = (0..2 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
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
