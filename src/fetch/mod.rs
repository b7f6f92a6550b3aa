//! Fetching inputs: local paths, http(s), mirror directories; every stream hashed as it flows.
//!
//! A pinned input is looked for, in order, in the store (re-verified), in each mirror directory
//! and finally on the network. Whatever the source, the bytes stream through a `BlobWriter`
//! that hashes them, and only a matching digest is committed: nothing unverified ever enters
//! the store. The digest's lock is held from the second store lookup to the commit, so when
//! several builds want the same input at once exactly one downloads it and the others find the
//! finished entry. The library reports progress through the `Progress` trait and never prints.

mod error;
mod http;
mod mirror;

#[cfg(test)]
mod tests;

use std::io::{self, Read};
use std::path::PathBuf;

use url::Url;

pub use self::error::{FetchError, Result};
use crate::digest::{Hasher, Sha256Digest};
use crate::store::{Store, StoreError};

/// Download progress, implemented by the CLI (bars on a terminal, plain lines otherwise).
pub trait Progress: Send + Sync {
    /// A transfer of input `what` began; `total` is its size when known.
    fn started(&self, what: &str, total: Option<u64>);
    /// `bytes` more bytes of the current transfer arrived.
    fn advanced(&self, bytes: u64);
    /// The transfer of `what` ended (successfully or not).
    fn finished(&self, what: &str);
}

/// Gets inputs into the store.
pub struct Fetcher {
    pub store: Store,
    /// Directories holding inputs named by digest (`<hex>`, `sha256:<hex>`, `sha256-<hex>` or
    /// `blobs/sha256/<hex>`), tried before the network.
    pub mirrors: Vec<PathBuf>,
    /// Never touch the network (file:// URLs, the store and mirrors still work).
    pub offline: bool,
    pub progress: Option<Box<dyn Progress>>,
    /// How many times a failed download is tried again (connection errors, bodies cut short,
    /// HTTP 429 and 5xx), from scratch and re-verified. Never for a digest mismatch.
    pub retries: u32,
    /// The most bytes read for an input without a pinned `size` (unpinned ones for `kiln
    /// lock`, and recipes pinned before sizes were recorded). A pinned size is its own limit.
    pub max_download_size: u64,
}

/// Default for `Fetcher::retries`.
pub const DEFAULT_RETRIES: u32 = 2;

/// Default for `Fetcher::max_download_size`: 8 GiB, above any sane single input (distribution
/// images and toolchains are well under it) yet a bound on a server that never stops.
pub const DEFAULT_MAX_DOWNLOAD_SIZE: u64 = 8 << 30;

/// How many bytes a transfer may bring, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeLimit {
    /// The `size` pinned in the recipe.
    Pinned(u64),
    /// `--max-download-size`.
    Cap(u64),
    /// The size signed repository metadata lists (a Debian lock or `Release`).
    Listed(u64),
    /// The bound kiln sets for a document it reads into memory (a Debian `InRelease`).
    Document(u64),
}

impl SizeLimit {
    pub fn bytes(self) -> u64 {
        match self {
            SizeLimit::Pinned(n)
            | SizeLimit::Cap(n)
            | SizeLimit::Listed(n)
            | SizeLimit::Document(n) => n,
        }
    }
}

impl std::fmt::Display for SizeLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SizeLimit::Pinned(n) => {
                write!(f, "its pinned size of {n} bytes (`size` in the recipe)")
            }
            SizeLimit::Cap(n) => write!(f, "--max-download-size ({n} bytes)"),
            SizeLimit::Listed(n) => {
                write!(
                    f,
                    "the size of {n} bytes the signed repository metadata lists"
                )
            }
            SizeLimit::Document(n) => write!(f, "the {n}-byte limit for this document"),
        }
    }
}

