use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::args::{BuildArgs, CacheArgs, IdMappingArg};
use super::printer::{human_size, status};
use crate::build::output::write_output;
use crate::build::{self, BuildEvent, BuildObserver, BuildOptions, OutputStream};
use crate::recipe::{Recipe, StepKind};
use crate::store::Store;

/// Prints build events as plain lines on stderr.
pub struct StderrObserver;

impl BuildObserver for StderrObserver {
    fn event(&self, event: BuildEvent<'_>) {
        match event {
            BuildEvent::InputReady { name, digest } => status(&format!("input {name}: {digest}")),
            BuildEvent::BaseReady { reference, digest } => {
                status(&format!("base {reference}: {digest}"))
            }
            BuildEvent::LayerStarted { index, total } => {
                status(&format!("layer {}/{total}: building", index + 1))
            }
            BuildEvent::LayerDone {
                index,
                digest,
                size,
                cached,
            } => status(&format!(
                "layer {}: {digest} ({}{})",
                index + 1,
                human_size(size),
                if cached { ", cached" } else { "" }
            )),
            BuildEvent::StepStarted { location, argv } => {
                status(&format!("run {location}: {}", shell_words(argv)))
            }
            BuildEvent::StepOutput { stream, line } => {
                let prefix = match stream {
                    OutputStream::Stdout => "  | ",
                    OutputStream::Stderr => "  ! ",
                };
                status(&format!("{prefix}{}", String::from_utf8_lossy(line)))
            }
        }
    }

    fn transfer_progress(&self) -> Option<Box<dyn crate::fetch::Progress>> {
        Some(Box::new(super::progress::TransferProgress::new()))
    }
}

pub fn store_root(cache: &CacheArgs) -> Result<PathBuf> {
    match &cache.cache {
        Some(dir) => Ok(dir.clone()),
        None => Store::default_root()
            .context("no cache directory: set XDG_CACHE_HOME or HOME, or pass --cache"),
    }
}

/// argv as one readable line (arguments with spaces or quotes are shown quoted).
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Rootless `run` steps: kiln moves itself into a user namespace where it is root, before any
/// thread exists (unshare(2) requires it), so it can read and delete whatever the steps create
/// whichever owner they give it. As root this does nothing.
fn enter_user_namespace(recipe: &Recipe, mapping: IdMappingArg) -> Result<()> {
    let has_run = recipe
        .layers
        .iter()
        .flat_map(|l| &l.steps)
        .any(|s| matches!(s.kind, StepKind::Run { .. }));
    if !has_run || rustix::process::geteuid().is_root() {
        return Ok(());
    }
    let mapping = match mapping {
        IdMappingArg::Auto => kiln_sandbox::IdMapping::Auto,
        IdMappingArg::Single => kiln_sandbox::IdMapping::Single,
        IdMappingArg::Subordinate => kiln_sandbox::IdMapping::Subordinate,
    };
    kiln_sandbox::enter_user_namespace(mapping)
        .context("failed to enter a user namespace for the recipe's `run` steps (rootless)")?;
    Ok(())
}

pub fn run(args: BuildArgs) -> Result<ExitCode> {
    let recipe = Recipe::load(&args.recipe)?;
    enter_user_namespace(&recipe, args.id_mapping)?;
    let opts = BuildOptions {
        store_root: store_root(&args.cache)?,
        mirrors: args.cache.mirror.clone(),
        offline: args.cache.offline,
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        recipe_uri: args.recipe_uri.clone(),
        invocation_id: args.invocation_id.clone(),
        step_timeout: std::time::Duration::from_secs(args.step_timeout),
    };
    let image = build::build(&recipe, &opts, &StderrObserver)
        .with_context(|| format!("failed to build {}", args.recipe.display()))?;
    let dest = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("out").join(recipe.image.name.as_str()));
    let store = Store::open(&opts.store_root)?;
    write_output(&image, &dest, args.format, &build::scratch_dir(&store)?)
        .with_context(|| format!("failed to write {}", dest.display()))?;
    status(&format!("wrote {}", dest.display()));
    println!("{}", image.manifest_digest);
    Ok(ExitCode::SUCCESS)
}
