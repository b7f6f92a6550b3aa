//! The layer cache shared through a registry (`kiln build --cache-to` / `--cache-from`), end
//! to end: the real `kiln` binary, a real distribution registry, and url inputs served by the
//! test HTTP server, which is stopped to show that a machine with an empty local cache builds
//! from the remote cache alone, and that a cache that does not check out never changes the
//! image (it falls back to a local build, or to the ordinary input error).

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::http_server::{Reply, Req, Server};
use crate::registry_support::LocalRegistry;
use crate::support::*;
use kiln::Sha256Digest;

fn input_a() -> Vec<u8> {
    (0..4000)
        .flat_map(|i| format!("a line {i}\n").into_bytes())
        .collect()
}

fn input_b() -> Vec<u8> {
    (0..3000)
        .flat_map(|i| format!("b {}\n", i * 7).into_bytes())
        .collect()
}

/// Serves `/a` and `/b`.
fn input_server() -> Server {
    let (a, b) = (input_a(), input_b());
    Server::start(move |r: &Req| match r.path() {
        "/a" => Reply::ok(&a, &[]),
        "/b" => Reply::ok(&b, &[]),
        _ => Reply::not_found(),
    })
}

/// Three layers: url input `a`; url input `b` and an inline file; an inline file.
fn write_recipe(ctx: &TestContext, server: &Server) -> PathBuf {
    ctx.write(
        "recipe.toml",
        format!(
            r#"
[image]
name = "cached"
epoch = 1700000000
[inputs.a]
url = "{}"
sha256 = "{}"
[inputs.b]
url = "{}"
sha256 = "{}"
[[layer]]
[[layer.step]]
copy = "a"
dest = "/srv/a"
[[layer]]
[[layer.step]]
copy = "b"
dest = "/srv/b"
[[layer.step]]
write = "/etc/motd"
content = "built once, shared\n"
[[layer]]
[[layer.step]]
write = "/etc/x"
content = "x\n"
"#,
            server.url("/a"),
            Sha256Digest::of(&input_a()).hex(),
            server.url("/b"),
            Sha256Digest::of(&input_b()).hex(),
        ),
    )
}

/// `kiln build recipe.toml -o OUT --cache CACHE` with `extra` arguments (a fresh cache
/// directory is a machine that never built anything).
fn build(ctx: &TestContext, cache: &str, out: &str, extra: &[&str]) -> Output {
    build_recipe(ctx, "recipe.toml", cache, out, extra)
}

/// [`build`] of another recipe file.
fn build_recipe(ctx: &TestContext, recipe: &str, cache: &str, out: &str, extra: &[&str]) -> Output {
    ctx.kiln()
        .args(["build", recipe, "-o", out, "--cache"])
        .arg(ctx.join(cache))
        .args(extra)
        .output()
        .unwrap()
}

/// `build --json` on machine `machine` (into `out-MACHINE`) from `cache` alone, with `extra`
/// arguments: the image `digest`, each of its `layers` layers a hit in `cache`, no warning.
/// Returns the events.
fn build_all_from(
    ctx: &TestContext,
    machine: &str,
    cache: &str,
    extra: &[&str],
    (digest, layers): (&str, usize),
) -> Vec<Value> {
    let mut args = vec!["--cache-from", cache, "--json"];
    args.extend(extra);
    let events = json_events(build(ctx, machine, &format!("out-{machine}"), &args));
    assert_eq!(events.last().unwrap()["digest"], digest, "{events:?}");
    let repo = cache.trim_start_matches("docker://");
    let built = layer_events(&events);
    assert_eq!(built.len(), layers, "{events:?}");
    assert!(built.iter().all(|e| e["remote"] == repo), "{events:?}");
    assert!(
        !events.iter().any(|e| e["event"] == "warning"),
        "{events:?}"
    );
    events
}