impl Fetcher {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            mirrors: Vec::new(),
            offline: false,
            progress: None,
            retries: DEFAULT_RETRIES,
            max_download_size: DEFAULT_MAX_DOWNLOAD_SIZE,
        }
    }

    /// Makes the input `what` (pinned to `expected`, downloadable from `url`) available in the
    /// store and returns the path of its verified entry. Reads at most `max_download_size`.
    pub fn fetch(&self, url: &str, expected: &Sha256Digest, what: &str) -> Result<PathBuf> {
        self.fetch_sized(url, expected, None, what)
    }

    /// [`Fetcher::fetch`] for an input whose size is pinned too: a transfer that announces or
    /// brings more than `size` bytes is stopped there (without one, at `max_download_size`).
    pub fn fetch_sized(
        &self,
        url: &str,
        expected: &Sha256Digest,
        size: Option<u64>,
        what: &str,
    ) -> Result<PathBuf> {
        self.fetch_limited(url, expected, self.limit(size), what)
    }

    /// [`Fetcher::fetch`] stopped at `limit`: for a size that comes from elsewhere than the
    /// recipe ([`SizeLimit::Listed`]).
    pub fn fetch_limited(
        &self,
        url: &str,
        expected: &Sha256Digest,
        limit: SizeLimit,
        what: &str,
    ) -> Result<PathBuf> {
        if let Some(path) = self.cached(expected, None, what)? {
            return Ok(path);
        }
        let lock = self.store.lock(expected).map_err(|e| store_err(what, e))?;
        // Someone else may have committed it while we waited for the lock.
        if let Some(path) = self.cached(expected, Some(&lock), what)? {
            return Ok(path);
        }
        let mut mirror_error = None;
        for path in mirror::candidates(&self.mirrors, expected) {
            match self.copy_mirror_file(&path, expected, limit, what) {
                Ok(()) => return Ok(self.store.path_unverified(expected)),
                Err(e) => {
                    mirror_error.get_or_insert(e);
                }
            }
        }
        let parsed = parse_url(url, what)?;
        if self.offline && parsed.scheme() != "file" {
            return Err(mirror_error.unwrap_or_else(|| FetchError::Offline {
                input: what.to_string(),
                url: url.to_string(),
                expected: *expected,
            }));
        }
        self.with_retries(|| {
            let source = self.open_source(&parsed, url, what)?;
            self.to_store(source, Some(expected), limit, what, url)
        })?;
        drop(lock);
        Ok(self.store.path_unverified(expected))
    }

    /// [`Fetcher::resolve_sized`] without the size.
    #[cfg(test)]
    pub fn resolve(&self, url: &str, what: &str) -> Result<Sha256Digest> {
        self.resolve_sized(url, what).map(|(digest, _)| digest)
    }

    /// Downloads an unpinned `url` into the store and returns its digest and the size to pin
    /// (at most `max_download_size`), for `kiln lock`.
    ///
    /// A body sent without Content-Length (chunked or close-delimited) is downloaded twice, the
    /// first time only hashed, and must hash the same both times: a close-delimited body cut
    /// off by a broken connection looks complete, and a pin must not be taken from a truncated
    /// file. (A chunked body cut off before its last chunk is refused as [`FetchError::CutShort`].)
    pub fn resolve_sized(&self, url: &str, what: &str) -> Result<(Sha256Digest, u64)> {
        let limit = self.limit(None);
        let parsed = parse_url(url, what)?;
        if self.offline && parsed.scheme() != "file" {
            return Err(FetchError::ResolveOffline {
                input: what.to_string(),
                url: url.to_string(),
            });
        }
        let first = self.with_retries(|| {
            let source = self.open_source(&parsed, url, what)?;
            if source.declared.is_some() {
                self.to_store(source, None, limit, what, url)
                    .map(|d| (d, true))
            } else {
                self.to_hasher(source, limit, what, url).map(|d| (d, false))
            }
        })?;
        let (first, stored) = first;
        if stored {
            return Ok(first);
        }
        self.with_retries(|| {
            let again = self.open_source(&parsed, url, what)?;
            self.to_store(again, Some(&first.0), limit, what, url)
        })
        .map_err(|e| match e {
            FetchError::DigestMismatch {
                input,
                url,
                expected,
                actual,
            } => FetchError::Unstable {
                input,
                url,
                first: expected,
                second: actual,
            },
            other => other,
        })
    }

    /// Downloads an unpinned `url` into memory, refusing more than `limit` bytes; nothing is
    /// stored. For small documents that are verified by other means before use (a Debian
    /// `InRelease`, checked against a keyring).
    pub fn read_unpinned(&self, url: &str, what: &str, limit: u64) -> Result<Vec<u8>> {
        let parsed = parse_url(url, what)?;
        if self.offline && parsed.scheme() != "file" {
            return Err(FetchError::ResolveOffline {
                input: what.to_string(),
                url: url.to_string(),
            });
        }
        self.with_retries(|| {
            let source = self.open_source(&parsed, url, what)?;
            let mut bytes = Vec::new();
            self.pump(
                source,
                SizeLimit::Document(limit),
                what,
                url,
                &mut |chunk| {
                    bytes.extend_from_slice(chunk);
                    Ok(())
                },
            )?;
            Ok(bytes)
        })
    }

    fn limit(&self, pinned: Option<u64>) -> SizeLimit {
        pinned.map_or(SizeLimit::Cap(self.max_download_size), SizeLimit::Pinned)
    }

    /// Runs `attempt` up to `1 + self.retries` times while it fails with a transient error,
    /// waiting a little longer before each new try.
    fn with_retries<T>(&self, mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
        let mut tries = 0;
        loop {
            match attempt() {
                Err(e) if tries < self.retries && e.is_transient() => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(250 << tries));
                }
                other => return other,
            }
        }
    }

    /// The verified store entry, if any. A corrupt entry has been quarantined by the store and
    /// counts as missing, so it is fetched again.
    fn cached(
        &self,
        digest: &Sha256Digest,
        lock: Option<&crate::store::DigestLock>,
        what: &str,
    ) -> Result<Option<PathBuf>> {
        let found = match lock {
            Some(lock) => self.store.open_verified_locked(lock),
            None => self.store.open_verified(digest),
        };
        match found {
            Ok(Some(blob)) => Ok(Some(blob.path)),
            Ok(None) | Err(StoreError::Corrupt { .. }) => Ok(None),
            Err(e) => Err(store_err(what, e)),
        }
    }

    fn copy_mirror_file(
        &self,
        path: &std::path::Path,
        expected: &Sha256Digest,
        limit: SizeLimit,
        what: &str,
    ) -> Result<()> {
        let source = open_regular_file(path, what)?;
        let source_name = path.display().to_string();
        self.to_store(source, Some(expected), limit, what, &source_name)
            .map_err(|e| match e {
                FetchError::DigestMismatch {
                    input,
                    expected,
                    actual,
                    ..
                } => FetchError::MirrorMismatch {
                    input,
                    path: path.to_path_buf(),
                    expected,
                    actual,
                },
                other => other,
            })?;
        Ok(())
    }

    fn open_source(&self, parsed: &Url, url: &str, what: &str) -> Result<Source> {
        match parsed.scheme() {
            "file" => {
                let path = parsed
                    .to_file_path()
                    .map_err(|()| FetchError::UnsupportedUrl {
                        input: what.to_string(),
                        url: url.to_string(),
                    })?;
                open_regular_file(&path, what)
            }
            "http" | "https" => {
                let download = http::get(parsed, what)?;
                Ok(Source {
                    body: download.body,
                    declared: download.content_length,
                })
            }
            _ => Err(FetchError::UnsupportedUrl {
                input: what.to_string(),
                url: url.to_string(),
            }),
        }
    }

    /// Streams `source` into a new store entry, committed only if it matches `expected`.
    fn to_store(
        &self,
        source: Source,
        expected: Option<&Sha256Digest>,
        limit: SizeLimit,
        what: &str,
        url: &str,
    ) -> Result<(Sha256Digest, u64)> {
        let mut writer = self
            .store
            .writer_for(what)
            .map_err(|e| store_err(what, e))?;
        self.pump(source, limit, what, url, &mut |chunk| {
            writer.write_chunk(chunk).map_err(|e| store_err(what, e))
        })?;
        match writer.commit(expected) {
            Ok(pinned) => Ok(pinned),
            Err(StoreError::DigestMismatch {
                expected, actual, ..
            }) => Err(FetchError::DigestMismatch {
                input: what.to_string(),
                url: url.to_string(),
                expected,
                actual,
            }),
            Err(e) => Err(store_err(what, e)),
        }
    }

    /// The digest and size of `source`, storing nothing.
    fn to_hasher(
        &self,
        source: Source,
        limit: SizeLimit,
        what: &str,
        url: &str,
    ) -> Result<(Sha256Digest, u64)> {
        let mut hasher = Hasher::new();
        let size = self.pump(source, limit, what, url, &mut |chunk| {
            hasher.update(chunk);
            Ok(())
        })?;
        Ok((hasher.finish(), size))
    }

    /// Copies `source` into `sink`, reporting progress, and checks the announced length. A
    /// source announcing more than `limit` is refused before its first byte; one that brings
    /// more is stopped at the first chunk past it.
    fn pump(
        &self,
        mut source: Source,
        limit: SizeLimit,
        what: &str,
        url: &str,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<u64> {
        let too_large = |announced| FetchError::TooLarge {
            input: what.to_string(),
            url: url.to_string(),
            limit,
            announced,
        };
        if let Some(declared) = source.declared.filter(|&d| d > limit.bytes()) {
            return Err(too_large(Some(declared)));
        }
        let progress = self.progress.as_deref();
        if let Some(p) = progress {
            p.started(what, source.declared);
        }
        let mut received = 0u64;
        let mismatch = |declared, received| FetchError::LengthMismatch {
            input: what.to_string(),
            url: url.to_string(),
            declared,
            received,
        };
        let mut buf = vec![0u8; 64 * 1024];
        let result = loop {
            let n = match source.body.read(&mut buf) {
                Ok(0) => break Ok(received),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The connection closed early: before the announced length, or (without
                // one) before the end of a chunked body; a close-delimited body just ends.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    break Err(match source.declared {
                        Some(declared) => mismatch(declared, received),
                        None => FetchError::CutShort {
                            input: what.to_string(),
                            url: url.to_string(),
                            received,
                        },
                    })
                }
                Err(e) => {
                    break Err(FetchError::Body {
                        input: what.to_string(),
                        url: url.to_string(),
                        source: e,
                    })
                }
            };
            received += n as u64;
            if received > limit.bytes() {
                break Err(too_large(None));
            }
            if let Err(e) = sink(&buf[..n]) {
                break Err(e);
            }
            if let Some(p) = progress {
                p.advanced(n as u64);
            }
        };
        if let Some(p) = progress {
            p.finished(what);
        }
        match (result?, source.declared) {
            (received, Some(declared)) if received != declared => Err(mismatch(declared, received)),
            (received, _) => Ok(received),
        }
    }
}

