//! The build plan: everything that decides an image's bytes, computed from the recipe, its lock
//! and the digests of its inputs and base, before anything is fetched or built.
//!
//! A build is `Recipe` → [`BuildPlan`] → execution. The plan is pure data (`BTreeMap`s and
//! `Vec`s, serialized canonically), so it can be printed (`kiln build --plan`), hashed (the
//! provenance records [`BuildPlan::digest`]) and tested without running anything.
//!
//! Each [`LayerPlan`] carries the layer cache key: the sha256 of the canonical JSON of that
//! layer's part of the plan (the entry without its `key`). Execution takes every key from here;
//! nothing else computes one, so a key printed by `--plan`, one used by the local layer cache
//! and one shared through a registry are the same value.
//!
//! A layer with `run` steps depends on the rootfs below it (its programs read it). Its
//! [`Rootfs`] names that rootfs by the base's pinned digest, the platform (a pinned index names
//! one image per platform) and the keys of the layers below, rather than by their diff_ids:
//! the diff_ids are known only once those layers are built (or the base fetched), while keys
//! are known from the recipe alone, so the whole plan is computed without building. A key
//! names its layer's bytes exactly as well: equal keys mean equal steps over equal inputs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{inputs, packages, BuildError, Result};
use crate::digest::Sha256Digest;
use crate::image::json::to_canonical_vec;
use crate::layer::compress::Compression as Codec;
use crate::platform::Platform;
use crate::recipe::{
    Compression, ConfigSection, HistoryEntry, InputSource, Recipe, StepKind, TarStyle,
};
use crate::reference::ImageRef;

/// Changes whenever the plan's shape or the meaning of a key changes.
pub const PLAN_VERSION: u32 = 1;

/// What a build will do, and the cache key of every layer it makes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildPlan {
    pub version: u32,
    /// kiln's version: a newer kiln may write other bytes for the same recipe.
    pub kiln: String,
    pub image: ImagePlan,
    /// The base image, by the digest it is pinned to; `None` for `FROM scratch`.
    pub base: Option<BasePlan>,
    /// Every input the recipe declares, by name.
    pub inputs: BTreeMap<String, PlannedInput>,
    /// The recipe's `[[layer]]`s, in order (the base's layers are not listed).
    pub layers: Vec<LayerPlan>,
}

/// What the image config and manifest are made from, besides the layers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagePlan {
    pub name: String,
    pub platform: Platform,
    pub epoch: i64,
    /// The layer encoder and its settings ([`Codec::describe`]).
    pub encoder: String,
    pub annotations: BTreeMap<String, String>,
    pub history: Option<Vec<HistoryEntry>>,
    pub config: ConfigSection,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasePlan {
    /// In its canonical form.
    pub reference: ImageRef,
    /// The pinned digest (an index digest names the image for [`ImagePlan::platform`]).
    pub digest: Sha256Digest,
}

/// An input's identity: how the provenance names it and the digest of its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedInput {
    pub uri: String,
    pub digest: Sha256Digest,
}

/// One `[[layer]]`: its cache key and what the key is the digest of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerPlan {
    /// The sha256 of the canonical JSON of [`LayerPlan::spec`].
    pub key: Sha256Digest,
    #[serde(flatten)]
    pub spec: LayerSpec,
}

/// Everything that decides one layer's bytes; its canonical JSON is hashed for the key. Recipe
/// positions (lines) are left out: moving a layer in the file does not change it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSpec {
    pub kiln: String,
    pub epoch: i64,
    pub encoder: String,
    pub tar: TarStyle,
    pub steps: Vec<StepKind>,
    /// The digests of the inputs the steps read, by name.
    pub inputs: BTreeMap<String, Sha256Digest>,
    /// The locked `.deb`s the `packages` steps install, as `name=sha256:…`, in install order.
    pub debs: Vec<String>,
    /// Set when a step runs programs over the rootfs below.
    pub rootfs: Option<Rootfs>,
}

