//! The `docker://` transport end to end: the real `kiln` binary against a real CNCF
//! distribution registry (`docker-registry`, started per test on 127.0.0.1 and a free port),
//! with skopeo as the independent reader, plus a deliberately lying server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;

use serde_json::Value;

use crate::registry_support::LocalRegistry;
use crate::support::*;

const RECIPE_A: &str = r#"
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

fn recipe_b(base: &str) -> String {
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

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// Builds recipe A and pushes it to `reference`; returns its digest.
fn build_and_push_a(ctx: &TestContext, reference: &str) -> String {
    ctx.write("a/recipe.toml", RECIPE_A);
    last_line(&run_ok(ctx.kiln().args([
        "build",
        "a/recipe.toml",
        "-o",
        "a-oci",
        "--push",
        reference,
    ])))
}

fn cache_blobs(root: &Path) -> Vec<String> {
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
fn put_blob(layout: &Path, bytes: &[u8]) -> String {
    let d = kiln::digest::Sha256Digest::of(bytes).hex();
    std::fs::write(layout.join(format!("blobs/sha256/{d}")), bytes).unwrap();
    format!("sha256:{d}")
}

/// Appends `entry` to the layout's `index.json`.
fn add_index_entry(layout: &Path, entry: Value) {
    let index_path = layout.join("index.json");
    let mut index = json(&std::fs::read_to_string(&index_path).unwrap());
    index["manifests"].as_array_mut().unwrap().push(entry);
    std::fs::write(&index_path, index.to_string()).unwrap();
}

fn read_blob_json(layout: &Path, digest: &str) -> Value {
    json(&std::fs::read_to_string(layout.join(format!("blobs/sha256/{}", &digest[7..]))).unwrap())
}

#[test]
fn push_build_on_registry_base_push_pull_same_digest() {
    let Some(reg) = LocalRegistry::start(&[]) else {
        return;
    };
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
    let Some(reg) = LocalRegistry::start(&[]) else {
        return;
    };
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
    let layout_index = json(&std::fs::read_to_string(ctx.join("back/index.json")).unwrap());
    assert!(
        layout_index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["artifactType"] == "application/vnd.in-toto+json"),
        "the provenance came along: {layout_index}"
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
    let Some(reg) = LocalRegistry::start(&[]) else {
        return;
    };
    let ctx = TestContext::new();
    ctx.write("a/recipe.toml", RECIPE_A);
    let a = last_line(&run_ok(ctx.kiln().args([
        "build",
        "a/recipe.toml",
        "-o",
        "a-oci",
    ])));
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
    let back = std::fs::read_to_string(ctx.join("back/index.json")).unwrap();
    assert!(back.contains(&sig_tag), "{back}");
    assert!(back.contains(&manifest_digest), "{back}");
}

#[test]
fn basic_auth_registry_works_with_an_auth_file_and_fails_clearly_without() {
    let Some(reg) = LocalRegistry::start(&[("kiln", "s3cret")]) else {
        return;
    };
    let ctx = TestContext::new();
    ctx.write("a/recipe.toml", RECIPE_A);
    let a_ref = reg.reference("private/a:v1");

    // No credentials: a clear error naming the registry, nothing pushed.
    let out = run_err(
        ctx.kiln()
            .args(["build", "a/recipe.toml", "-o", "a-oci", "--push", &a_ref]),
    );
    let err = stderr(&out);
    assert!(err.contains(&reg.host), "{err}");
    assert!(err.contains("401") || err.contains("authenticat"), "{err}");

    // Wrong password: refused too.
    let bad_dir = ctx.join("bad");
    std::fs::create_dir_all(&bad_dir).unwrap();
    let bad = reg.write_auth_file(&bad_dir, "kiln", "wrong");
    let out = run_err(
        ctx.kiln()
            .args(["copy", "oci:a-oci:a", &a_ref])
            .env("REGISTRY_AUTH_FILE", &bad),
    );
    assert!(stderr(&out).contains(&reg.host), "{}", stderr(&out));

    // $REGISTRY_AUTH_FILE works for push, --authfile for inspect.
    let auth = reg.write_auth_file(ctx.path(), "kiln", "s3cret");
    let digest = last_line(&run_ok(
        ctx.kiln()
            .args(["copy", "oci:a-oci:a", &a_ref])
            .env("REGISTRY_AUTH_FILE", &auth),
    ));
    let inspect = json(&run_ok(
        ctx.kiln()
            .args(["inspect", "--json", &a_ref])
            .arg("--authfile")
            .arg(&auth),
    ));
    assert_eq!(inspect["digest"], digest);
    let out = run_err(ctx.kiln().args(["inspect", "--json", &a_ref]));
    assert!(stderr(&out).contains(&reg.host), "{}", stderr(&out));
}

#[test]
fn blob_altered_in_registry_storage_is_refused_and_nothing_is_written() {
    let Some(reg) = LocalRegistry::start(&[]) else {
        return;
    };
    let ctx = TestContext::new();
    let a_ref = reg.reference("kiln/a:v1");
    let a = build_and_push_a(&ctx, &a_ref);
    let manifest = json(
        &std::fs::read_to_string(ctx.join(format!("a-oci/blobs/sha256/{}", &a[7..]))).unwrap(),
    );
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    // Flip one byte inside the registry's own storage (same length, so only the digest can
    // tell).
    let path = reg.blob_path(&layer[7..]);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();

    let fresh = TestContext::new();
    let out = run_err(fresh.kiln().args(["copy", &a_ref, "oci:pulled"]));
    let err = stderr(&out);
    assert!(err.contains(&layer), "the error names the blob: {err}");
    assert!(
        !fresh.join("pulled/index.json").exists(),
        "no layout was completed"
    );
    assert!(
        !cache_blobs(&fresh.join("xdg-cache")).contains(&layer[7..].to_string()),
        "the bad blob never entered the cache"
    );

    // A build whose base is that image fails the same way.
    fresh.write("b/recipe.toml", recipe_b(&format!("{a_ref}@{a}")));
    let out = run_err(fresh.kiln().args(["build", "b/recipe.toml", "-o", "b-oci"]));
    assert!(stderr(&out).contains(&layer), "{}", stderr(&out));
    assert!(!fresh.join("b-oci").exists());
}

/// A registry that answers every manifest request with `body`, claiming (in
/// `Docker-Content-Digest`) whatever digest was asked for.
fn lying_registry(body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            let asked = path.rsplit('/').next().unwrap_or("").to_string();
            let response = if path.contains("/manifests/") {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nDocker-Content-Digest: {asked}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else if path == "/v2/" {
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            };
            let _ = stream.write_all(response.as_bytes());
            let _ = stream.flush();
            let mut rest = Vec::new();
            let _ = reader.get_mut().read_to_end(&mut rest);
        }
    });
    host
}

