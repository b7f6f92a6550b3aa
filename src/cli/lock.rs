use std::process::ExitCode;

use std::time::SystemTime;

use anyhow::{Context, Result};

use super::args::{FetchArgs, LockArgs};
use super::build::store_root;
use super::printer::{out, status};
use crate::deb::lock::PackageChange;
use crate::fetch::Fetcher;
use crate::image::{open_image_with, ImageRef, Transports};
use crate::lock::{lock_recipe, LockEvent, LockOptions, Pin};
use crate::recipe::{InputSource, Recipe};
use crate::store::Store;

pub fn run_lock(args: LockArgs) -> Result<ExitCode> {
    // A recipe that does not parse is refused before anything (the cache) is created.
    let text = fs_err::read_to_string(&args.recipe)?;
    Recipe::parse_unpinned(&text, &args.recipe, crate::recipe::recipe_dir(&args.recipe))?;
    let root = store_root(&args.cache)?;
    let fetcher = fetcher(Store::open(&root)?, &args.cache);
    let transports = || {
        Transports::new(
            Store::open(&root)?,
            args.cache.offline,
            &super::copy::registry_options(&args.registry),
            Some(Box::new(super::copy::StderrProgress::default())),
        )
    };
    let options = LockOptions {
        update: args.update,
        now: now(),
        fetcher: &fetcher,
        transports: &transports,
    };
    let outcome = lock_recipe(&args.recipe, &options, &mut print_event)?;
    if let Some(packages) = &outcome.packages {
        if args.update {
            print_changes(&packages.changes);
        }
        let verb = if packages.written {
            "written"
        } else {
            "unchanged"
        };
        status(&format!("{}: {verb}", packages.path.display()));
    }
    status(&format!(
        "{}: {} pin(s) written",
        args.recipe.display(),
        outcome.pins.len()
    ));
    Ok(ExitCode::SUCCESS)
}

/// The clock: the one wall-time read of a lock, for key, signature and Valid-Until expiry.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn print_event(event: LockEvent<'_>) {
    let line = match event {
        LockEvent::Pinned(Pin::InputSha256 { input, sha256 }) => {
            format!("pinned {input}: {sha256}")
        }
        LockEvent::Pinned(Pin::InputSize { input, size }) => {
            format!("pinned {input}: {size} bytes")
        }
        LockEvent::Pinned(Pin::Base { reference }) => format!("pinned base: {reference}"),
        LockEvent::Packages(event) => event.to_string(),
    };
    status(&line);
}

/// `package  old → new  (source)` for every package whose version changed, appeared or went.
fn print_changes(changes: &[PackageChange]) {
    if changes.is_empty() {
        out(format_args!("all packages are at the newest version"));
        return;
    }
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
    let header = ["package", "old", "new", "source"].map(String::from);
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

pub fn run_fetch(args: FetchArgs) -> Result<ExitCode> {
    let recipe = Recipe::load(&args.recipe)?;
    let store = Store::open(&store_root(&args.cache)?)?;
    let fetcher = fetcher(store, &args.cache);
    for (name, input) in &recipe.inputs {
        if let InputSource::Url {
            url,
            sha256: Some(d),
            size,
        } = &input.source
        {
            fetcher
                .fetch_sized(url, d, *size, name)
                .with_context(|| format!("failed to fetch input `{name}`"))?;
            status(&format!("fetched {name}: {d}"));
        }
    }
    if let Some(count) = crate::deb::lock::fetch(&recipe, &fetcher)? {
        status(&format!("fetched {count} packages"));
    }
    if let Some(base) = &recipe.base {
        let parsed = &base.reference;
        if matches!(parsed, ImageRef::Docker { .. }) {
            let mut ctx = super::copy::transports(&args.cache, &args.registry)?;
            ctx.with_attached = false;
            let img = open_image_with(parsed, Some(&recipe.image.platform), &ctx)
                .and_then(|img| img.prefetch(ctx.threads).map(|()| img))
                .with_context(|| format!("failed to fetch base image `{}`", base.reference))?;
            status(&format!("fetched base: {}", img.manifest_digest));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn fetcher(store: Store, cache: &super::args::CacheArgs) -> Fetcher {
    let mut f = Fetcher::new(store);
    f.mirrors = cache.mirror.clone();
    f.offline = cache.offline;
    f.max_download_size = cache.max_download_size;
    f.progress = Some(Box::new(super::progress::TransferProgress::new()));
    f
}