/// The rootfs a layer's `run` steps see.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rootfs {
    pub platform: Platform,
    /// The base's pinned digest.
    pub base: Option<Sha256Digest>,
    /// The keys of the recipe's layers below, bottom first.
    pub below: Vec<Sha256Digest>,
}

/// What a plan is made of besides the recipe.
#[derive(Clone, Debug, Default)]
pub struct PlanFacts {
    /// Every input's URI and digest, by name.
    pub inputs: BTreeMap<String, PlannedInput>,
    /// The locked `.deb`s of each `packages` step, by the step's recipe line, as
    /// `name=sha256:…` (from the lock).
    pub debs: BTreeMap<usize, Vec<String>>,
}

impl BuildPlan {
    /// The plan as `kiln build --plan` prints it: canonical JSON (sorted keys, compact), then
    /// a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = to_canonical_vec(self).expect("a plan serializes");
        bytes.push(b'\n');
        bytes
    }

    /// The sha256 of [`BuildPlan::to_bytes`]: what the provenance records.
    pub fn digest(&self) -> Sha256Digest {
        Sha256Digest::of(&self.to_bytes())
    }
}

impl LayerSpec {
    /// The layer cache key: the sha256 of this spec's canonical JSON.
    pub fn key(&self) -> Sha256Digest {
        Sha256Digest::of(&to_canonical_vec(self).expect("a layer spec serializes"))
    }
}

/// The plan of `recipe` with `facts`. Pure: reads nothing, fetches nothing.
pub fn compute(recipe: &Recipe, facts: &PlanFacts) -> Result<BuildPlan> {
    let base = match &recipe.base {
        Some(b) => Some(BasePlan {
            reference: b.reference.clone(),
            digest: b.digest.ok_or_else(|| BuildError::BaseNotPinned {
                reference: b.reference.to_string(),
            })?,
        }),
        None => None,
    };
    let kiln = env!("CARGO_PKG_VERSION").to_string();
    let image = &recipe.image;
    let encoder = codec(image.compression, image.compression_level).describe();
    let platform = &image.platform;
    let mut layers: Vec<LayerPlan> = Vec::with_capacity(recipe.layers.len());
    for layer in &recipe.layers {
        let steps: Vec<StepKind> = layer.steps.iter().map(|s| s.kind.clone()).collect();
        let used = steps
            .iter()
            .filter_map(StepKind::input)
            .map(|name| {
                let input = facts
                    .inputs
                    .get(name)
                    .expect("the parser checks input names");
                (name.to_string(), input.digest)
            })
            .collect();
        let debs = layer
            .steps
            .iter()
            .flat_map(|s| facts.debs.get(&s.span.line).into_iter().flatten().cloned())
            .collect();
        let runs = steps.iter().any(|s| matches!(s, StepKind::Run { .. }));
        let rootfs = runs.then(|| Rootfs {
            platform: platform.clone(),
            base: base.as_ref().map(|b| b.digest),
            below: layers.iter().map(|l| l.key).collect(),
        });
        let spec = LayerSpec {
            kiln: kiln.clone(),
            epoch: image.epoch,
            encoder: encoder.clone(),
            tar: layer.tar,
            steps,
            inputs: used,
            debs,
            rootfs,
        };
        layers.push(LayerPlan {
            key: spec.key(),
            spec,
        });
    }
    Ok(BuildPlan {
        version: PLAN_VERSION,
        kiln,
        image: ImagePlan {
            name: image.name.to_string(),
            platform: platform.clone(),
            epoch: image.epoch,
            encoder,
            annotations: image.annotations.clone(),
            history: image.history.clone(),
            config: recipe.config.clone(),
        },
        base,
        inputs: facts.inputs.clone(),
        layers,
    })
}

/// The recipe once per `[image] platforms` entry, in its order, each with that one platform:
/// what a multi-platform build builds, one image each.
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

