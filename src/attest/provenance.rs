//! SLSA provenance v1 for a kiln build, as an in-toto Statement v1.
//!
//! The statement is a pure function of the recipe, its resolved inputs and kiln's version: no
//! wall-clock times, host names or random ids, so two builds of the same recipe on two machines
//! write the same provenance blob, byte for byte. `runDetails.metadata.startedOn/finishedOn`
//! are therefore omitted (both are optional in SLSA v1); CI that wants an invocation id passes
//! one explicitly (`kiln build --invocation-id`). `internalParameters.plan` holds the digest
//! of the build plan (`kiln build --plan | sha256sum`), which names every layer's cache key.

use serde::Serialize;
use serde_json::{json, Value};

use crate::digest::Sha256Digest;

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// Names kiln's build type; the version changes whenever the meaning of a recipe changes.
pub const BUILD_TYPE: &str = "https://kiln.build/recipe/v1";
pub const BUILDER_ID: &str = "https://kiln.build/builder/v1";

/// One input that went into the image: a `url` or `path` input, or the base image.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dependency {
    pub name: String,
    pub uri: String,
    pub digest: Sha256Digest,
}

/// Everything the provenance says, gathered by the build.
#[derive(Clone, Debug)]
pub struct ProvenanceFacts {
    /// The image name (`[image] name`), used as the subject name.
    pub name: String,
    pub manifest_digest: Sha256Digest,
    /// How the recipe is named in the provenance (its file name, or a URI the caller gave).
    pub recipe_uri: String,
    pub recipe_digest: Sha256Digest,
    pub platform: String,
    pub epoch: i64,
    /// The layer encoder and its settings, e.g. `kiln-pgzip/2 libdeflate/1.26 level=1 …`.
    pub compressor: String,
    pub dependencies: Vec<Dependency>,
    /// The sha256 of the build plan's bytes (what `kiln build --plan` prints).
    pub plan_digest: Sha256Digest,
    pub invocation_id: Option<String>,
    /// With `--cache-from`: the caches asked and the layers taken from them.
    pub remote_cache: Option<RemoteCacheUse>,
}

/// The remote layer caches a build asked (`--cache-from`) and the layers it took from them,
/// recorded as `internalParameters.remoteCache`: those layers' steps did not run here.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RemoteCacheUse {
    /// The caches, `HOST/REPO`, in the order they were asked.
    pub sources: Vec<String>,
    pub layers: Vec<RemoteLayerUse>,
}

/// One layer taken from a remote cache.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RemoteLayerUse {
    /// Its position among the recipe's layers, from 0.
    pub index: usize,
    /// Its cache key (from the build plan) and its blob's digest.
    pub key: Sha256Digest,
    pub digest: Sha256Digest,
    /// The cache it came from, `HOST/REPO`.
    pub cache: String,
    /// The key id of the trusted key (`--cache-trust`) that signed its record.
    pub signed_by: Option<String>,
}

