//! The `docker://` transport end to end: the real `kiln` binary against a real CNCF
//! distribution registry (`docker-registry`, started per test on 127.0.0.1 and a free port),
//! with skopeo as the independent reader. Hostile registries are in [`hostile`].

mod hostile;

use std::path::Path;

use serde_json::Value;

use crate::registry_support::LocalRegistry;
use crate::support::*;

pub(super) const RECIPE_A: &str = r#"
[image]
name = "a"
epoch = 1700000000
[[layer]]
[[layer.step]]
write = "/etc/motd"
content = "hello from a\n"
[[layer.step]]
mkdir = "/tmp"
mode = "1777"
[config]
cmd = ["/bin/sh"]
env = { PATH = "/usr/bin:/bin" }
"#;

pub(super) fn recipe_b(base: &str) -> String {
    format!(
        r#"
[image]
name = "b"
epoch = 1700000000
[base]
# the base image, pushed by the test
ref = "{base}"
[[layer]]
[[layer.step]]
write = "/etc/b"
content = "b on top of a\n"
[config]
labels = {{ "org.example.layer" = "b" }}
"#
    )
}

pub(super) fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// Builds recipe A into `a-oci` with `extra` build arguments; returns its digest.
pub(super) fn build_a(ctx: &TestContext, extra: &[&str]) -> String {
    ctx.write("a/recipe.toml", RECIPE_A);
    last_line(&run_ok(
        ctx.kiln()
            .args(["build", "a/recipe.toml", "-o", "a-oci"])
            .args(extra),
    ))
}

/// Builds recipe A and pushes it to `reference`; returns its digest.
pub(super) fn build_and_push_a(ctx: &TestContext, reference: &str) -> String {
    build_a(ctx, &["--push", reference])
}

