//! One `[[layer]]`: its steps edit a file tree; the tree streams through the deterministic tar
//! writer (hashed for the diff_id) and the compressor (hashed for the blob digest) straight into
//! the store. A layer whose inputs are all unchanged is taken from the layer cache instead.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::inputs::{InputBytes, ResolvedInput};
use super::lower::LowerIndex;
use super::observer::{BuildEvent, BuildWarning, Metered, Work};
use super::run::{run_step, RunContext, RunStep};
use super::{Blob, BuildError, BuildObserver, Result};
use crate::digest::{HashingWriter, Sha256Digest};
use crate::layer::compress::{Compression as Codec, LayerEncoder};
use crate::layer::decompress;
use crate::layer::from_tar::AddTarOptions;
use crate::layer::host::HostOptions;
use crate::layer::read::{ReadLimits, TarReader};
use crate::layer::tree::{Content, Entry, EntryKind, FileTree, Metadata};
use crate::layer::write::{write_tar_styled, WriteError};
use crate::media;
use crate::recipe::{Layer, Recipe, StepKind};
use crate::store::{LayerRecord, Store};

/// The layer encoder chosen by the recipe.
pub struct Encoder {
    codec: Codec,
    threads: usize,
}

impl Encoder {
    pub fn for_recipe(recipe: &Recipe, threads: usize) -> Self {
        Self {
            codec: super::plan::codec(recipe.image.compression, recipe.image.compression_level),
            threads: threads.max(1),
        }
    }

    /// The layer media type this encoder writes.
    pub fn media_type(&self) -> &'static str {
        match self.codec {
            Codec::Gzip { .. } => media::OCI_LAYER_GZIP,
            Codec::Zstd { .. } => media::OCI_LAYER_ZSTD,
            Codec::None => media::OCI_LAYER_TAR,
        }
    }
}

pub struct BuiltLayer {
    pub blob: Blob,
    pub diff_id: Sha256Digest,
    pub created_by: String,
    pub cached: bool,
    /// Tar entries written; `None` for a layer taken from the cache.
    pub entries: Option<u64>,
}

/// Everything a layer is built from besides its own steps.
pub struct LayerContext<'a> {
    /// The layer's position among the recipe's `[[layer]]` tables, from 0.
    pub index: usize,
    pub recipe: &'a Recipe,
    pub inputs: &'a BTreeMap<String, ResolvedInput>,
    /// The verified `.deb`s of `packages` steps.
    pub debs: &'a super::packages::Debs,
    pub store: &'a Store,
    pub encoder: &'a Encoder,
    pub scratch: &'a Path,
    /// The layers below this one, bottom first (the rootfs a `run` step sees).
    pub below: &'a [Blob],
    /// The layer's cache key, from the build plan.
    pub key: Sha256Digest,
    pub step_timeout: Duration,
    pub step_limits: kiln_sandbox::Limits,
    pub observer: &'a dyn BuildObserver,
    /// Whether the layer cache may be used (read and written).
    pub reuse: bool,
}

