//! `kiln rebuild RECIPE --against REF`: build, compare with REF, print the verdict, write the
//! JSON report, and attach the verdict to the rebuilt image as an in-toto statement (the work
//! is [`crate::rebuild`]'s).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::args::RebuildArgs;
use super::build::enter_user_namespace;
use super::diff::{accept, emit, open, options, platform, render};
use super::printer::status;
use super::progress::BuildReporter;
use crate::diff::REBUILD_PREDICATE_TYPE;
use crate::rebuild::{rebuild, RebuildEvent, RebuildRequest};
use crate::recipe::Recipe;

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
    let platform = platform(&args.check);
    let upstream = open(&args.against, &platform, &ctx)?;
    let opts = super::build::build_options(&args.run, None, None)?;
    if !opts.cache_from.is_empty() {
        status(&format!("warning: {}", crate::diff::NOT_INDEPENDENT));
    }
    let dest = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("out").join(recipe.image.name.as_str()));
    let accept = accept(&args.check);
    let request = RebuildRequest {
        recipe: &recipe,
        recipe_bytes: &recipe_bytes,
        against: &args.against,
        upstream: &upstream,
        build: &opts,
        observer: &BuildReporter::new(false),
        dest: &dest,
        platform: &platform,
        diff: &options(&args.check),
        accept,
        report: args.report.as_deref(),
        sign: sign_key.as_ref().map(|key| (key, &names)),
    };
    let rebuilt = rebuild(&request, &mut |event| match event {
        RebuildEvent::Written { dest, digest } => {
            status(&format!("wrote {} ({digest})", dest.display()));
        }
        RebuildEvent::ReportWritten { path } => {
            status(&format!("wrote the report to {}", path.display()));
        }
        RebuildEvent::Attached { digest } => status(&format!(
            "attached the verdict ({REBUILD_PREDICATE_TYPE}) as referrer {digest}"
        )),
        RebuildEvent::Signed(signed) => super::sign::print_signed(signed),
    })?;
    emit(&render(&rebuilt.report, accept, 10))?;
    Ok(match rebuilt.passed {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    })
}
