//! `packages` steps at build time: the lock only. Each locked `.deb` is fetched into the store
//! pinned to its sha256 (cache, mirror or network, as every input) when its layer is built, and
//! the provenance lists each `.deb` and the InRelease it was resolved from.
//!
//! The lock holds each step's whole closure; a package an earlier `packages` step of the recipe
//! already installed (the same name, version and architecture) is not installed again, as apt
//! leaves alone what the dpkg status of the lower layers lists: its files and its dpkg record
//! stay in the layer that installed it first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::{BuildError, BuildObserver, BuildOptions, Result};
use crate::attest::provenance::Dependency;
use crate::deb::lockfile::{lock_path, requests, Lock, LockedPackage, LockfileError};
use crate::deb::{debian_arch, generate, install};
use crate::digest::Sha256Digest;
use crate::fetch::{Fetcher, SizeLimit};
use crate::layer::tree::FileTree;
use crate::recipe::{Generated, Recipe, StepKind};
use crate::store::Store;

/// One `.deb` of a step's locked closure.
pub struct StepDeb {
    pub package: LockedPackage,
    pub url: String,
    /// An earlier `packages` step installs this very package: this step does not (its
    /// `generate` may still read it).
    pub below: bool,
}

/// The locked `.deb`s of each `packages` step, by the step's recipe line. They are fetched
/// (and verified) only when a layer is actually built: a layer taken from the layer cache
/// needs their digests (in its key), not their bytes.
#[derive(Default)]
pub struct Debs {
    pub by_line: BTreeMap<usize, Vec<StepDeb>>,
    /// What each step's `generate` asks for, by the step's recipe line.
    generate: BTreeMap<usize, Vec<Generated>>,
    pub dependencies: Vec<Dependency>,
    fetcher: Option<Fetcher>,
}

impl Debs {
    pub fn install(
        &self,
        tree: &mut FileTree,
        line: usize,
        epoch: i64,
        scratch: &std::path::Path,
    ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let generates = self.generate.get(&line);
        let mut fetched: Vec<(LockedPackage, PathBuf)> = Vec::new();
        let mut installed = Vec::new();
        for deb in self.by_line.get(&line).into_iter().flatten() {
            if deb.below && generates.is_none() {
                continue;
            }
            let fetcher = self
                .fetcher
                .as_ref()
                .expect("set whenever there are packages");
            let p = &deb.package;
            let label = format!("{}_{}_{}.deb", p.name, p.version, p.architecture);
            // The lock's size (from the signed index) bounds the transfer.
            let limit = SizeLimit::Listed(p.size);
            let path = fetcher.fetch_limited(&deb.url, &p.sha256, limit, &label)?;
            if !deb.below {
                installed.push((p.clone(), path.clone()));
            }
            fetched.push((p.clone(), path));
        }
        install::install(tree, &installed, epoch, scratch)?;
        if let Some(what) = generates {
            generate::generate(tree, what, &fetched, epoch)?;
        }
        Ok(())
    }

    /// The `.deb`s each `packages` step installs (by the step's recipe line), as
    /// `name=sha256:…`, for the build plan; one an earlier step installed is listed as
    /// `name=sha256:… (below)`, so that the layer's key says it is not in the layer.
    pub fn digests_by_line(&self) -> BTreeMap<usize, Vec<String>> {
        self.by_line
            .iter()
            .map(|(line, debs)| {
                let digests = debs
                    .iter()
                    .map(|d| {
                        let (name, sha256) = (&d.package.name, &d.package.sha256);
                        if d.below {
                            format!("{name}={sha256} (below)")
                        } else {
                            format!("{name}={sha256}")
                        }
                    })
                    .collect();
                (*line, digests)
            })
            .collect()
    }
}

pub fn fetch(
    recipe: &Recipe,
    store: &Store,
    opts: &BuildOptions,
    observer: &dyn BuildObserver,
) -> Result<Debs> {
    let mut debs = locked(recipe)?;
    if debs.by_line.is_empty() {
        return Ok(debs);
    }
    let mut fetcher = Fetcher::new(store.clone());
    fetcher.mirrors = opts.mirrors.clone();
    fetcher.offline = opts.offline;
    fetcher.max_download_size = opts.max_download_size;
    fetcher.progress = observer.transfer_progress();
    debs.fetcher = Some(fetcher);
    Ok(debs)
}

/// The locked `.deb`s of the recipe's `packages` steps, from its lock alone (checked against
/// the recipe); nothing is fetched, and [`Debs::install`] cannot be used.
pub fn locked(recipe: &Recipe) -> Result<Debs> {
    let mut debs = Debs::default();
    if requests(recipe).next().is_none() {
        return Ok(debs);
    }
    let path = lock_path(&recipe.file);
    let lock = Lock::read(&path)?.ok_or_else(|| LockfileError::Missing {
        path: path.clone(),
        recipe: recipe.file.clone(),
    })?;
    let arch = debian_arch(&recipe.image.platform).ok_or_else(|| BuildError::StepInvalid {
        location: recipe.file.display().to_string(),
        message: format!(
            "platform {} has no Debian architecture",
            recipe.image.platform
        ),
    })?;
    let keyrings = keyring_digests(recipe)?;
    lock.check(recipe, &[arch.to_string()], &keyrings, &path)?;
    let mut deps = BTreeMap::new();
    // (name, version, architecture) of what the steps so far install, in recipe order.
    let mut installed = BTreeSet::new();
    for step in recipe.layers.iter().flat_map(|l| &l.steps) {
        let StepKind::Packages {
            names,
            from,
            generate,
        } = &step.kind
        else {
            continue;
        };
        if !generate.is_empty() {
            debs.generate.insert(step.span.line, generate.clone());
        }
        let set = lock.set(from, arch, names).expect("checked by Lock::check");
        let repo = &lock.repositories[from];
        if let Some(release) = repo.release.get(arch) {
            let uri = format!("{}/dists/{}/InRelease", repo.url, repo.suite);
            deps.insert(
                format!("{from}:{arch}:InRelease"),
                (uri, release.inrelease_sha256),
            );
        }
        let mut locked = Vec::new();
        for p in &set.packages {
            let url = p.url(&repo.url);
            let label = format!("{}_{}_{}.deb", p.name, p.version, p.architecture);
            deps.insert(format!("{from}:{label}"), (url.clone(), p.sha256));
            let key = (p.name.clone(), p.version.clone(), p.architecture.clone());
            locked.push(StepDeb {
                package: p.clone(),
                url,
                below: !installed.insert(key),
            });
        }
        debs.by_line.insert(step.span.line, locked);
    }
    debs.dependencies = deps
        .into_iter()
        .map(|(name, (uri, digest))| Dependency { name, uri, digest })
        .collect();
    Ok(debs)
}

/// The sha256 of each repository's keyring file, when it can be read (a build from the lock
/// does not need the keyring; when present, a changed keyring makes the lock stale).
fn keyring_digests(recipe: &Recipe) -> Result<BTreeMap<String, Sha256Digest>> {
    let mut out = BTreeMap::new();
    for (name, repo) in &recipe.repositories {
        if let Ok(bytes) = fs_err::read(&repo.keyring_resolved) {
            out.insert(name.clone(), Sha256Digest::of(&bytes));
        }
    }
    Ok(out)
}