#[test]
fn copy_from_a_lying_registry_leaves_nothing_in_the_cache_or_destination() {
    // SECURITY.md 16: a pull by digest answered with another manifest, even with a matching
    // Docker-Content-Digest header.
    let host = lying_registry(
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#,
    );
    let ctx = TestContext::new();
    let pinned = format!("docker://{host}/evil/image@sha256:{}", "a".repeat(64));
    for dest in [
        "oci:out",
        "oci-archive:out.tar",
        "docker-archive:out-docker.tar",
    ] {
        let out = run_err(ctx.kiln().args(["copy", &pinned, dest]));
        let err = stderr(&out);
        assert!(err.contains(&"a".repeat(64)), "{dest}: {err}");
    }
    assert!(!ctx.join("out").exists());
    assert!(!ctx.join("out.tar").exists());
    assert!(!ctx.join("out-docker.tar").exists());
    assert_eq!(cache_blobs(&ctx.join("xdg-cache")), Vec::<String>::new());

    // A tag is resolved, but a manifest that lies about its media type is refused (SECURITY 19).
    let host =
        lying_registry(r#"{"schemaVersion":1,"name":"evil/image","tag":"v1","fsLayers":[]}"#);
    let out =
        run_err(
            ctx.kiln()
                .args(["copy", &format!("docker://{host}/evil/image:v1"), "oci:out"]),
        );
    assert!(stderr(&out).contains(&host), "{}", stderr(&out));
    assert!(!ctx.join("out").exists());
    assert_eq!(cache_blobs(&ctx.join("xdg-cache")), Vec::<String>::new());
}

#[test]
fn offline_refuses_tags_and_uncached_digests_with_a_hint() {
    let ctx = TestContext::new();
    let out = run_err(ctx.kiln().args([
        "copy",
        "--offline",
        "docker://127.0.0.1:9/kiln/a:v1",
        "oci:out",
    ]));
    assert!(stderr(&out).contains("--offline"), "{}", stderr(&out));
    let out = run_err(ctx.kiln().args([
        "copy",
        "--offline",
        &format!("docker://127.0.0.1:9/kiln/a@sha256:{}", "b".repeat(64)),
        "oci:out",
    ]));
    assert!(
        stderr(&out).contains("not in the cache"),
        "{}",
        stderr(&out)
    );
    assert!(!ctx.join("out").exists());
}

#[test]
fn multi_platform_index_base_is_pinned_as_the_index_and_resolved_to_the_platform() {
    let Some(reg) = LocalRegistry::start(&[]) else {
        return;
    };
    let ctx = TestContext::new();
    ctx.write("a/recipe.toml", RECIPE_A);
    let a = last_line(&run_ok(ctx.kiln().args([
        "build",
        "a/recipe.toml",
        "-o",
        "a-oci",
    ])));
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
fn layer_that_contradicts_the_config_diff_ids_is_refused_on_pull() {
    // SECURITY.md 18, end to end: an image whose config lies about a layer's diff_id.
    let Some(reg) = LocalRegistry::start(&[]) else {
        return;
    };
    let ctx = TestContext::new();
    ctx.write("a/recipe.toml", RECIPE_A);
    let a = last_line(&run_ok(ctx.kiln().args([
        "build",
        "a/recipe.toml",
        "-o",
        "a-oci",
    ])));
    let layout = ctx.join("a-oci");
    let mut manifest = read_blob_json(&layout, &a);
    let mut config = read_blob_json(&layout, manifest["config"]["digest"].as_str().unwrap());
    config["rootfs"]["diff_ids"][0] = Value::from(format!("sha256:{}", "0".repeat(64)));
    let config_bytes = config.to_string();
    manifest["config"]["digest"] = Value::from(put_blob(&layout, config_bytes.as_bytes()));
    manifest["config"]["size"] = Value::from(config_bytes.len());
    let manifest_bytes = manifest.to_string();
    let lying = put_blob(&layout, manifest_bytes.as_bytes());
    add_index_entry(
        &layout,
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": lying,
            "size": manifest_bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "lying"},
        }),
    );
    let lying_ref = reg.reference("kiln/lying:v1");
    run_ok(ctx.kiln().args(["copy", "oci:a-oci:lying", &lying_ref]));

    let fresh = TestContext::new();
    let out = run_err(fresh.kiln().args(["copy", &lying_ref, "oci:out"]));
    let err = stderr(&out);
    assert!(err.contains("diff_id"), "{err}");
    assert!(!fresh.join("out").exists());
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    assert!(
        !cache_blobs(&fresh.join("xdg-cache")).contains(&layer[7..].to_string()),
        "the layer was not committed to the cache"
    );
    // Writing a docker archive (which needs the diff_ids) refuses it locally too.
    let out = run_err(
        ctx.kiln()
            .args(["copy", "oci:a-oci:lying", "docker-archive:x.tar"]),
    );
    assert!(stderr(&out).contains("diff_id"), "{}", stderr(&out));
    assert!(!ctx.join("x.tar").exists());
}

#[test]
fn signed_build_pushed_and_copied_still_verifies() {
    let Some(reg) = LocalRegistry::start(&[]) else {
        return;
    };
    let ctx = TestContext::new();
    run_ok(ctx.kiln().args(["key", "generate", "--out", "k"]));
    ctx.write("a/recipe.toml", RECIPE_A);
    let signed = reg.reference("kiln/signed:v1");
    let a = last_line(&run_ok(ctx.kiln().args([
        "build",
        "a/recipe.toml",
        "-o",
        "a-oci",
        "--sign-key",
        "k.key",
        "--push",
        &signed,
    ])));
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
