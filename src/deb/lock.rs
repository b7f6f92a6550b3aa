//! The package half of `kiln lock` and `kiln fetch`: resolve each `packages` step's closure
//! from a verified repository into `RECIPE.lock` ([`update`]), and fill the cache with the
//! locked `.deb`s ([`fetch`]). The caller prints: progress arrives as [`LockEvent`]s, the
//! result as a [`PackagesLocked`] with the version changes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::debian_arch;
use super::lockfile::{
    lock_path, requests, same_repository, Lock, LockedPackage, LockedRelease, LockedRepository,
    LockfileError, PackageSet, LOCK_VERSION,
};
use super::release::{Keyring, ReleaseError};
use super::repo::{self, RepoError};
use crate::digest::Sha256Digest;
use crate::fetch::{FetchError, Fetcher};
use crate::image::ImageError;
use crate::recipe::{Platform, Recipe};

#[derive(Debug, thiserror::Error)]
pub enum DebLockError {
    #[error("platform {platform} has no Debian architecture")]
    NoArchitecture { platform: Platform },
    #[error("failed to read the keyring of repository `{repository}`")]
    Keyring {
        repository: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Release(#[from] ReleaseError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Lockfile(#[from] LockfileError),
    #[error(transparent)]
    Write(#[from] ImageError),
    #[error("failed to fetch {label}")]
    Fetch {
        label: String,
        #[source]
        source: Box<FetchError>,
    },
}

impl DebLockError {
    /// What the user can do about it, when kiln knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Lockfile(e) => e.hint(),
            Self::Write(e) => e.hint(),
            _ => None,
        }
    }
}

/// Progress of [`update`], in order, for the caller to show.
#[derive(Debug)]
pub enum LockEvent<'a> {
    /// About to read (fetch and verify) `repository` for `arch`.
    Reading {
        repository: &'a str,
        url: &'a str,
        suite: &'a str,
        arch: &'a str,
    },
    /// The repository's `InRelease` verified.
    Verified {
        inrelease_url: &'a str,
        date: &'a str,
        signed_by: &'a str,
    },
    /// One `packages` request resolved to a closure of `count` packages.
    Resolved {
        requested: &'a [String],
        repository: &'a str,
        arch: &'a str,
        count: usize,
    },
}

impl std::fmt::Display for LockEvent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockEvent::Reading {
                repository,
                url,
                suite,
                arch,
            } => write!(
                f,
                "reading repository `{repository}` ({url} {suite}) for {arch}"
            ),
            LockEvent::Verified {
                inrelease_url,
                date,
                signed_by,
            } => write!(
                f,
                "verified {inrelease_url} (Date: {date}; signed by {signed_by})"
            ),
            LockEvent::Resolved {
                requested,
                repository,
                arch,
                count,
            } => write!(
                f,
                "resolved [{}] from `{repository}` for {arch}: {count} packages",
                requested.join(", ")
            ),
        }
    }
}

/// One package whose locked version changed, appeared or went (`name:arch  old → new`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageChange {
    pub name: String,
    pub architecture: String,
    /// `None`: the package is new.
    pub old: Option<String>,
    /// `None`: the package went.
    pub new: Option<String>,
    /// The source package (of the new version when there is one).
    pub source: String,
}

impl PackageChange {
    /// The old and new versions as a report shows them: `(new)` and `(removed)` for none.
    pub fn versions(&self) -> (&str, &str) {
        (
            self.old.as_deref().unwrap_or("(new)"),
            self.new.as_deref().unwrap_or("(removed)"),
        )
    }
}

/// What [`update`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackagesLocked {
    /// The lock file, `RECIPE.lock`.
    pub path: PathBuf,
    /// Whether its bytes changed (else it was left as it was).
    pub written: bool,
    /// Every package whose version differs from the previous lock, sorted by name and
    /// architecture.
    pub changes: Vec<PackageChange>,
}

/// The architectures the recipe builds, as Debian names them.
pub fn architectures(recipe: &Recipe) -> Result<Vec<String>, DebLockError> {
    recipe
        .image
        .platforms
        .iter()
        .map(|platform| {
            debian_arch(platform)
                .map(str::to_string)
                .ok_or_else(|| DebLockError::NoArchitecture {
                    platform: platform.clone(),
                })
        })
        .collect()
}

