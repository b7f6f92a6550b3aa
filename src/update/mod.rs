//! `kiln update`: re-pin a recipe to what its sources offer now, rebuild, compare and rescan,
//! and say what changed in terms a reviewer can act on.
//!
//! One recipe at a time: the base image's tag, the `packages` closures and the `url` inputs
//! with an `update` rule are resolved again. When nothing moved, nothing is written (the
//! recipe and its lock keep their bytes and mtimes). When something did, the image of the
//! previous pins is built (from the layer cache when it was built before), the new recipe and
//! lock are written, the new image is built (a failure puts the old files back), the two are
//! compared with [`crate::diff`] and, given a vulnerability database, both are scanned with
//! [`crate::scan`] so the report can say which vulnerabilities the update fixes.

mod inputs;
mod report;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use inputs::{newer_release, InputChange};
pub use report::{
    DiffSummary, ImageDigests, RecipeFailure, UpdateReport, VulnerabilityDelta, SCHEMA,
};

use crate::build::output::{write_index_layout, write_layout, write_output, OutputFormat};
use crate::build::{self, BuildObserver, BuildOptions, BuiltImage};
use crate::deb::lock::{self as deb_lock, DebLockError, LockEvent, PackageChange};
use crate::deb::lockfile::{lock_path, Lock, LockfileError};
use crate::diff::{self, DiffOptions};
use crate::digest::Sha256Digest;
use crate::fetch::{FetchError, Fetcher};
use crate::image::{self, ImageError, ImageRef, Transports};
use crate::lock::{resolve_base, LockOptions};
use crate::platform::Platform;
use crate::recipe::{self, InputSource, LockError, Recipe, RecipeError};
use crate::scan::{self, Database, Finding, ScanError};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(transparent)]
    Recipe(Box<RecipeError>),
    #[error("failed to rewrite {}", path.display())]
    Rewrite {
        path: PathBuf,
        #[source]
        source: LockError,
    },
    #[error(transparent)]
    Lockfile(Box<LockfileError>),
    #[error("failed to resolve the packages of {}", recipe.display())]
    Packages {
        recipe: PathBuf,
        #[source]
        source: Box<DebLockError>,
    },
    #[error("failed to re-resolve the base image of {}", recipe.display())]
    Base {
        recipe: PathBuf,
        #[source]
        source: Box<crate::lock::BaseError>,
    },
    #[error("failed to fetch {what} ({url})")]
    Fetch {
        what: String,
        url: String,
        #[source]
        source: Box<FetchError>,
    },
    #[error("input `{input}`: {url} lists no release named like `{template}`")]
    NoVersions {
        input: String,
        url: String,
        template: String,
    },
    #[error("input `{input}`: {url} has {actual}, but its checksums file lists sha256:{listed}")]
    ChecksumMismatch {
        input: String,
        url: String,
        listed: String,
        actual: Sha256Digest,
    },
    #[error("failed to build the image of the previous pins of {}", recipe.display())]
    BuildBefore {
        recipe: PathBuf,
        #[source]
        source: Box<build::BuildError>,
    },
    #[error(
        "failed to build the updated {}; the recipe and its lock were put back",
        recipe.display()
    )]
    BuildAfter {
        recipe: PathBuf,
        #[source]
        source: Box<build::BuildError>,
    },
    #[error("failed to write or open the image in {}", path.display())]
    Image {
        path: PathBuf,
        #[source]
        source: Box<ImageError>,
    },
    #[error("failed to compare the images of {}", recipe.display())]
    Diff {
        recipe: PathBuf,
        #[source]
        source: Box<diff::DiffError>,
    },
    #[error("failed to write the image to {}", path.display())]
    Output {
        path: PathBuf,
        #[source]
        source: Box<build::BuildError>,
    },
    #[error(transparent)]
    Store(Box<crate::store::StoreError>),
    #[error(transparent)]
    Scan(Box<ScanError>),
    #[error("failed to write {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl UpdateError {
    /// What the user can do about it, when kiln knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::NoVersions { input, .. } => Some(format!(
                "check `update` of [inputs.{input}]: versions are digits separated by dots"
            )),
            Self::Recipe(e) => e.hint(),
            Self::Lockfile(e) => e.hint(),
            Self::Store(e) => e.hint(),
            Self::Scan(e) => e.hint(),
            _ => None,
        }
    }
}

