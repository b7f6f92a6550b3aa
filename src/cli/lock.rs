use std::process::ExitCode;

use anyhow::{Context, Result};

use super::args::{FetchArgs, LockArgs};
use super::build::store_root;
use super::printer::status;
use crate::fetch::Fetcher;
use crate::image::layout::write_atomic;
use crate::image::{open_image_with, ImageRef};
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
        let InputSource::Url { url, sha256, size } = &input.source else {
            continue;
        };
        let (digest, new_size) = match sha256 {
            Some(_) if size.is_some() && !args.update => continue,
            // Pinned before sizes were recorded: the size of the verified bytes.
            Some(pinned) if !args.update => {
                let path = fetcher
                    .fetch(url, pinned, name)
                    .with_context(|| format!("failed to lock input `{name}` ({url})"))?;
                (*pinned, fs_err::metadata(path)?.len())
            }
            _ => fetcher
                .resolve_sized(url, name)
                .with_context(|| format!("failed to lock input `{name}` ({url})"))?,
        };
        if sha256.as_ref() != Some(&digest) {
            new_text = recipe::pin_input_sha256(&new_text, name, &digest)?;
            changed += 1;
            status(&format!("pinned {name}: {digest}"));
        }
        if *size != Some(new_size) {
            new_text = recipe::pin_input_size(&new_text, name, new_size)?;
            changed += 1;
            status(&format!("pinned {name}: {new_size} bytes"));
        }
    }
    if let Some(base) = &parsed.base {
        if base.digest.is_none() || args.update {
            let platform = parsed.image.platform.to_string();
            if let Some(pinned) = resolve_base(&base.reference, &parsed.dir, &platform, &args)
                .with_context(|| format!("failed to lock base image `{}`", base.reference))?
            {
                if pinned != base.reference {
                    new_text = recipe::pin_base_ref(&new_text, &pinned)?;
                    changed += 1;
                    status(&format!("pinned base: {pinned}"));
                }
            }
        }
    }
    if new_text != text {
        write_atomic(&args.recipe, new_text.as_bytes())?;
    }
    super::deb_lock::lock_packages(&parsed, &fetcher, args.update)?;
    status(&format!(
        "{}: {changed} pin(s) written",
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
            size,
        } = &input.source
        {
            fetcher
                .fetch_sized(url, d, *size, name)
                .with_context(|| format!("failed to fetch input `{name}`"))?;
            status(&format!("fetched {name}: {d}"));
        }
    }
    super::deb_lock::fetch_packages(&recipe, &fetcher)?;
    if let Some(base) = &recipe.base {
        let parsed: ImageRef = base.reference.parse()?;
        if matches!(parsed, ImageRef::Docker { .. }) {
            let mut ctx = super::copy::transports(&args.cache, &args.registry)?;
            ctx.with_attached = false;
            let img = open_image_with(&parsed, recipe.image.platform.as_str(), &ctx)
                .and_then(|img| img.prefetch(ctx.threads).map(|()| img))
                .with_context(|| format!("failed to fetch base image `{}`", base.reference))?;
            status(&format!("fetched base: {}", img.manifest_digest));
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
    f.max_download_size = cache.max_download_size;
    f.progress = Some(Box::new(super::progress::TransferProgress::new()));
    f
}

/// The base reference pinned to what its tag names now (`None`: nothing to resolve, e.g. a
/// digest-only reference).
fn resolve_base(
    reference: &str,
    recipe_dir: &std::path::Path,
    platform: &str,
    args: &LockArgs,
) -> Result<Option<String>> {
    let ctx = super::copy::transports(&args.cache, &args.registry)?;
    let pinned = crate::update::resolve_base(reference, recipe_dir, platform, &ctx)?;
    Ok(pinned.map(|(reference, _)| reference))
}