/// The in-toto statement, as a JSON value (serialize it with `image::json::to_canonical_vec`).
pub fn statement(facts: &ProvenanceFacts) -> Value {
    let mut deps = facts.dependencies.clone();
    deps.sort();
    let resolved: Vec<Value> = deps
        .iter()
        .map(|d| json!({"name": d.name, "uri": d.uri, "digest": {"sha256": d.digest.hex()}}))
        .collect();
    let mut metadata = serde_json::Map::new();
    if let Some(id) = &facts.invocation_id {
        metadata.insert("invocationId".into(), json!(id));
    }
    let mut internal = json!({
        "epoch": facts.epoch,
        "compressor": facts.compressor,
        "kilnVersion": env!("CARGO_PKG_VERSION"),
        "plan": {"digest": {"sha256": facts.plan_digest.hex()}},
    });
    if let Some(remote) = &facts.remote_cache {
        internal["remoteCache"] = serde_json::to_value(remote).expect("serializes");
    }
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": facts.name, "digest": {"sha256": facts.manifest_digest.hex()}}],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "recipe": {
                        "uri": facts.recipe_uri,
                        "digest": {"sha256": facts.recipe_digest.hex()},
                    },
                    "platform": facts.platform,
                    "output": {"name": facts.name},
                },
                "internalParameters": internal,
                "resolvedDependencies": resolved,
            },
            "runDetails": {
                "builder": {
                    "id": BUILDER_ID,
                    "version": {"kiln": env!("CARGO_PKG_VERSION")},
                },
                "metadata": Value::Object(metadata),
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::json::to_canonical_vec;

    fn facts() -> ProvenanceFacts {
        ProvenanceFacts {
            name: "hello".into(),
            manifest_digest: Sha256Digest::of(b"manifest"),
            recipe_uri: "recipe.toml".into(),
            recipe_digest: Sha256Digest::of(b"recipe"),
            platform: "linux/amd64".into(),
            epoch: 1_700_000_000,
            compressor: "gzip".into(),
            dependencies: vec![
                Dependency {
                    name: "site".into(),
                    uri: "file:site".into(),
                    digest: Sha256Digest::of(b"b"),
                },
                Dependency {
                    name: "base".into(),
                    uri: "oci:x".into(),
                    digest: Sha256Digest::of(b"a"),
                },
            ],
            plan_digest: Sha256Digest::of(b"plan\n"),
            invocation_id: None,
            remote_cache: None,
        }
    }

    #[test]
    fn statement_has_the_slsa_v1_shape() {
        let s = statement(&facts());
        assert_eq!(s["_type"], STATEMENT_TYPE);
        assert_eq!(s["predicateType"], SLSA_PROVENANCE_V1);
        assert_eq!(
            s["subject"][0]["digest"]["sha256"],
            Sha256Digest::of(b"manifest").hex()
        );
        let bd = &s["predicate"]["buildDefinition"];
        assert_eq!(
            bd["externalParameters"]["recipe"]["digest"]["sha256"],
            Sha256Digest::of(b"recipe").hex()
        );
        let deps = bd["resolvedDependencies"].as_array().unwrap();
        assert_eq!(deps.len(), 2);
        assert_eq!(deps[0]["name"], "base", "dependencies are sorted");
        assert_eq!(
            bd["internalParameters"]["plan"]["digest"]["sha256"],
            Sha256Digest::of(b"plan\n").hex()
        );
        assert!(s["predicate"]["runDetails"]["metadata"]
            .get("startedOn")
            .is_none());
        assert!(
            bd["internalParameters"].get("remoteCache").is_none(),
            "only with --cache-from"
        );
    }

    #[test]
    fn layers_from_a_remote_cache_are_named_with_their_cache() {
        let mut f = facts();
        f.remote_cache = Some(RemoteCacheUse {
            sources: vec!["127.0.0.1:5000/cache".into()],
            layers: vec![RemoteLayerUse {
                index: 1,
                key: Sha256Digest::of(b"key"),
                digest: Sha256Digest::of(b"blob"),
                cache: "127.0.0.1:5000/cache".into(),
                signed_by: None,
            }],
        });
        let s = statement(&f);
        let remote = &s["predicate"]["buildDefinition"]["internalParameters"]["remoteCache"];
        assert_eq!(remote["sources"], json!(["127.0.0.1:5000/cache"]));
        assert_eq!(remote["layers"][0]["index"], 1);
        assert_eq!(remote["layers"][0]["cache"], "127.0.0.1:5000/cache");
        assert_eq!(
            remote["layers"][0]["key"],
            Sha256Digest::of(b"key").to_string()
        );
        assert_eq!(remote["layers"][0]["signedBy"], Value::Null);
    }

    #[test]
    fn statement_bytes_are_deterministic() {
        let a = to_canonical_vec(&statement(&facts())).unwrap();
        let mut f = facts();
        f.dependencies.reverse();
        assert_eq!(a, to_canonical_vec(&statement(&f)).unwrap());
    }
}
