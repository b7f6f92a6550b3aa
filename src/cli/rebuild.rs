//! `kiln rebuild RECIPE --against REF`: build, compare with REF, print the verdict, write the
//! JSON report, and attach the verdict to the rebuilt image as an in-toto statement.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::args::RebuildArgs;
use super::build::enter_user_namespace;
use super::diff::{accept, emit, exit_code, open, options, platform, render};
use super::printer::status;
use super::progress::BuildReporter;
use crate::attest::PredicateType;
use crate::build;
use crate::build::output::{write_output, OutputFormat};
use crate::diff::{self, RebuildFacts, REBUILD_PREDICATE_TYPE};
use crate::digest::Sha256Digest;
use crate::image::referrer::{attach_statement, Subject};
use crate::image::{self, media, ImageRef, Layout};
use crate::recipe::Recipe;
use crate::store::Store;

pub fn run(args: RebuildArgs) -> Result<ExitCode> {
    let recipe = Recipe::load(&args.recipe)?;
    let recipe_bytes = fs_err::read(&args.recipe)?;
    // Load the key first: a wrong password fails before the build.
    let sign_key = match &args.sign_key {
        Some(path) => Some(super::key::load_signing_key(path)?),
        None => None,
    };
    let names =
        super::sign::SigningNames::new(args.identity.as_deref(), None, recipe.image.name.as_str())?;
    // Before any thread exists (rootless `run` steps), as `kiln build` does.
    enter_user_namespace(&recipe, args.run.id_mapping)?;
    // Open the image to reproduce before building: a typo in --against should not cost a
    // build.
    let ctx = super::copy::transports(&args.run.cache, &args.run.registry)?;
    let upstream = open(&args.against, &platform(&args.check), &ctx)?;
    let opts = super::build::build_options(&args.run, None, None)?;
    let built = build::build(&recipe, &opts, &BuildReporter::new(false))
        .with_context(|| format!("failed to build {}", args.recipe.display()))?;
    let dest = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("out").join(recipe.image.name.as_str()));
    let store = Store::open(&opts.store_root)?;
    write_output(&built, &dest, OutputFormat::Oci, &store)
        .with_context(|| format!("failed to write {}", dest.display()))?;
    status(&format!(
        "wrote {} ({})",
        dest.display(),
        built.manifest_digest
    ));

    let rebuilt_ref = ImageRef::Oci {
        path: dest.clone(),
        tag: None,
        digest: Some(built.manifest_digest),
    };
    let rebuilt = image::open_image(&rebuilt_ref, &platform(&args.check))
        .with_context(|| format!("failed to open the rebuilt image in {}", dest.display()))?;
    let report = diff::diff_images(&upstream, &rebuilt, &options(&args.check))
        .with_context(|| format!("failed to compare {} with the rebuilt image", args.against))?;
    let accept = accept(&args.check);

    let report_bytes = serde_json::to_vec_pretty(&report)?;
    if let Some(path) = &args.report {
        fs_err::write(path, &report_bytes)?;
        status(&format!("wrote the report to {}", path.display()));
    }
    let recipe_uri = args
        .recipe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| args.recipe.display().to_string());
    let statement = diff::rebuild_statement(
        &report,
        &RebuildFacts {
            image_name: recipe.image.name.as_str(),
            rebuilt_digest: &built.manifest_digest,
            recipe_uri: &recipe_uri,
            recipe_digest: &Sha256Digest::of(&recipe_bytes),
            accept,
            report_digest: &Sha256Digest::of(&report_bytes),
        },
    );
    let layout = Layout::open(&dest)?;
    let desc = attach_statement(
        &layout,
        Subject {
            media_type: media::OCI_MANIFEST,
            digest: &built.manifest_digest,
            size: built.manifest_bytes.len() as u64,
        },
        &statement.to_json(),
        REBUILD_PREDICATE_TYPE,
    )
    .with_context(|| format!("failed to attach the verdict to {}", dest.display()))?;
    status(&format!(
        "attached the verdict ({REBUILD_PREDICATE_TYPE}) as referrer {}",
        desc.digest()
    ));
    if let Some(key) = &sign_key {
        let verdict = (
            PredicateType::from_uri(REBUILD_PREDICATE_TYPE),
            statement.predicate.clone(),
        );
        super::sign::sign_built_layout(
            &dest,
            &names,
            &built.manifest_digest,
            &built.provenance,
            vec![verdict],
            key,
        )
        .with_context(|| format!("failed to sign the image in {}", dest.display()))?;
    }
    emit(&render(&report, accept, 10))?;
    Ok(exit_code(report.verdict, accept))
}
