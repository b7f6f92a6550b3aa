//! Turns a recipe into an image: resolve and verify every input, compute the [`BuildPlan`]
//! (which holds every layer's cache key, see `plan`), build each `[[layer]]` as a file tree,
//! stream it through the deterministic tar writer and the compressor into the store, then
//! assemble config, manifest and provenance. Output (layout, archives, registries) is
//! `output`'s job; this module only produces a [`BuiltImage`] whose blobs are all in the store
//! (base layers are imported into it, verified, first).

mod config;
mod dirstat;
mod error;
mod inputs;
mod layers;
mod lower;
mod observer;
pub mod output;
mod packages;
pub mod plan;
mod run;
mod user;
mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

pub use config::rfc3339;
pub use error::BuildError;
pub use observer::{BuildEvent, BuildObserver, BuildWarning, OutputStream, Work};
pub use plan::{BuildPlan, LayerPlan};

use crate::attest::provenance::{self, Dependency, ProvenanceFacts};
use crate::digest::Sha256Digest;
use crate::image::json::to_canonical_vec;
use crate::image::{self, media, ImageRef};
use crate::recipe::Recipe;
use crate::store::Store;

pub type Result<T, E = BuildError> = std::result::Result<T, E>;

/// How to run a build; everything here is about *where* and *how fast*, never *what*: no
/// option changes the image's bytes.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub store_root: PathBuf,
    pub mirrors: Vec<PathBuf>,
    pub offline: bool,
    /// Compression threads; the output is the same for any value.
    pub threads: usize,
    /// How the provenance names the recipe (default: its file name).
    pub recipe_uri: Option<String>,
    pub invocation_id: Option<String>,
    /// How `docker://` bases are reached (TLS, credentials).
    pub registry: image::RegistryOptions,
    /// The wall-clock limit of each `run` step.
    pub step_timeout: Duration,
    /// The most bytes downloaded for an input without a pinned `size`.
    pub max_download_size: u64,
    /// Processes, memory and written bytes of each `run` step.
    pub step_limits: kiln_sandbox::Limits,
    /// Take unchanged layers from the layer cache (and record new ones there). `build
    /// --check` turns it off, so that every step really runs.
    pub reuse_layers: bool,
}

/// The default limits of a `run` step: 4096 processes, 8 GiB of memory, 16 GiB written.
pub const DEFAULT_STEP_LIMITS: kiln_sandbox::Limits = kiln_sandbox::Limits {
    pids_max: Some(4096),
    memory_max: Some(8 << 30),
    write_max: Some(16 << 30),
};

/// The default limit of a `run` step: one hour.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(3600);

/// A blob of the built image and where its bytes are.
#[derive(Clone, Debug)]
pub struct Blob {
    pub media_type: String,
    pub digest: Sha256Digest,
    pub size: u64,
    pub path: PathBuf,
}

/// The result of a build, ready to be written out.
#[derive(Debug)]
pub struct BuiltImage {
    pub name: String,
    pub epoch: i64,
    pub manifest_digest: Sha256Digest,
    pub manifest_bytes: Vec<u8>,
    pub config_digest: Sha256Digest,
    pub config_bytes: Vec<u8>,
    /// In manifest order: base layers first.
    pub layers: Vec<Blob>,
    /// The uncompressed digests, in the same order.
    pub diff_ids: Vec<Sha256Digest>,
    /// The SLSA provenance statement (canonical JSON bytes).
    pub provenance: Vec<u8>,
    /// The store holding every layer blob (base layers included): output copies from it.
    pub(crate) store: Store,
}

