//! Small records the store keeps beside its blobs: which layer a cache key built, the digest of
//! a directory input under its fingerprint, which blobs verified as they are now, and which
//! diff_id a layer blob was checked against.
//!
//! A record is only a pointer or a shortcut, so a forged one must never change what a build
//! produces (SECURITY.md 37). Each record is authenticated with HMAC-SHA256 under a per-cache
//! secret (`key`, 32 random bytes, mode 0600) over its kind, its name and its payload: a record
//! written by anyone who does not hold the key (another user who could write into a cache
//! created by an older kiln under `umask 000`), moved to another name, or damaged is ignored,
//! exactly like a missing one. The key never reaches an output.
//!
//! ```text
//! refs/<kind>/<hex>   "<hmac hex>\n<payload>", mode 0600, written through a temp file + rename
//! ```

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand_core::{OsRng, RngCore};
use sha2::{Digest as _, Sha256};

use super::error::{Result, StoreError};
use super::Store;
use crate::digest::Sha256Digest;

/// The kinds of record, each in its own directory under `refs/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecordKind {
    /// Layer cache: cache key → the layer blob built for it (JSON).
    Layer,
    /// Directory inputs: `lstat` fingerprint → content digest.
    Dir,
    /// Verification stamps: blob digest → its `lstat` data when it last hashed right.
    Verified,
    /// Layer blob digest → the diff_id its uncompressed bytes were checked to have.
    DiffId,
}

impl RecordKind {
    pub const ALL: [RecordKind; 4] = [
        RecordKind::Layer,
        RecordKind::Dir,
        RecordKind::Verified,
        RecordKind::DiffId,
    ];

    pub fn dir_name(self) -> &'static str {
        match self {
            RecordKind::Layer => "layers",
            RecordKind::Dir => "dirs",
            RecordKind::Verified => "verified",
            RecordKind::DiffId => "diffids",
        }
    }
}

/// Records are small; anything larger is not one of ours.
const MAX_RECORD: u64 = 64 * 1024;

/// The per-cache secret that authenticates records.
#[derive(Clone)]
pub(crate) struct RecordKey([u8; 32]);

impl std::fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordKey(..)")
    }
}

impl RecordKey {
    /// Reads `path`, or creates it (0600, exclusively, so concurrent first opens agree on one
    /// key). A key file that others could read, or that is not exactly 32 bytes, is replaced:
    /// the records it signed then read as missing, which costs only a rebuild.
    pub(crate) fn load_or_create(path: &Path) -> Result<RecordKey> {
        let err = |source| StoreError::Key {
            path: path.to_path_buf(),
            source,
        };
        for _ in 0..3 {
            match File::open(path) {
                Ok(mut f) => {
                    let md = f.metadata().map_err(err)?;
                    let mut bytes = Vec::new();
                    (&mut f).take(33).read_to_end(&mut bytes).map_err(err)?;
                    let private =
                        md.mode() & 0o077 == 0 && md.uid() == rustix::process::geteuid().as_raw();
                    if private && bytes.len() == 32 {
                        let mut key = [0u8; 32];
                        key.copy_from_slice(&bytes);
                        return Ok(RecordKey(key));
                    }
                    // Not trustworthy: replace it (another process may race us; the loop
                    // then reads whichever key won).
                    match std::fs::remove_file(path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(err(e)),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(err(e)),
            }
            let mut key = [0u8; 32];
            OsRng.fill_bytes(&mut key);
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
                .open(&tmp)
                .map_err(err)?;
            f.set_permissions(Permissions::from_mode(0o600))
                .and_then(|()| f.write_all(&key))
                .and_then(|()| f.sync_all())
                .map_err(err)?;
            // A hard link fails if another process created the key first: then use theirs.
            let linked = std::fs::hard_link(&tmp, path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => return Ok(RecordKey(key)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(err(e)),
            }
        }
        Err(err(io::Error::other(
            "the key file keeps changing; is another process replacing it?",
        )))
    }

    /// HMAC-SHA256 (RFC 2104) of `kind`, `name` and `payload`.
    fn mac(&self, kind: RecordKind, name: &Sha256Digest, payload: &[u8]) -> [u8; 32] {
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&self.0);
        let pad = |byte: u8| -> [u8; 64] { block.map(|b| b ^ byte) };
        let mut inner = Sha256::new();
        inner.update(pad(0x36));
        inner.update(kind.dir_name().as_bytes());
        inner.update([0]);
        inner.update(name.hex().as_bytes());
        inner.update([0]);
        inner.update(payload);
        let mut outer = Sha256::new();
        outer.update(pad(0x5c));
        outer.update(inner.finalize());
        outer.finalize().into()
    }
}

impl Store {
    fn record_path(&self, kind: RecordKind, name: &Sha256Digest) -> PathBuf {
        self.records_dir(kind).join(name.hex())
    }

    pub(crate) fn records_dir(&self, kind: RecordKind) -> PathBuf {
        self.root().join("refs").join(kind.dir_name())
    }

    /// The payload of record `name` of `kind`, if there is one and it is authentic. Reading a
    /// record counts as a use of it (for `gc`).
    pub fn read_record(&self, kind: RecordKind, name: &Sha256Digest) -> Option<Vec<u8>> {
        let path = self.record_path(kind, name);
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
            .ok()?;
        let mut bytes = Vec::new();
        file.take(MAX_RECORD).read_to_end(&mut bytes).ok()?;
        let (mac, payload) = parse_record(&bytes)?;
        if mac != self.key.mac(kind, name, payload) {
            return None;
        }
        super::usage::touch(&path);
        Some(payload.to_vec())
    }

    /// Writes record `name` of `kind` (private, atomically). Records are optimisations: a
    /// failure to write one costs a recomputation later, so it is not an error.
    pub fn write_record(&self, kind: RecordKind, name: &Sha256Digest, payload: &[u8]) {
        let _ = self.try_write_record(kind, name, payload);
    }

    fn try_write_record(
        &self,
        kind: RecordKind,
        name: &Sha256Digest,
        payload: &[u8],
    ) -> Result<()> {
        let dir = self.records_dir(kind);
        self.create_private_dir(&dir)?;
        let io_err = |source| StoreError::Write {
            path: dir.clone(),
            source,
        };
        // NamedTempFile creates 0600 whatever the umask.
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io_err)?;
        let mac = self.key.mac(kind, name, payload);
        tmp.write_all(hex::encode(mac).as_bytes())
            .and_then(|()| tmp.write_all(b"\n"))
            .and_then(|()| tmp.write_all(payload))
            .map_err(io_err)?;
        tmp.persist(self.record_path(kind, name))
            .map_err(|e| io_err(e.error))?;
        Ok(())
    }

    /// Removes record `name` of `kind`, if any.
    pub fn remove_record(&self, kind: RecordKind, name: &Sha256Digest) {
        let _ = std::fs::remove_file(self.record_path(kind, name));
    }

    /// Whether the record file at `path` (under `records_dir(kind)`) is authentic.
    pub(crate) fn record_is_authentic(&self, kind: RecordKind, path: &Path) -> bool {
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| Sha256Digest::from_hex(n).ok())
        else {
            return false;
        };
        let Ok(bytes) = std::fs::read(path) else {
            return false;
        };
        parse_record(&bytes).is_some_and(|(mac, payload)| mac == self.key.mac(kind, &name, payload))
    }
}