pub fn build_layer(layer: &Layer, ctx: &LayerContext<'_>) -> Result<BuiltLayer> {
    let (recipe, store, encoder) = (ctx.recipe, ctx.store, ctx.encoder);
    let created_by = describe_layer(layer);
    let key = ctx.key;
    if let Some(hit) = ctx.reuse.then(|| store.layer_record(&key)).flatten() {
        for (i, key) in &hit.removed_nothing {
            if let Some(step) = layer.steps.get(*i) {
                warn_removed_nothing(ctx, step, key);
            }
        }
        let path = store.path_unverified(&hit.digest);
        return Ok(BuiltLayer {
            blob: Blob {
                media_type: hit.media_type,
                digest: hit.digest,
                size: hit.size,
                path,
            },
            diff_id: hit.diff_id,
            created_by,
            cached: true,
            entries: None,
        });
    }
    ctx.observer.event(BuildEvent::LayerStarted {
        index: ctx.index,
        total: recipe.layers.len(),
    });

    if layer
        .steps
        .iter()
        .any(|s| matches!(s.kind, StepKind::Run { .. }))
    {
        // A step reads the layers below, and what it writes is cached under a key made of
        // theirs: they must be the bytes their digests name, not just match a stamp.
        for blob in ctx.below {
            store.ensure_verified(&blob.digest)?;
        }
    }
    let epoch = recipe.image.epoch;
    let mut tree = FileTree::default();
    // The upper directories of `run` steps hold the contents of their entries: they live
    // until the layer is written, and go with the build's scratch directory on any error.
    let mut step_outputs = Vec::new();
    let mut lower: Option<Option<LowerIndex>> = None;
    let mut removed_nothing = Vec::new();
    for (step_index, step) in layer.steps.iter().enumerate() {
        let location = format!("{}:{}", recipe.file.display(), step.span);
        let fail = |source| BuildError::Step {
            location: location.clone(),
            step: step.kind.name(),
            source,
        };
        match &step.kind {
            StepKind::Run {
                argv,
                env,
                workdir,
                user,
            } => {
                let run_ctx = RunContext {
                    below: ctx.below,
                    epoch,
                    timeout: ctx.step_timeout,
                    limits: ctx.step_limits,
                    scratch: ctx.scratch,
                    observer: ctx.observer,
                    location: &location,
                };
                let step = RunStep {
                    argv,
                    env,
                    workdir: workdir.as_ref(),
                    user: user.as_deref(),
                };
                let outputs =
                    run_step(&mut tree, &step, &run_ctx).map_err(|e| fail(Box::new(e)))?;
                step_outputs.push(outputs);
            }
            StepKind::Packages { .. } => ctx
                .debs
                .install(&mut tree, step.span.line, epoch, ctx.scratch)
                .map_err(fail)?,
            StepKind::Remove { path } => {
                let key = tree.resolve(path.as_str()).map_err(|e| fail(Box::new(e)))?;
                let here = tree
                    .get(&key)
                    .is_some_and(|e| !matches!(e.kind, EntryKind::Whiteout(())));
                if !here && removes_nothing(&key, lower.get_or_insert_with(|| lower_index(ctx))) {
                    warn_removed_nothing(ctx, step, &key);
                    removed_nothing.push((step_index, key));
                }
                tree.remove(path.as_str()).map_err(|e| fail(Box::new(e)))?;
            }
            kind => apply_step(&mut tree, kind, ctx.inputs, epoch, ctx.scratch).map_err(fail)?,
        }
    }

    let wrap = |input: Option<String>, e: Box<dyn std::error::Error + Send + Sync>| {
        BuildError::LayerWrite {
            at: recipe.location(layer.span),
            number: ctx.index + 1,
            input,
            source: e,
        }
    };
    let mut blob_writer = store.writer()?;
    let mut tar_out = Metered::new(
        HashingWriter::new(
            LayerEncoder::new(&mut blob_writer, encoder.codec, encoder.threads)
                .map_err(|e| wrap(None, Box::new(e)))?,
        ),
        ctx.observer,
        Work::Layer(ctx.index),
    );
    let stats = write_tar_styled(&tree, epoch, layer.tar, &mut tar_out)
        .map_err(|e| wrap(input_of(&e, ctx.inputs), Box::new(e)))?;
    let (diff_id, _len, enc) = tar_out.into_inner().finish();
    enc.finish().map_err(|e| wrap(None, Box::new(e)))?;
    let (digest, size) = blob_writer.commit(None)?;
    drop(step_outputs);
    let blob = Blob {
        media_type: encoder.media_type().to_string(),
        digest,
        size,
        path: store.path_unverified(&digest),
    };
    if ctx.reuse {
        store.record_layer(
            &key,
            &LayerRecord {
                media_type: blob.media_type.clone(),
                digest,
                size,
                diff_id,
                removed_nothing,
            },
        );
    }
    store.record_diff_id(&digest, &diff_id);
    Ok(BuiltLayer {
        blob,
        diff_id,
        created_by,
        cached: false,
        entries: Some(stats.entries),
    })
}

/// Layer `layer` as a remote cache had it: `hit`'s blob, already in the store and verified.
pub fn from_remote(layer: &Layer, hit: &crate::remote_cache::RemoteHit) -> BuiltLayer {
    let r = &hit.record;
    BuiltLayer {
        blob: Blob {
            media_type: r.media_type.clone(),
            digest: r.digest,
            size: r.size,
            path: hit.path.clone(),
        },
        diff_id: r.diff_id,
        created_by: describe_layer(layer),
        cached: true,
        entries: None,
    }
}

/// The input whose bytes `error` failed to read, found by the file it names: a `copy`ed host
/// file or directory, or a stored download.
fn input_of(error: &WriteError, inputs: &BTreeMap<String, ResolvedInput>) -> Option<String> {
    let file = match error {
        WriteError::ReadContent { file, .. } | WriteError::ContentSizeChanged { file, .. } => file,
        _ => return None,
    };
    inputs.values().find_map(|input| {
        let owns = match &input.bytes {
            InputBytes::Stored(path) | InputBytes::HostFile(path) => file == path,
            InputBytes::HostDir(dir) => file.starts_with(dir),
        };
        owns.then(|| input.name.clone())
    })
}

