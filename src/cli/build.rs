use super::printer::outln;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::args::{BuildArgs, CacheArgs, IdMappingArg};
use super::printer::status;
use super::progress::BuildReporter;
use crate::build::output::{write_layout, write_output, OutputFormat};
use crate::build::{self, BuildOptions, BuiltImage};
use crate::diff::{self, DiffOptions, Verdict};
use crate::image::ImageRef;
use crate::recipe::{Recipe, StepKind};
use crate::store::{Store, StoreError};

pub fn store_root(cache: &CacheArgs) -> Result<PathBuf> {
    cache_root(cache.cache.as_deref())
}

/// The cache directory: `--cache DIR`, else the default.
pub fn cache_root(cache: Option<&Path>) -> Result<PathBuf> {
    match cache {
        Some(dir) => Ok(dir.to_path_buf()),
        None => Ok(Store::default_root().ok_or(StoreError::NoDefaultRoot)?),
    }
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
    let json = args.json;
    let result = run_build(args);
    if let (true, Err(e)) = (json, &result) {
        // Machines reading stdout learn that the build failed, and why, from the last event.
        let causes: Vec<String> = e.chain().map(ToString::to_string).collect();
        let mut event = serde_json::json!({"event": "error", "message": causes.join(": ")});
        if let Some(hint) = crate::hint::hints(e.chain()).first() {
            event["hint"] = hint.clone().into();
        }
        outln!("{event}");
    }
    result
}

fn run_build(args: BuildArgs) -> Result<ExitCode> {
    let recipe = Recipe::load(&args.recipe)?;
    if args.plan {
        let bytes = build::plan::printable(&recipe)
            .with_context(|| format!("failed to plan {}", args.recipe.display()))?;
        let text = std::str::from_utf8(&bytes).expect("JSON is UTF-8");
        outln!("{}", text.trim_end_matches('\n'));
        return Ok(ExitCode::SUCCESS);
    }
    // Load the key first: a wrong password fails before minutes of building.
    let sign_key = match &args.sign_key {
        Some(_) if args.format != OutputFormat::Oci => {
            anyhow::bail!("--sign-key needs --format oci (signatures are tags in the layout)")
        }
        Some(path) => Some(super::key::load_signing_key(path)?),
        None => None,
    };
    if args.sbom && args.format != OutputFormat::Oci {
        anyhow::bail!("--sbom needs --format oci (the SBOMs are referrers in the layout)");
    }
    let cache_key = match &args.cache_key {
        Some(path) => Some(super::key::load_signing_key(path)?),
        None => None,
    };
    if let Some(to) = &args.cache_to {
        cache_repository("--cache-to", to)?;
    }
    let names = super::sign::SigningNames::new(
        args.identity.as_deref(),
        args.push.as_deref(),
        recipe.image.name.as_str(),
    )?;
    enter_user_namespace(&recipe, args.run.id_mapping)?;
    let opts = build_options(
        &args.run,
        args.recipe_uri.clone(),
        args.invocation_id.clone(),
    )?;
    let reporter = BuildReporter::new(args.json);
    if recipe.image.platforms.len() > 1 {
        if args.check {
            anyhow::bail!("--check does not support a recipe with several `platforms` yet");
        }
        return build_platforms(
            &recipe,
            &args,
            &opts,
            (sign_key.as_ref(), cache_key.as_ref()),
            &names,
            &reporter,
        );
    }
    let image = if args.check {
        match check(&recipe, &opts, &reporter)
            .with_context(|| format!("failed to check {}", args.recipe.display()))?
        {
            Ok(image) => image,
            Err(code) => return Ok(code),
        }
    } else {
        build::build(&recipe, &opts, &reporter)
            .with_context(|| format!("failed to build {}", args.recipe.display()))?
    };
    let dest = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("out").join(recipe.image.name.as_str()));
    let store = Store::open(&opts.store_root)?;
    write_output(&image, &dest, args.format, &store)
        .with_context(|| format!("failed to write {}", dest.display()))?;
    let sboms = match args.sbom {
        true => crate::scan::sbom::attach_sboms(&dest, &image.manifest_digest, &names.subject)
            .with_context(|| format!("failed to attach the SBOMs in {}", dest.display()))?,
        false => Vec::new(),
    };
    if let Some(key) = &sign_key {
        sign_output(&dest, &names, &image, sboms, key)?;
    }
    status(&format!("wrote {}", dest.display()));
    if let Some(push) = &args.push {
        push_output(&image, &dest, args.format, push, &args.run)
            .with_context(|| format!("failed to push {push}"))?;
    }
    if let Some(to) = &args.cache_to {
        push_cache(&image, to, cache_key.as_ref(), &args.run, &reporter);
    }
    reporter.json(serde_json::json!({
        "event": "image",
        "digest": image.manifest_digest.to_string(),
        "output": dest.display().to_string(),
        "format": match args.format {
            OutputFormat::Oci => "oci",
            OutputFormat::OciArchive => "oci-archive",
            OutputFormat::DockerArchive => "docker-archive",
        },
    }));
    if !args.json {
        outln!("{}", image.manifest_digest);
    }
    Ok(ExitCode::SUCCESS)
}