/// What `kiln build --plan` prints: the plan of a one-platform recipe, or the array of the
/// plans of [`per_platform`] (each the bytes its image's provenance hashes, without the
/// newline), as canonical JSON ending in a newline.
pub fn printable(recipe: &Recipe) -> Result<Vec<u8>> {
    if recipe.image.platforms.len() <= 1 {
        return Ok(from_pins(recipe)?.to_bytes());
    }
    let plans = per_platform(recipe)
        .iter()
        .map(from_pins)
        .collect::<Result<Vec<_>>>()?;
    let mut bytes = to_canonical_vec(&plans).expect("plans serialize");
    bytes.push(b'\n');
    Ok(bytes)
}

/// The plan of `recipe` from its pins alone, as `kiln build --plan` prints it: `url` inputs
/// and the base by their pinned digests, `.deb`s by the lock's, `path` inputs by their pin or,
/// without one, by hashing them where they are. Nothing is fetched and nothing is written (no
/// cache is opened). Refuses what a build refuses before fetching: unpinned inputs, a stale
/// or missing lock.
pub fn from_pins(recipe: &Recipe) -> Result<BuildPlan> {
    super::refuse_unpinned(recipe)?;
    compute(recipe, &pinned_facts(recipe, None, &Quiet)?)
}

/// The plan facts of `recipe` from its pins alone (see [`from_pins`]); with a `store`, an
/// unpinned directory input's digest comes from (and goes into) its fingerprint cache.
pub(super) fn pinned_facts(
    recipe: &Recipe,
    store: Option<&crate::store::Store>,
    observer: &dyn super::BuildObserver,
) -> Result<PlanFacts> {
    let mut facts = PlanFacts::default();
    for (name, input) in &recipe.inputs {
        let digest = match (&input.source, input.sha256()) {
            (_, Some(pinned)) => *pinned,
            (InputSource::Path { resolved, .. }, None) => {
                inputs::hash_path(recipe, input, resolved, store, observer)?.digest
            }
            (InputSource::Url { .. }, None) => unreachable!("refused by refuse_unpinned"),
        };
        facts.inputs.insert(
            name.clone(),
            PlannedInput {
                uri: inputs::uri(input),
                digest,
            },
        );
    }
    facts.debs = packages::locked(recipe)?.digests_by_line();
    Ok(facts)
}

/// The layer codec a recipe's `compression` and `compression_level` choose.
pub(super) fn codec(compression: Compression, level: Option<i32>) -> Codec {
    match (compression, level) {
        (Compression::Gzip, level) => Codec::Gzip {
            level: level.map_or(Codec::DEFAULT_GZIP_LEVEL, |l| l as u32),
        },
        (Compression::Zstd, level) => Codec::Zstd {
            level: level.unwrap_or(3),
        },
    }
}

/// `from_pins` reports no progress.
struct Quiet;

