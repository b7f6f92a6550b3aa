//! `kiln update RECIPE...`: the library updates each recipe ([`crate::update`]); this prints
//! progress on stderr, one conclusion per recipe on stdout, writes the Markdown and JSON
//! reports, pushes and signs, and turns the outcome into the exit status.

use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result};

use super::args::UpdateArgs;
use super::build::{build_options, enter_user_namespace, push_index, push_output, sign_output};
use super::printer::{outln, status};
use super::progress::BuildReporter;
use crate::build::output::OutputFormat;
use crate::build::BuildObserver;
use crate::recipe::Recipe;
use crate::update::{
    self, RecipeFailure, RecipeUpdate, UpdateEvent, UpdateObserver, UpdateOptions, UpdateReport,
};

struct Progress(BuildReporter);

impl UpdateObserver for Progress {
    fn event(&self, event: UpdateEvent<'_>) {
        status(&event.to_string());
    }

    fn build(&self) -> &dyn BuildObserver {
        &self.0
    }
}

pub fn run(args: UpdateArgs) -> Result<ExitCode> {
    if args.push.is_some() && args.recipes.len() > 1 {
        anyhow::bail!("--push takes one recipe: each recipe's image needs its own destination");
    }
    // Load the key first: a wrong password fails before minutes of building.
    let sign_key = match &args.sign_key {
        Some(path) => Some(super::key::load_signing_key(path)?),
        None => None,
    };
    // Rootless `run` steps need the user namespace before any thread exists.
    if let Some(recipe) = args
        .recipes
        .iter()
        .filter_map(|r| Recipe::load(r).ok())
        .find(|r| {
            r.layers
                .iter()
                .flat_map(|l| &l.steps)
                .any(|s| s.kind.name() == "run")
        })
    {
        enter_user_namespace(&recipe, args.run.id_mapping)?;
    }
    // The clock: for the expiry of repository keys and signatures only.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let opts = UpdateOptions {
        build: build_options(&args.run, None, None)?,
        output_dir: args.output_dir.clone(),
        db: args.db.clone(),
        ecosystem: args.ecosystem.clone(),
        now,
    };
    let progress = Progress(BuildReporter::new(false));
    let mut report = UpdateReport {
        schema: update::SCHEMA,
        recipes: Vec::new(),
        failures: Vec::new(),
    };
    for path in &args.recipes {
        let outcome = update::update_recipe(path, &opts, &progress)
            .map_err(anyhow::Error::from)
            .and_then(|u| publish(u, &args, sign_key.as_ref()));
        match outcome {
            Ok(u) => {
                outln!("{}: {}", path.display(), u.conclusion);
                report.recipes.push(u);
            }
            Err(e) => {
                let e = e.context(format!("failed to update {}", path.display()));
                super::printer::error(&e);
                let causes: Vec<String> = e.chain().map(ToString::to_string).collect();
                report.failures.push(RecipeFailure {
                    recipe: path.clone(),
                    error: causes.join("\ncaused by: "),
                });
            }
        }
    }
    if let Some(path) = &args.report {
        fs_err::write(path, report.markdown())?;
        status(&format!("wrote the report to {}", path.display()));
    }
    if let Some(path) = &args.json {
        let mut bytes = serde_json::to_vec_pretty(&report)?;
        bytes.push(b'\n');
        fs_err::write(path, bytes)?;
        status(&format!("wrote the JSON report to {}", path.display()));
    }
    Ok(if !report.failures.is_empty() {
        ExitCode::from(2)
    } else if report.recipes.iter().any(|u| u.changed) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Signs and pushes the updated image (or index, with several platforms), when there is one
/// and the flags ask for it.
fn publish(
    u: RecipeUpdate,
    args: &UpdateArgs,
    key: Option<&crate::attest::SigningKey>,
) -> Result<RecipeUpdate> {
    let (Some(dest), Some(digests)) = (&u.output, &u.digests) else {
        return Ok(u);
    };
    let names = super::sign::SigningNames::new(None, args.push.as_deref(), &u.image)?;
    match u.built.as_slice() {
        [] => {}
        [image] => {
            if let Some(key) = key {
                sign_output(dest, &names, image, Vec::new(), key)?;
                status(&format!("signed {}", dest.display()));
            }
            if let Some(push) = &args.push {
                push_output(image, dest, OutputFormat::Oci, push, &args.run)
                    .with_context(|| format!("failed to push {push}"))?;
            }
        }
        images => {
            if let Some(key) = key {
                let signed: Vec<_> = images
                    .iter()
                    .map(|i| (i.manifest_digest, i.provenance.as_slice()))
                    .collect();
                super::sign::sign_built_index(dest, &names, &digests.after, &signed, key)
                    .with_context(|| format!("failed to sign the images in {}", dest.display()))?;
            }
            if let Some(push) = &args.push {
                push_index(dest, &digests.after, push, &args.run)?;
            }
        }
    }
    Ok(u)
}
