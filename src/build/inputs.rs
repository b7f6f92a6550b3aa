//! Resolving a recipe's inputs to verified local bytes: `url` inputs through the store (mirror,
//! cache or network, never unverified), `path` inputs hashed where they are (a directory's
//! digest is that of its deterministic tar, so it does not depend on mtimes, umask or the order
//! in which the file system lists it).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{BuildError, BuildEvent, BuildObserver, BuildOptions, Result};
use crate::digest::Sha256Digest;
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
        let resolved = match &input.source {
            InputSource::Url { url, sha256, size } => {
                let expected = sha256
                    .as_ref()
                    .expect("build refuses unpinned inputs first");
                let path = fetcher
                    .fetch_sized(url, expected, *size, name)
                    .map_err(|source| BuildError::InputFetch {
                        at: at.clone(),
                        input: name.clone(),
                        source: Box::new(source),
                    })?;
                ResolvedInput {
                    name: name.clone(),
                    uri: url.clone(),
                    digest: *expected,
                    bytes: InputBytes::Stored(path),
                }
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
                let (digest, bytes) = if md.is_dir() {
                    let digest = super::dirstat::dir_digest(store, resolved).map_err(|e| {
                        BuildError::Step {
                            location: at.to_string(),
                            step: "path input",
                            source: Box::new(e),
                        }
                    })?;
                    (digest, InputBytes::HostDir(resolved.clone()))
                } else {
                    let file = fs_err::File::open(resolved).map_err(&read_err)?;
                    let (digest, _) = Sha256Digest::of_reader(file).map_err(read_err)?;
                    (digest, InputBytes::HostFile(resolved.clone()))
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
                ResolvedInput {
                    name: name.clone(),
                    uri: format!("file:{}", path.display()),
                    digest,
                    bytes,
                }
            }
        };
        observer.event(BuildEvent::InputReady {
            name,
            digest: &resolved.digest,
        });
        out.insert(name.clone(), resolved);
    }
    Ok(out)
}
