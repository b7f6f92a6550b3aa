//! The package half of `kiln lock` and `kiln fetch`: resolve each `packages` step's closure
//! from a verified repository into `RECIPE.lock`, and fill the cache with the locked `.deb`s.

use std::collections::BTreeMap;
use std::time::SystemTime;

use anyhow::{Context, Result};

use super::printer::{out, status};
use crate::deb::lock::{arches, package_changes, resolve_lock, PackageChange};
use crate::deb::lockfile::{lock_path, requests, Lock, LockedPackage, LockfileError};
use crate::fetch::Fetcher;
use crate::recipe::Recipe;

/// Writes `RECIPE.lock` for the recipe's `packages` steps. Sets whose request and repository
/// are unchanged keep their pins unless `update`; the others are resolved at the newest
/// versions. With `update`, prints each change as `package old → new (source)`.
pub fn lock_packages(recipe: &Recipe, fetcher: &Fetcher, update: bool) -> Result<()> {
    let path = lock_path(&recipe.file);
    if requests(recipe).next().is_none() {
        return Ok(());
    }
    let old = Lock::read(&path)?.unwrap_or_default();
    // The clock: the one wall-time read of a build, for key, signature and Valid-Until expiry.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let Some(lock) = resolve_lock(recipe, &old, fetcher, update, now, &|e| {
        status(&e.to_string())
    })?
    else {
        return Ok(());
    };
    if update {
        print_changes(&package_changes(&old, &lock));
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
fn print_changes(changes: &[PackageChange]) {
    let rows: Vec<[String; 4]> = changes
        .iter()
        .map(|c| {
            let (old, new) = c.versions();
            [
                format!("{}:{}", c.name, c.architecture),
                old.to_string(),
                new.to_string(),
                c.source.clone(),
            ]
        })
        .collect();
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
