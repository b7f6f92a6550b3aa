//! Resolving a recipe's inputs to verified local bytes: `url` inputs through the store (mirror,
//! cache or network, never unverified), `path` inputs hashed where they are (a directory's
//! digest is that of its deterministic tar, so it does not depend on mtimes, umask or the order
//! in which the file system lists it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::observer::Metered;
use super::{BuildError, BuildEvent, BuildObserver, BuildOptions, Result, Work};
use crate::digest::{Hasher, Sha256Digest};
use crate::fetch::Fetcher;
use crate::layer::HostDigestError;
use crate::recipe::{Input, InputSource, Recipe};
use crate::store::Store;

#[derive(Clone, Debug)]
pub enum InputBytes {
    /// A verified file in the store (a `url` input).
    Stored(PathBuf),
    /// A file in the recipe's tree.
    HostFile(PathBuf),
    /// A directory in the recipe's tree.
    HostDir(PathBuf),
}

#[derive(Clone, Debug)]
pub struct ResolvedInput {
    pub name: String,
    /// How the provenance names it: the URL, or `file:` and the path as the recipe wrote it.
    pub uri: String,
    pub digest: Sha256Digest,
    pub bytes: InputBytes,
}

/// Resolves the inputs `wanted` says the build needs (the others are used only by layers
/// taken from a remote cache).
pub fn resolve(
    recipe: &Recipe,
    store: &Store,
    opts: &BuildOptions,
    observer: &dyn BuildObserver,
    wanted: &dyn Fn(&str) -> bool,
) -> Result<BTreeMap<String, ResolvedInput>> {
    let mut fetcher = Fetcher::new(store.clone());
    fetcher.mirrors = opts.mirrors.clone();
    fetcher.offline = opts.offline;
    fetcher.max_download_size = opts.max_download_size;
    fetcher.progress = observer.transfer_progress();
    let mut out = BTreeMap::new();
    for (name, input) in recipe.inputs.iter().filter(|(name, _)| wanted(name)) {
        let at = recipe.location(input.span);
        let (resolved, size, cached) = match &input.source {
            InputSource::Url { url, sha256, size } => {
                let expected = sha256
                    .as_ref()
                    .expect("build refuses unpinned inputs first");
                let cached = store.contains(expected);
                let path = fetcher
                    .fetch_sized(url, expected, *size, name)
                    .map_err(|source| BuildError::InputFetch {
                        at: at.clone(),
                        input: name.clone(),
                        source: Box::new(source),
                    })?;
                let size = fs_err::metadata(&path).ok().map(|m| m.len());
                let resolved = ResolvedInput {
                    name: name.clone(),
                    uri: uri(input),
                    digest: *expected,
                    bytes: InputBytes::Stored(path),
                };
                (resolved, size, cached)
            }
            InputSource::Path {
                resolved, sha256, ..
            } => {
                let hashed = hash_path(recipe, input, resolved, Some(store), observer)?;
                if let Some(expected) = sha256 {
                    if *expected != hashed.digest {
                        return Err(BuildError::InputMismatch {
                            at: Box::new(at),
                            input: name.clone(),
                            path: resolved.clone(),
                            expected: *expected,
                            actual: hashed.digest,
                        });
                    }
                }
                let resolved = ResolvedInput {
                    name: name.clone(),
                    uri: uri(input),
                    digest: hashed.digest,
                    bytes: hashed.bytes,
                };
                (resolved, hashed.size, hashed.cached)
            }
        };
        observer.event(BuildEvent::InputReady {
            name,
            digest: &resolved.digest,
            size,
            cached,
        });
        out.insert(name.clone(), resolved);
    }
    Ok(out)
}

/// How the provenance (and the plan) names an input: its URL, or `file:` and the path as the
/// recipe writes it.
pub fn uri(input: &Input) -> String {
    match &input.source {
        InputSource::Url { url, .. } => url.clone(),
        InputSource::Path { path, .. } => format!("file:{}", path.display()),
    }
}

/// A `path` input's bytes and digest.
pub struct HashedPath {
    pub digest: Sha256Digest,
    pub bytes: InputBytes,
    /// The file's size, or the size of the directory's tar when it was hashed.
    pub size: Option<u64>,
    /// Whether the digest came from the store's fingerprint cache.
    pub cached: bool,
}

/// Hashes the `path` input `input`, found at `resolved`: a file's bytes, or a directory's
/// deterministic tar. With a `store`, a directory's digest is taken from (and recorded in) its
/// fingerprint cache; without one nothing is written.
pub fn hash_path(
    recipe: &Recipe,
    input: &Input,
    resolved: &Path,
    store: Option<&Store>,
    observer: &dyn BuildObserver,
) -> Result<HashedPath> {
    let name = &input.name;
    let at = recipe.location(input.span);
    let read_err = |e: std::io::Error| BuildError::InputRead {
        at: at.clone(),
        input: name.clone(),
        path: resolved.to_path_buf(),
        source: e,
    };
    let md = fs_err::symlink_metadata(resolved).map_err(&read_err)?;
    if md.is_dir() {
        let progress = |n| observer.progress(Work::Input(name), n);
        let step_err = |e: HostDigestError| BuildError::Step {
            location: at.to_string(),
            step: "path input",
            source: Box::new(e),
        };
        let (digest, size) = match store {
            Some(store) => super::dirstat::dir_digest(store, resolved, &progress),
            None => crate::layer::host_path_digest(resolved).map(|d| (d, None)),
        }
        .map_err(step_err)?;
        return Ok(HashedPath {
            digest,
            bytes: InputBytes::HostDir(resolved.to_path_buf()),
            size,
            cached: store.is_some() && size.is_none(),
        });
    }
    let mut file = fs_err::File::open(resolved).map_err(&read_err)?;
    let mut hasher = Metered::new(Hasher::new(), observer, Work::Input(name));
    let size = std::io::copy(&mut file, &mut hasher).map_err(read_err)?;
    Ok(HashedPath {
        digest: hasher.into_inner().finish(),
        bytes: InputBytes::HostFile(resolved.to_path_buf()),
        size: Some(size),
        cached: false,
    })
}
