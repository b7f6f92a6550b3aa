//! The package half of `kiln lock` and `kiln fetch`: resolve each `packages` step's closure
//! from a verified repository into `RECIPE.lock`, and fill the cache with the locked `.deb`s.

use std::collections::BTreeMap;
use std::time::SystemTime;

use anyhow::{Context, Result};

use super::printer::{out, status};
use crate::deb::lockfile::{
    lock_path, requests, same_repository, Lock, LockedPackage, LockedRelease, LockedRepository,
    LockfileError, PackageSet, LOCK_VERSION,
};
use crate::deb::release::Keyring;
use crate::deb::{debian_arch, repo};
use crate::digest::Sha256Digest;
use crate::fetch::Fetcher;
use crate::recipe::Recipe;

/// The architectures the recipe builds, as Debian names them.
fn arches(recipe: &Recipe) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for platform in &recipe.image.platforms {
        let arch = debian_arch(platform)
            .with_context(|| format!("platform {platform} has no Debian architecture"))?;
        out.push(arch.to_string());
    }
    Ok(out)
}

/// Writes `RECIPE.lock` for the recipe's `packages` steps. Sets whose request and repository
/// are unchanged keep their pins unless `update`; the others are resolved at the newest
/// versions. With `update`, prints each change as `package old → new (source)`.
pub fn lock_packages(recipe: &Recipe, fetcher: &Fetcher, update: bool) -> Result<()> {
    let wanted: Vec<(String, Vec<String>)> = requests(recipe)
        .map(|(from, names)| (from.to_string(), names.to_vec()))
        .collect();
    let path = lock_path(&recipe.file);
    if wanted.is_empty() {
        return Ok(());
    }
    let old = Lock::read(&path)?.unwrap_or_default();
    let arches = arches(recipe)?;
    // The clock: the one wall-time read of a build, for key, signature and Valid-Until expiry.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut lock = Lock {
        version: LOCK_VERSION,
        ..Lock::default()
    };
    let mut used: Vec<&str> = wanted.iter().map(|(f, _)| f.as_str()).collect();
    used.sort();
    used.dedup();
    for from in used {
        let repo = &recipe.repositories[from];
        let keyring_bytes = fs_err::read(&repo.keyring_resolved)
            .with_context(|| format!("failed to read the keyring of repository `{from}`"))?;
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
            let kept: Option<Vec<PackageSet>> = match (previous, update) {
                (Some(prev), false) => requests
                    .iter()
                    .map(|names| old.set(from, arch, names).cloned())
                    .collect::<Option<Vec<_>>>()
                    .filter(|_| prev.release.contains_key(arch)),
                _ => None,
            };
            if let Some(sets) = kept {
                let prev = previous.expect("kept only with a previous lock");
                locked
                    .release
                    .insert(arch.clone(), prev.release[arch].clone());
                lock.sets.extend(sets);
                continue;
            }
            status(&format!(
                "reading repository `{from}` ({} {}) for {arch}",
                repo.url, repo.suite
            ));
            let state = repo::load(repo, &keyring, arch, now, fetcher)?;
            status(&format!(
                "verified {} (Date: {}; signed by {})",
                state.inrelease_url, state.release.date, state.release.signed_by
            ));
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
                status(&format!(
                    "resolved [{}] from `{from}` for {arch}: {} packages",
                    names.join(", "),
                    packages.len()
                ));
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
    if update {
        print_changes(&old, &lock);
    }
    let text = lock.to_text();
    let before = fs_err::read_to_string(&path).unwrap_or_default();
    if text != before {
        crate::image::layout::write_atomic(&path, text.as_bytes())?;
        status(&format!("{}: written", path.display()));
    } else {
        status(&format!("{}: unchanged", path.display()));
    }
    Ok(())
}

/// `package  old → new  (source)` for every package whose version changed, appeared or went.
fn print_changes(old: &Lock, new: &Lock) {
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
    let mut rows = Vec::new();
    for key in keys {
        let (o, n) = (before.get(key), after.get(key));
        if o.map(|x| &x.0) == n.map(|x| &x.0) {
            continue;
        }
        let source = n.or(o).map(|x| x.1.clone()).unwrap_or_default();
        rows.push([
            format!("{}:{}", key.0, key.1),
            o.map_or("(new)".to_string(), |x| x.0.clone()),
            n.map_or("(removed)".to_string(), |x| x.0.clone()),
            source,
        ]);
    }
    if rows.is_empty() {
        out(format_args!("all packages are at the newest version"));
        return;
    }
    let header = [
        "package".to_string(),
        "old".to_string(),
        "new".to_string(),
        "source".to_string(),
    ];
    let width = |i: usize| {
        rows.iter()
            .chain(std::iter::once(&header))
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    out(format_args!(
        "{:w0$}  {:w1$}    {:w2$}  {}",
        header[0], header[1], header[2], header[3]
    ));
    for r in &rows {
        out(format_args!(
            "{:w0$}  {:w1$} → {:w2$}  {}",
            r[0], r[1], r[2], r[3]
        ));
    }
}

/// `kiln fetch`: every locked `.deb` of the recipe into the cache.
pub fn fetch_packages(recipe: &Recipe, fetcher: &Fetcher) -> Result<()> {
    if requests(recipe).next().is_none() {
        return Ok(());
    }
    let path = lock_path(&recipe.file);
    let lock = Lock::read(&path)?.ok_or_else(|| LockfileError::Missing {
        path: path.clone(),
        recipe: recipe.file.clone(),
    })?;
    let arches = arches(recipe)?;
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
            .with_context(|| format!("failed to fetch {label}"))?;
    }
    status(&format!("fetched {} packages", all.len()));
    Ok(())
}
