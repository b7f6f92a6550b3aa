//! One `[[layer]]`: its steps edit a file tree; the tree streams through the deterministic tar
//! writer (hashed for the diff_id) and the compressor (hashed for the blob digest) straight into
//! the store. A layer whose inputs are all unchanged is taken from the layer cache instead.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::inputs::{InputBytes, ResolvedInput};
use super::run::{run_step, RunContext, RunStep};
use super::{Blob, BuildError, BuildObserver, Result};
use crate::digest::{HashingWriter, Sha256Digest};
use crate::image::media;
use crate::layer::compress::{Compression as Codec, LayerEncoder};
use crate::layer::decompress;
use crate::layer::from_tar::AddTarOptions;
use crate::layer::host::HostOptions;
use crate::layer::read::{ReadLimits, TarReader};
use crate::layer::tree::{Content, Entry, EntryKind, FileTree, Metadata};
use crate::layer::write::write_tar;
use crate::recipe::{Compression, Layer, Recipe, StepKind};
use crate::store::Store;

/// The layer encoder chosen by the recipe.
pub struct Encoder {
    codec: Codec,
    threads: usize,
}

impl Encoder {
    pub fn for_recipe(recipe: &Recipe, threads: usize) -> Self {
        let codec = match (recipe.image.compression, recipe.image.compression_level) {
            (Compression::Gzip, level) => Codec::Gzip {
                level: level.map_or(Codec::DEFAULT_GZIP_LEVEL, |l| l as u32),
            },
            (Compression::Zstd, level) => Codec::Zstd {
                level: level.unwrap_or(3),
            },
        };
        Self {
            codec,
            threads: threads.max(1),
        }
    }

    pub fn describe(&self) -> String {
        self.codec.describe()
    }

    fn media_type(&self) -> &'static str {
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
}

/// What the layer cache remembers for one key.
#[derive(Serialize, Deserialize)]
struct CachedLayer {
    media_type: String,
    digest: Sha256Digest,
    size: u64,
    diff_id: Sha256Digest,
}

/// Everything a layer is built from besides its own steps.
pub struct LayerContext<'a> {
    pub recipe: &'a Recipe,
    pub inputs: &'a BTreeMap<String, ResolvedInput>,
    /// The verified `.deb`s of `packages` steps.
    pub debs: &'a super::packages::Debs,
    pub store: &'a Store,
    pub encoder: &'a Encoder,
    pub scratch: &'a Path,
    /// The layers below this one, bottom first (the rootfs a `run` step sees).
    pub below: &'a [Blob],
    /// Their diff_ids, in the same order.
    pub below_diff_ids: &'a [Sha256Digest],
    pub base_digest: Option<Sha256Digest>,
    pub step_timeout: Duration,
    pub observer: &'a dyn BuildObserver,
}

