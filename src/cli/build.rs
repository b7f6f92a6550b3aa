use super::printer::outln;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::args::{BuildArgs, CacheArgs, IdMappingArg};
use super::printer::{human_size, status};
use crate::build::output::{write_layout, write_output, OutputFormat};
use crate::build::{self, BuildEvent, BuildObserver, BuildOptions, OutputStream};
use crate::image::ImageRef;
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

    fn registry_progress(&self) -> Option<Box<dyn crate::registry::Progress + Send + Sync>> {
        Some(Box::new(super::copy::StderrProgress::default()))
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
pub(super) fn enter_user_namespace(recipe: &Recipe, mapping: IdMappingArg) -> Result<()> {
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
    // Load the key first: a wrong password fails before minutes of building.
    let sign_key = match &args.sign_key {
        Some(_) if args.format != OutputFormat::Oci => {
            anyhow::bail!("--sign-key needs --format oci (signatures are tags in the layout)")
        }
        Some(path) => Some(super::key::load_signing_key(path)?),
        None => None,
    };
    enter_user_namespace(&recipe, args.run.id_mapping)?;
    let opts = build_options(
        &args.run,
        args.recipe_uri.clone(),
        args.invocation_id.clone(),
    )?;
    if recipe.image.platforms.len() > 1 {
        return build_platforms(&recipe, &args, &opts, sign_key.is_some());
    }
    let image = build::build(&recipe, &opts, &StderrObserver)
        .with_context(|| format!("failed to build {}", args.recipe.display()))?;
    let dest = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("out").join(recipe.image.name.as_str()));
    let store = Store::open(&opts.store_root)?;
    write_output(&image, &dest, args.format, &store)
        .with_context(|| format!("failed to write {}", dest.display()))?;
    if let Some(key) = &sign_key {
        super::sign::sign_built_layout(
            &dest,
            &image.name,
            &image.manifest_digest,
            &image.provenance,
            key,
        )
        .with_context(|| format!("failed to sign the image in {}", dest.display()))?;
        status(&format!(
            "signed {} and attested its provenance with key {}",
            image.manifest_digest,
            crate::attest::keys::key_id(key.verifying_key())
        ));
    }
    status(&format!("wrote {}", dest.display()));
    if let Some(push) = &args.push {
        push_output(&image, &dest, args.format, push, &args)
            .with_context(|| format!("failed to push {push}"))?;
    }
    outln!("{}", image.manifest_digest);
    Ok(ExitCode::SUCCESS)
}

/// `[image] platforms`: one image per platform, then an OCI image index over them; prints the
/// index digest.
fn build_platforms(
    recipe: &Recipe,
    args: &BuildArgs,
    opts: &BuildOptions,
    signing: bool,
) -> Result<ExitCode> {
    if args.format != OutputFormat::Oci || signing || args.push.is_some() {
        anyhow::bail!(
            "a recipe with several `platforms` writes an image index: use --format oci, without \
             --sign-key or --push (sign and copy the index afterwards)"
        );
    }
    let per_platform: Vec<Recipe> = recipe
        .image
        .platforms
        .iter()
        .map(|platform| {
            let mut one = recipe.clone();
            one.image.platform = platform.clone();
            one.image.platforms = vec![platform.clone()];
            one
        })
        .collect();
    // Refuse before building anything.
    for one in &per_platform {
        build::check_emulator(one)?;
    }
    let mut images = Vec::new();
    for one in &per_platform {
        let platform = &one.image.platform;
        status(&format!("building for {platform}"));
        let image = build::build(one, opts, &StderrObserver)
            .with_context(|| format!("failed to build {} for {platform}", args.recipe.display()))?;
        status(&format!("{platform}: {}", image.manifest_digest));
        images.push(image);
    }
    let dest = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("out").join(recipe.image.name.as_str()));
    let store = Store::open(&opts.store_root)?;
    let (_staging, staged) = crate::image::write::stage_beside(&dest)?;
    let digest = build::output::write_index_layout(&images, recipe.image.name.as_str(), &staged)
        .with_context(|| format!("failed to write {}", dest.display()))?;
    crate::image::write::replace(&staged, &dest)?;
    for blob in images.iter().flat_map(|i| &i.layers) {
        if blob.path.starts_with(store.root()) {
            store.stamp_verified(&blob.digest);
        }
    }
    status(&format!("wrote {}", dest.display()));
    outln!("{digest}");
    Ok(ExitCode::SUCCESS)
}

/// Pushes what `build` wrote: the layout itself, or (for archive formats, which cannot carry
/// the provenance) a layout staged in the cache's scratch directory.
fn push_output(
    image: &build::BuiltImage,
    dest: &std::path::Path,
    format: OutputFormat,
    push: &str,
    args: &BuildArgs,
) -> Result<()> {
    let target: ImageRef = push.parse()?;
    if !matches!(target, ImageRef::Docker { .. }) {
        anyhow::bail!("--push takes a docker://HOST/REPO[:TAG] reference, not `{push}`");
    }
    let ctx = super::copy::transports(&args.run.cache, &args.run.registry)?;
    let scratch = ctx.scratch()?;
    let layout_dir = match format {
        OutputFormat::Oci => dest.to_path_buf(),
        _ => {
            let dir = scratch.path().join("layout");
            write_layout(image, &dir)?;
            dir
        }
    };
    let source = ImageRef::Oci {
        path: layout_dir,
        tag: None,
        digest: Some(image.manifest_digest),
    };
    let opened = crate::image::open_image_with(&source, "", &ctx)?;
    let report = crate::image::copy_image(&opened, &target, &ctx, image.epoch)?;
    super::copy::report(push, &report);
    Ok(())
}

/// The library's build options from the command line's.
pub(super) fn build_options(
    run: &super::args::BuildRunArgs,
    recipe_uri: Option<String>,
    invocation_id: Option<String>,
) -> Result<BuildOptions> {
    Ok(BuildOptions {
        store_root: store_root(&run.cache)?,
        mirrors: run.cache.mirror.clone(),
        offline: run.cache.offline,
        threads: run
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        recipe_uri,
        invocation_id,
        registry: super::copy::registry_options(&run.registry),
        step_timeout: std::time::Duration::from_secs(run.step_timeout),
    })
}
