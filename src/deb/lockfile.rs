//! `RECIPE.lock`: the package closures `kiln lock` resolved, which `kiln build` installs.
//!
//! TOML, written with sorted keys and sorted lists, and no time of its own: the same
//! repository state and recipe give the same bytes. Each `[[set]]` is the closure of one
//! `packages` step for one architecture, with what it was resolved from (the request and the
//! repository's identity), so a build can tell a lock that no longer matches the recipe.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::recipe::{Recipe, Repository, StepKind};

pub const LOCK_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum LockfileError {
    #[error("the recipe installs packages but {path} does not exist")]
    Missing { path: PathBuf, recipe: PathBuf },
    #[error("failed to read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid lock file")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("{path} is not a valid lock file: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path} has lock format version {found}; this kiln reads version {LOCK_VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("{path} no longer matches the recipe: {reason}")]
    Stale {
        path: PathBuf,
        recipe: PathBuf,
        reason: String,
    },
}

impl LockfileError {
    /// What the user can do about it, when kiln knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Missing { recipe, .. } => Some(format!("run `kiln lock {}`", recipe.display())),
            Self::Stale { recipe, .. } => Some(format!(
                "run `kiln lock {}` to resolve it again",
                recipe.display()
            )),
            _ => None,
        }
    }
}

/// The whole lock file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub version: u32,
    #[serde(default)]
    pub repositories: BTreeMap<String, LockedRepository>,
    #[serde(default, rename = "set")]
    pub sets: Vec<PackageSet>,
}

/// What a repository was when it was locked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LockedRepository {
    pub url: String,
    pub suite: String,
    pub components: Vec<String>,
    pub keyring_sha256: Sha256Digest,
    /// Per architecture: the verified InRelease.
    pub release: BTreeMap<String, LockedRelease>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LockedRelease {
    pub inrelease_sha256: Sha256Digest,
    /// The release's `Date` field, as written.
    pub date: String,
    /// Fingerprint of the key whose signature was accepted.
    pub signed_by: String,
}

/// One `packages` step's closure for one architecture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PackageSet {
    pub repository: String,
    pub architecture: String,
    /// The names the step asked for, sorted.
    pub requested: Vec<String>,
    /// Sorted by name.
    #[serde(rename = "package")]
    pub packages: Vec<LockedPackage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub source: String,
    pub source_version: String,
    pub filename: String,
    pub size: u64,
    pub sha256: Sha256Digest,
}

impl LockedPackage {
    /// Where the `.deb` is downloaded from.
    pub fn url(&self, repository_url: &str) -> String {
        format!("{}/{}", repository_url.trim_end_matches('/'), self.filename)
    }
}

/// `RECIPE.lock` beside `RECIPE` (`hello.toml` → `hello.lock`).
pub fn lock_path(recipe: &Path) -> PathBuf {
    recipe.with_extension("lock")
}