pub(super) fn cache_blobs(root: &Path) -> Vec<String> {
    let dir = root.join("kiln/blobs/sha256");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Writes `bytes` as a blob of the layout at `layout`; returns `sha256:…`.
pub(super) fn put_blob(layout: &Path, bytes: &[u8]) -> String {
    let d = kiln::Sha256Digest::of(bytes).hex();
    std::fs::write(layout.join(format!("blobs/sha256/{d}")), bytes).unwrap();
    format!("sha256:{d}")
}

/// Appends `entry` to the layout's `index.json`.
pub(super) fn add_index_entry(layout: &Path, entry: Value) {
    let index_path = layout.join("index.json");
    let mut index = json(&std::fs::read_to_string(&index_path).unwrap());
    index["manifests"].as_array_mut().unwrap().push(entry);
    std::fs::write(&index_path, index.to_string()).unwrap();
}

pub(super) fn read_blob_json(layout: &Path, digest: &str) -> Value {
    json(&std::fs::read_to_string(layout.join(format!("blobs/sha256/{}", &digest[7..]))).unwrap())
}

#[test]
fn push_build_on_registry_base_push_pull_same_digest() {
    let reg = LocalRegistry::start(&[]);
    let ctx = TestContext::new();
    let a_ref = reg.reference("kiln/a:v1");
    let a = build_and_push_a(&ctx, &a_ref);
    assert!(a.starts_with("sha256:"), "{a}");

    // skopeo, an independent reader, agrees with kiln inspect.
    let skopeo = json(&run_ok(
        tool("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(&a_ref),
    ));
    let kiln = json(&run_ok(ctx.kiln().args(["inspect", "--json", &a_ref])));
    assert_eq!(skopeo["Digest"], a);
    assert_eq!(kiln["digest"], a);
    let kiln_layers: Vec<Value> = kiln["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].clone())
        .collect();
    assert_eq!(skopeo["Layers"], Value::Array(kiln_layers));
    assert_eq!(
        format!(
            "{}/{}",
            skopeo["Os"].as_str().unwrap(),
            skopeo["Architecture"].as_str().unwrap()
        ),
        kiln["platform"]
    );
    assert_eq!(skopeo["Env"], kiln["config"]["Env"]);
    assert_eq!(skopeo["Created"], kiln["created"]);
    // The provenance travelled as a referrer (fallback tag index on this registry).
    let referrers = kiln["referrers"].as_array().unwrap();
    assert_eq!(referrers.len(), 1, "{kiln}");
    assert_eq!(
        referrers[0]["predicateType"],
        "https://slsa.dev/provenance/v1"
    );

    // A recipe whose base is that image: `kiln lock` pins the tag to the digest.
    ctx.write("b/recipe.toml", recipe_b(&a_ref));
    run_ok(ctx.kiln().args(["lock", "b/recipe.toml"]));
    let locked = std::fs::read_to_string(ctx.join("b/recipe.toml")).unwrap();
    assert!(
        locked.contains(&format!("ref = \"{a_ref}@{a}\"")),
        "{locked}"
    );
    assert!(
        locked.contains("# the base image, pushed by the test"),
        "comments kept"
    );

    // Build it (fresh cache: the base is pulled), push the result, pull it back.
    let b_ref = reg.reference("kiln/b:v1");
    let b = last_line(&run_ok(ctx.kiln().args([
        "build",
        "b/recipe.toml",
        "-o",
        "b-oci",
        "--push",
        &b_ref,
    ])));
    let pulled = last_line(&run_ok(ctx.kiln().args(["copy", &b_ref, "oci:pulled:b"])));
    assert_eq!(pulled, b);
    let skopeo_local = json(&run_ok(
        tool("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:b", ctx.join("pulled").display())),
    ));
    assert_eq!(skopeo_local["Digest"], b);
    assert_eq!(
        std::fs::read(ctx.join(format!("pulled/blobs/sha256/{}", &b[7..]))).unwrap(),
        std::fs::read(ctx.join(format!("b-oci/blobs/sha256/{}", &b[7..]))).unwrap(),
        "the pulled manifest is byte-identical to the built one"
    );

    // `kiln fetch` fills another cache with the base, for a later offline build.
    run_ok(
        ctx.kiln()
            .args(["fetch", "b/recipe.toml", "--cache", "other-cache"]),
    );

    // The base now lives in the cache: the same build works offline, same digest, with the
    // registry gone.
    drop(reg);
    let fetched = last_line(&run_ok(ctx.kiln().args([
        "build",
        "b/recipe.toml",
        "-o",
        "b-fetched",
        "--offline",
        "--cache",
        "other-cache",
    ])));
    assert_eq!(fetched, b);
    let again = last_line(&run_ok(ctx.kiln().args([
        "build",
        "b/recipe.toml",
        "-o",
        "b-offline",
        "--offline",
    ])));
    assert_eq!(again, b);
    // Online too: a cached, pinned base needs no request at all.
    let online = last_line(&run_ok(ctx.kiln().args([
        "build",
        "b/recipe.toml",
        "-o",
        "b-online",
    ])));
    assert_eq!(online, b);
}

#[test]
fn copy_carries_the_digest_across_every_transport_and_mounts_within_a_registry() {
    let reg = LocalRegistry::start(&[]);
    let ctx = TestContext::new();
    let a = build_and_push_a(&ctx, &reg.reference("kiln/a:v1"));

    // oci → oci-archive → docker:// (another repo) → oci: the digest never changes.
    let step = |src: &str, dst: &str| last_line(&run_ok(ctx.kiln().args(["copy", src, dst])));
    assert_eq!(step("oci:a-oci:a", "oci-archive:a.tar:a"), a);
    let out = run_ok(ctx.kiln().args([
        "copy",
        "oci-archive:a.tar:a",
        &reg.reference("kiln/from-archive:v1"),
    ]));
    assert_eq!(last_line(&out), a);
    assert_eq!(
        step(&reg.reference("kiln/from-archive:v1"), "oci:back:v1"),
        a
    );
    let entries = layout_entries(&ctx.join("back"));
    assert!(
        entries
            .iter()
            .any(|m| m["artifactType"] == "application/vnd.in-toto+json"),
        "the provenance came along: {entries:?}"
    );

    // An existing layout keeps its other images.
    ctx.write("b/recipe.toml", recipe_b(&format!("oci:../a-oci:a@{a}")));
    let b = last_line(&run_ok(ctx.kiln().args([
        "build",
        "b/recipe.toml",
        "-o",
        "b-oci",
    ])));
    assert_eq!(step("oci:a-oci:a", "oci:shared:one"), a);
    assert_eq!(step("oci:b-oci:b", "oci:shared:two"), b);
    // An oci-archive base gives the same image as the layout it was made from.
    ctx.write(
        "c/recipe.toml",
        recipe_b(&format!("oci-archive:../a.tar:a@{a}")),
    );
    let c = last_line(&run_ok(ctx.kiln().args([
        "build",
        "c/recipe.toml",
        "-o",
        "c-oci",
    ])));
    let c_manifest = read_blob_json(&ctx.join("c-oci"), &c);
    let b_manifest = read_blob_json(&ctx.join("b-oci"), &b);
    assert_eq!(c_manifest["layers"], b_manifest["layers"]);
    assert_eq!(c_manifest["config"], b_manifest["config"]);
    for (tag, want) in [("one", &a), ("two", &b)] {
        let v = json(&run_ok(
            tool("skopeo")
                .arg("inspect")
                .arg(format!("oci:{}:{tag}", ctx.join("shared").display())),
        ));
        assert_eq!(&v["Digest"], want, "{tag}");
    }

    // Within one registry, blobs are mounted, not uploaded.
    let out = ctx
        .kiln()
        .args([
            "copy",
            &reg.reference("kiln/a:v1"),
            &reg.reference("mirror/a:v1"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("0 blob(s) uploaded, 2 mounted"),
        "{}",
        stderr(&out)
    );
    // Copying again uploads nothing: every blob exists.
    let out = ctx
        .kiln()
        .args([
            "copy",
            &reg.reference("kiln/a:v1"),
            &reg.reference("mirror/a:v1"),
        ])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("0 blob(s) uploaded, 0 mounted, 2 already there"),
        "{}",
        stderr(&out)
    );

    // docker-archive: skopeo reads it, its layers are the diff_ids, and reading it back
    // gives the same config.
    assert_eq!(
        step(&reg.reference("kiln/a:v1"), "docker-archive:a-docker.tar"),
        a
    );
    let skopeo = json(&run_ok(tool("skopeo").arg("inspect").arg(format!(
        "docker-archive:{}",
        ctx.join("a-docker.tar").display()
    ))));
    let kiln = json(&run_ok(ctx.kiln().args([
        "inspect",
        "--json",
        "oci:a-oci:a",
    ])));
    let diff_ids: Vec<Value> = kiln["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["diffId"].clone())
        .collect();
    assert_eq!(skopeo["Layers"], Value::Array(diff_ids));
    let from_docker = json(&run_ok(ctx.kiln().args([
        "inspect",
        "--json",
        "docker-archive:a-docker.tar",
    ])));
    assert_eq!(from_docker["configDigest"], kiln["configDigest"]);
}

#[test]
fn cosign_style_signature_tags_are_carried_by_copy() {
    let reg = LocalRegistry::start(&[]);
    let ctx = TestContext::new();
    let a = build_a(&ctx, &[]);
    // Attach a signature the way the signing commands store it in a layout: an index entry
    // tagged `sha256-<hex>.sig`.
    let layout = ctx.join("a-oci");
    let put = |bytes: &[u8]| put_blob(&layout, bytes);
    let payload = br#"{"critical":{}}"#;
    let payload_digest = put(payload);
    let config = format!(
        r#"{{"architecture":"","os":"","rootfs":{{"type":"layers","diff_ids":["{payload_digest}"]}},"config":{{}}}}"#
    );
    let config_digest = put(config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"{payload_digest}","size":{},"annotations":{{"dev.cosignproject.cosign/signature":"MEUC"}}}}]}}"#,
        config.len(),
        payload.len()
    );
    let manifest_digest = put(manifest.as_bytes());
    let sig_tag = format!("sha256-{}.sig", &a[7..]);
    let index_path = ctx.join("a-oci/index.json");
    let mut index = json(&std::fs::read_to_string(&index_path).unwrap());
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": sig_tag},
        }));
    std::fs::write(&index_path, index.to_string()).unwrap();

    let a_ref = reg.reference("kiln/signed:v1");
    let out = run_ok(ctx.kiln().args(["copy", "oci:a-oci:a", &a_ref]));
    assert_eq!(last_line(&out), a);
    let tags = json(&run_ok(
        tool("skopeo")
            .args(["list-tags", "--tls-verify=false"])
            .arg(reg.reference("kiln/signed")),
    ));
    assert!(
        tags["Tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == &Value::from(sig_tag.clone())),
        "{tags}"
    );
    // And back into a new layout, where the tag is an index entry again.
    run_ok(ctx.kiln().args(["copy", &a_ref, "oci:back"]));
    let back = serde_json::to_string(&layout_entries(&ctx.join("back"))).unwrap();
    assert!(back.contains(&sig_tag), "{back}");
    assert!(back.contains(&manifest_digest), "{back}");
}

