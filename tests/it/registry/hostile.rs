//! Registries that lie or refuse: credentials required, bytes altered in the registry's own
//! storage, a server that answers with other manifests, layers that contradict the config,
//! and no network at all (SECURITY.md 16–21, end to end through the CLI).

use serde_json::Value;

use super::{
    add_index_entry, build_a, build_and_push_a, cache_blobs, json, put_blob, read_blob_json,
    recipe_b, RECIPE_A,
};
use crate::http_server::{Reply, Req, Server};
use crate::registry_support::LocalRegistry;
use crate::support::*;

#[test]
fn basic_auth_registry_works_with_an_auth_file_and_fails_clearly_without() {
    let reg = LocalRegistry::start(&[("kiln", "s3cret")]);
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
    let reg = LocalRegistry::start(&[]);
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
fn lying_registry(body: &'static str) -> Server {
    Server::start(move |r: &Req| {
        let path = r.path();
        let asked = path.rsplit('/').next().unwrap_or("");
        if path.contains("/manifests/") {
            Reply::ok(
                body.as_bytes(),
                &[
                    ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                    ("Docker-Content-Digest", asked),
                ],
            )
        } else if path == "/v2/" {
            Reply::ok(b"", &[])
        } else {
            Reply::status(404, b"", &[])
        }
    })
}

#[test]
fn copy_from_a_lying_registry_leaves_nothing_in_the_cache_or_destination() {
    // SECURITY.md 16: a pull by digest answered with another manifest, even with a matching
    // Docker-Content-Digest header.
    let server = lying_registry(
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#,
    );
    let host = server.host();
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
    let server =
        lying_registry(r#"{"schemaVersion":1,"name":"evil/image","tag":"v1","fsLayers":[]}"#);
    let host = server.host();
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
fn layer_that_contradicts_the_config_diff_ids_is_refused_on_pull() {
    // SECURITY.md 18, end to end: an image whose config lies about a layer's diff_id.
    let reg = LocalRegistry::start(&[]);
    let ctx = TestContext::new();
    let a = build_a(&ctx, &[]);
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
