//! Resolving a recipe's `packages` steps into a [`Lock`]: what `kiln lock` writes to
//! `RECIPE.lock` and what `kiln update` compares with the lock it had. Pure resolution: the
//! caller reads the old lock, writes the new one and reports the events.

use std::collections::BTreeMap;

use serde::Serialize;

use super::debian_arch;
use super::lockfile::{
    requests, same_repository, Lock, LockedRelease, LockedRepository, PackageSet, LOCK_VERSION,
};
use super::release::{Keyring, ReleaseError};
use super::repo::{self, RepoError};
use crate::digest::Sha256Digest;
use crate::fetch::Fetcher;
use crate::recipe::{Platform, Recipe};

#[derive(Debug, thiserror::Error)]
pub enum ResolveLockError {
    #[error("platform {platform} has no Debian architecture")]
    NoArchitecture { platform: Platform },
    #[error("failed to read the keyring of repository `{repository}` ({})", path.display())]
    Keyring {
        repository: String,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Release(#[from] ReleaseError),
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// What resolving reports as it goes, for the caller to show.
pub enum LockEvent<'a> {
    Reading {
        repository: &'a str,
        url: &'a str,
        suite: &'a str,
        arch: &'a str,
    },
    Verified {
        inrelease_url: &'a str,
        date: &'a str,
        signed_by: &'a str,
    },
    Resolved {
        repository: &'a str,
        arch: &'a str,
        requested: &'a [String],
        packages: usize,
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
                repository,
                arch,
                requested,
                packages,
            } => write!(
                f,
                "resolved [{}] from `{repository}` for {arch}: {packages} packages",
                requested.join(", ")
            ),
        }
    }
}

/// The architectures the recipe builds, as Debian names them.
pub fn arches(recipe: &Recipe) -> Result<Vec<String>, ResolveLockError> {
    recipe
        .image
        .platforms
        .iter()
        .map(|platform| {
            debian_arch(platform).map(str::to_string).ok_or_else(|| {
                ResolveLockError::NoArchitecture {
                    platform: platform.clone(),
                }
            })
        })
        .collect()
}

/// The lock of the recipe's `packages` steps (`None`: the recipe has none). Sets whose request
/// and repository are unchanged since `old` keep their pins unless `update`; the others are
/// resolved at the newest versions the verified repositories offer at unix time `now`.
pub fn resolve_lock(
    recipe: &Recipe,
    old: &Lock,
    fetcher: &Fetcher,
    update: bool,
    now: i64,
    events: &dyn Fn(LockEvent<'_>),
) -> Result<Option<Lock>, ResolveLockError> {
    let wanted: Vec<(&str, &[String])> = requests(recipe).collect();
    if wanted.is_empty() {
        return Ok(None);
    }
    let arches = arches(recipe)?;
    let mut lock = Lock {
        version: LOCK_VERSION,
        ..Lock::default()
    };
    let mut used: Vec<&str> = wanted.iter().map(|(f, _)| *f).collect();
    used.sort();
    used.dedup();
    for from in used {
        let repo = &recipe.repositories[from];
        let keyring_bytes =
            fs_err::read(&repo.keyring_resolved).map_err(|source| ResolveLockError::Keyring {
                repository: from.to_string(),
                path: repo.keyring_resolved.clone(),
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
            let requests: Vec<&[String]> = wanted
                .iter()
                .filter(|(f, _)| *f == from)
                .map(|(_, n)| *n)
                .collect();
            let kept: Option<Vec<PackageSet>> = match (previous, update) {
                (Some(prev), false) => requests
                    .iter()
                    .map(|names| old.set(from, arch, names).cloned())
                    .collect::<Option<Vec<_>>>()
                    .filter(|_| prev.release.contains_key(arch)),
                _ => None,
            };
            if let (Some(sets), Some(prev)) = (kept, previous) {
                locked
                    .release
                    .insert(arch.clone(), prev.release[arch].clone());
                lock.sets.extend(sets);
                continue;
            }
            events(LockEvent::Reading {
                repository: from,
                url: &repo.url,
                suite: &repo.suite,
                arch,
            });
            let state = repo::load(repo, &keyring, arch, now, fetcher)?;
            events(LockEvent::Verified {
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
                events(LockEvent::Resolved {
                    repository: from,
                    arch,
                    requested: names,
                    packages: packages.len(),
                });
                lock.sets.push(PackageSet {
                    repository: from.to_string(),
                    architecture: arch.clone(),
                    requested: names.to_vec(),
                    packages,
                });
            }
        }
        lock.repositories.insert(from.to_string(), locked);
    }
    Ok(Some(lock))
}

/// One package whose version changed between two locks, appeared or went.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PackageChange {
    pub name: String,
    pub architecture: String,
    /// `None`: new in the second lock.
    pub old: Option<String>,
    /// `None`: gone from the second lock.
    pub new: Option<String>,
    /// The source package (of the new version, else the old one).
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

/// Every package whose version differs between `old` and `new`, sorted by name and
/// architecture.
pub fn package_changes(old: &Lock, new: &Lock) -> Vec<PackageChange> {
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
    let mut out = Vec::new();
    for key in keys {
        let (o, n) = (before.get(key), after.get(key));
        if o.map(|x| &x.0) == n.map(|x| &x.0) {
            continue;
        }
        out.push(PackageChange {
            name: key.0.clone(),
            architecture: key.1.clone(),
            old: o.map(|x| x.0.clone()),
            new: n.map(|x| x.0.clone()),
            source: n.or(o).map(|x| x.1.clone()).unwrap_or_default(),
        });
    }
    out
}