/// Builds `recipe`. Refuses unpinned inputs; fetches what is missing into the store.
pub fn build(
    recipe: &Recipe,
    opts: &BuildOptions,
    observer: &dyn BuildObserver,
) -> Result<BuiltImage> {
    refuse_unpinned(recipe)?;
    check_emulator(recipe)?;
    let store = Store::open(&opts.store_root)?;
    let resolved = inputs::resolve(recipe, &store, opts, observer)?;
    let debs = packages::fetch(recipe, &store, opts, observer)?;
    let facts = plan::PlanFacts {
        inputs: resolved
            .iter()
            .map(|(name, r)| {
                let input = plan::PlannedInput {
                    uri: r.uri.clone(),
                    digest: r.digest,
                };
                (name.clone(), input)
            })
            .collect(),
        debs: debs.digests_by_line(),
    };
    let plan = plan::compute(recipe, &facts)?;

    let base = match (&recipe.base, &plan.base) {
        (Some(base), Some(planned)) => {
            let opened = open_base(recipe, &base.reference, &store, opts, observer)?;
            // The plan's keys name the base by its pin: the build must read that image.
            if opened.resolved_digest != planned.digest {
                return Err(BuildError::BadBase {
                    reference: base.reference.to_string(),
                    reason: format!(
                        "it resolved to {}, not to its pin {}",
                        opened.resolved_digest, planned.digest
                    ),
                });
            }
            Some(opened)
        }
        _ => None,
    };
    let platform = recipe.image.platform.to_string();
    if let Some(b) = &base {
        if b.platform() != platform && !b.platform().starts_with(&format!("{platform}/")) {
            return Err(BuildError::PlatformMismatch {
                reference: b.reference.clone(),
                base: b.platform(),
                recipe: platform,
            });
        }
    }

    let scratch = store.scratch("kiln-build-")?;
    let encoder = layers::Encoder::for_recipe(recipe, opts.threads);
    let mut blobs = Vec::new();
    let mut diff_ids = Vec::new();
    if let Some(b) = &base {
        // Every base layer comes from the store, verified against its digest and diff_id on
        // the way in: never from the base's own files.
        let paths = b.import_layers(&store, crate::registry::DEFAULT_PARALLELISM)?;
        for ((desc, diff_id), path) in b.manifest.layers().iter().zip(b.diff_ids()).zip(paths) {
            blobs.push(Blob {
                media_type: oci_layer_type(desc.media_type().as_ref()),
                digest: image::layout::digest_of(desc)?,
                size: desc.size(),
                path,
            });
            diff_ids.push(diff_id.parse().map_err(|_| BuildError::BadBaseDiffId {
                reference: b.reference.clone(),
                diff_id: diff_id.clone(),
            })?);
        }
    }

    let mut new_layers = Vec::new();
    for (index, layer) in recipe.layers.iter().enumerate() {
        let ctx = layers::LayerContext {
            index,
            recipe,
            inputs: &resolved,
            debs: &debs,
            store: &store,
            encoder: &encoder,
            scratch: scratch.path(),
            below: &blobs,
            key: plan.layers[index].key,
            step_timeout: opts.step_timeout,
            step_limits: opts.step_limits,
            observer,
            reuse: opts.reuse_layers,
        };
        let built = layers::build_layer(layer, &ctx)?;
        observer.event(BuildEvent::LayerDone {
            index,
            total: recipe.layers.len(),
            key: &plan.layers[index].key,
            digest: &built.blob.digest,
            diff_id: &built.diff_id,
            size: built.blob.size,
            entries: built.entries,
            cached: built.cached,
        });
        new_layers.push(config::NewLayer {
            diff_id: built.diff_id.to_string(),
            created_by: built.created_by,
        });
        diff_ids.push(built.diff_id);
        blobs.push(built.blob);
    }

    validate::check_config(recipe, &resolved, &blobs, observer)?;

    let base_config: Option<Value> = match &base {
        Some(b) => {
            Some(
                serde_json::from_slice(&b.config_bytes).map_err(|e| BuildError::BadBase {
                    reference: b.reference.clone(),
                    reason: format!("its config is not JSON: {e}"),
                })?,
            )
        }
        None => None,
    };
    let config = config::image_config(
        base_config.as_ref(),
        &recipe.image.platform,
        recipe.image.epoch,
        &recipe.config,
        &new_layers,
        recipe.image.history.as_deref(),
    );
    let config_bytes = to_canonical_vec(&config).expect("a JSON value serializes");
    let config_digest = Sha256Digest::of(&config_bytes);

    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest.to_string(), "size": config_bytes.len()},
        "layers": blobs.iter().map(|b| json!({"mediaType": b.media_type, "digest": b.digest.to_string(), "size": b.size})).collect::<Vec<_>>(),
    });
    if let Some(b) = &base {
        manifest["annotations"] = json!({
            "org.opencontainers.image.base.digest": b.manifest_digest.to_string(),
            "org.opencontainers.image.base.name": recipe.base.as_ref().map(|x| x.reference.to_string()).unwrap_or_default(),
        });
    }
    if !recipe.image.annotations.is_empty() {
        let mut annotations = match manifest.get("annotations") {
            Some(Value::Object(m)) => m.clone(),
            _ => serde_json::Map::new(),
        };
        for (k, v) in &recipe.image.annotations {
            annotations.insert(k.clone(), json!(v));
        }
        manifest["annotations"] = Value::Object(annotations);
    }
    let manifest_bytes = to_canonical_vec(&manifest).expect("a JSON value serializes");
    let manifest_digest = Sha256Digest::of(&manifest_bytes);

    let mut dependencies: Vec<Dependency> = resolved
        .values()
        .map(|r| Dependency {
            name: r.name.clone(),
            uri: r.uri.clone(),
            digest: r.digest,
        })
        .collect();
    dependencies.extend(debs.dependencies.iter().cloned());
    if let (Some(b), Some(rb)) = (&base, &recipe.base) {
        dependencies.push(Dependency {
            name: "base".into(),
            uri: rb.reference.to_string(),
            digest: b.resolved_digest,
        });
    }
    let facts = ProvenanceFacts {
        name: recipe.image.name.to_string(),
        manifest_digest,
        recipe_uri: opts.recipe_uri.clone().unwrap_or_else(|| {
            recipe
                .file
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        }),
        recipe_digest: recipe.sha256,
        platform,
        epoch: recipe.image.epoch,
        compressor: plan.image.encoder.clone(),
        dependencies,
        plan_digest: plan.digest(),
        invocation_id: opts.invocation_id.clone(),
    };
    let provenance = to_canonical_vec(&provenance::statement(&facts)).expect("JSON serializes");

    Ok(BuiltImage {
        name: recipe.image.name.to_string(),
        epoch: recipe.image.epoch,
        manifest_digest,
        manifest_bytes,
        config_digest,
        config_bytes,
        layers: blobs,
        diff_ids,
        provenance,
        store,
    })
}