/// The events a `build --json` printed, after asserting it succeeded.
fn json_events(out: Output) -> Vec<Value> {
    assert!(out.status.success(), "{}", stderr_text(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The `layer` events among `events`, in build order.
fn layer_events(events: &[Value]) -> Vec<&Value> {
    events.iter().filter(|e| e["event"] == "layer").collect()
}

fn build_ok(ctx: &TestContext, cache: &str, out: &str, extra: &[&str]) -> (String, String) {
    let out = build(ctx, cache, out, extra);
    assert!(
        out.status.success(),
        "build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    (last_line(&stdout), stderr_text(&out))
}

/// A build on machine `cache` with a `--cache-from` nothing answers at: the image `reference`,
/// after one warning (the cache is not asked again in the build). Returns stderr.
fn build_from_unreachable_cache(ctx: &TestContext, cache: &str, reference: &str) -> String {
    let (d, err) = build_ok(
        ctx,
        cache,
        &format!("out-{cache}"),
        &["--cache-from", "docker://127.0.0.1:9/cache"],
    );
    assert_eq!(d, reference, "{err}");
    assert_eq!(err.matches("warning: remote cache: ").count(), 1, "{err}");
    err
}

fn stderr_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// The image's layers (digest, size) and diff_ids, from the layout at `layout`.
fn layers(layout: &Path) -> Vec<(String, u64, String)> {
    let index = read_json(&layout.join("index.json"));
    let manifest = read_json(&blob(
        layout,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let config = read_json(&blob(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(config["rootfs"]["diff_ids"].as_array().unwrap())
        .map(|(l, d)| {
            (
                l["digest"].as_str().unwrap().to_string(),
                l["size"].as_u64().unwrap(),
                d.as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The SLSA provenance kiln wrote into the layout.
fn provenance(layout: &Path) -> Value {
    provenances(layout)
        .into_iter()
        .next()
        .expect("a provenance statement")
}

/// Every SLSA provenance statement in the layout (one per image of an index).
fn provenances(layout: &Path) -> Vec<Value> {
    std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .filter(|t| {
            t.contains("https://slsa.dev/provenance/v1") && t.contains("resolvedDependencies")
        })
        .map(|t| serde_json::from_str(&t).unwrap())
        .collect()
}

/// The images of the index in the layout at `layout`, in its order: each one's `os/arch` and
/// layer digests.
fn index_images(layout: &Path) -> Vec<(String, Vec<String>)> {
    let top = read_json(&layout.join("index.json"));
    let entry = top["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mediaType"] == "application/vnd.oci.image.index.v1+json")
        .expect("an image index");
    let index = read_json(&blob(layout, entry["digest"].as_str().unwrap()));
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let manifest = read_json(&blob(layout, m["digest"].as_str().unwrap()));
            let field = |name: &str| m["platform"][name].as_str().unwrap().to_string();
            let platform = format!("{}/{}", field("os"), field("architecture"));
            let layers = manifest["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["digest"].as_str().unwrap().to_string())
                .collect();
            (platform, layers)
        })
        .collect()
}

/// The tags of the records of `keys`, sorted.
fn record_tags(keys: &[String]) -> Vec<String> {
    let mut tags: Vec<String> = keys
        .iter()
        .map(|k| format!("kiln-cache-{}", k.trim_start_matches("sha256:")))
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

/// The tags of the repository `repo` of `reg`, sorted.
fn tags(reg: &LocalRegistry, repo: &str) -> Vec<String> {
    let list: Value = serde_json::from_str(
        &ureq::get(&format!("http://{}/v2/{repo}/tags/list", reg.host))
            .call()
            .unwrap()
            .into_body()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    let mut tags: Vec<String> = serde_json::from_value(list["tags"].clone()).unwrap();
    tags.sort();
    tags
}

/// The lines of `stderr` that report a layer taken from a remote cache.
fn remote_hits(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(": remote cache hit "))
        .collect()
}

/// The plan's layer keys and encoder.
fn plan(ctx: &TestContext) -> (Vec<String>, String) {
    let plan: Value =
        serde_json::from_str(&run_ok(ctx.kiln().args(["build", "recipe.toml", "--plan"]))).unwrap();
    (
        plan_keys(&plan),
        plan["image"]["encoder"].as_str().unwrap().to_string(),
    )
}

fn plan_keys(plan: &Value) -> Vec<String> {
    plan["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["key"].as_str().unwrap().to_string())
        .collect()
}

/// The layer keys of each platform's plan of a recipe with several `platforms`.
fn platform_keys(ctx: &TestContext) -> Vec<Vec<String>> {
    let plans: Vec<Value> =
        serde_json::from_str(&run_ok(ctx.kiln().args(["build", "recipe.toml", "--plan"]))).unwrap();
    plans.iter().map(plan_keys).collect()
}

#[test]
fn a_machine_with_an_empty_cache_builds_from_the_remote_cache_without_the_inputs() {
    let reg = LocalRegistry::start(&[]);
    let server = input_server();
    let ctx = TestContext::new();
    write_recipe(&ctx, &server);
    let cache = reg.reference("ci/cache");
    let repo = format!("{}/ci/cache", reg.host);

    // Machine A builds and shares its layers.
    let (digest, a_err) = build_ok(&ctx, "machine-a", "out-a", &["--cache-to", &cache]);
    assert!(
        a_err.contains(&format!(
            "cache: pushed 3 layer record(s) to {cache}: 3 blob(s) uploaded"
        )),
        "{a_err}"
    );
    let (keys, _) = plan(&ctx);
    let want = record_tags(&keys);
    assert_eq!(tags(&reg, "ci/cache"), want, "one record per layer key");
    // skopeo, which kiln did not write, reads a record as an OCI artifact that lists the layer.
    let raw: Value = serde_json::from_str(&run_ok(tool("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("{cache}:{}", want[0]),
    ])))
    .unwrap();
    assert_eq!(
        raw["artifactType"],
        "application/vnd.kiln.cache.record.v1+json"
    );
    assert_eq!(
        raw["layers"][0]["mediaType"],
        "application/vnd.dsse.envelope.v1+json"
    );
    let listed: Vec<String> = layers(&ctx.join("out-a"))
        .into_iter()
        .map(|l| l.0)
        .collect();
    let named = raw["layers"][1]["digest"].as_str().unwrap().to_string();
    assert!(listed.contains(&named), "{raw}");

    // The inputs go away; machine B, with an empty cache, builds the same image.
    server.stop();
    let requests = server.hits();
    let (b_digest, b_err) = build_ok(&ctx, "machine-b", "out-b", &["--cache-from", &cache]);
    assert_eq!(b_digest, digest, "{b_err}");
    assert_eq!(server.hits(), requests, "nothing was downloaded");
    assert!(!b_err.contains("fetching"), "{b_err}");
    let hits = remote_hits(&b_err);
    assert_eq!(hits.len(), 3, "{b_err}");
    for (i, (layer, ..)) in layers(&ctx.join("out-a")).iter().enumerate() {
        assert!(
            hits[i].starts_with(&format!(
                "layer {}/3: remote cache hit {repo} {layer}",
                i + 1
            )),
            "{b_err}"
        );
    }
    assert_eq!(layers(&ctx.join("out-a")), layers(&ctx.join("out-b")));

    // The provenance says which layers came from where, and still lists every input.
    let p = provenance(&ctx.join("out-b"));
    let remote = &p["predicate"]["buildDefinition"]["internalParameters"]["remoteCache"];
    assert_eq!(remote["sources"], serde_json::json!([repo]));
    let taken = remote["layers"].as_array().unwrap();
    assert_eq!(taken.len(), 3, "{remote}");
    for (i, layer) in taken.iter().enumerate() {
        assert_eq!(layer["index"], i);
        assert_eq!(layer["cache"], repo);
        assert_eq!(layer["key"], keys[i]);
        assert_eq!(layer["signedBy"], Value::Null);
    }
    let deps = p["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    assert_eq!(deps.len(), 2, "{deps:?}");
    assert!(
        provenance(&ctx.join("out-a"))["predicate"]["buildDefinition"]["internalParameters"]
            .get("remoteCache")
            .is_none()
    );

    // `--json`: every layer event names the cache.
    build_all_from(&ctx, "machine-c", &cache, &[], (&digest, 3));

    // Without --cache-from, machine D has nothing but the (gone) inputs: the ordinary error.
    let out = build(&ctx, "machine-d", "out-d", &[]);
    assert!(!out.status.success());
    assert!(
        stderr_text(&out).contains("failed to fetch input `a`"),
        "{}",
        stderr_text(&out)
    );
}

#[test]
fn a_cache_that_does_not_check_out_never_changes_the_image() {
    let server = input_server();
    let ctx = TestContext::new();
    write_recipe(&ctx, &server);
    let (keys, encoder) = plan(&ctx);
    let (reference, _) = build_ok(&ctx, "reference", "out-ref", &[]);
    let built = layers(&ctx.join("out-ref"));
    run_ok(ctx.kiln().args(["key", "generate", "--out", "good"]));
    let evil_id = run_ok(ctx.kiln().args(["key", "generate", "--out", "evil"]));

    // Each case: a registry holding a cache that must not be used as it is, and the
    // arguments of the reader.
    let mut cases: Vec<(&str, LocalRegistry, Vec<String>)> = Vec::new();

    // Records signed by a key the reader does not trust.
    let signed = LocalRegistry::start(&[]);
    let cache = signed.reference("cache");
    build_ok(
        &ctx,
        "writer-signed",
        "out-w1",
        &["--cache-to", &cache, "--cache-key", "evil.key"],
    );
    // Trusting the signer's key, the same records are used.
    let (d, err) = build_ok(
        &ctx,
        "trusts-evil",
        "out-t",
        &["--cache-from", &cache, "--cache-trust", "evil.pub"],
    );
    assert_eq!(
        (d, remote_hits(&err).len()),
        (reference.clone(), 3),
        "{err}"
    );
    let p = provenance(&ctx.join("out-t"));
    assert_eq!(
        p["predicate"]["buildDefinition"]["internalParameters"]["remoteCache"]["layers"][0]
            ["signedBy"],
        evil_id.trim(),
        "{p}"
    );
    let args = vec![
        "--cache-from".into(),
        cache,
        "--cache-trust".into(),
        "good.pub".into(),
    ];
    cases.push(("not signed by a trusted key", signed, args));

    // A blob whose bytes were swapped in the registry's storage.
    let swapped = LocalRegistry::start(&[]);
    let cache = swapped.reference("cache");
    build_ok(&ctx, "writer-swapped", "out-w2", &["--cache-to", &cache]);
    let (first, ..) = &built[0];
    std::fs::write(
        swapped.blob_path(first.trim_start_matches("sha256:")),
        b"other bytes",
    )
    .unwrap();
    cases.push(("refused blob", swapped, vec!["--cache-from".into(), cache]));

    // A blob deleted through the registry API.
    let deleted = LocalRegistry::start(&[]);
    let cache = deleted.reference("cache");
    build_ok(&ctx, "writer-deleted", "out-w3", &["--cache-to", &cache]);
    let status = ureq::delete(&format!("http://{}/v2/cache/blobs/{first}", deleted.host))
        .call()
        .unwrap()
        .status();
    assert_eq!(status, 202);
    cases.push((
        "failed to pull layer",
        deleted,
        vec!["--cache-from".into(), cache],
    ));

    // A record, written through the library, naming another layer's blob: its digest checks
    // out, its diff_id does not.
    let wrong = LocalRegistry::start(&[]);
    let client = kiln::registry::Client::new(kiln::registry::ClientOptions {
        auth_files: kiln::registry::AuthFiles::none(),
        ..Default::default()
    })
    .unwrap();
    let repo = kiln::registry::Repository::new(&wrong.host, "cache").unwrap();
    let (other, other_size, _) = &built[1];
    let record = kiln::remote_cache::CacheRecord {
        key: keys[0].parse().unwrap(),
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        digest: other.parse().unwrap(),
        size: *other_size,
        diff_id: built[0].2.parse().unwrap(),
        encoder,
        kiln: env!("CARGO_PKG_VERSION").into(),
    };
    let path = blob(&ctx.join("out-ref"), other);
    let layer = kiln::remote_cache::LayerToPush {
        record,
        path: &path,
    };
    kiln::remote_cache::push(&client, &repo, &[layer], None, 1).unwrap();
    let cache = wrong.reference("cache");
    cases.push(("diff_id", wrong, vec!["--cache-from".into(), cache]));

    // With the inputs reachable, each falls back to a local build of the same image.
    for (i, (why, _reg, args)) in cases.iter().enumerate() {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (d, err) = build_ok(&ctx, &format!("reader-{i}"), &format!("out-{i}"), &args);
        assert_eq!(d, reference, "{why}: {err}");
        assert!(
            err.contains("warning: remote cache: layer 1: ") && err.contains(why),
            "{why}: {err}"
        );
        assert!(err.contains("building locally"), "{why}: {err}");
        let hits = remote_hits(&err);
        assert!(
            !hits.iter().any(|l| l.starts_with("layer 1/3")),
            "{why}: {err}"
        );
        if i == 0 {
            assert!(hits.is_empty(), "no untrusted record is used: {err}");
        }
    }
    // A cache that cannot be reached: one warning, then every layer is built.
    let err = build_from_unreachable_cache(&ctx, "reader-unreachable", &reference);
    assert!(
        err.contains("not asked again in this build; building locally"),
        "{err}"
    );
    // With the inputs gone, each is the ordinary input error, and writes nothing.
    server.stop();
    for (i, (why, _reg, args)) in cases.iter().enumerate() {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = build(
            &ctx,
            &format!("offline-reader-{i}"),
            &format!("gone-{i}"),
            &args,
        );
        let err = stderr_text(&out);
        assert!(!out.status.success(), "{why}: {err}");
        assert!(err.contains("failed to fetch input `"), "{why}: {err}");
        assert!(!ctx.join(format!("gone-{i}")).exists(), "{why}");
    }
}

#[test]
fn four_writers_at_once_leave_a_cache_a_reader_builds_from() {
    let reg = LocalRegistry::start(&[]);
    let server = input_server();
    let ctx = TestContext::new();
    write_recipe(&ctx, &server);
    let cache = reg.reference("fleet/cache");
    let writers: Vec<_> = (0..4)
        .map(|i| {
            ctx.kiln()
                .args(["build", "recipe.toml", "-o", &format!("out-{i}"), "--cache"])
                .arg(ctx.join(format!("writer-{i}")))
                .args(["--cache-to", &cache])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let digests: Vec<String> = writers
        .into_iter()
        .map(|w| {
            let out = w.wait_with_output().unwrap();
            let err = stderr_text(&out);
            assert!(out.status.success(), "{err}");
            assert!(err.contains("cache: pushed 3 layer record(s)"), "{err}");
            assert!(!err.contains("warning"), "{err}");
            last_line(&String::from_utf8(out.stdout).unwrap())
        })
        .collect();
    assert!(digests.iter().all(|d| *d == digests[0]), "{digests:?}");

    server.stop();
    let (d, err) = build_ok(&ctx, "reader", "out-reader", &["--cache-from", &cache]);
    assert_eq!(d, digests[0]);
    assert_eq!(remote_hits(&err).len(), 3, "{err}");
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn rebuild_from_a_remote_cache_warns_and_the_verdict_says_so() {
    let reg = LocalRegistry::start(&[]);
    let server = input_server();
    let ctx = TestContext::new();
    write_recipe(&ctx, &server);
    let cache = reg.reference("cache");
    build_ok(&ctx, "upstream", "upstream", &["--cache-to", &cache]);
    server.stop();
    let out = ctx
        .kiln()
        .args([
            "rebuild",
            "recipe.toml",
            "--against",
            "oci:upstream",
            "-o",
            "rebuilt",
        ])
        .args(["--cache-from", &cache, "--cache"])
        .arg(ctx.join("rebuilder"))
        .output()
        .unwrap();
    let err = stderr_text(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: layers taken from a remote cache (--cache-from) were not rebuilt: the verdict no longer proves an independent rebuild"),
        "{err}"
    );
    assert_eq!(remote_hits(&err).len(), 3, "{err}");
    let verdict = std::fs::read_dir(ctx.join("rebuilt/blobs/sha256"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .find(|t| t.contains("https://kiln.build/rebuild/v1") && t.contains("\"verdict\""))
        .map(|t| serde_json::from_str::<Value>(&t).unwrap())
        .expect("a verdict statement");
    let p = &verdict["predicate"];
    assert_eq!(p["verdict"], "identical");
    assert_eq!(p["independent"], false, "{p}");
    assert_eq!(
        p["remoteCache"]["layers"].as_array().unwrap().len(),
        3,
        "{p}"
    );
    assert!(p["remoteCache"]["warning"]
        .as_str()
        .unwrap()
        .contains("independent"));
}

#[test]
fn a_writer_killed_mid_push_leaves_nothing_a_reader_takes_wrong() {
    // A layer large enough that its upload is under way when the writer dies.
    let big: Vec<u8> = {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..(24 << 20) / 8)
            .flat_map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()
            })
            .collect()
    };
    let big_sha = Sha256Digest::of(&big).hex();
    let (a, b) = (input_a(), input_b());
    let server = Server::start(move |r: &Req| match r.path() {
        "/a" => Reply::ok(&a, &[]),
        "/b" => Reply::ok(&b, &[]),
        "/big" => Reply::ok(&big, &[]),
        _ => Reply::not_found(),
    });
    let reg = LocalRegistry::start(&[]);
    let ctx = TestContext::new();
    let recipe = write_recipe(&ctx, &server);
    let mut text = std::fs::read_to_string(&recipe).unwrap();
    text = text.replace(
        "[[layer]]\n[[layer.step]]\ncopy = \"a\"",
        &format!(
            "[inputs.big]\nurl = \"{}\"\nsha256 = \"{big_sha}\"\n\
             [[layer]]\n[[layer.step]]\ncopy = \"big\"\ndest = \"/big\"\n\
             [[layer]]\n[[layer.step]]\ncopy = \"a\"",
            server.url("/big")
        ),
    );
    std::fs::write(&recipe, text).unwrap();
    let (reference, _) = build_ok(&ctx, "reference", "out-ref", &[]);
    let cache = reg.reference("cache");

    // Killed as soon as it starts pushing the big layer (it reads the layer from its
    // cache, built already by the reference build, so it gets there at once).
    let mut writer = ctx
        .kiln()
        .args(["build", "recipe.toml", "-o", "out-w", "--cache"])
        .arg(ctx.join("reference"))
        .args(["--cache-to", &cache])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = String::new();
    {
        use std::io::BufRead as _;
        let mut lines = std::io::BufReader::new(writer.stderr.take().unwrap()).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if line.starts_with("pushing blob") && line.contains("MiB") {
                writer.kill().unwrap();
                break;
            }
        }
    }
    let status = writer.wait().unwrap();
    assert!(
        !status.success(),
        "the writer finished before it was killed:\n{seen}"
    );

    // A reader uses what the writer finished, builds the rest, and gets the same image.
    let (d, err) = build_ok(&ctx, "reader", "out-r", &["--cache-from", &cache]);
    assert_eq!(d, reference, "{err}");
    assert!(
        !remote_hits(&err).iter().any(|l| l.starts_with("layer 1/4")),
        "the big layer's record cannot be there: {err}"
    );
    assert!(
        !err.contains("warning"),
        "a missing record is a plain miss: {err}"
    );
    // And a writer that finishes completes the cache.
    build_ok(&ctx, "reference", "out-w2", &["--cache-to", &cache]);
    let (d, err) = build_ok(&ctx, "reader-2", "out-r2", &["--cache-from", &cache]);
    assert_eq!((d, remote_hits(&err).len()), (reference, 4), "{err}");
}

/// The recipe of [`write_recipe`] as `name`, with `platforms` (an `[image]` line) added.
fn write_platforms_recipe(ctx: &TestContext, server: &Server, name: &str, platforms: &str) {
    let text = std::fs::read_to_string(write_recipe(ctx, server)).unwrap();
    let text = text.replace(
        "epoch = 1700000000\n",
        &format!("epoch = 1700000000\n{platforms}\n"),
    );
    ctx.write(name, text);
}

const BOTH: &str = "platforms = [\"linux/amd64\", \"linux/arm64\"]";

/// `[image] platforms` builds one image per platform. Layers without `run` or `packages`
/// steps are the same bytes on every platform, so their keys name no platform: one record
/// serves every platform, whichever platform's build wrote it.
#[test]
fn a_multi_platform_recipe_builds_every_platform_from_the_remote_cache() {
    let reg = LocalRegistry::start(&[]);
    let server = input_server();
    let ctx = TestContext::new();
    write_platforms_recipe(&ctx, &server, "amd64.toml", "platform = \"linux/amd64\"");
    write_platforms_recipe(&ctx, &server, "recipe.toml", BOTH);
    let key_id = run_ok(ctx.kiln().args(["key", "generate", "--out", "ci"]));
    let cache = reg.reference("ci/cache");
    let keys = platform_keys(&ctx);
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1], "no layer's bytes depend on the platform");

    // Machine A builds both platforms and shares their layers, signed: the second platform's
    // push finds every blob and writes the same records.
    let (digest, a_err) = build_ok(
        &ctx,
        "machine-a",
        "out-a",
        &["--cache-to", &cache, "--cache-key", "ci.key"],
    );
    let images = index_images(&ctx.join("out-a"));
    let platforms: Vec<&str> = images.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(
        images[0].1, images[1].1,
        "the same layers on both platforms"
    );
    let pushed = format!("cache: pushed 3 layer record(s), signed to {cache}: ");
    assert_eq!(a_err.matches(&pushed).count(), 2, "{a_err}");
    assert!(
        a_err.contains(&format!("{pushed}3 blob(s) uploaded"))
            && a_err.contains(&format!("{pushed}0 blob(s) uploaded")),
        "{a_err}"
    );
    assert_eq!(tags(&reg, "ci/cache"), record_tags(&keys[0]));
    // Another writer builds linux/amd64 alone.
    let amd64_cache = reg.reference("ci/amd64");
    let out = build_recipe(
        &ctx,
        "amd64.toml",
        "amd64-writer",
        "out-amd64",
        &["--cache-to", &amd64_cache],
    );
    assert!(out.status.success(), "{}", stderr_text(&out));

    // The inputs go away; machine B, with an empty cache and trusting A's key, builds the
    // same index from the cache alone: every layer of every platform is a hit.
    server.stop();
    let requests = server.hits();
    let events = build_all_from(
        &ctx,
        "machine-b",
        &cache,
        &["--cache-trust", "ci.pub"],
        (&digest, 6),
    );
    assert_eq!(server.hits(), requests, "nothing was downloaded");
    for (i, e) in layer_events(&events).iter().enumerate() {
        let (platform, layer) = (i / 3, i % 3);
        assert_eq!(e["key"], keys[platform][layer], "{e}");
        assert_eq!(e["digest"], images[platform].1[layer], "{e}");
    }
    assert_eq!(index_images(&ctx.join("out-machine-b")), images);
    let statements = provenances(&ctx.join("out-machine-b"));
    assert_eq!(statements.len(), 2);
    for p in &statements {
        let remote = &p["predicate"]["buildDefinition"]["internalParameters"]["remoteCache"];
        let taken = remote["layers"].as_array().unwrap();
        assert_eq!(taken.len(), 3, "{remote}");
        assert!(
            taken.iter().all(|l| l["signedBy"] == key_id.trim()),
            "{remote}"
        );
    }

    // The records the linux/amd64 build wrote serve linux/arm64 as well.
    build_all_from(&ctx, "machine-c", &amd64_cache, &[], (&digest, 6));
}

/// A `packages` layer installs each platform's own `.deb`s, so its key differs per platform:
/// the records a linux/amd64 build shared never stand in for linux/arm64's layer, which is
/// built (from arm64 `.deb`s only), and the index is the one a plain local build makes.
#[test]
fn a_layer_that_differs_per_platform_is_never_taken_from_another_platforms_record() {
    let ctx = TestContext::new();
    let home = crate::deb::new_key(&ctx, "repo", "never", None);
    let root = crate::deb::make_repo(&ctx, &home, |r| r).root;
    // The repository again, through a server that records what is fetched.
    let debs = Server::start(move |r: &Req| {
        match std::fs::read(root.join(r.path().trim_start_matches('/'))) {
            Ok(body) if !r.path().contains("..") => Reply::ok(&body, &[]),
            _ => Reply::not_found(),
        }
    });
    let recipe = |platforms: &str| {
        format!(
            "[image]\nname = \"pkgs\"\nepoch = 1700000000\n{platforms}\n\n\
             [repositories.test]\nurl = \"{}\"\nsuite = \"test\"\nkeyring = \"keyring.gpg\"\n\n\
             [[layer]]\n[[layer.step]]\npackages = [\"libbar\"]\n\n\
             [[layer]]\n[[layer.step]]\nwrite = \"/etc/motd\"\ncontent = \"hi\\n\"\n",
            debs.url("")
        )
    };
    ctx.write("recipe.toml", recipe(BOTH));
    ctx.write("amd64.toml", recipe("platform = \"linux/amd64\""));
    run_ok(
        ctx.kiln()
            .args(["lock", "recipe.toml", "--cache"])
            .arg(ctx.join("lock-cache")),
    );
    std::fs::copy(ctx.join("recipe.lock"), ctx.join("amd64.lock")).unwrap();
    let keys = platform_keys(&ctx);
    assert_ne!(keys[0][0], keys[1][0], "each platform's .debs");
    assert_eq!(keys[0][1], keys[1][1], "the same file on both");
    let (reference, _) = build_ok(&ctx, "plain", "out-plain", &[]);
    let images = index_images(&ctx.join("out-plain"));
    assert_ne!(images[0].1[0], images[1].1[0]);

    // Machine A builds linux/amd64 alone and shares it.
    let reg = LocalRegistry::start(&[]);
    let cache = reg.reference("cache");
    let repo = format!("{}/cache", reg.host);
    let out = build_recipe(
        &ctx,
        "amd64.toml",
        "machine-a",
        "out-a",
        &["--cache-to", &cache],
    );
    let a_err = stderr_text(&out);
    assert!(out.status.success(), "{a_err}");
    assert!(a_err.contains("cache: pushed 2 layer record(s)"), "{a_err}");
    let a_layers: Vec<String> = layers(&ctx.join("out-a"))
        .into_iter()
        .map(|l| l.0)
        .collect();
    assert_eq!(a_layers, images[0].1);

    // Machine B builds both: linux/amd64 from the cache, linux/arm64's packages layer itself,
    // and shares what it built.
    let before = debs.hits();
    let events = json_events(build(
        &ctx,
        "machine-b",
        "out-b",
        &["--cache-from", &cache, "--cache-to", &cache, "--json"],
    ));
    assert_eq!(events.last().unwrap()["digest"], reference, "{events:?}");
    let remote: Vec<&Value> = layer_events(&events).iter().map(|e| &e["remote"]).collect();
    let hit = Value::from(repo.clone());
    assert_eq!(remote, [&hit, &hit, &Value::Null, &hit], "{events:?}");
    let uploaded: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "cache-push")
        .map(|e| &e["uploaded"])
        .collect();
    assert_eq!(uploaded, [0, 1], "arm64's packages layer: {events:?}");
    assert_eq!(index_images(&ctx.join("out-b")), images);
    let fetched: Vec<String> = debs.requests()[before..]
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    assert!(
        fetched.iter().any(|p| p.ends_with("_arm64.deb"))
            && !fetched.iter().any(|p| p.ends_with("_amd64.deb")),
        "{fetched:?}"
    );

    // A cache that cannot be reached is asked once in the build, not once per platform.
    build_from_unreachable_cache(&ctx, "machine-d", &reference);

    // One record per key (three), and with the repository gone, machine C builds both
    // platforms from the cache alone.
    let all: Vec<String> = keys.concat();
    assert_eq!(tags(&reg, "cache"), record_tags(&all));
    assert_eq!(record_tags(&all).len(), 3);
    debs.stop();
    let before = debs.hits();
    build_all_from(&ctx, "machine-c", &cache, &[], (&reference, 4));
    assert_eq!(debs.hits(), before, "no .deb was fetched");
}

/// `--cache-from oci:out` was refused as "--cache-from takes a docker://HOST/REPO reference",
/// caused by "--push takes a docker://HOST/REPO[:TAG] reference": a flag the user never gave.
#[test]
fn a_cache_flag_that_is_not_a_registry_names_that_flag() {
    let ctx = TestContext::new();
    ctx.write(
        "recipe.toml",
        "[image]\nname = \"x\"\nepoch = 1\n[[layer]]\n[[layer.step]]\nwrite = \"/x\"\ncontent = \"x\"\n",
    );
    for flag in ["--cache-from", "--cache-to"] {
        let out = build(&ctx, "cache", "out", &[flag, "oci:somewhere"]);
        let err = stderr_text(&out);
        assert!(!out.status.success(), "{flag}: {err}");
        assert!(
            err.contains(&format!(
                "{flag} takes a docker://HOST/REPO reference, not `oci:somewhere`"
            )),
            "{flag}: {err}"
        );
        assert!(!err.contains("--push"), "{flag}: {err}");
        assert!(!ctx.join("out").exists(), "{flag}");
    }
}

/// A registry that refuses pushes (read-only, 405) refuses them again a moment later: the
/// writer tried every blob four times, with waits, before its one warning.
#[test]
fn a_cache_that_refuses_pushes_is_asked_once_and_the_image_is_built() {
    let reg = LocalRegistry::start_read_only();
    let ctx = TestContext::new();
    ctx.write(
        "recipe.toml",
        "[image]\nname = \"x\"\nepoch = 1\n[[layer]]\n[[layer.step]]\nwrite = \"/a\"\ncontent = \"a\"\n[[layer]]\n[[layer.step]]\nwrite = \"/b\"\ncontent = \"b\"\n",
    );
    let (reference, _) = build_ok(&ctx, "plain", "out-plain", &[]);
    let (digest, err) = build_ok(
        &ctx,
        "cache",
        "out",
        &["--cache-to", &reg.reference("ci/cache")],
    );
    assert_eq!(digest, reference, "{err}");
    assert_eq!(
        err.matches("warning: failed to push the layer cache")
            .count(),
        1,
        "{err}"
    );
    assert!(err.contains("405"), "{err}");
    assert_eq!(
        err.matches("pushing blob ").count(),
        2,
        "one try per blob: {err}"
    );
}
