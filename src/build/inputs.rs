//! Resolving a recipe's inputs to verified local bytes: `url` inputs through the store (mirror,
//! cache or network, never unverified), `path` inputs hashed where they are (a directory's
//! digest is that of its deterministic tar, so it does not depend on mtimes, umask or the order
//! in which the file system lists it).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::observer::Metered;
use super::{BuildError, BuildEvent, BuildObserver, BuildOptions, Result, Work};
use crate::digest::{Hasher, Sha256Digest};
use crate::fetch::Fetcher;
use crate::recipe::{InputSource, Recipe};
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

pub fn resolve(
    recipe: &Recipe,
    store: &Store,
    opts: &BuildOptions,
    observer: &dyn BuildObserver,
) -> Result<BTreeMap<String, ResolvedInput>> {
    let mut fetcher = Fetcher::new(store.clone());
    fetcher.mirrors = opts.mirrors.clone();
    fetcher.offline = opts.offline;
    fetcher.max_download_size = opts.max_download_size;
    fetcher.progress = observer.transfer_progress();
    let mut out = BTreeMap::new();
    for (name, input) in &recipe.inputs {
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
                    uri: url.clone(),
                    digest: *expected,
                    bytes: InputBytes::Stored(path),
                };
                (resolved, size, cached)
            }
            InputSource::Path {
                path,
                resolved,
                sha256,
            } => {
                let read_err = |e: std::io::Error| BuildError::InputRead {
                    at: at.clone(),
                    input: name.clone(),
                    path: resolved.clone(),
                    source: e,
                };
                let md = fs_err::symlink_metadata(resolved).map_err(&read_err)?;
                let (digest, bytes, size, cached) = if md.is_dir() {
                    let progress = |n| observer.progress(Work::Input(name), n);
                    let (digest, size) = super::dirstat::dir_digest(store, resolved, &progress)
                        .map_err(|e| BuildError::Step {
                            location: at.to_string(),
                            step: "path input",
                            source: Box::new(e),
                        })?;
                    let dir = InputBytes::HostDir(resolved.clone());
                    (digest, dir, size, size.is_none())
                } else {
                    let mut file = fs_err::File::open(resolved).map_err(&read_err)?;
                    let mut hasher = Metered::new(Hasher::new(), observer, Work::Input(name));
                    let size = std::io::copy(&mut file, &mut hasher).map_err(read_err)?;
                    let digest = hasher.into_inner().finish();
                    (
                        digest,
                        InputBytes::HostFile(resolved.clone()),
                        Some(size),
                        false,
                    )
                };
                if let Some(expected) = sha256 {
                    if *expected != digest {
                        return Err(BuildError::InputMismatch {
                            at: Box::new(at),
                            input: name.clone(),
                            path: resolved.clone(),
                            expected: *expected,
                            actual: digest,
                        });
                    }
                }
                let resolved = ResolvedInput {
                    name: name.clone(),
                    uri: format!("file:{}", path.display()),
                    digest,
                    bytes,
                };
                (resolved, size, cached)
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
