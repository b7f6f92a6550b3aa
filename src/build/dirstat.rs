//! The digest of a directory input without re-reading it when nothing changed.
//!
//! A directory's digest is the sha256 of its deterministic tar, which means reading every byte.
//! Like git's index, kiln remembers the digest under a fingerprint of the directory's `lstat`
//! data (path, type, mode, inode, size, mtime and ctime in nanoseconds): a file whose content
//! changes gets a new ctime, which no user can set back, so an unchanged fingerprint means
//! unchanged contents. The fingerprint only decides whether to re-hash; the digest recorded in
//! the provenance and used for the image is always the content digest.
//!
//! When the digest must be computed (a cold build), the tar is produced on the calling thread
//! and hashed on another: reading the files and SHA-256 each take about half of that pass, and
//! nothing else runs during it, so two cores finish it in about half the time.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::mpsc::{self, SyncSender};

use crate::digest::{Hasher, Sha256Digest};
use crate::layer::host::{self, HostOptions};
use crate::layer::{self, write, HostDigestError};
use crate::store::{RecordKind, Store};

/// Bytes of tar handed to the hashing thread at a time.
const CHUNK: usize = 1024 * 1024;

/// The content digest of the directory `dir`, from the fingerprint cache when it is current,
/// and the size of the tar hashed for it (`None` when the cache had it, or the hashing thread
/// could not start). `progress` hears of
/// every piece of tar hashed.
pub fn dir_digest(
    store: &Store,
    dir: &Path,
    progress: &dyn Fn(u64),
) -> Result<(Sha256Digest, Option<u64>), HostDigestError> {
    let fingerprint = fingerprint(dir).map_err(|e| HostDigestError::Host(e.into()))?;
    if let Some(d) = store
        .read_record(RecordKind::Dir, &fingerprint)
        .and_then(|t| String::from_utf8(t).ok()?.trim().parse().ok())
    {
        return Ok((d, None));
    }
    let (digest, size) = pipelined_digest(dir, progress)?;
    // Only an optimisation: failing to record it does not fail the build.
    store.write_record(RecordKind::Dir, &fingerprint, digest.to_string().as_bytes());
    Ok((digest, size))
}

/// [`layer::host_path_digest`], with the hashing on a second thread (the same digest; falls
/// back to one thread when no thread can be started), and the tar's size (unknown then).
fn pipelined_digest(
    dir: &Path,
    progress: &dyn Fn(u64),
) -> Result<(Sha256Digest, Option<u64>), HostDigestError> {
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(4);
    let spawned = std::thread::Builder::new()
        .name("kiln-dir-digest".into())
        .spawn(move || {
            let mut hasher = Hasher::new();
            for chunk in rx {
                hasher.update(&chunk);
            }
            hasher.finish()
        });
    let Ok(hashing) = spawned else {
        return layer::host_path_digest(dir).map(|d| (d, None));
    };
    let opts = HostOptions {
        mode: None,
        owner: None,
        epoch: 0,
    };
    let written = host::host_tree(dir, &opts)
        .map_err(HostDigestError::from)
        .and_then(|tree| {
            let mut out = ChunkSender {
                tx,
                buf: Vec::with_capacity(CHUNK),
                progress,
            };
            let stats = write::write_tar(&tree, 0, &mut out)?;
            out.send().map_err(|source| write::WriteError::Output {
                path: dir.display().to_string(),
                source,
            })?;
            Ok(stats.bytes)
        });
    // The sender is gone either way, so the hashing thread ends.
    let digest = hashing.join().expect("the hashing thread does not panic");
    written.map(|size| (digest, Some(size)))
}

/// A `Write` that hands the bytes to the hashing thread in [`CHUNK`]-sized pieces.
struct ChunkSender<'a> {
    tx: SyncSender<Vec<u8>>,
    buf: Vec<u8>,
    progress: &'a dyn Fn(u64),
}

impl ChunkSender<'_> {
    fn send(&mut self) -> std::io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        (self.progress)(chunk.len() as u64);
        self.tx
            .send(chunk)
            .map_err(|_| std::io::Error::other("the hashing thread stopped"))
    }
}

impl Write for ChunkSender<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A sha256 over the sorted `lstat` lines of every entry under `dir` (and `dir` itself).
pub fn fingerprint(dir: &Path) -> std::io::Result<Sha256Digest> {
    let mut hasher = Hasher::new();
    hasher.update(dir.as_os_str().as_encoded_bytes());
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        // `lstat` of each child relative to the open directory (no walk of the whole path).
        let mut children = Vec::new();
        for item in fs_err::read_dir(&d)? {
            let item = item?;
            let md = item.metadata()?;
            children.push((item.file_name(), md));
        }
        children.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let md = fs_err::symlink_metadata(&d)?;
        line(&mut hasher, &d, &md);
        for (name, md) in children {
            let path = d.join(&name);
            if md.is_dir() {
                stack.push(path);
            } else {
                line(&mut hasher, &path, &md);
            }
        }
    }
    Ok(hasher.finish())
}

fn line(hasher: &mut Hasher, path: &Path, md: &std::fs::Metadata) {
    hasher.update(path.as_os_str().as_encoded_bytes());
    let fields = [
        md.mode() as i64,
        md.ino() as i64,
        md.dev() as i64,
        md.size() as i64,
        md.nlink() as i64,
        md.mtime(),
        md.mtime_nsec(),
        md.ctime(),
        md.ctime_nsec(),
    ];
    for f in fields {
        hasher.update(&f.to_le_bytes());
    }
    hasher.update(b"\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_changes_with_content_and_cache_gives_the_content_digest() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/a"), "one").unwrap();
        let store = Store::open(&tmp.path().join("store")).unwrap();

        let seen = std::cell::Cell::new(0);
        let count = |n| seen.set(seen.get() + n);
        let (first, size) = dir_digest(&store, &dir, &count).unwrap();
        assert_eq!(first, layer::host_path_digest(&dir).unwrap());
        assert_eq!(size, Some(seen.get()), "progress adds up to the tar's size");
        assert!(seen.get() >= 3 * 512);
        let again = dir_digest(&store, &dir, &count).unwrap();
        assert_eq!(again, (first, None), "cached");

        // Same size, same mtime, new content: the ctime moves, so the digest is recomputed.
        let mtime = filetime::FileTime::from_last_modification_time(
            &std::fs::metadata(dir.join("sub/a")).unwrap(),
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.join("sub/a"), "two").unwrap();
        filetime::set_file_mtime(dir.join("sub/a"), mtime).unwrap();
        let (second, _) = dir_digest(&store, &dir, &|_| {}).unwrap();
        assert_ne!(second, first);
        assert_eq!(second, layer::host_path_digest(&dir).unwrap());
    }

    #[test]
    fn pipelined_digest_equals_the_single_threaded_one_over_many_chunks() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        for (i, len) in [0usize, 1, 700_000, CHUNK, 3 * CHUNK + 17]
            .into_iter()
            .enumerate()
        {
            let bytes: Vec<u8> = (0..len).map(|j| (j * 31 + i) as u8).collect();
            std::fs::write(dir.join(format!("a/b/f{i}")), bytes).unwrap();
        }
        std::os::unix::fs::symlink("b/f2", dir.join("a/link")).unwrap();
        assert_eq!(
            pipelined_digest(&dir, &|_| {}).unwrap().0,
            layer::host_path_digest(&dir).unwrap()
        );
        assert!(pipelined_digest(&tmp.path().join("missing"), &|_| {}).is_err());
    }
}
