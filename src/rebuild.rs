//! `kiln rebuild`: build a recipe, compare the result with the image it should reproduce,
//! and record the verdict beside the rebuilt image, as an in-toto statement attached as a
//! referrer (and, with a key, signed and attested with the build's provenance).
//!
//! [`rebuild`] does the work and returns a [`Rebuilt`]; each step's result arrives as a
//! [`RebuildEvent`] as it is done, for the caller to print.

use std::path::{Path, PathBuf};

use crate::attest::image::{sign_layout, LayoutSigned, SignImageError, SigningNames};
use crate::attest::{PredicateType, SigningKey};
use crate::build::output::{write_output, OutputFormat};
use crate::build::{self, BuildError, BuildObserver, BuildOptions};
use crate::diff::REBUILD_PREDICATE_TYPE;
use crate::diff::{self, DiffError, DiffOptions, DiffReport, RebuildFacts, Verdict};
use crate::digest::Sha256Digest;
use crate::image::referrer::{attach_statement, Subject};
use crate::image::{self, ImageError, ImageRef, Layout, OpenedImage};
use crate::media;
use crate::platform::Platform;
use crate::recipe::Recipe;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("failed to build {}", recipe.display())]
    Build {
        recipe: PathBuf,
        #[source]
        source: Box<BuildError>,
    },
    #[error(transparent)]
    Store(#[from] Box<StoreError>),
    #[error("failed to write {}", dest.display())]
    Write {
        dest: PathBuf,
        #[source]
        source: Box<BuildError>,
    },
    #[error("failed to open the rebuilt image in {}", dest.display())]
    OpenRebuilt {
        dest: PathBuf,
        #[source]
        source: Box<ImageError>,
    },
    #[error("failed to compare {against} with the rebuilt image")]
    Compare {
        against: String,
        #[source]
        source: Box<DiffError>,
    },
    #[error(transparent)]
    Report(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Layout(#[from] Box<ImageError>),
    #[error("failed to attach the verdict to {}", dest.display())]
    Attach {
        dest: PathBuf,
        #[source]
        source: Box<ImageError>,
    },
    #[error("failed to sign the image in {}", dest.display())]
    Sign {
        dest: PathBuf,
        #[source]
        source: Box<SignImageError>,
    },
}

impl RebuildError {
    /// What the user can do about it, when kiln knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Store(e) => e.hint(),
            Self::Layout(e) => e.hint(),
            _ => None,
        }
    }
}

/// What to rebuild, against what, and where the results go.
pub struct RebuildRequest<'a> {
    pub recipe: &'a Recipe,
    /// The recipe's bytes (their sha256 goes into the verdict).
    pub recipe_bytes: &'a [u8],
    /// The image the rebuild should reproduce, as given (for messages) and opened.
    pub against: &'a str,
    pub upstream: &'a OpenedImage,
    pub build: &'a BuildOptions,
    pub observer: &'a dyn BuildObserver,
    /// The OCI layout the rebuilt image is written to.
    pub dest: &'a Path,
    /// The platform to open the rebuilt image at (as the upstream was opened).
    pub platform: &'a Platform,
    pub diff: &'a DiffOptions,
    /// The weakest verdict that passes.
    pub accept: Verdict,
    /// Where to write the JSON report, if anywhere.
    pub report: Option<&'a Path>,
    /// Sign and attest the rebuilt image (provenance and verdict) with this key as these names.
    pub sign: Option<(&'a SigningKey, &'a SigningNames)>,
}

/// Each step's result, in order.
#[derive(Debug)]
pub enum RebuildEvent<'a> {
    /// The rebuilt image was written to `dest`.
    Written {
        dest: &'a Path,
        digest: &'a Sha256Digest,
    },
    /// The JSON report was written to `path`.
    ReportWritten { path: &'a Path },
    /// The verdict was attached as the referrer `digest`.
    Attached { digest: &'a str },
    /// The rebuilt image was signed and attested.
    Signed(&'a LayoutSigned),
}

/// What [`rebuild`] produced.
#[derive(Debug)]
pub struct Rebuilt {
    pub report: DiffReport,
    /// Whether the verdict passes [`RebuildRequest::accept`].
    pub passed: bool,
}

/// How the verdict names the recipe: its file name (else the path as given).
pub fn recipe_uri(recipe: &Path) -> String {
    recipe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| recipe.display().to_string())
}

/// Builds, writes, compares, attaches the verdict and (with a key) signs; see the module docs.
pub fn rebuild(
    request: &RebuildRequest<'_>,
    progress: &mut dyn FnMut(RebuildEvent<'_>),
) -> Result<Rebuilt, RebuildError> {
    let RebuildRequest {
        recipe,
        dest,
        accept,
        ..
    } = *request;
    let built = build::build(recipe, request.build, request.observer).map_err(|source| {
        RebuildError::Build {
            recipe: recipe.file.clone(),
            source: Box::new(source),
        }
    })?;
    let store = Store::open(&request.build.store_root).map_err(Box::new)?;
    write_output(&built, dest, OutputFormat::Oci, &store).map_err(|source| {
        RebuildError::Write {
            dest: dest.to_path_buf(),
            source: Box::new(source),
        }
    })?;
    progress(RebuildEvent::Written {
        dest,
        digest: &built.manifest_digest,
    });

    let rebuilt_ref = ImageRef::Oci {
        path: dest.to_path_buf(),
        tag: None,
        digest: Some(built.manifest_digest),
    };
    let rebuilt = image::open_image(&rebuilt_ref, Some(request.platform)).map_err(|source| {
        RebuildError::OpenRebuilt {
            dest: dest.to_path_buf(),
            source: Box::new(source),
        }
    })?;
    let report = diff::diff_images(request.upstream, &rebuilt, request.diff).map_err(|source| {
        RebuildError::Compare {
            against: request.against.to_string(),
            source: Box::new(source),
        }
    })?;

    let report_bytes = serde_json::to_vec_pretty(&report)?;
    if let Some(path) = request.report {
        fs_err::write(path, &report_bytes)?;
        progress(RebuildEvent::ReportWritten { path });
    }
    let statement = diff::rebuild_statement(
        &report,
        &RebuildFacts {
            image_name: recipe.image.name.as_str(),
            rebuilt_digest: &built.manifest_digest,
            recipe_uri: &recipe_uri(&recipe.file),
            recipe_digest: &Sha256Digest::of(request.recipe_bytes),
            accept,
            report_digest: &Sha256Digest::of(&report_bytes),
            remote_cache: built.remote_cache.as_ref(),
        },
    );
    let layout = Layout::open(dest).map_err(Box::new)?;
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
    .map_err(|source| RebuildError::Attach {
        dest: dest.to_path_buf(),
        source: Box::new(source),
    })?;
    progress(RebuildEvent::Attached {
        digest: desc.digest().as_ref(),
    });
    if let Some((key, names)) = request.sign {
        let verdict = (
            PredicateType::from_uri(REBUILD_PREDICATE_TYPE),
            statement.predicate.clone(),
        );
        let signed = sign_layout(
            dest,
            names,
            &built.manifest_digest,
            &built.provenance,
            vec![verdict],
            key,
        )
        .map_err(|source| RebuildError::Sign {
            dest: dest.to_path_buf(),
            source: Box::new(source),
        })?;
        progress(RebuildEvent::Signed(&signed));
    }
    Ok(Rebuilt {
        passed: report.verdict.passes(accept),
        report,
    })
}
