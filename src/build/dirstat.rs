//! The digest of a directory input without re-reading it when nothing changed.
//!
//! A directory's digest is the sha256 of its deterministic tar, which means reading every byte.
//! Like git's index, kiln remembers the digest under a fingerprint of the directory's `lstat`
//! data (path, type, mode, inode, size, mtime and ctime in nanoseconds): a file whose content
//! changes gets a new ctime, which no user can set back, so an unchanged fingerprint means
//! unchanged contents. The fingerprint only decides whether to re-hash; the digest recorded in
//! the provenance and used for the image is always the content digest.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::digest::{Hasher, Sha256Digest};
use crate::layer::{self, HostDigestError};
use crate::store::Store;

/// The content digest of the directory `dir`, from the fingerprint cache when it is current.
pub fn dir_digest(store: &Store, dir: &Path) -> Result<Sha256Digest, HostDigestError> {
    let fingerprint = fingerprint(dir).map_err(|e| HostDigestError::Host(e.into()))?;
    let record = store.root().join("refs/dirs").join(fingerprint.hex());
    if let Some(d) = std::fs::read_to_string(&record)
        .ok()
        .and_then(|t| t.trim().parse().ok())
    {
        return Ok(d);
    }
    let digest = layer::host_path_digest(dir)?;
    // Only an optimisation: failing to record it must not fail the build.
    let _ = write_record(&record, &digest);
    Ok(digest)
}

fn write_record(record: &Path, digest: &Sha256Digest) -> std::io::Result<()> {
    let dir = record.parent().expect("records live in a directory");
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    writeln!(tmp, "{digest}")?;
    tmp.persist(record).map_err(|e| e.error)?;
    Ok(())
}

/// A sha256 over the sorted `lstat` lines of every entry under `dir` (and `dir` itself).
pub fn fingerprint(dir: &Path) -> std::io::Result<Sha256Digest> {
    let mut hasher = Hasher::new();
    hasher.update(dir.as_os_str().as_encoded_bytes());
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut names: Vec<_> = fs_err::read_dir(&d)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        let md = fs_err::symlink_metadata(&d)?;
        line(&mut hasher, &d, &md);
        for name in names {
            let path = d.join(&name);
            let md = fs_err::symlink_metadata(&path)?;
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

        let first = dir_digest(&store, &dir).unwrap();
        assert_eq!(first, layer::host_path_digest(&dir).unwrap());
        assert_eq!(dir_digest(&store, &dir).unwrap(), first, "cached");

        // Same size, same mtime, new content: the ctime moves, so the digest is recomputed.
        let mtime = filetime::FileTime::from_last_modification_time(
            &std::fs::metadata(dir.join("sub/a")).unwrap(),
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.join("sub/a"), "two").unwrap();
        filetime::set_file_mtime(dir.join("sub/a"), mtime).unwrap();
        let second = dir_digest(&store, &dir).unwrap();
        assert_ne!(second, first);
        assert_eq!(second, layer::host_path_digest(&dir).unwrap());
    }
}