#[test]
fn multi_platform_index_base_is_pinned_as_the_index_and_resolved_to_the_platform() {
    let reg = LocalRegistry::start(&[]);
    let ctx = TestContext::new();
    let a = build_a(&ctx, &[]);
    let layout = ctx.join("a-oci");
    let platform = json(&run_ok(ctx.kiln().args([
        "inspect",
        "--json",
        "oci:a-oci:a",
    ])))["platform"]
        .as_str()
        .unwrap()
        .to_string();
    let (os, arch) = platform.split_once('/').unwrap();
    let manifest_size = std::fs::metadata(layout.join(format!("blobs/sha256/{}", &a[7..])))
        .unwrap()
        .len();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": a,
            "size": manifest_size,
            "platform": {"os": os, "architecture": arch},
        }],
    })
    .to_string();
    let index_digest = put_blob(&layout, index.as_bytes());
    add_index_entry(
        &layout,
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest,
            "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }),
    );
    let multi = reg.reference("kiln/multi:v1");
    run_ok(
        tool("skopeo")
            .args([
                "copy",
                "--all",
                "--preserve-digests",
                "--dest-tls-verify=false",
            ])
            .arg(format!("oci:{}:multi", layout.display()))
            .arg(&multi),
    );

    let inspect = json(&run_ok(ctx.kiln().args(["inspect", "--json", &multi])));
    assert_eq!(inspect["digest"], a, "the platform's manifest");
    assert_eq!(inspect["resolvedDigest"], index_digest, "through the index");
    let out = run_err(
        ctx.kiln()
            .args(["inspect", &multi, "--platform", "linux/s390x"]),
    );
    assert!(stderr(&out).contains("s390x"), "{}", stderr(&out));

    ctx.write("b/recipe.toml", recipe_b(&multi));
    run_ok(ctx.kiln().args(["lock", "b/recipe.toml"]));
    let locked = std::fs::read_to_string(ctx.join("b/recipe.toml")).unwrap();
    assert!(
        locked.contains(&format!("{multi}@{index_digest}")),
        "{locked}"
    );
    let b = last_line(&run_ok(ctx.kiln().args([
        "build",
        "b/recipe.toml",
        "-o",
        "b-oci",
    ])));
    let b_manifest = read_blob_json(&ctx.join("b-oci"), &b);
    assert_eq!(
        b_manifest["annotations"]["org.opencontainers.image.base.digest"], a,
        "{b_manifest}"
    );
}

#[test]
fn signed_build_pushed_and_copied_still_verifies() {
    let reg = LocalRegistry::start(&[]);
    let ctx = TestContext::new();
    run_ok(ctx.kiln().args(["key", "generate", "--out", "k"]));
    let signed = reg.reference("kiln/signed:v1");
    let a = build_a(&ctx, &["--sign-key", "k.key", "--push", &signed]);
    let verify = |reference: &str| {
        let out = run_ok(ctx.kiln().args([
            "verify",
            reference,
            "--key",
            "k.pub",
            "--attestation",
            "slsaprovenance1",
        ]));
        assert!(
            out.contains(&format!("signature {a}")),
            "{reference}: {out}"
        );
    };
    verify(&signed);
    // Registry to registry (mounted), and back into a layout: signatures and attestations
    // travel with the image.
    let copied = reg.reference("other/signed:v2");
    assert_eq!(
        last_line(&run_ok(ctx.kiln().args(["copy", &signed, &copied]))),
        a
    );
    verify(&copied);
    assert_eq!(
        last_line(&run_ok(ctx.kiln().args(["copy", &copied, "oci:back"]))),
        a
    );
    verify("oci:back");
}
