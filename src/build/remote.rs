//! The build's side of the remote layer cache (`--cache-from`): before anything is fetched,
//! compute every layer's key from the recipe's pins, look each key up in the caches in turn,
//! and pull the hits into the store. Only the inputs of the other layers are then resolved, so
//! a layer found remotely costs neither its downloads nor its steps.
//!
//! The cache can only make a build faster: a miss, an unreachable cache, a record that is not
//! trusted or does not check out, a blob that is gone or has other bytes, each is a warning and
//! the layer is built locally. A hit is never recorded in the local layer cache, so a later
//! build without `--cache-from` builds that layer itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::observer::{BuildEvent, BuildWarning};
use super::plan::{self, PlanFacts};
use super::{BuildObserver, BuildOptions, Result};
use crate::attest::provenance::{RemoteCacheUse, RemoteLayerUse};
use crate::recipe::{InputSource, Recipe};
use crate::registry::{Client, ClientOptions};
use crate::remote_cache::{self, Expected, RemoteHit};
use crate::store::Store;

/// The layers found in a remote cache, by index among the recipe's layers.
#[derive(Default)]
pub struct RemoteLayers {
    pub hits: BTreeMap<usize, RemoteHit>,
    /// The facts the keys were computed from (`None` without `--cache-from`).
    pub pinned: Option<PlanFacts>,
}

impl RemoteLayers {
    /// Whether the build must resolve input `name`: unless every layer that reads it (at least
    /// one) is a hit. An unpinned `path` input always is (it is hashed again where its bytes
    /// are read), and so is one no layer reads (it is checked and recorded as without a cache).
    pub fn needs(&self, recipe: &Recipe, name: &str) -> bool {
        let unpinned_path = recipe
            .inputs
            .get(name)
            .is_some_and(|i| matches!(i.source, InputSource::Path { .. }) && i.sha256().is_none());
        let mut readers = recipe
            .layers
            .iter()
            .enumerate()
            .filter(|(_, layer)| layer.steps.iter().any(|s| s.kind.input() == Some(name)))
            .map(|(i, _)| i)
            .peekable();
        unpinned_path || readers.peek().is_none() || readers.any(|i| !self.hits.contains_key(&i))
    }

    /// The facts of the inputs the build did not resolve.
    pub fn unresolved(&self) -> impl Iterator<Item = (&String, &plan::PlannedInput)> {
        self.pinned.iter().flat_map(|f| &f.inputs)
    }

    /// What the provenance records: the caches asked, and each layer taken from one.
    pub fn provenance(&self, opts: &BuildOptions) -> Option<RemoteCacheUse> {
        self.pinned.as_ref()?;
        Some(RemoteCacheUse {
            sources: opts
                .cache_from
                .iter()
                .map(|s| s.repository.to_string())
                .collect(),
            layers: self
                .hits
                .iter()
                .map(|(index, hit)| RemoteLayerUse {
                    index: *index,
                    key: hit.record.key,
                    digest: hit.record.digest,
                    cache: hit.cache.clone(),
                    signed_by: hit.signed_by.clone(),
                })
                .collect(),
        })
    }
}

/// Looks every layer of `recipe` up in `opts.cache_from` (see the module docs). `media_type`
/// is the one the recipe's encoder writes.
pub fn find(
    recipe: &Recipe,
    store: &Store,
    opts: &BuildOptions,
    media_type: &str,
    observer: &dyn BuildObserver,
) -> Result<RemoteLayers> {
    if opts.cache_from.is_empty() || !opts.reuse_layers {
        return Ok(RemoteLayers::default());
    }
    let warn = |layer: Option<usize>, message: String| {
        observer.event(BuildEvent::Warning(&BuildWarning::RemoteCache {
            layer: layer.map(|i| i + 1),
            message,
        }));
    };
    let facts = plan::pinned_facts(recipe, Some(store), observer)?;
    let planned = plan::compute(recipe, &facts)?;
    let mut found = RemoteLayers {
        hits: BTreeMap::new(),
        pinned: Some(facts),
    };
    if opts.offline {
        warn(None, "not asked under --offline".into());
        return Ok(found);
    }
    let client = match Client::new(ClientOptions {
        tls_verify: opts.registry.tls_verify,
        auth_files: opts.registry.auth_files(),
        progress: observer.registry_progress(),
        ..ClientOptions::default()
    }) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            warn(None, format!("not asked: {}", chain(&e)));
            return Ok(found);
        }
    };
    for (index, layer) in planned.layers.iter().enumerate() {
        if store.layer_record(&layer.key).is_some() {
            continue; // the local layer cache has it
        }
        let want = Expected {
            key: &layer.key,
            encoder: &planned.image.encoder,
            media_type,
            max_size: opts.max_download_size,
        };
        for source in &opts.cache_from {
            if source.is_unreachable() {
                continue;
            }
            match remote_cache::lookup(&client, store, source, want) {
                Ok(Some(hit)) => {
                    found.hits.insert(index, hit);
                    break;
                }
                Ok(None) => {}
                Err(e) if e.is_unreachable() => {
                    source.set_unreachable();
                    warn(
                        None,
                        format!("{}; not asked again in this build", chain(&e)),
                    );
                }
                Err(e) => warn(Some(index), chain(&e)),
            }
        }
    }
    Ok(found)
}

/// The error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Sha256Digest;
    use crate::remote_cache::CacheRecord;

    const RECIPE: &str = r#"
[image]
name = "t"
[inputs.a]
url = "https://example.org/a"
sha256 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
[inputs.shared]
url = "https://example.org/shared"
sha256 = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
[inputs.dir]
path = "dir"
[inputs.unused]
url = "https://example.org/unused"
sha256 = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
[[layer]]
[[layer.step]]
copy = "a"
dest = "/a"
[[layer.step]]
copy = "shared"
dest = "/s"
[[layer]]
[[layer.step]]
copy = "shared"
dest = "/s2"
[[layer]]
[[layer.step]]
copy = "dir"
dest = "/d"
"#;

    fn hit() -> RemoteHit {
        let d = Sha256Digest::of(b"x");
        RemoteHit {
            cache: "h/r".into(),
            record: CacheRecord {
                key: d,
                media_type: String::new(),
                digest: d,
                size: 0,
                diff_id: d,
                encoder: String::new(),
                kiln: String::new(),
            },
            signed_by: None,
            path: "/nonexistent".into(),
        }
    }

    #[test]
    fn only_the_inputs_of_layers_not_found_remotely_are_resolved() {
        let dir = std::path::Path::new("/nonexistent-kiln-remote-test");
        let recipe = Recipe::parse(RECIPE, dir.join("r.toml"), dir).unwrap();
        let needs = |hits: &[usize]| {
            let found = RemoteLayers {
                hits: hits.iter().map(|&i| (i, hit())).collect(),
                pinned: Some(PlanFacts::default()),
            };
            ["a", "shared", "dir", "unused"].map(|name| found.needs(&recipe, name))
        };
        assert_eq!(needs(&[]), [true; 4]);
        assert_eq!(
            needs(&[0]),
            [false, true, true, true],
            "`shared` is read by layer 2"
        );
        assert_eq!(needs(&[0, 1]), [false, false, true, true]);
        assert_eq!(
            needs(&[0, 1, 2]),
            [false, false, true, true],
            "an unpinned path input is hashed for its key either way; an unread one checked"
        );
    }
}