macro_rules! boxed_from {
    ($($variant:ident: $error:ty),*) => {$(
        impl From<$error> for UpdateError {
            fn from(e: $error) -> Self {
                UpdateError::$variant(Box::new(e))
            }
        }
    )*};
}

boxed_from!(Recipe: RecipeError, Lockfile: LockfileError, Store: crate::store::StoreError, Scan: ScanError);

pub type Result<T, E = UpdateError> = std::result::Result<T, E>;

/// How to run an update.
pub struct UpdateOptions {
    /// How the two images are built (cache, registry access, threads).
    pub build: BuildOptions,
    /// Where the updated image goes: `DIR/<image name>`, an OCI layout.
    pub output_dir: PathBuf,
    /// OSV records (a directory or a zip): scan both images.
    pub db: Option<PathBuf>,
    /// The OSV ecosystem (`Debian:12`) when the images do not say (no os-release).
    pub ecosystem: Option<String>,
    /// Unix time, for the expiry of repository keys and signatures.
    pub now: i64,
}

/// What an update reports as it goes.
pub enum UpdateEvent<'a> {
    Checking {
        recipe: &'a Path,
    },
    Lock(LockEvent<'a>),
    BaseMoved {
        old: &'a ImageRef,
        new: &'a ImageRef,
    },
    InputMoved(&'a InputChange),
    PackageMoved(&'a PackageChange),
    Unchanged {
        recipe: &'a Path,
    },
    BuildingBefore,
    Wrote {
        path: &'a Path,
    },
    BuildingAfter,
    Comparing,
    Scanning {
        database: &'a Path,
    },
}

impl std::fmt::Display for UpdateEvent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpdateEvent::Checking { recipe } => write!(f, "checking {}", recipe.display()),
            UpdateEvent::Lock(e) => write!(f, "{e}"),
            UpdateEvent::BaseMoved { old, new } => write!(f, "base: {old} → {new}"),
            UpdateEvent::InputMoved(c) => write!(
                f,
                "input {}: {} → {} ({})",
                c.name, c.old_version, c.new_version, c.new_sha256
            ),
            UpdateEvent::PackageMoved(c) => {
                let (old, new) = c.versions();
                let (name, arch, source) = (&c.name, &c.architecture, &c.source);
                write!(f, "package {name}:{arch}: {old} → {new} ({source})")
            }
            UpdateEvent::Unchanged { recipe } => {
                write!(f, "{}: nothing to update", recipe.display())
            }
            UpdateEvent::BuildingBefore => write!(f, "building the image of the previous pins"),
            UpdateEvent::Wrote { path } => write!(f, "wrote {}", path.display()),
            UpdateEvent::BuildingAfter => write!(f, "building the updated image"),
            UpdateEvent::Comparing => write!(f, "comparing the two images"),
            UpdateEvent::Scanning { database } => {
                write!(f, "scanning both images with {}", database.display())
            }
        }
    }
}

/// Receives an update's progress; the builds report through [`UpdateObserver::build`].
pub trait UpdateObserver {
    fn event(&self, event: UpdateEvent<'_>);
    fn build(&self) -> &dyn BuildObserver;
}

/// A base image whose tag moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaseChange {
    /// The reference without its digest, e.g. `docker://HOST/REPO:TAG`.
    pub reference: ImageRef,
    pub old: Option<Sha256Digest>,
    pub new: Sha256Digest,
}

/// The outcome for one recipe.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RecipeUpdate {
    pub recipe: PathBuf,
    /// `[image] name`.
    pub image: String,
    pub changed: bool,
    pub base: Option<BaseChange>,
    pub inputs: Vec<InputChange>,
    /// `url` inputs without an `update` rule: they stay as pinned.
    pub pinned_inputs: Vec<String>,
    pub packages: Vec<PackageChange>,
    /// Set when something changed.
    pub digests: Option<ImageDigests>,
    /// Where the updated image was written.
    pub output: Option<PathBuf>,
    pub diff: Option<DiffSummary>,
    /// Set when a database was given and something changed.
    pub vulnerabilities: Option<VulnerabilityDelta>,
    /// With several platforms: each platform's images, compared and scanned (`digests` are
    /// then those of the two indexes, and `diff` and `vulnerabilities` are not set).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<PlatformUpdate>,
    pub conclusion: String,
    /// The updated images (one per platform), for the caller to push or sign.
    #[serde(skip)]
    pub built: Vec<BuiltImage>,
}