fn warn_removed_nothing(ctx: &LayerContext<'_>, step: &crate::recipe::Step, key: &str) {
    if let StepKind::Remove { path } = &step.kind {
        let warning = BuildWarning::RemoveOfMissing {
            location: format!("{}:{}", ctx.recipe.file.display(), step.span),
            path: path.to_string(),
            key: key.to_string(),
        };
        ctx.observer.event(BuildEvent::Warning(&warning));
    }
}

/// The paths the layers below this one leave in the rootfs; `None` when a layer cannot be
/// read (the check it serves is advisory, and the build reads those layers again anyway).
fn lower_index(ctx: &LayerContext<'_>) -> Option<LowerIndex> {
    let mut index = LowerIndex::default();
    for blob in ctx.below {
        index.add_tar(super::run::open_layer(blob).ok()?).ok()?;
    }
    Some(index)
}

/// Whether a whiteout at `key` hides nothing of the layers below. Unknown (`false`) when a
/// parent below is not a directory: a symlink there (`/bin` → `usr/bin`) moves the path
/// somewhere this index does not follow.
fn removes_nothing(key: &str, lower: &Option<LowerIndex>) -> bool {
    let Some(lower) = lower else { return false };
    if lower.get(key).is_some() {
        return false;
    }
    let mut parent = key;
    while let Some((p, _)) = parent.rsplit_once('/') {
        if lower.get(p).is_some_and(|e| !e.dir) {
            return false;
        }
        parent = p;
    }
    true
}

type StepResult = std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn apply_step(
    tree: &mut FileTree,
    kind: &StepKind,
    inputs: &BTreeMap<String, ResolvedInput>,
    epoch: i64,
    scratch: &Path,
) -> StepResult {
    let input = |name: &str| {
        inputs
            .get(name)
            .expect("the recipe parser checks input names")
    };
    match kind {
        StepKind::Extract { input: name, dest } => {
            let path = match &input(name).bytes {
                InputBytes::Stored(p) | InputBytes::HostFile(p) => p.clone(),
                InputBytes::HostDir(p) => {
                    return Err(format!(
                        "input `{name}` is a directory ({}); use `copy` for directories",
                        p.display()
                    )
                    .into())
                }
            };
            let file = fs_err::File::open(&path)?;
            let stream =
                decompress::open_archive(std::io::BufReader::new(file), &path.to_string_lossy())?;
            let mut reader = TarReader::new(stream, ReadLimits::default());
            tree.add_tar(
                &mut reader,
                dest.as_str(),
                &AddTarOptions {
                    epoch,
                    spill_dir: scratch,
                    whiteouts: false,
                },
            )?;
        }
        StepKind::Copy {
            input: name,
            dest,
            mode,
            owner,
        } => {
            let opts = HostOptions {
                mode: mode.map(|m| m.bits()),
                owner: owner.map(|o| (u64::from(o.uid), u64::from(o.gid))),
                epoch,
            };
            match &input(name).bytes {
                InputBytes::HostFile(p) | InputBytes::HostDir(p) => {
                    tree.add_host_path(p, dest.as_str(), &opts)?;
                }
                InputBytes::Stored(p) => {
                    let size = fs_err::metadata(p)?.len();
                    let (uid, gid) = opts.owner.unwrap_or((0, 0));
                    tree.insert(
                        dest.as_str(),
                        Entry {
                            kind: EntryKind::File(Content::File {
                                path: p.clone(),
                                size,
                                link: None,
                            }),
                            meta: Metadata::new(opts.mode.unwrap_or(0o644), uid, gid, epoch),
                        },
                    )?;
                }
            }
        }
        StepKind::Write {
            path,
            content,
            mode,
            owner,
        } => {
            let bytes: Arc<[u8]> = Arc::from(content.as_bytes());
            tree.insert(
                path.as_str(),
                Entry {
                    kind: EntryKind::File(Content::Inline(bytes)),
                    meta: Metadata::new(mode.bits(), owner.uid.into(), owner.gid.into(), epoch),
                },
            )?;
        }
        StepKind::Mkdir { path, mode, owner } => {
            tree.insert(
                path.as_str(),
                Entry {
                    kind: EntryKind::Dir,
                    meta: Metadata::new(mode.bits(), owner.uid.into(), owner.gid.into(), epoch),
                },
            )?;
        }
        StepKind::Symlink {
            path,
            target,
            owner,
        } => {
            tree.insert(
                path.as_str(),
                Entry {
                    kind: EntryKind::Symlink(target.clone()),
                    meta: Metadata::new(0o777, owner.uid.into(), owner.gid.into(), epoch),
                },
            )?;
        }
        StepKind::Run { .. } | StepKind::Remove { .. } | StepKind::Packages { .. } => {
            unreachable!("build_layer runs `run`, `remove` and `packages` steps itself")
        }
    }
    Ok(())
}