/// What the layer cache remembers for one cache key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerRecord {
    pub media_type: String,
    pub digest: Sha256Digest,
    pub size: u64,
    pub diff_id: Sha256Digest,
    /// The `remove` steps (index in the layer, tree key) that removed nothing, so that a
    /// build taking the layer from the cache warns as the one that built it did.
    #[serde(default)]
    pub removed_nothing: Vec<(usize, String)>,
}

impl Store {
    /// The layer built for cache key `key`, when its record is authentic and the blob it names
    /// is in the store and verified (by its stamp; output re-hashes it, see `export`).
    pub fn layer_record(&self, key: &Sha256Digest) -> Option<LayerRecord> {
        let bytes = self.read_record(RecordKind::Layer, key)?;
        let record: LayerRecord = serde_json::from_slice(&bytes).ok()?;
        self.open_verified_cached(&record.digest).ok()??;
        Some(record)
    }

    /// Remembers that cache key `key` built `record` (best effort).
    pub fn record_layer(&self, key: &Sha256Digest, record: &LayerRecord) {
        if let Ok(bytes) = serde_json::to_vec(record) {
            self.write_record(RecordKind::Layer, key, &bytes);
        }
    }

    /// The diff_id blob `digest` was checked to have, if it was.
    pub fn diff_id_record(&self, digest: &Sha256Digest) -> Option<Sha256Digest> {
        let bytes = self.read_record(RecordKind::DiffId, digest)?;
        std::str::from_utf8(&bytes).ok()?.trim().parse().ok()
    }

    /// Remembers that blob `digest` uncompresses to bytes with digest `diff_id`.
    pub fn record_diff_id(&self, digest: &Sha256Digest, diff_id: &Sha256Digest) {
        self.write_record(RecordKind::DiffId, digest, diff_id.to_string().as_bytes());
    }
}

fn parse_record(bytes: &[u8]) -> Option<([u8; 32], &[u8])> {
    let nl = bytes.iter().position(|&b| b == b'\n')?;
    let mut mac = [0u8; 32];
    hex::decode_to_slice(&bytes[..nl], &mut mac).ok()?;
    Some((mac, &bytes[nl + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_forgeries_read_as_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("c")).unwrap();
        let name = Sha256Digest::of(b"key");
        let other = Sha256Digest::of(b"other key");
        assert_eq!(store.read_record(RecordKind::Layer, &name), None);
        store.write_record(RecordKind::Layer, &name, b"payload");
        assert_eq!(
            store.read_record(RecordKind::Layer, &name).as_deref(),
            Some(&b"payload"[..])
        );
        // Another kind or another name: not the same record.
        assert_eq!(store.read_record(RecordKind::Dir, &name), None);
        let path = store.record_path(RecordKind::Layer, &name);
        let moved = store.record_path(RecordKind::Layer, &other);
        std::fs::copy(&path, &moved).unwrap();
        assert_eq!(store.read_record(RecordKind::Layer, &other), None);
        // A changed payload under the old MAC.
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(store.read_record(RecordKind::Layer, &name), None);
        assert!(!store.record_is_authentic(RecordKind::Layer, &path));

        // A record made with the same kiln but another cache's key is not ours either.
        let elsewhere = Store::open(&tmp.path().join("d")).unwrap();
        elsewhere.write_record(RecordKind::Layer, &name, b"payload");
        std::fs::copy(elsewhere.record_path(RecordKind::Layer, &name), &path).unwrap();
        assert_eq!(store.read_record(RecordKind::Layer, &name), None);
    }

    #[test]
    fn a_key_readable_by_others_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("c");
        let store = Store::open(&root).unwrap();
        let name = Sha256Digest::of(b"k");
        store.write_record(RecordKind::Dir, &name, b"x");
        let key = root.join("key");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&key, Permissions::from_mode(0o644)).unwrap();
        let store = Store::open(&root).unwrap();
        assert_eq!(store.read_record(RecordKind::Dir, &name), None);
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