pub fn build_layer(layer: &Layer, ctx: &LayerContext<'_>) -> Result<BuiltLayer> {
    let (recipe, store, encoder) = (ctx.recipe, ctx.store, ctx.encoder);
    let created_by = describe_layer(layer);
    let key = cache_key(layer, ctx);
    let record_path = store.root().join("refs/layers").join(key.hex());
    if let Some(hit) = read_cache(store, &record_path) {
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
        });
    }

    let epoch = recipe.image.epoch;
    let mut tree = FileTree::default();
    // The upper directories of `run` steps hold the contents of their entries: they live
    // until the layer is written, and go with the build's scratch directory on any error.
    let mut step_outputs = Vec::new();
    for step in &layer.steps {
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
            kind => apply_step(&mut tree, kind, ctx.inputs, epoch, ctx.scratch).map_err(fail)?,
        }
    }

    let index = layer.span.line;
    let wrap =
        |e: Box<dyn std::error::Error + Send + Sync>| BuildError::LayerWrite { index, source: e };
    let mut blob_writer = store.writer()?;
    let mut tar_out = HashingWriter::new(
        LayerEncoder::new(&mut blob_writer, encoder.codec, encoder.threads)
            .map_err(|e| wrap(Box::new(e)))?,
    );
    write_tar(&tree, epoch, &mut tar_out).map_err(|e| wrap(Box::new(e)))?;
    let (diff_id, _len, enc) = tar_out.finish();
    enc.finish().map_err(|e| wrap(Box::new(e)))?;
    let (digest, size) = blob_writer.commit(None)?;
    drop(step_outputs);
    let blob = Blob {
        media_type: encoder.media_type().to_string(),
        digest,
        size,
        path: store.path_unverified(&digest),
    };
    write_cache(
        &record_path,
        &CachedLayer {
            media_type: blob.media_type.clone(),
            digest,
            size,
            diff_id,
        },
    );
    Ok(BuiltLayer {
        blob,
        diff_id,
        created_by,
        cached: false,
    })
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
        StepKind::Remove { path } => {
            tree.remove(path.as_str())?;
        }
        StepKind::Run { .. } | StepKind::Packages { .. } => {
            unreachable!("build_layer runs `run` and `packages` steps itself")
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
            StepKind::Packages { names, from } => format!("packages {from}: {}", names.join(" ")),
        })
        .collect();
    format!("kiln: {}", steps.join("; "))
}

/// Everything that determines a layer's bytes: kiln's version, the epoch, the encoder, the
/// steps (without their recipe positions) and the digests of the inputs they read. A layer with
/// `run` steps also depends on the rootfs below it (programs read it): the base manifest digest
/// and the diff_ids of every layer below are part of its key.
fn cache_key(layer: &Layer, ctx: &LayerContext<'_>) -> Sha256Digest {
    let (recipe, inputs, encoder) = (ctx.recipe, ctx.inputs, ctx.encoder);
    let steps: Vec<&StepKind> = layer.steps.iter().map(|s| &s.kind).collect();
    let used: BTreeMap<&str, String> = layer
        .steps
        .iter()
        .filter_map(|s| s.kind.input())
        .filter_map(|n| inputs.get(n).map(|i| (n, i.digest.to_string())))
        .collect();
    let mut key = serde_json::json!({
        "kiln": env!("CARGO_PKG_VERSION"),
        "epoch": recipe.image.epoch,
        "encoder": encoder.describe(),
        "steps": steps,
        "inputs": used,
    });
    let debs: Vec<String> = layer
        .steps
        .iter()
        .flat_map(|s| ctx.debs.digests(s.span.line))
        .collect();
    if !debs.is_empty() {
        key["debs"] = serde_json::json!(debs);
    }
    if layer
        .steps
        .iter()
        .any(|s| matches!(s.kind, StepKind::Run { .. }))
    {
        key["base"] = serde_json::json!(ctx.base_digest.map(|d| d.to_string()));
        key["below"] = serde_json::json!(ctx
            .below_diff_ids
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>());
    }
    Sha256Digest::of(&crate::image::json::to_canonical_vec(&key).expect("JSON serializes"))
}

fn read_cache(store: &Store, record: &Path) -> Option<CachedLayer> {
    let bytes = std::fs::read(record).ok()?;
    let hit: CachedLayer = serde_json::from_slice(&bytes).ok()?;
    // The record is only a pointer: the blob itself must still be there and intact.
    store.open_verified_cached(&hit.digest).ok()??;
    Some(hit)
}

fn write_cache(record: &Path, entry: &CachedLayer) {
    // The layer cache is an optimisation: failing to record an entry must not fail the build.
    let Some(dir) = record.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = record.with_extension(format!("tmp{}", std::process::id()));
    let ok = serde_json::to_vec(entry)
        .ok()
        .and_then(|b| {
            std::fs::File::create(&tmp)
                .and_then(|mut f| f.write_all(&b))
                .ok()
        })
        .is_some();
    if ok {
        let _ = std::fs::rename(&tmp, record);
    } else {
        let _ = std::fs::remove_file(&tmp);
    }
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
                    step_timeout: crate::build::DEFAULT_STEP_TIMEOUT,
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