/// The history line of a layer: its steps, briefly.
fn describe_layer(layer: &Layer) -> String {
    let steps: Vec<String> = layer
        .steps
        .iter()
        .map(|s| match &s.kind {
            StepKind::Extract { input, dest } => format!("extract {input} {dest}"),
            StepKind::Copy { input, dest, .. } => format!("copy {input} {dest}"),
            StepKind::Write { path, .. } => format!("write {path}"),
            StepKind::Mkdir { path, .. } => format!("mkdir {path}"),
            StepKind::Symlink { path, target, .. } => format!("symlink {path} -> {target}"),
            StepKind::Remove { path } => format!("remove {path}"),
            StepKind::Run { argv, .. } => format!("run {}", argv.join(" ")),
            StepKind::Packages { names, from, .. } => {
                format!("packages {from}: {}", names.join(" "))
            }
        })
        .collect();
    format!("kiln: {}", steps.join("; "))
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;
    use crate::build::{build, BuildEvent, BuildObserver, BuildOptions};

    struct Quiet;
    impl BuildObserver for Quiet {
        fn event(&self, _: BuildEvent<'_>) {}
    }

    /// Text-like bytes with runs of pseudo-random ones, as in a real layer.
    fn mixed(len: usize, mut state: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 220_000);
        while out.len() < len {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if state >> 62 == 0 {
                for _ in 0..(70_000 + (state >> 40) as usize % 150_000) / 8 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    out.extend_from_slice(&state.to_le_bytes());
                }
            } else {
                out.extend_from_slice(format!("line {} of layer text\n", state >> 50).as_bytes());
            }
        }
        out.truncate(len);
        out
    }

    #[test]
    fn a_layer_built_with_1_2_and_8_threads_has_the_same_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        fs_err::create_dir_all(tree.join("sub")).unwrap();
        // ~3.6 MiB of tar: several 1 MiB gzip blocks with stored and deflated runs in them.
        for (i, len) in [2_500_000, 700_000, 1, 0, 400_000].into_iter().enumerate() {
            fs_err::write(tree.join(format!("sub/f{i}")), mixed(len, i as u64 + 1)).unwrap();
        }
        for codec in ["gzip", "zstd"] {
            let text = format!(
                "[image]\nname = \"t\"\nepoch = 0\ncompression = \"{codec}\"\n\n\
                 [inputs.tree]\npath = \"tree\"\n\n\
                 [[layer]]\n[[layer.step]]\ncopy = \"tree\"\ndest = \"/data\"\n"
            );
            let recipe = Recipe::parse(&text, tmp.path().join("r.toml"), tmp.path()).unwrap();
            let mut built = Vec::new();
            for threads in [1, 2, 8] {
                let opts = BuildOptions {
                    store_root: tmp.path().join(format!("store-{codec}-{threads}")),
                    mirrors: Vec::new(),
                    offline: true,
                    threads,
                    recipe_uri: None,
                    invocation_id: None,
                    registry: Default::default(),
                    step_timeout: std::time::Duration::from_secs(3600),
                    max_download_size: crate::fetch::DEFAULT_MAX_DOWNLOAD_SIZE,
                    // No `run` step: limits do not apply.
                    step_limits: Default::default(),
                    reuse_layers: true,
                    cache_from: Vec::new(),
                };
                let image = build(&recipe, &opts, &Quiet).unwrap();
                let layer = fs_err::read(&image.layers[0].path).unwrap();
                assert_eq!(Sha256Digest::of(&layer), image.layers[0].digest);
                built.push((image.manifest_digest, image.diff_ids[0], layer));
            }
            assert_eq!(built[0], built[1], "{codec}: 1 and 2 threads");
            assert_eq!(built[0], built[2], "{codec}: 1 and 8 threads");
            assert!(
                built[0].2.len() > 1_000_000,
                "{codec}: the layer spans several blocks"
            );
            if codec == "gzip" {
                let mut tar = Vec::new();
                flate2::read::MultiGzDecoder::new(&built[0].2[..])
                    .read_to_end(&mut tar)
                    .unwrap();
                assert_eq!(
                    Sha256Digest::of(&tar),
                    built[0].1,
                    "gunzip gives the diff_id"
                );
            }
        }
    }
}