/// One platform's image of a recipe with several platforms: before and after, compared and
/// scanned.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PlatformUpdate {
    pub platform: String,
    pub digests: ImageDigests,
    pub diff: DiffSummary,
    /// Set when a database was given.
    pub vulnerabilities: Option<VulnerabilityDelta>,
}

/// Updates the recipe at `path`: see the module documentation.
pub fn update_recipe(
    path: &Path,
    opts: &UpdateOptions,
    observer: &dyn UpdateObserver,
) -> Result<RecipeUpdate> {
    observer.event(UpdateEvent::Checking { recipe: path });
    let old_text = fs_err::read_to_string(path).map_err(|source| UpdateError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let old = Recipe::load(path)?;
    let store = Store::open(&opts.build.store_root)?;
    let mut fetcher = Fetcher::new(store.clone());
    fetcher.mirrors = opts.build.mirrors.clone();
    fetcher.offline = opts.build.offline;
    fetcher.max_download_size = opts.build.max_download_size;
    fetcher.progress = observer.build().transfer_progress();
    let rewrite = |source| UpdateError::Rewrite {
        path: path.to_path_buf(),
        source,
    };

    // 1. What the sources offer now.
    let mut new_text = old_text.clone();
    let mut changes = Vec::new();
    let mut pinned_inputs = Vec::new();
    for (name, input) in &old.inputs {
        if !matches!(input.source, InputSource::Url { .. }) {
            continue;
        }
        let Some(rule) = &input.update else {
            pinned_inputs.push(name.clone());
            continue;
        };
        if let Some(change) = newer_release(input, rule, &fetcher)? {
            observer.event(UpdateEvent::InputMoved(&change));
            new_text = recipe::pin_input_url(&new_text, name, &change.new_url).map_err(rewrite)?;
            new_text =
                recipe::pin_input_sha256(&new_text, name, &change.new_sha256).map_err(rewrite)?;
            new_text = recipe::pin_input_size(&new_text, name, change.new_size).map_err(rewrite)?;
            changes.push(change);
        }
    }
    let base = match &old.base {
        None => None,
        Some(b) => {
            let transports = || transports(store.clone(), opts, observer);
            let lock_options = LockOptions {
                update: true,
                now: opts.now,
                fetcher: &fetcher,
                transports: &transports,
            };
            let pinned = resolve_base(&b.reference, &old.dir, &old.image.platform, &lock_options)
                .map_err(|source| UpdateError::Base {
                recipe: path.to_path_buf(),
                source: Box::new(source),
            })?;
            match pinned {
                Some(reference) if reference != b.reference => {
                    observer.event(UpdateEvent::BaseMoved {
                        old: &b.reference,
                        new: &reference,
                    });
                    new_text = recipe::pin_base_ref(&new_text, &reference).map_err(rewrite)?;
                    let new = *reference
                        .digest()
                        .expect("resolve_base returns a pinned reference");
                    Some(BaseChange {
                        reference: reference.unpinned(),
                        old: b.digest,
                        new,
                    })
                }
                _ => None,
            }
        }
    };
    let lock_file = lock_path(path);
    let old_lock_bytes = match fs_err::read(&lock_file) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(UpdateError::Io {
                path: lock_file,
                source,
            })
        }
    };
    let old_lock = Lock::read(&lock_file)?.unwrap_or_default();
    let new_lock = deb_lock::resolve(&old, &old_lock, &fetcher, true, opts.now, &mut |e| {
        observer.event(UpdateEvent::Lock(e))
    })
    .map_err(|source| UpdateError::Packages {
        recipe: path.to_path_buf(),
        source: Box::new(source),
    })?;
    let packages = new_lock
        .as_ref()
        .map(|l| deb_lock::changes(&old_lock, l))
        .unwrap_or_default();
    for p in &packages {
        observer.event(UpdateEvent::PackageMoved(p));
    }
    let mut result = RecipeUpdate {
        recipe: path.to_path_buf(),
        image: old.image.name.as_str().to_string(),
        changed: base.is_some() || !changes.is_empty() || !packages.is_empty(),
        base,
        inputs: changes,
        pinned_inputs,
        packages,
        digests: None,
        output: None,
        diff: None,
        vulnerabilities: None,
        platforms: Vec::new(),
        conclusion: String::new(),
        built: Vec::new(),
    };
    if !result.changed {
        // A re-signed repository with the same packages is no reason to touch the lock.
        observer.event(UpdateEvent::Unchanged { recipe: path });
        result.conclusion = report::conclusion(&result);
        return Ok(result);
    }

    // 2. The images of the previous pins, one per platform (the lock on disk is still the
    // old one).
    observer.event(UpdateEvent::BuildingBefore);
    let before =
        build_platforms(&old, opts, observer).map_err(|source| UpdateError::BuildBefore {
            recipe: path.to_path_buf(),
            source: Box::new(source),
        })?;

    // 3. The new pins, then the images they give; on failure the old files come back.
    let write = |p: &Path, bytes: &[u8]| {
        crate::image::layout::write_atomic(p, bytes).map_err(|source| UpdateError::Image {
            path: p.to_path_buf(),
            source: Box::new(source),
        })
    };
    if new_text != old_text {
        write(path, new_text.as_bytes())?;
        observer.event(UpdateEvent::Wrote { path });
    }
    if let Some(lock) = &new_lock {
        write(&lock_file, lock.to_text().as_bytes())?;
        observer.event(UpdateEvent::Wrote { path: &lock_file });
    }
    let restore = || -> Result<()> {
        write(path, old_text.as_bytes())?;
        match &old_lock_bytes {
            Some(b) => write(&lock_file, b),
            None => match fs_err::remove_file(&lock_file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(UpdateError::Io {
                    path: lock_file.clone(),
                    source: e,
                }),
                _ => Ok(()),
            },
        }
    };
    observer.event(UpdateEvent::BuildingAfter);
    let after = Recipe::load(path)
        .map_err(UpdateError::from)
        .and_then(|new| {
            build_platforms(&new, opts, observer).map_err(|source| UpdateError::BuildAfter {
                recipe: path.to_path_buf(),
                source: Box::new(source),
            })
        });
    let after = match after {
        Ok(images) => images,
        Err(e) => {
            restore()?;
            return Err(e);
        }
    };
    let dest = opts.output_dir.join(&result.image);
    let scratch = store.scratch("kiln-build-")?;
    let before_dir = scratch.path().join("before");
    let digests = write_images(&before, &after, &result.image, &before_dir, &dest, &store)?;
    observer.event(UpdateEvent::Wrote { path: &dest });

    // 4. Compare, and scan both, platform by platform.
    let db = match &opts.db {
        Some(db_path) => {
            observer.event(UpdateEvent::Scanning { database: db_path });
            let mut warnings = Vec::new();
            Some(Database::open(db_path, &mut warnings)?)
        }
        None => None,
    };
    let mut compared = Vec::new();
    for ((b, a), platform) in before.iter().zip(&after).zip(&old.image.platforms) {
        observer.event(UpdateEvent::Comparing);
        let images = ((b, before_dir.as_path()), (a, dest.as_path()));
        let (diff, vulnerabilities) = compare(path, platform, images, db.as_ref(), opts)?;
        compared.push(PlatformUpdate {
            platform: platform.to_string(),
            digests: ImageDigests {
                before: b.manifest_digest,
                after: a.manifest_digest,
            },
            diff,
            vulnerabilities,
        });
    }
    result.digests = Some(digests);
    if let [one] = compared.as_mut_slice() {
        result.diff = Some(one.diff.clone());
        result.vulnerabilities = one.vulnerabilities.take();
    } else {
        result.platforms = compared;
    }
    result.output = Some(dest);
    result.built = after;
    result.conclusion = report::conclusion(&result);
    Ok(result)
}