/// `[image] platforms`: one image per platform, then an OCI image index over them; prints the
/// index digest.
fn build_platforms(
    recipe: &Recipe,
    args: &BuildArgs,
    opts: &BuildOptions,
    (sign_key, cache_key): (
        Option<&crate::attest::SigningKey>,
        Option<&crate::attest::SigningKey>,
    ),
    names: &super::sign::SigningNames,
    reporter: &BuildReporter,
) -> Result<ExitCode> {
    if args.format != OutputFormat::Oci || args.sbom {
        anyhow::bail!(
            "a recipe with several `platforms` writes an image index: use --format oci, without \
             --sbom (copy one platform's image to an archive afterwards)"
        );
    }
    let per_platform = build::plan::per_platform(recipe);
    // Refuse before building anything.
    for one in &per_platform {
        build::check_emulator(one)?;
    }
    let mut images = Vec::new();
    for one in &per_platform {
        let platform = &one.image.platform;
        status(&format!("building for {platform}"));
        let image = build::build(one, opts, reporter)
            .with_context(|| format!("failed to build {} for {platform}", args.recipe.display()))?;
        status(&format!("{platform}: {}", image.manifest_digest));
        images.push(image);
    }
    let dest = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("out").join(recipe.image.name.as_str()));
    let (_staging, staged) = crate::image::write::stage_beside(&dest)?;
    let digest = build::output::write_index_layout(&images, recipe.image.name.as_str(), &staged)
        .with_context(|| format!("failed to write {}", dest.display()))?;
    crate::image::write::replace(&staged, &dest)?;
    for image in &images {
        for blob in &image.layers {
            image.store.stamp_verified(&blob.digest);
        }
    }
    if let Some(key) = sign_key {
        let signed: Vec<_> = images
            .iter()
            .map(|i| (i.manifest_digest, i.provenance.as_slice()))
            .collect();
        super::sign::sign_built_index(&dest, names, &digest, &signed, key)
            .with_context(|| format!("failed to sign the images in {}", dest.display()))?;
    }
    status(&format!("wrote {}", dest.display()));
    if let Some(push) = &args.push {
        push_index(&dest, &digest, push, &args.run)?;
    }
    if let Some(to) = &args.cache_to {
        for image in &images {
            push_cache(image, to, cache_key, &args.run, reporter);
        }
    }
    reporter.json(serde_json::json!({
        "event": "image",
        "digest": digest.to_string(),
        "output": dest.display().to_string(),
        "format": "oci",
    }));
    if !args.json {
        outln!("{digest}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `--check`: two builds from scratch, without the layer cache, compared. The first image when
/// they are identical; exit status 1 (after printing the diff report) when they are not.
fn check(
    recipe: &Recipe,
    opts: &BuildOptions,
    reporter: &BuildReporter,
) -> Result<std::result::Result<BuiltImage, ExitCode>> {
    let opts = BuildOptions {
        reuse_layers: false,
        ..opts.clone()
    };
    reporter.line("check: first build, without the layer cache");
    let first = build::build(recipe, &opts, reporter).context("the first build failed")?;
    reporter.line("check: second build, without the layer cache");
    let second = build::build(recipe, &opts, reporter).context("the second build failed")?;
    let digests = [first.manifest_digest, second.manifest_digest];
    if digests[0] == digests[1] {
        reporter.json(serde_json::json!({
            "event": "check", "reproducible": true, "digest": digests[0].to_string(),
        }));
        status(&format!(
            "reproducible: two builds from scratch gave {}",
            digests[0]
        ));
        return Ok(Ok(first));
    }
    // Different bytes: kiln's diff engine says where, from two layouts in the scratch space.
    let store = crate::store::Store::open(&opts.store_root)?;
    let scratch = store.scratch("kiln-build-")?;
    let mut opened = Vec::new();
    for (name, image) in [("first", &first), ("second", &second)] {
        let dir = scratch.path().join(name);
        write_layout(image, &dir)?;
        let reference = ImageRef::Oci {
            path: dir,
            tag: None,
            digest: Some(image.manifest_digest),
        };
        opened.push(crate::image::open_image(
            &reference,
            Some(&recipe.image.platform),
        )?);
    }
    let diff_opts = DiffOptions {
        threads: opts.threads.clamp(1, 4),
        ..DiffOptions::default()
    };
    let mut report = diff::diff_images(&opened[0], &opened[1], &diff_opts)
        .context("failed to compare the two builds")?;
    // The layouts are scratch, gone when this returns: name the builds instead.
    report.a.reference = "first build".into();
    report.b.reference = "second build".into();
    if reporter.output() == super::progress::BuildOutput::Json {
        reporter.json(serde_json::json!({
            "event": "check", "reproducible": false,
            "digests": [digests[0].to_string(), digests[1].to_string()],
            "report": report,
        }));
    } else {
        super::diff::emit(&format!(
            "not reproducible: two builds from scratch gave {} and {}\n{}",
            digests[0],
            digests[1],
            super::diff::render(&report, Verdict::Identical, 20)
        ))?;
    }
    Ok(Err(ExitCode::from(1)))
}

/// Signs the image `build` wrote into the layout `dest`, with its provenance.
pub(super) fn sign_output(
    dest: &std::path::Path,
    names: &super::sign::SigningNames,
    image: &build::BuiltImage,
    extra: Vec<(crate::attest::PredicateType, serde_json::Value)>,
    key: &crate::attest::SigningKey,
) -> Result<()> {
    super::sign::sign_built_layout(
        dest,
        names,
        &image.manifest_digest,
        &image.provenance,
        extra,
        key,
    )
    .with_context(|| format!("failed to sign the image in {}", dest.display()))
}

/// Pushes what `build` wrote: the layout itself, or (for archive formats, which cannot carry
/// the provenance) a layout staged in the cache's scratch directory.
pub(super) fn push_output(
    image: &build::BuiltImage,
    dest: &std::path::Path,
    format: OutputFormat,
    push: &str,
    run: &super::args::BuildRunArgs,
) -> Result<()> {
    let target = ImageRef::Docker(registry_target(push)?);
    let ctx = super::copy::transports(&run.cache, &run.registry)?;
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
    let opened = crate::image::open_image_with(&source, None, &ctx)?;
    let report = crate::image::copy_image(&opened, &target, &ctx, image.epoch)?;
    super::copy::report(push, &report);
    Ok(())
}

/// Pushes the index `digest` of the layout at `dest`, every image it lists first (each with
/// its referrers and signature tags), then the index's signature tag, then the index.
pub(super) fn push_index(
    dest: &std::path::Path,
    digest: &crate::digest::Sha256Digest,
    push: &str,
    run: &super::args::BuildRunArgs,
) -> Result<()> {
    let target = registry_target(push)?;
    let ctx = super::copy::transports(&run.cache, &run.registry)?;
    let report = crate::image::push::push_layout_index(&ctx, dest, digest, &target)
        .with_context(|| format!("failed to push {push}"))?;
    super::copy::report(
        push,
        &crate::image::copy::CopyReport {
            manifest_digest: *digest,
            push: Some(report),
        },
    );
    Ok(())
}

/// The registry reference of `--push` (only `docker://` destinations).
fn registry_target(push: &str) -> Result<crate::registry::Reference> {
    docker_target("--push", "docker://HOST/REPO[:TAG]", push)
}

/// The registry reference `flag` was given (only `docker://`, of the `form` the flag takes).
fn docker_target(flag: &str, form: &str, reference: &str) -> Result<crate::registry::Reference> {
    let target: ImageRef = reference.parse()?;
    if !matches!(target, ImageRef::Docker { .. }) {
        anyhow::bail!("{flag} takes a {form} reference, not `{reference}`");
    }
    Ok(crate::image::remote::registry_reference(&target)?)
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
        max_download_size: run.cache.max_download_size,
        step_limits: kiln_sandbox::Limits {
            pids_max: Some(run.step_pids_max).filter(|&n| n > 0),
            memory_max: Some(run.step_memory_max).filter(|&n| n > 0),
            write_max: Some(run.step_write_max).filter(|&n| n > 0),
        },
        reuse_layers: true,
        cache_from: cache_sources(&run.cache_from, &run.cache_trust)?,
    })
}