impl Lock {
    pub fn read(path: &Path) -> Result<Option<Lock>, LockfileError> {
        let text = match fs_err::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LockfileError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let lock: Lock = toml::from_str(&text).map_err(|e| LockfileError::Parse {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        if lock.version != LOCK_VERSION {
            return Err(LockfileError::Version {
                path: path.to_path_buf(),
                found: lock.version,
            });
        }
        for set in &lock.sets {
            if !lock.repositories.contains_key(&set.repository) {
                return Err(LockfileError::Invalid {
                    path: path.to_path_buf(),
                    reason: format!("set from unknown repository `{}`", set.repository),
                });
            }
            if let Some(p) = set
                .packages
                .iter()
                .find(|p| !super::packages::is_safe_filename(&p.filename))
            {
                return Err(LockfileError::Invalid {
                    path: path.to_path_buf(),
                    reason: format!("package {} has an unsafe filename `{}`", p.name, p.filename),
                });
            }
        }
        Ok(Some(lock))
    }

    /// The file's text: a header comment, then the TOML with everything sorted.
    pub fn to_text(&self) -> String {
        let mut sorted = self.clone();
        sorted.sets.sort_by(|a, b| {
            (&a.repository, &a.architecture, &a.requested).cmp(&(
                &b.repository,
                &b.architecture,
                &b.requested,
            ))
        });
        for set in &mut sorted.sets {
            set.packages.sort_by(|a, b| a.name.cmp(&b.name));
        }
        let body = toml::to_string(&sorted).expect("the lock serializes");
        format!("# Written by `kiln lock`: the pinned package closures of the recipe.\n\n{body}")
    }

    /// The set for `request` (sorted names) from `repository` on `arch`.
    pub fn set(&self, repository: &str, arch: &str, request: &[String]) -> Option<&PackageSet> {
        self.sets.iter().find(|s| {
            s.repository == repository && s.architecture == arch && s.requested == request
        })
    }

    /// Checks that the lock answers every `packages` step of `recipe` for `arches`, from the
    /// repositories the recipe names now (URL, suite, components, keyring digest).
    pub fn check(
        &self,
        recipe: &Recipe,
        arches: &[String],
        keyrings: &BTreeMap<String, Sha256Digest>,
        path: &Path,
    ) -> Result<(), LockfileError> {
        let stale = |reason: String| LockfileError::Stale {
            path: path.to_path_buf(),
            recipe: recipe.file.clone(),
            reason,
        };
        for (name, repo) in &recipe.repositories {
            let Some(locked) = self.repositories.get(name) else {
                if requests(recipe).any(|(from, _)| from == name) {
                    return Err(stale(format!("repository `{name}` is not in the lock")));
                }
                continue;
            };
            if !same_repository(repo, locked, keyrings.get(name)) {
                return Err(stale(format!(
                    "[repositories.{name}] changed (url, suite, components or keyring)"
                )));
            }
        }
        for (from, names) in requests(recipe) {
            for arch in arches {
                if self.set(from, arch, names).is_none() {
                    return Err(stale(format!(
                        "no locked closure of [{}] from `{from}` for {arch}",
                        names.join(", ")
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Every `packages` step's (repository, sorted names).
pub fn requests(recipe: &Recipe) -> impl Iterator<Item = (&str, &[String])> {
    recipe
        .layers
        .iter()
        .flat_map(|l| &l.steps)
        .filter_map(|s| match &s.kind {
            StepKind::Packages { names, from, .. } => Some((from.as_str(), names.as_slice())),
            _ => None,
        })
}

pub fn same_repository(
    repo: &Repository,
    locked: &LockedRepository,
    keyring: Option<&Sha256Digest>,
) -> bool {
    repo.url == locked.url
        && repo.suite == locked.suite
        && repo.components == locked.components
        && keyring.is_none_or(|k| *k == locked.keyring_sha256)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, filename: &str) -> LockedPackage {
        LockedPackage {
            name: name.to_string(),
            version: "1.0-1".to_string(),
            architecture: "amd64".to_string(),
            source: name.to_string(),
            source_version: "1.0-1".to_string(),
            filename: filename.to_string(),
            size: 1,
            sha256: Sha256Digest::of(name.as_bytes()),
        }
    }

    fn lock(filename: &str) -> Lock {
        Lock {
            version: LOCK_VERSION,
            repositories: [(
                "debian".to_string(),
                LockedRepository {
                    url: "http://example.invalid/debian".to_string(),
                    suite: "bookworm".to_string(),
                    components: vec!["main".to_string()],
                    keyring_sha256: Sha256Digest::of(b"k"),
                    release: BTreeMap::new(),
                },
            )]
            .into(),
            sets: vec![PackageSet {
                repository: "debian".to_string(),
                architecture: "amd64".to_string(),
                requested: vec!["b".to_string()],
                packages: vec![package("b", filename), package("a", "pool/a.deb")],
            }],
        }
    }

    #[test]
    fn round_trips_sorted_and_refuses_unsafe_filenames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.lock");
        fs_err::write(&path, lock("pool/b.deb").to_text()).unwrap();
        let back = Lock::read(&path).unwrap().unwrap();
        let names: Vec<&str> = back.sets[0]
            .packages
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"], "packages sorted by name");
        assert_eq!(back.to_text(), lock("pool/b.deb").to_text());

        fs_err::write(&path, lock("../../etc/passwd").to_text()).unwrap();
        let err = Lock::read(&path).unwrap_err();
        assert!(err.to_string().contains("unsafe filename"), "{err}");
    }
}