/// Writes `RECIPE.lock` for the recipe's `packages` steps (`None`: the recipe has none).
/// Sets whose request and repository are unchanged keep their pins unless `refresh`; the
/// others are resolved at the newest versions. `now` (unix seconds) is the clock for the
/// keys', signatures' and `Valid-Until` expiry.
pub fn update(
    recipe: &Recipe,
    fetcher: &Fetcher,
    refresh: bool,
    now: i64,
    progress: &mut dyn FnMut(LockEvent<'_>),
) -> Result<Option<PackagesLocked>, DebLockError> {
    let path = lock_path(&recipe.file);
    let old = Lock::read(&path)?.unwrap_or_default();
    let Some(lock) = resolve(recipe, &old, fetcher, refresh, now, progress)? else {
        return Ok(None);
    };
    let changes = changes(&old, &lock);
    let text = lock.to_text();
    let before = fs_err::read_to_string(&path).unwrap_or_default();
    let written = text != before;
    if written {
        crate::image::layout::write_atomic(&path, text.as_bytes())?;
    }
    Ok(Some(PackagesLocked {
        path,
        written,
        changes,
    }))
}

/// The lock of the recipe's `packages` steps (`None`: the recipe has none), resolved as
/// [`update`] does from the previous lock `old`, without writing it: what `kiln update`
/// compares before it decides to write anything.
pub fn resolve(
    recipe: &Recipe,
    old: &Lock,
    fetcher: &Fetcher,
    refresh: bool,
    now: i64,
    progress: &mut dyn FnMut(LockEvent<'_>),
) -> Result<Option<Lock>, DebLockError> {
    let wanted: Vec<(String, Vec<String>)> = requests(recipe)
        .map(|(from, names)| (from.to_string(), names.to_vec()))
        .collect();
    if wanted.is_empty() {
        return Ok(None);
    }
    let arches = architectures(recipe)?;
    let mut lock = Lock {
        version: LOCK_VERSION,
        ..Lock::default()
    };
    let mut used: Vec<&str> = wanted.iter().map(|(f, _)| f.as_str()).collect();
    used.sort();
    used.dedup();
    for from in used {
        let repo = &recipe.repositories[from];
        let keyring_bytes =
            fs_err::read(&repo.keyring_resolved).map_err(|source| DebLockError::Keyring {
                repository: from.to_string(),
                source,
            })?;
        let keyring_sha256 = Sha256Digest::of(&keyring_bytes);
        let keyring = Keyring::parse(&keyring_bytes, &repo.keyring_resolved)?;
        let previous = old
            .repositories
            .get(from)
            .filter(|l| same_repository(repo, l, Some(&keyring_sha256)));
        let mut locked = LockedRepository {
            url: repo.url.clone(),
            suite: repo.suite.clone(),
            components: repo.components.clone(),
            keyring_sha256,
            release: BTreeMap::new(),
        };
        for arch in &arches {
            let requests: Vec<&Vec<String>> = wanted
                .iter()
                .filter(|(f, _)| f == from)
                .map(|(_, n)| n)
                .collect();
            let kept = match previous {
                Some(prev) if !refresh && prev.release.contains_key(arch) => requests
                    .iter()
                    .map(|names| old.set(from, arch, names).cloned())
                    .collect::<Option<Vec<PackageSet>>>()
                    .map(|sets| (prev, sets)),
                _ => None,
            };
            if let Some((prev, sets)) = kept {
                locked
                    .release
                    .insert(arch.clone(), prev.release[arch].clone());
                lock.sets.extend(sets);
                continue;
            }
            progress(LockEvent::Reading {
                repository: from,
                url: &repo.url,
                suite: &repo.suite,
                arch,
            });
            let state = repo::load(repo, &keyring, arch, now, fetcher)?;
            progress(LockEvent::Verified {
                inrelease_url: &state.inrelease_url,
                date: &state.release.date,
                signed_by: &state.release.signed_by,
            });
            locked.release.insert(
                arch.clone(),
                LockedRelease {
                    inrelease_sha256: state.inrelease_sha256,
                    date: state.release.date.clone(),
                    signed_by: state.release.signed_by.clone(),
                },
            );
            for names in requests {
                let packages = state.resolve(from, arch, names)?;
                progress(LockEvent::Resolved {
                    requested: names,
                    repository: from,
                    arch,
                    count: packages.len(),
                });
                lock.sets.push(PackageSet {
                    repository: from.to_string(),
                    architecture: arch.clone(),
                    requested: names.clone(),
                    packages,
                });
            }
        }
        lock.repositories.insert(from.to_string(), locked);
    }
    Ok(Some(lock))
}

/// Every package whose version changed, appeared or went between `old` and `new`.
pub fn changes(old: &Lock, new: &Lock) -> Vec<PackageChange> {
    let versions = |lock: &Lock| {
        let mut m: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
        for set in &lock.sets {
            for p in &set.packages {
                m.insert(
                    (p.name.clone(), p.architecture.clone()),
                    (p.version.clone(), p.source.clone()),
                );
            }
        }
        m
    };
    let (before, after) = (versions(old), versions(new));
    let mut keys: Vec<&(String, String)> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|key| {
            let (o, n) = (before.get(key), after.get(key));
            if o.map(|x| &x.0) == n.map(|x| &x.0) {
                return None;
            }
            Some(PackageChange {
                name: key.0.clone(),
                architecture: key.1.clone(),
                old: o.map(|x| x.0.clone()),
                new: n.map(|x| x.0.clone()),
                source: n.or(o).map(|x| x.1.clone()).unwrap_or_default(),
            })
        })
        .collect()
}

/// `kiln fetch`: every locked `.deb` of the recipe into the cache. Returns how many there
/// are (`None`: the recipe installs no packages).
pub fn fetch(recipe: &Recipe, fetcher: &Fetcher) -> Result<Option<usize>, DebLockError> {
    if requests(recipe).next().is_none() {
        return Ok(None);
    }
    let path = lock_path(&recipe.file);
    let lock = Lock::read(&path)?.ok_or_else(|| LockfileError::Missing {
        path: path.clone(),
        recipe: recipe.file.clone(),
    })?;
    let arches = architectures(recipe)?;
    lock.check(recipe, &arches, &BTreeMap::new(), &path)?;
    let mut all: BTreeMap<String, (String, &LockedPackage)> = BTreeMap::new();
    for set in &lock.sets {
        let Some(repo) = lock.repositories.get(&set.repository) else {
            continue;
        };
        for p in &set.packages {
            all.insert(p.sha256.to_string(), (p.url(&repo.url), p));
        }
    }
    for (url, p) in all.values() {
        let label = format!("{}_{}_{}.deb", p.name, p.version, p.architecture);
        fetcher
            .fetch(url, &p.sha256, &label)
            .map_err(|source| DebLockError::Fetch {
                label,
                source: Box::new(source),
            })?;
    }
    Ok(Some(all.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(packages: &[(&str, &str, &str)]) -> Lock {
        Lock {
            version: LOCK_VERSION,
            sets: vec![PackageSet {
                repository: "debian".into(),
                architecture: "amd64".into(),
                requested: vec!["app".into()],
                packages: packages
                    .iter()
                    .map(|(name, version, source)| LockedPackage {
                        name: name.to_string(),
                        version: version.to_string(),
                        architecture: "amd64".into(),
                        source: source.to_string(),
                        source_version: version.to_string(),
                        filename: format!("pool/{name}_{version}_amd64.deb"),
                        size: 0,
                        sha256: Sha256Digest::of(name.as_bytes()),
                    })
                    .collect(),
            }],
            ..Lock::default()
        }
    }

    #[test]
    fn changes_list_upgrades_additions_and_removals_sorted_and_skip_the_same() {
        let old = lock(&[
            ("libbar", "1.0-1", "bar"),
            ("gone", "1", "gone"),
            ("same", "2", "s"),
        ]);
        let new = lock(&[
            ("libbar", "2.0-1", "bar"),
            ("same", "2", "s"),
            ("added", "3", "a"),
        ]);
        let change =
            |name: &str, old: Option<&str>, new: Option<&str>, source: &str| PackageChange {
                name: name.into(),
                architecture: "amd64".into(),
                old: old.map(Into::into),
                new: new.map(Into::into),
                source: source.into(),
            };
        assert_eq!(
            changes(&old, &new),
            [
                change("added", None, Some("3"), "a"),
                change("gone", Some("1"), None, "gone"),
                change("libbar", Some("1.0-1"), Some("2.0-1"), "bar"),
            ]
        );
        assert_eq!(changes(&new, &new), []);
    }
}