/// `--cache-from` repositories with the `--cache-trust` keys.
fn cache_sources(
    from: &[String],
    trust: &[PathBuf],
) -> Result<Vec<crate::remote_cache::CacheSource>> {
    let trust = trust
        .iter()
        .map(|p| super::key::load_verifying_key(p))
        .collect::<Result<Vec<_>>>()?;
    from.iter()
        .map(|r| {
            Ok(crate::remote_cache::CacheSource::new(
                cache_repository("--cache-from", r)?,
                trust.clone(),
            ))
        })
        .collect()
}

/// The repository of a `--cache-from` / `--cache-to` reference: `docker://HOST/REPO`.
fn cache_repository(flag: &str, reference: &str) -> Result<crate::registry::Repository> {
    let target = docker_target(flag, "docker://HOST/REPO", reference)?;
    if target.tag().is_some() || target.digest().is_some() {
        anyhow::bail!(
            "{flag} takes a repository, docker://HOST/REPO, not `{reference}`: the cache's \
             records are tags of their own"
        );
    }
    Ok(target.repository().clone())
}

/// `--cache-to`: pushes the recipe's layers of `image` and their records, and says what it
/// did. A failure is a warning: the image is built and written already.
fn push_cache(
    image: &BuiltImage,
    cache_to: &str,
    key: Option<&crate::attest::SigningKey>,
    run: &super::args::BuildRunArgs,
    reporter: &BuildReporter,
) {
    let result = (|| -> Result<crate::remote_cache::CachePushReport> {
        let repo = cache_repository("--cache-to", cache_to)?;
        let registry = super::copy::registry_options(&run.registry);
        let client = crate::registry::Client::new(crate::registry::ClientOptions {
            tls_verify: registry.tls_verify,
            auth_files: registry.auth_files(),
            progress: build::BuildObserver::registry_progress(reporter),
            ..Default::default()
        })?;
        let ours = image.plan.layers.len();
        let first = image.layers.len() - ours;
        let layers: Vec<_> = image
            .plan
            .layers
            .iter()
            .enumerate()
            .map(|(i, planned)| {
                let blob = &image.layers[first + i];
                crate::remote_cache::LayerToPush {
                    record: crate::remote_cache::CacheRecord {
                        key: planned.key,
                        media_type: blob.media_type.clone(),
                        digest: blob.digest,
                        size: blob.size,
                        diff_id: image.diff_ids[first + i],
                        encoder: image.plan.image.encoder.clone(),
                        kiln: image.plan.kiln.clone(),
                    },
                    path: &blob.path,
                }
            })
            .collect();
        Ok(crate::remote_cache::push(
            &client,
            &repo,
            &layers,
            key,
            crate::registry::DEFAULT_PARALLELISM,
        )?)
    })();
    match result {
        Ok(report) => {
            reporter.json(serde_json::json!({
                "event": "cache-push", "cache": cache_to, "uploaded": report.uploaded,
                "existed": report.existed, "uploaded_bytes": report.uploaded_bytes,
                "records": report.records, "signed": key.is_some(),
            }));
            reporter.line(&format!(
                "cache: pushed {} layer record(s){} to {cache_to}: {} blob(s) uploaded ({}), {} already there",
                report.records,
                if key.is_some() { ", signed" } else { "" },
                report.uploaded,
                super::printer::human_size(report.uploaded_bytes),
                report.existed,
            ));
        }
        Err(e) => {
            let causes: Vec<String> = e.chain().map(ToString::to_string).collect();
            let message = format!(
                "failed to push the layer cache to {cache_to}: {}",
                causes.join(": ")
            );
            reporter
                .json(serde_json::json!({"event": "warning", "message": message, "hint": null}));
            if reporter.output() != super::progress::BuildOutput::Json {
                reporter.line(&format!("warning: {message}"));
            }
        }
    }
}
