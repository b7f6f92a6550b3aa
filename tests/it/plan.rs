//! `kiln build --plan`: the plan is printed without fetching, building or writing anything, its
//! bytes are stable, and a real build uses exactly its layer keys and records its digest in the
//! provenance.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::*;

/// Two more layers over the busybox head: a file, then a `run` step over all of it.
const LAYERS: &str = r#"
[[layer]]
[[layer.step]]
write = "/etc/motd"
content = "hello\n"

[[layer]]
[[layer.step]]
run = "busybox --install -s /bin && echo built > /built"
"#;

fn plan(ctx: &TestContext, recipe: &Path) -> String {
    run_ok(
        ctx.kiln()
            .arg("build")
            .arg(recipe)
            .arg("--plan")
            .arg("--cache")
            .arg(ctx.join("cache")),
    )
}

fn layer_keys(plan: &str) -> Vec<String> {
    let plan: serde_json::Value = serde_json::from_str(plan).unwrap();
    plan["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["key"].as_str().unwrap().to_string())
        .collect()
}

/// The `(key, cached)` of each `layer` event of a `--json` build.
fn built_layers(stdout: &str) -> Vec<(String, bool)> {
    stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "layer")
        .map(|e| {
            let key = e["key"].as_str().unwrap().to_string();
            (key, e["cached"].as_bool().unwrap())
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn plan_is_stable_writes_nothing_and_names_the_keys_the_build_uses() {
    let ctx = TestContext::new();
    let recipe = busybox_recipe(&ctx, "bb", LAYERS);
    let cache = ctx.join("cache");

    let first = plan(&ctx, &recipe);
    assert_eq!(plan(&ctx, &recipe), first, "the same bytes every time");
    assert!(
        first.ends_with("}\n") && first.lines().count() == 1,
        "{first}"
    );
    let keys = layer_keys(&first);
    assert_eq!(keys.len(), 3);
    assert_eq!(keys.iter().collect::<BTreeSet<_>>().len(), 3, "{keys:?}");
    let parsed: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(
        parsed["layers"][2]["rootfs"]["below"],
        serde_json::json!(keys[..2]),
        "the run layer names the layers below by their keys"
    );
    assert!(!cache.exists(), "--plan opens no cache");
    assert!(!ctx.join("out").exists(), "--plan writes no output");

    // A real build uses the plan's keys, and only those, for the layer cache.
    let out = ctx.join("out/bb");
    let build = |json: bool| {
        let mut cmd = ctx.kiln();
        cmd.arg("build")
            .arg(&recipe)
            .arg("--offline")
            .arg("--cache")
            .arg(&cache)
            .arg("-o")
            .arg(&out);
        if json {
            cmd.arg("--json");
        }
        run_ok(&mut cmd)
    };
    let cold = built_layers(&build(true));
    assert_eq!(
        cold,
        keys.iter().map(|k| (k.clone(), false)).collect::<Vec<_>>()
    );
    let recorded: BTreeSet<String> = std::fs::read_dir(cache.join("refs/layers"))
        .unwrap()
        .map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    assert_eq!(recorded, keys.iter().cloned().collect::<BTreeSet<_>>());
    let warm = built_layers(&build(true));
    assert_eq!(
        warm,
        keys.iter().map(|k| (k.clone(), true)).collect::<Vec<_>>(),
        "the second build takes every layer from the cache under the plan's keys"
    );

    // The provenance records the digest of the plan's bytes.
    let provenance = std::fs::read_dir(out.join("blobs/sha256"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .find(|t| t.contains("resolvedDependencies"))
        .expect("a provenance blob");
    let provenance: serde_json::Value = serde_json::from_str(&provenance).unwrap();
    assert_eq!(
        provenance["predicate"]["buildDefinition"]["internalParameters"]["plan"]["digest"]
            ["sha256"],
        sha256_hex(first.as_bytes())
    );
    assert_eq!(plan(&ctx, &recipe), first, "building changes no plan");

    // A changed file in layer 2 changes its key and the run layer's above, not layer 1's.
    std::fs::write(
        &recipe,
        format!(
            "{BUSYBOX_RECIPE_HEAD}{}",
            LAYERS.replace("hello\\n", "changed\\n")
        ),
    )
    .unwrap();
    let changed = layer_keys(&plan(&ctx, &recipe));
    assert_eq!(changed[0], keys[0]);
    assert_ne!(changed[1], keys[1]);
    assert_ne!(changed[2], keys[2]);
}

#[test]
fn plan_refuses_an_unpinned_url_input_without_fetching() {
    let ctx = TestContext::new();
    let recipe = ctx.write(
        "r/recipe.toml",
        "[image]\nname = \"u\"\n[inputs.x]\nurl = \"http://127.0.0.1:9/x.tar\"\n\
         [[layer]]\n[[layer.step]]\nextract = \"x\"\n",
    );
    let err = stderr(&run_err(
        ctx.kiln()
            .arg("build")
            .arg(&recipe)
            .arg("--plan")
            .arg("--cache")
            .arg(ctx.join("cache")),
    ));
    assert!(
        err.contains("inputs without sha256: x") && err.contains("kiln lock"),
        "{err}"
    );
    assert!(!ctx.join("cache").exists());
}

/// `--plan` of a recipe with several `platforms`: one line of canonical JSON, the array of the
/// plans in the order of `platforms`, each the same bytes (and so the same layer keys) as the
/// plan of the recipe written for that one platform; the build uses exactly those keys.
#[test]
fn plan_of_several_platforms_is_the_plan_of_each_in_order() {
    let ctx = TestContext::new();
    let layer = "\n[[layer]]\n[[layer.step]]\nwrite = \"/etc/motd\"\ncontent = \"hello\\n\"\n";
    let recipe = busybox_recipe(&ctx, "bb", layer);
    let head = |platform: &str| {
        BUSYBOX_RECIPE_HEAD.replace(
            "epoch = 1700000000\n",
            &format!("epoch = 1700000000\n{platform}\n"),
        )
    };
    std::fs::write(
        &recipe,
        format!(
            "{}{layer}",
            head("platforms = [\"linux/arm64\", \"linux/amd64\"]")
        ),
    )
    .unwrap();
    let single = |platform: &str| {
        let one = ctx.join(format!("bb/{}.toml", platform.replace('/', "-")));
        let text = format!("{}{layer}", head(&format!("platform = \"{platform}\"")));
        std::fs::write(&one, text).unwrap();
        plan(&ctx, &one)
    };

    let first = plan(&ctx, &recipe);
    assert_eq!(plan(&ctx, &recipe), first, "the same bytes every time");
    assert!(
        first.starts_with("[{") && first.ends_with("}]\n") && first.lines().count() == 1,
        "{first}"
    );
    let plans: Vec<serde_json::Value> = serde_json::from_str(&first).unwrap();
    let platforms: Vec<&str> = plans
        .iter()
        .map(|p| p["image"]["platform"].as_str().unwrap())
        .collect();
    assert_eq!(
        platforms,
        ["linux/arm64", "linux/amd64"],
        "the recipe's order"
    );
    let mut keys = Vec::new();
    for (each, platform) in plans.iter().zip(platforms) {
        let alone = single(platform);
        assert_eq!(
            format!("{each}\n"),
            alone,
            "{platform}: the same plan as the recipe for that platform alone"
        );
        keys.extend(layer_keys(&alone));
    }
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(!ctx.join("cache").exists(), "--plan opens no cache");

    // The build of both platforms uses those keys, in the same order.
    let out = run_ok(
        ctx.kiln()
            .arg("build")
            .arg(&recipe)
            .arg("--json")
            .arg("--cache")
            .arg(ctx.join("cache"))
            .arg("-o")
            .arg(ctx.join("out/bb")),
    );
    let built: Vec<String> = built_layers(&out).into_iter().map(|(k, _)| k).collect();
    assert_eq!(built, keys);
    // With --json, stdout holds only events: the last names the index.
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let index = std::fs::read(ctx.join("out/bb/index.json")).unwrap();
    let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    assert_eq!(
        (&last["event"], &last["digest"], &last["format"]),
        (
            &"image".into(),
            &index["manifests"][0]["digest"],
            &"oci".into()
        )
    );
    assert_eq!(plan(&ctx, &recipe), first, "building changes no plan");
}
