//! Reading a repository for `kiln lock`: `InRelease` verified against the keyring, then each
//! component's `Packages` index fetched into the store pinned to the release's SHA256 (so an
//! index that differs from what the release signed never enters the cache) and read.

use std::collections::BTreeSet;
use std::io::BufReader;

use super::packages::{read_packages, PackageIndex, PackagesError};
use super::release::{verify_inrelease, Keyring, Release, ReleaseError, MAX_INRELEASE};
use super::resolve::{resolve, ResolveError};
use crate::digest::Sha256Digest;
use crate::fetch::{FetchError, Fetcher, SizeLimit};
use crate::layer::decompress::{open_archive, DecompressError};
use crate::recipe::Repository;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("failed to fetch the release of repository `{repository}`")]
    Fetch {
        repository: String,
        #[source]
        source: Box<FetchError>,
    },
    #[error("repository `{repository}`: the release could not be trusted")]
    Release {
        repository: String,
        #[source]
        source: Box<ReleaseError>,
    },
    #[error(
        "repository `{repository}`: the release lists no Packages index for component \
         `{component}` on {arch} (looked for {path}.xz, .gz and plain)"
    )]
    NoIndex {
        repository: String,
        component: String,
        arch: String,
        path: String,
    },
    #[error("repository `{repository}`: failed to decompress {index}")]
    Decompress {
        repository: String,
        index: String,
        #[source]
        source: Box<DecompressError>,
    },
    #[error("repository `{repository}`: failed to read {index}")]
    Packages {
        repository: String,
        index: String,
        #[source]
        source: Box<PackagesError>,
    },
    #[error("repository `{repository}`: failed to resolve the packages for {arch}")]
    Resolve {
        repository: String,
        arch: String,
        #[source]
        source: Box<ResolveError>,
    },
    #[error("failed to read {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A verified release and the packages of one architecture.
pub struct RepoState {
    pub release: Release,
    pub inrelease_sha256: Sha256Digest,
    pub inrelease_url: String,
    pub index: PackageIndex,
}

/// Fetches and verifies `repo` for `arch` at unix time `now`.
pub fn load(
    repo: &Repository,
    keyring: &Keyring,
    arch: &str,
    now: i64,
    fetcher: &Fetcher,
) -> Result<RepoState, RepoError> {
    let name = &repo.name;
    let dists = format!("{}/dists/{}", repo.url, repo.suite);
    let inrelease_url = format!("{dists}/InRelease");
    let what = format!("{name} InRelease");
    let bytes = fetcher
        .read_unpinned(&inrelease_url, &what, MAX_INRELEASE)
        .map_err(|source| RepoError::Fetch {
            repository: name.clone(),
            source: Box::new(source),
        })?;
    let release = verify_inrelease(&bytes, keyring, now, &inrelease_url).map_err(|source| {
        RepoError::Release {
            repository: name.clone(),
            source: Box::new(source),
        }
    })?;
    let mut index = PackageIndex::default();
    for component in &repo.components {
        let base = format!("{component}/binary-{arch}/Packages");
        let listed = ["xz", "gz", ""].iter().find_map(|ext| {
            let path = if ext.is_empty() {
                base.clone()
            } else {
                format!("{base}.{ext}")
            };
            release.sha256.get(&path).map(|f| (path, f.clone()))
        });
        let Some((path, file)) = listed else {
            return Err(RepoError::NoIndex {
                repository: name.clone(),
                component: component.clone(),
                arch: arch.to_string(),
                path: base,
            });
        };
        let url = format!("{dists}/{path}");
        let label = format!("{name} {path}");
        // Pinned to the signed digest and size: a mismatching or larger index is refused before
        // it is stored.
        let stored = fetcher
            .fetch_limited(&url, &file.sha256, SizeLimit::Listed(file.size), &label)
            .map_err(|source| RepoError::Fetch {
                repository: name.clone(),
                source: Box::new(source),
            })?;
        let f = fs_err::File::open(&stored).map_err(|source| RepoError::Io {
            path: stored.display().to_string(),
            source,
        })?;
        let reader: Box<dyn std::io::Read + Send> = if path.ends_with("Packages") {
            Box::new(f)
        } else {
            open_archive(f, &url).map_err(|source| RepoError::Decompress {
                repository: name.clone(),
                index: url.clone(),
                source: Box::new(source),
            })?
        };
        read_packages(BufReader::new(reader), &url, |p| index.add(p)).map_err(|source| {
            RepoError::Packages {
                repository: name.clone(),
                index: url.clone(),
                source: Box::new(source),
            }
        })?;
    }
    Ok(RepoState {
        release,
        inrelease_sha256: Sha256Digest::of(&bytes),
        inrelease_url,
        index,
    })
}

impl RepoState {
    pub fn resolve(
        &self,
        repository: &str,
        arch: &str,
        requested: &[String],
    ) -> Result<Vec<super::lockfile::LockedPackage>, RepoError> {
        let request: BTreeSet<String> = requested.iter().cloned().collect();
        let packages =
            resolve(&self.index, arch, &request).map_err(|source| RepoError::Resolve {
                repository: repository.to_string(),
                arch: arch.to_string(),
                source: Box::new(source),
            })?;
        Ok(packages
            .into_iter()
            .map(|p| super::lockfile::LockedPackage {
                name: p.name,
                version: p.version.to_string(),
                architecture: p.architecture,
                source: p.source,
                source_version: p.source_version,
                filename: p.filename,
                size: p.size,
                sha256: p.sha256,
            })
            .collect())
    }
}