/// The recipe's image for each of its platforms, in its order.
fn build_platforms(
    recipe: &Recipe,
    opts: &UpdateOptions,
    observer: &dyn UpdateObserver,
) -> Result<Vec<BuiltImage>, build::BuildError> {
    let recipes = build::plan::per_platform(recipe);
    for one in &recipes {
        build::check_emulator(one)?;
    }
    recipes
        .iter()
        .map(|one| build::build(one, &opts.build, observer.build()))
        .collect()
}

/// Writes the images of the previous pins into `before_dir` and the updated ones into `dest`
/// (an OCI layout: the image, or an index over one image per platform); returns the digests
/// of what each holds.
fn write_images(
    before: &[BuiltImage],
    after: &[BuiltImage],
    name: &str,
    before_dir: &Path,
    dest: &Path,
    store: &Store,
) -> Result<ImageDigests> {
    let output = |path: &Path| {
        let path = path.to_path_buf();
        move |source| UpdateError::Output {
            path,
            source: Box::new(source),
        }
    };
    if let ([before], [after]) = (before, after) {
        write_layout(before, before_dir).map_err(output(before_dir))?;
        write_output(after, dest, OutputFormat::Oci, store).map_err(output(dest))?;
        return Ok(ImageDigests {
            before: before.manifest_digest,
            after: after.manifest_digest,
        });
    }
    let before_index = write_index_layout(before, name, before_dir).map_err(output(before_dir))?;
    let image_err = |source| UpdateError::Image {
        path: dest.to_path_buf(),
        source: Box::new(source),
    };
    let (_staging, staged) = crate::image::write::stage_beside(dest).map_err(image_err)?;
    let after_index = write_index_layout(after, name, &staged).map_err(output(dest))?;
    crate::image::write::replace(&staged, dest).map_err(image_err)?;
    Ok(ImageDigests {
        before: before_index,
        after: after_index,
    })
}