/// Refuses `url` inputs without a pinned sha256, before anything is fetched.
fn refuse_unpinned(recipe: &Recipe) -> Result<()> {
    let unpinned = recipe.unpinned_inputs();
    match unpinned.first() {
        None => Ok(()),
        Some(first) => Err(BuildError::Unpinned {
            at: recipe.location(first.span),
            recipe: recipe.file.clone(),
            inputs: unpinned.iter().map(|i| i.name.clone()).collect(),
        }),
    }
}

/// `[image] platforms`: one recipe per platform, each with that platform alone, in the
/// recipe's order (one platform: the recipe itself).
pub fn per_platform(recipe: &Recipe) -> Vec<Recipe> {
    recipe
        .image
        .platforms
        .iter()
        .map(|platform| {
            let mut one = recipe.clone();
            one.image.platform = platform.clone();
            one.image.platforms = vec![platform.clone()];
            one
        })
        .collect()
}

/// A `run` step for another architecture needs an emulator registered with binfmt_misc
/// (`/proc/sys/fs/binfmt_misc/qemu-ARCH`, enabled), or its programs cannot start.
pub fn check_emulator(recipe: &Recipe) -> Result<()> {
    let host = crate::recipe::Platform::host();
    let platform = &recipe.image.platform;
    let has_run = recipe
        .layers
        .iter()
        .flat_map(|l| &l.steps)
        .any(|s| matches!(s.kind, crate::recipe::StepKind::Run { .. }));
    if !has_run || platform.architecture() == host.architecture() {
        return Ok(());
    }
    let qemu = match platform.architecture() {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "386" => "i386",
        "loong64" => "loongarch64",
        other => other,
    };
    let entry = Path::new("/proc/sys/fs/binfmt_misc").join(format!("qemu-{qemu}"));
    let enabled = std::fs::read_to_string(entry).is_ok_and(|t| t.lines().next() == Some("enabled"));
    if enabled {
        return Ok(());
    }
    Err(BuildError::NoEmulator {
        platform: platform.to_string(),
        host: host.to_string(),
    })
}

/// Base layers keep their bytes; Docker media types are renamed to their OCI equivalents, as
/// an OCI manifest requires (the digest, and so the blob, is unchanged).
fn oci_layer_type(media_type: &str) -> String {
    match media_type {
        media::DOCKER_LAYER_GZIP => media::OCI_LAYER_GZIP.into(),
        media::DOCKER_LAYER_TAR => media::OCI_LAYER_TAR.into(),
        other => other.into(),
    }
}

fn open_base(
    recipe: &Recipe,
    reference: &ImageRef,
    store: &Store,
    opts: &BuildOptions,
    observer: &dyn BuildObserver,
) -> Result<image::OpenedImage> {
    let parsed = relative_to(reference.clone(), &recipe.dir);
    if !parsed.is_pinned() {
        return Err(BuildError::BaseNotPinned {
            reference: reference.to_string(),
        });
    }
    let mut transports = image::Transports::new(
        store.clone(),
        opts.offline,
        &opts.registry,
        observer.registry_progress(),
    )?;
    transports.with_attached = false;
    let opened = image::open_image_with(&parsed, recipe.image.platform.as_str(), &transports)?;
    // Its layers go into the store (`import_layers`, below), so the build and the next
    // `--offline` one read only the store.
    observer.event(BuildEvent::BaseReady {
        reference: &reference.to_string(),
        digest: &opened.resolved_digest,
    });
    Ok(opened)
}

/// Local paths in a recipe's base reference are relative to the recipe's directory.
fn relative_to(r: ImageRef, dir: &Path) -> ImageRef {
    let fix = |p: PathBuf| if p.is_absolute() { p } else { dir.join(p) };
    match r {
        ImageRef::Oci { path, tag, digest } => ImageRef::Oci {
            path: fix(path),
            tag,
            digest,
        },
        ImageRef::OciArchive { path, tag, digest } => ImageRef::OciArchive {
            path: fix(path),
            tag,
            digest,
        },
        ImageRef::DockerArchive { path } => ImageRef::DockerArchive { path: fix(path) },
        other => other,
    }
}
