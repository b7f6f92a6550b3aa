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
pub(crate) mod output;
mod packages;
pub(crate) mod plan;
mod remote;
mod run;
mod user;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

pub use config::rfc3339;
pub(crate) use error::BuildError;
pub(crate) use observer::{BuildEvent, BuildObserver, BuildWarning, OutputStream, Work};
pub(crate) use plan::BuildPlan;
pub(crate) use run::RunError;

use crate::attest::provenance::{self, Dependency, ProvenanceFacts};
use crate::digest::Sha256Digest;
use crate::image::json::to_canonical_vec;
use crate::image::layout::descriptor;
use crate::image::manifest::{image_manifest, manifest_bytes, with_annotations};
use crate::image::{self, ImageRef};
use crate::media;
use crate::recipe::Recipe;
use crate::store::Store;

pub(crate) type Result<T, E = BuildError> = std::result::Result<T, E>;

/// How to run a build; everything here is about *where* and *how fast*, never *what*: no
/// option changes the image's bytes.
#[derive(Clone, Debug)]
pub(crate) struct BuildOptions {
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
    /// --check` turns it off, so that every step really runs (and no remote cache is asked).
    pub reuse_layers: bool,
    /// Registry repositories to take layers from before building them, asked in order.
    pub cache_from: Vec<crate::remote_cache::CacheSource>,
}

/// A blob of the built image and where its bytes are.
#[derive(Clone, Debug)]
pub(crate) struct Blob {
    pub media_type: String,
    pub digest: Sha256Digest,
    pub size: u64,
    pub path: PathBuf,
}

/// The result of a build, ready to be written out.
#[derive(Debug)]
pub(crate) struct BuiltImage {
    pub name: String,
    pub epoch: i64,
    pub manifest_digest: Sha256Digest,
    pub manifest_bytes: Vec<u8>,
    pub config_bytes: Vec<u8>,
    /// In manifest order: base layers first.
    pub layers: Vec<Blob>,
    /// The uncompressed digests, in the same order.
    pub diff_ids: Vec<Sha256Digest>,
    /// The SLSA provenance statement (canonical JSON bytes).
    pub provenance: Vec<u8>,
    /// The build plan: every recipe layer's cache key and the encoder.
    pub plan: BuildPlan,
    /// With `--cache-from`: the caches asked and the layers taken from them.
    pub remote_cache: Option<provenance::RemoteCacheUse>,
    /// The store holding every layer blob (base layers included): output copies from it.
    pub(crate) store: Store,
}

/// Builds `recipe`. Refuses unpinned inputs; fetches what is missing into the store.
pub(crate) fn build(
    recipe: &Recipe,
    opts: &BuildOptions,
    observer: &dyn BuildObserver,
) -> Result<BuiltImage> {
    refuse_unpinned(recipe)?;
    check_emulator(recipe)?;
    let store = Store::open(&opts.store_root)?;
    let encoder = layers::Encoder::for_recipe(recipe, opts.threads);
    let mut remote = remote::find(recipe, &store, opts, encoder.media_type(), observer)?;
    let mut resolved = inputs::resolve(recipe, &store, opts, observer, &|name| {
        remote.needs(recipe, name)
    })?;
    let debs = packages::fetch(recipe, &store, opts, observer)?;
    let mut facts = plan::PlanFacts {
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
    for (name, pinned) in remote.unresolved() {
        facts
            .inputs
            .entry(name.clone())
            .or_insert_with(|| pinned.clone());
    }
    let plan = plan::compute(recipe, &facts)?;
    // Only an unpinned `path` input that changed since it was hashed for the lookup can change
    // a key: that layer is built, from inputs resolved now (pinned ones, so the plan stands).
    let found = remote.hits.len();
    remote
        .hits
        .retain(|index, hit| plan.layers[*index].key == hit.record.key);
    if remote.hits.len() != found {
        let more = inputs::resolve(recipe, &store, opts, observer, &|name| {
            !resolved.contains_key(name) && remote.needs(recipe, name)
        })?;
        resolved.extend(more);
    }

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
    if let Some(b) = &base {
        if !b.serves(&recipe.image.platform) {
            return Err(BuildError::PlatformMismatch {
                reference: b.reference.clone(),
                base: b.platform(),
                recipe: recipe.image.platform.to_string(),
            });
        }
    }

    let scratch = store.scratch("kiln-build-")?;
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
        let hit = remote.hits.get(&index);
        let built = match hit {
            Some(hit) => layers::from_remote(layer, hit),
            None => layers::build_layer(layer, &ctx)?,
        };
        observer.event(BuildEvent::LayerDone {
            index,
            total: recipe.layers.len(),
            key: &plan.layers[index].key,
            digest: &built.blob.digest,
            diff_id: &built.diff_id,
            size: built.blob.size,
            entries: built.entries,
            cached: built.cached,
            remote: hit.map(|h| h.cache.as_str()),
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

    let config_desc = descriptor(media::OCI_CONFIG, &config_digest, config_bytes.len() as u64);
    let layer_descs = blobs
        .iter()
        .map(|b| descriptor(&b.media_type, &b.digest, b.size))
        .collect();
    let mut annotations = BTreeMap::new();
    if let Some(b) = &base {
        let name = recipe.base.as_ref().map(|x| x.reference.to_string());
        annotations.insert(
            media::ANNOTATION_BASE_DIGEST.to_string(),
            b.manifest_digest.to_string(),
        );
        annotations.insert(
            media::ANNOTATION_BASE_NAME.to_string(),
            name.unwrap_or_default(),
        );
    }
    // The recipe's annotations come last: they may override the base ones.
    annotations.extend(recipe.image.annotations.clone());
    let manifest = with_annotations(image_manifest(config_desc, layer_descs), annotations);
    let manifest_bytes = manifest_bytes(manifest);
    let manifest_digest = Sha256Digest::of(&manifest_bytes);

    let mut dependencies: Vec<Dependency> = plan
        .inputs
        .iter()
        .map(|(name, p)| Dependency {
            name: name.clone(),
            uri: p.uri.clone(),
            digest: p.digest,
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
        platform: recipe.image.platform.to_string(),
        epoch: recipe.image.epoch,
        compressor: plan.image.encoder.clone(),
        dependencies,
        plan_digest: plan.digest(),
        invocation_id: opts.invocation_id.clone(),
        remote_cache: remote.provenance(opts),
    };
    let provenance = to_canonical_vec(&provenance::statement(&facts)).expect("JSON serializes");

    Ok(BuiltImage {
        name: recipe.image.name.to_string(),
        epoch: recipe.image.epoch,
        manifest_digest,
        manifest_bytes,
        config_bytes,
        layers: blobs,
        diff_ids,
        provenance,
        remote_cache: remote.provenance(opts),
        plan,
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

/// A `run` step for another architecture needs an emulator registered with binfmt_misc
/// (`/proc/sys/fs/binfmt_misc/qemu-ARCH`, enabled), or its programs cannot start.
pub(crate) fn check_emulator(recipe: &Recipe) -> Result<()> {
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
    let opened = image::open_image_with(&parsed, Some(&recipe.image.platform), &transports)?;
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