impl super::BuildObserver for Quiet {
    fn event(&self, _: super::BuildEvent<'_>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECIPE: &str = r#"
[image]
name = "t"
epoch = 1700000000

[base]
ref = "oci:base@sha256:1111111111111111111111111111111111111111111111111111111111111111"

[inputs.a]
url = "https://example.org/a.tar.gz"
sha256 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

[inputs.b]
url = "https://example.org/b"
sha256 = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

[[layer]]
[[layer.step]]
extract = "a"

[[layer]]
[[layer.step]]
copy = "b"
dest = "/b"

[[layer]]
[[layer.step]]
write = "/etc/motd"
content = "hi\n"

[[layer]]
[[layer.step]]
run = "echo hi > /x"
"#;

    fn recipe(text: &str) -> Recipe {
        let dir = std::path::Path::new("/nonexistent-kiln-plan-test");
        Recipe::parse(text, dir.join("r.toml"), dir).unwrap()
    }

    fn facts(a: &str, b: &str) -> PlanFacts {
        let input = |uri: &str, d: &str| PlannedInput {
            uri: uri.into(),
            digest: Sha256Digest::of(d.as_bytes()),
        };
        PlanFacts {
            inputs: [
                ("a".to_string(), input("https://example.org/a.tar.gz", a)),
                ("b".to_string(), input("https://example.org/b", b)),
            ]
            .into(),
            debs: BTreeMap::new(),
        }
    }

    fn keys(plan: &BuildPlan) -> Vec<Sha256Digest> {
        plan.layers.iter().map(|l| l.key).collect()
    }

    /// Which layer keys differ between two plans, by index.
    fn changed(a: &BuildPlan, b: &BuildPlan) -> Vec<usize> {
        let (a, b) = (keys(a), keys(b));
        assert_eq!(a.len(), b.len());
        (0..a.len()).filter(|&i| a[i] != b[i]).collect()
    }

    #[test]
    fn the_same_inputs_give_the_same_plan_bytes_and_keys() {
        let one = compute(&recipe(RECIPE), &facts("a", "b")).unwrap();
        let two = compute(&recipe(RECIPE), &facts("a", "b")).unwrap();
        assert_eq!(one.to_bytes(), two.to_bytes());
        assert_eq!(one.digest(), two.digest());
        assert_eq!(keys(&one), keys(&two));
        let bytes = one.to_bytes();
        assert_eq!(bytes.last(), Some(&b'\n'), "newline-terminated");
        assert_eq!(
            bytes[..bytes.len() - 1],
            to_canonical_vec(&serde_json::from_slice::<serde_json::Value>(&bytes).unwrap())
                .unwrap()[..],
            "canonical JSON"
        );
        // The plan reads back as it was.
        assert_eq!(serde_json::from_slice::<BuildPlan>(&bytes).unwrap(), one);
        let mut distinct = keys(&one);
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 4, "every layer has its own key");
    }

