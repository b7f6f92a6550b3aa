use std::process::ExitCode;

use anyhow::{Context, Result};

use super::args::{FetchArgs, LockArgs};
use super::build::store_root;
use super::printer::status;
use crate::fetch::Fetcher;
use crate::image::layout::write_atomic;
use crate::recipe::{self, InputSource, Recipe};
use crate::store::Store;

pub fn run_lock(args: LockArgs) -> Result<ExitCode> {
    let text = fs_err::read_to_string(&args.recipe)?;
    let parsed = Recipe::parse_unpinned(&text, &args.recipe, recipe_dir(&args.recipe))?;
    let store = Store::open(&store_root(&args.cache)?)?;
    let fetcher = fetcher(store, &args.cache);
    let mut new_text = text.clone();
    let mut changed = 0;
    for (name, input) in &parsed.inputs {
        let InputSource::Url { url, sha256 } = &input.source else {
            continue;
        };
        if sha256.is_some() && !args.update {
            continue;
        }
        let digest = fetcher
            .resolve(url, name)
            .with_context(|| format!("failed to lock input `{name}` ({url})"))?;
        if sha256.as_ref() != Some(&digest) {
            new_text = recipe::pin_input_sha256(&new_text, name, &digest)?;
            changed += 1;
            status(&format!("pinned {name}: {digest}"));
        }
    }
    if new_text != text {
        write_atomic(&args.recipe, new_text.as_bytes())?;
    }
    status(&format!(
        "{}: {changed} input(s) pinned",
        args.recipe.display()
    ));
    Ok(ExitCode::SUCCESS)
}

pub fn run_fetch(args: FetchArgs) -> Result<ExitCode> {
    let recipe = Recipe::load(&args.recipe)?;
    let store = Store::open(&store_root(&args.cache)?)?;
    let fetcher = fetcher(store, &args.cache);
    for (name, input) in &recipe.inputs {
        if let InputSource::Url {
            url,
            sha256: Some(d),
        } = &input.source
        {
            fetcher
                .fetch(url, d, name)
                .with_context(|| format!("failed to fetch input `{name}`"))?;
            status(&format!("fetched {name}: {d}"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn recipe_dir(recipe: &std::path::Path) -> std::path::PathBuf {
    match recipe.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    }
}

pub fn fetcher(store: Store, cache: &super::args::CacheArgs) -> Fetcher {
    let mut f = Fetcher::new(store);
    f.mirrors = cache.mirror.clone();
    f.offline = cache.offline;
    f.progress = Some(Box::new(super::progress::TransferProgress::new()));
    f
}