/// The diff of one platform's image of the previous pins (`before`, in the layout at its
/// path) against the updated one, and with `db` what that does to its vulnerabilities.
fn compare(
    recipe: &Path,
    platform: &Platform,
    (before, after): ((&BuiltImage, &Path), (&BuiltImage, &Path)),
    db: Option<&Database>,
    opts: &UpdateOptions,
) -> Result<(DiffSummary, Option<VulnerabilityDelta>)> {
    let open = |(image, dir): (&BuiltImage, &Path)| {
        let reference = ImageRef::Oci {
            path: dir.to_path_buf(),
            tag: None,
            digest: Some(image.manifest_digest),
        };
        image::open_image(&reference, Some(platform)).map_err(|source| UpdateError::Image {
            path: dir.to_path_buf(),
            source: Box::new(source),
        })
    };
    let (a, b) = (open(before)?, open(after)?);
    let diff_opts = DiffOptions {
        threads: opts.build.threads.clamp(1, 4),
        ..DiffOptions::default()
    };
    let diff = diff::diff_images(&a, &b, &diff_opts).map_err(|source| UpdateError::Diff {
        recipe: recipe.to_path_buf(),
        source: Box::new(source),
    })?;
    let vulnerabilities = match db {
        Some(db) => {
            let findings_before = findings(db, &a, "the image of the previous pins", opts)?;
            let findings_after = findings(db, &b, &after.1.display().to_string(), opts)?;
            Some(VulnerabilityDelta::new(findings_before, findings_after))
        }
        None => None,
    };
    Ok((DiffSummary::new(&diff), vulnerabilities))
}

/// The registry client and store the base lookup uses.
fn transports(
    store: Store,
    opts: &UpdateOptions,
    observer: &dyn UpdateObserver,
) -> Result<Transports, ImageError> {
    let mut ctx = Transports::new(
        store,
        opts.build.offline,
        &opts.build.registry,
        observer.build().registry_progress(),
    )?;
    ctx.with_attached = false;
    Ok(ctx)
}

/// The findings of `db` for the packages installed in `img`.
fn findings(
    db: &Database,
    img: &image::OpenedImage,
    what: &str,
    opts: &UpdateOptions,
) -> Result<Vec<Finding>> {
    let found = scan::read_image_packages(img)?;
    let ecosystem = opts
        .ecosystem
        .clone()
        .or_else(|| found.ecosystem())
        .ok_or_else(|| ScanError::NoEcosystem {
            what: what.to_string(),
        })?;
    let mut warnings = Vec::new();
    Ok(scan::match_packages(db, &ecosystem, &found.packages, &mut warnings).0)
}