/// A body to read and the length announced for it, if any.
struct Source {
    body: Box<dyn Read + Send>,
    declared: Option<u64>,
}

/// Opens `path` for a transfer, refusing anything but a regular file (following symlinks):
/// `/dev/zero` would stream forever and a FIFO would block. Opened `O_NONBLOCK` and checked
/// again on the open file, so a FIFO swapped in meanwhile cannot block either.
fn open_regular_file(path: &std::path::Path, what: &str) -> Result<Source> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let io_err = |source| FetchError::File {
        input: what.to_string(),
        path: path.to_path_buf(),
        source,
    };
    let not_regular = |kind: std::fs::FileType| FetchError::NotRegularFile {
        input: what.to_string(),
        path: path.to_path_buf(),
        kind: if kind.is_dir() {
            "directory"
        } else if kind.is_fifo() {
            "fifo"
        } else if kind.is_char_device() {
            "character device"
        } else if kind.is_block_device() {
            "block device"
        } else if kind.is_socket() {
            "socket"
        } else {
            "special file"
        },
    };
    let before = std::fs::metadata(path).map_err(io_err)?;
    if !before.is_file() {
        return Err(not_regular(before.file_type()));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(io_err)?;
    let opened = file.metadata().map_err(io_err)?;
    if !opened.is_file() {
        return Err(not_regular(opened.file_type()));
    }
    Ok(Source {
        body: Box::new(file),
        declared: Some(opened.len()),
    })
}

fn parse_url(url: &str, what: &str) -> Result<Url> {
    let parsed = Url::parse(url).map_err(|_| FetchError::UnsupportedUrl {
        input: what.to_string(),
        url: url.to_string(),
    })?;
    match parsed.scheme() {
        "http" | "https" | "file" => Ok(parsed),
        _ => Err(FetchError::UnsupportedUrl {
            input: what.to_string(),
            url: url.to_string(),
        }),
    }
}

fn store_err(what: &str, source: StoreError) -> FetchError {
    FetchError::Store {
        input: what.to_string(),
        source: Box::new(source),
    }
}