    #[test]
    fn a_key_is_the_digest_of_its_layer_entry_without_the_key() {
        let plan = compute(&recipe(RECIPE), &facts("a", "b")).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&plan.to_bytes()).unwrap();
        for (i, layer) in json["layers"].as_array().unwrap().iter().enumerate() {
            let mut entry = layer.as_object().unwrap().clone();
            let key = entry.remove("key").unwrap();
            let digest = Sha256Digest::of(&to_canonical_vec(&entry).unwrap());
            assert_eq!(key, serde_json::json!(digest.to_string()), "layer {i}");
            assert_eq!(plan.layers[i].key, digest);
        }
        assert_eq!(
            json["layers"][3]["rootfs"]["below"],
            serde_json::json!(keys(&plan)[..3]
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>())
        );
        assert!(json["layers"][0]["rootfs"].is_null(), "no run step");
    }

    #[test]
    fn an_input_digest_changes_its_layer_and_the_run_layers_above() {
        let r = recipe(RECIPE);
        let plan = compute(&r, &facts("a", "b")).unwrap();
        assert_eq!(
            changed(&plan, &compute(&r, &facts("a2", "b")).unwrap()),
            [0, 3]
        );
        assert_eq!(
            changed(&plan, &compute(&r, &facts("a", "b2")).unwrap()),
            [1, 3]
        );
        let other_base = RECIPE.replace("oci:base@sha256:1111", "oci:base@sha256:2222");
        assert_eq!(
            changed(
                &plan,
                &compute(&recipe(&other_base), &facts("a", "b")).unwrap()
            ),
            [3],
            "the base is part of the rootfs a run step sees, and only of that"
        );
        let moved = RECIPE.replace(
            "[[layer]]\n[[layer.step]]\nwrite",
            "\n\n[[layer]]\n[[layer.step]]\nwrite",
        );
        assert_ne!(moved, RECIPE);
        assert_eq!(
            keys(&plan),
            keys(&compute(&recipe(&moved), &facts("a", "b")).unwrap()),
            "recipe lines are not part of a key"
        );
    }

    #[test]
    fn epoch_encoder_and_tar_style_change_keys() {
        let plan = compute(&recipe(RECIPE), &facts("a", "b")).unwrap();
        let epoch = RECIPE.replace("epoch = 1700000000", "epoch = 1700000001");
        assert_eq!(
            changed(&plan, &compute(&recipe(&epoch), &facts("a", "b")).unwrap()),
            [0, 1, 2, 3]
        );
        for compression in ["compression = \"zstd\"", "compression-level = 6"] {
            let text = RECIPE.replace(
                "epoch = 1700000000",
                &format!("epoch = 1700000000\n{compression}"),
            );
            let other = compute(&recipe(&text), &facts("a", "b")).unwrap();
            assert_eq!(changed(&plan, &other), [0, 1, 2, 3], "{compression}");
            assert_ne!(plan.image.encoder, other.image.encoder);
        }
        let go = RECIPE.replace(
            "[[layer]]\n[[layer.step]]\ncopy",
            "[[layer]]\ntar = \"go\"\n[[layer.step]]\ncopy",
        );
        assert_eq!(
            changed(&plan, &compute(&recipe(&go), &facts("a", "b")).unwrap()),
            [1, 3]
        );
    }

    #[test]
    fn locked_debs_are_part_of_their_layer_key() {
        let r = recipe(RECIPE);
        let plan = compute(&r, &facts("a", "b")).unwrap();
        let line = r.layers[2].steps[0].span.line;
        let mut with_debs = facts("a", "b");
        with_debs
            .debs
            .insert(line, vec![format!("libc6={}", Sha256Digest::of(b"libc6"))]);
        let other = compute(&r, &with_debs).unwrap();
        assert_eq!(changed(&plan, &other), [2, 3]);
        assert_eq!(other.layers[2].spec.debs.len(), 1);
    }

    /// One image per platform shares the keys of every layer whose bytes do not depend on
    /// the platform: the layer cache (and a remote one) serves each platform's from one entry.
    #[test]
    fn the_platform_changes_only_the_keys_of_run_layers() {
        let mut r = recipe(RECIPE);
        r.image.platform = "linux/amd64".parse().unwrap();
        let amd64 = compute(&r, &facts("a", "b")).unwrap();
        r.image.platform = "linux/arm64".parse().unwrap();
        let arm64 = compute(&r, &facts("a", "b")).unwrap();
        assert_eq!(changed(&amd64, &arm64), [3]);
        assert_ne!(amd64.digest(), arm64.digest());
    }

    #[test]
    fn config_changes_the_plan_digest_but_no_layer_key() {
        let plan = compute(&recipe(RECIPE), &facts("a", "b")).unwrap();
        let text = format!("{RECIPE}\n[config]\ncmd = [\"/bin/sh\"]\n");
        let other = compute(&recipe(&text), &facts("a", "b")).unwrap();
        assert_eq!(changed(&plan, &other), Vec::<usize>::new());
        assert_ne!(plan.digest(), other.digest());
    }

    #[test]
    fn from_pins_hashes_unpinned_path_inputs_as_the_build_does() {
        let tmp = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(tmp.path().join("site/sub")).unwrap();
        fs_err::write(tmp.path().join("site/sub/index.html"), "hello\n").unwrap();
        fs_err::write(tmp.path().join("file"), "a file\n").unwrap();
        let text = "[image]\nname = \"t\"\n[inputs.site]\npath = \"site\"\n\
                    [inputs.file]\npath = \"file\"\n\
                    [[layer]]\n[[layer.step]]\ncopy = \"site\"\ndest = \"/srv\"\n\
                    [[layer.step]]\ncopy = \"file\"\ndest = \"/f\"\n";
        let r = Recipe::parse(text, tmp.path().join("r.toml"), tmp.path()).unwrap();
        let plan = from_pins(&r).unwrap();
        assert_eq!(
            plan.inputs["site"].digest,
            crate::layer::host_path_digest(&tmp.path().join("site")).unwrap()
        );
        assert_eq!(plan.inputs["site"].uri, "file:site");
        assert_eq!(plan.inputs["file"].digest, Sha256Digest::of(b"a file\n"));
        assert_eq!(from_pins(&r).unwrap().to_bytes(), plan.to_bytes());
        assert_eq!(
            fs_err::read_dir(tmp.path()).unwrap().count(),
            2,
            "nothing written beside the recipe"
        );
    }
}
