//! `kiln key generate`, `kiln sign`, `kiln attest`, `kiln verify` and `kiln build --sign-key`,
//! in OCI layouts and against a real registry, checked by code kiln did not write (skopeo, and
//! Python `cryptography` + `securesystemslib` through `tests/verifiers/verify.py`). Every kind
//! of tampering the verifier must catch has its own test.
//!
//! The Python comes from `KILN_TEST_PYTHON`, else `.venv/bin/python` at the repository root
//! (`scripts/setup.sh` makes it); without it the tests fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::support::*;

mod identity;
mod platforms;
mod registry;
mod tamper;

fn recipe_text(content: &str) -> String {
    format!(
        "[image]\nname = \"hello\"\nepoch = 1700000000\n[[layer]]\n[[layer.step]]\n\
         write = \"/hello\"\ncontent = \"{content}\\n\"\n"
    )
}

/// Builds a one-file image into the layout `out-{name}`; returns its manifest digest.
pub(crate) fn build(ctx: &TestContext, name: &str, content: &str, extra: &[&str]) -> String {
    let recipe = format!("{name}.toml");
    ctx.write(&recipe, recipe_text(content));
    let out = format!("out-{name}");
    let stdout = run_ok(ctx.kiln().args(["build", &recipe, "-o", &out]).args(extra));
    last_line(&stdout)
}

/// `kiln key generate --out PREFIX` with an empty password.
pub(crate) fn keygen(ctx: &TestContext, prefix: &str) {
    run_ok(ctx.kiln().args(["key", "generate", "--out", prefix]));
}

/// Runs `kiln verify` and returns (exit code, stdout).
fn verify(ctx: &TestContext, args: &[&str]) -> (i32, String) {
    let out = ctx.kiln().arg("verify").args(args).output().unwrap();
    let code = out.status.code().unwrap();
    assert!(
        code == 0 || code == 1,
        "kiln verify {args:?} errored ({code}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, String::from_utf8(out.stdout).unwrap())
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap()
}

fn sig_tag(digest: &str) -> String {
    format!("sha256-{}.sig", hex(digest))
}

fn att_tag(digest: &str) -> String {
    format!("sha256-{}.att", hex(digest))
}

// --- OCI layout surgery, with plain JSON (not kiln's code) -----------------------------------

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(hex(digest))
}

fn put_blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let digest = format!("sha256:{}", kiln::Sha256Digest::of(bytes).hex());
    std::fs::write(blob_path(layout, &digest), bytes).unwrap();
    (digest, bytes.len())
}

/// The manifest tagged `tag` in the layout.
fn tagged_manifest(layout: &Path, tag: &str) -> Value {
    let entries = layout_entries(layout);
    let entry = entries
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no tag {tag} in {}", layout.display()));
    read_json(&blob_path(layout, entry["digest"].as_str().unwrap()))
}

/// Points `tag` at `manifest` (replacing the entry), copying the manifest's blobs from
/// `blobs_from`.
fn set_tag(layout: &Path, tag: &str, manifest: &Value, blobs_from: &Path) {
    let layers = manifest["layers"].as_array().unwrap().iter();
    for desc in layers.chain([&manifest["config"]]) {
        let d = desc["digest"].as_str().unwrap();
        if !blob_path(layout, d).exists() {
            std::fs::copy(blob_path(blobs_from, d), blob_path(layout, d)).unwrap();
        }
    }
    let (digest, size) = put_blob(layout, &serde_json::to_vec(manifest).unwrap());
    let path = layout.join("index.json");
    let mut index = read_json(&path);
    let manifests = index["manifests"].as_array_mut().unwrap();
    manifests.retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] != tag);
    manifests.push(json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest,
        "size": size,
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }));
    std::fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
}

// --- independent verifiers ---------------------------------------------------------------

/// The Python with tests/verifiers/requirements.txt; its absence fails the test.
pub(crate) fn python() -> PathBuf {
    let path = std::env::var_os("KILN_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    if path.exists() {
        return path;
    }
    let message = format!(
        "this test needs {} with tests/verifiers/requirements.txt (run scripts/setup.sh or set \
         KILN_TEST_PYTHON)",
        path.display()
    );
    panic!("{message}");
}

/// Runs tests/verifiers/verify.py; returns (exit code, stdout, stderr).
pub(crate) fn verify_py(python: &Path, args: &[&str], password: &str) -> (i32, String, String) {
    let out = Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/verifiers/verify.py"))
        .args(args)
        .env("COSIGN_PASSWORD", password)
        .output()
        .unwrap();
    let code = out.status.code().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        code == 0 || code == 1,
        "verify.py {args:?} could not run: {stderr}"
    );
    (code, stdout, stderr)
}

/// Copies the image `repo@digest` and its `.sig` / `.att` tags to `dest_repo:copied` (both
/// `docker://HOST/REPO`) with `kiln copy`, which carries attachment tags along.
fn copy_with_attachments(ctx: &TestContext, repo: &str, dest_repo: &str, digest: &str) {
    run_ok(ctx.kiln().args([
        "copy",
        "--tls-verify=false",
        &format!("{repo}@{digest}"),
        &format!("{dest_repo}:copied"),
    ]));
}

/// Pushes the layout image `oci:{layout}:hello` to `dest` (docker://…) with its digest kept.
pub(crate) fn push(ctx: &TestContext, layout: &str, dest: &str) {
    run_ok(
        tool("skopeo")
            .current_dir(ctx.path())
            .env("HOME", ctx.join("home"))
            .args([
                "copy",
                "--preserve-digests",
                "--quiet",
                "--dest-tls-verify=false",
            ])
            .arg(format!("oci:{layout}:hello"))
            .arg(dest),
    );
}

// --- keys ------------------------------------------------------------------------------------

#[test]
fn key_generate_writes_a_cosign_key_pair_that_others_can_open() {
    use std::os::unix::fs::PermissionsExt;
    let ctx = TestContext::new();
    run_ok(
        ctx.kiln()
            .args(["key", "generate", "--out", "k"])
            .env("KILN_PASSWORD", "s3cret"),
    );
    let private = std::fs::read_to_string(ctx.join("k.key")).unwrap();
    assert!(private.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
    let mode = std::fs::metadata(ctx.join("k.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let public = std::fs::read_to_string(ctx.join("k.pub")).unwrap();
    assert!(
        public.starts_with("-----BEGIN PUBLIC KEY-----\n"),
        "{public}"
    );

    // Never overwritten.
    let err = stderr(&run_err(ctx.kiln().args(["key", "generate", "--out", "k"])));
    assert!(err.contains("k.key"), "{err}");
    assert_eq!(std::fs::read_to_string(ctx.join("k.key")).unwrap(), private);

    // A wrong password is a clear error naming the key; COSIGN_PASSWORD works too.
    build(&ctx, "a", "a", &[]);
    let err = stderr(&run_err(
        ctx.kiln()
            .args(["sign", "oci:out-a:hello", "--key", "k.key"])
            .env("KILN_PASSWORD", "wrong"),
    ));
    assert!(
        err.contains("k.key")
            && err.contains("wrong password")
            && err.ends_with(
                "\nhint: an encrypted key's password is read from KILN_PASSWORD or \
                              COSIGN_PASSWORD\n"
            ),
        "{err}"
    );
    run_ok(
        ctx.kiln()
            .args(["sign", "oci:out-a:hello", "--key", "k.key"])
            .env("COSIGN_PASSWORD", "s3cret"),
    );
    assert_eq!(verify(&ctx, &["oci:out-a:hello", "--key", "k.pub"]).0, 0);

    // PyNaCl + hashlib.scrypt open kiln's key file and find the matching public key.
    let python = python();
    let key = ctx.join("k.key");
    let pubkey = ctx.join("k.pub");
    let args = [
        "cosign-decrypt",
        "--key",
        key.to_str().unwrap(),
        "--public",
        pubkey.to_str().unwrap(),
    ];
    let (code, _, err) = verify_py(&python, &args, "s3cret");
    assert_eq!(code, 0, "{err}");
}

#[test]
fn keys_from_cosign_style_and_plain_pem_files_sign() {
    let ctx = TestContext::new();
    let python = python();
    let digest = build(&ctx, "a", "a", &[]);
    // A cosign-format key written by Python, and PKCS#8 / SEC1 PEM keys from `cryptography`.
    let prefix = ctx.join("py");
    let prefix = prefix.to_str().unwrap();
    assert_eq!(
        verify_py(&python, &["cosign-encrypt", "--out", prefix], "pw").0,
        0
    );
    let plain = ctx.join("plain");
    let plain = plain.to_str().unwrap();
    assert_eq!(verify_py(&python, &["genkey", "--out", plain], "").0, 0);
    run_ok(
        ctx.kiln()
            .args(["sign", "oci:out-a:hello", "--key", &format!("{prefix}.key")])
            .env("KILN_PASSWORD", "pw"),
    );
    for key in [format!("{plain}.pkcs8.pem"), format!("{plain}.sec1.pem")] {
        run_ok(ctx.kiln().args(["sign", "oci:out-a:hello", "--key", &key]));
    }
    for public in [format!("{prefix}.pub"), format!("{plain}.pub")] {
        let (code, out) = verify(&ctx, &[&format!("oci:out-a@{digest}"), "--key", &public]);
        assert_eq!(code, 0, "{out}");
    }
}

// --- layouts ---------------------------------------------------------------------------------

#[test]
fn build_with_sign_key_signs_and_attests_into_the_layout() {
    let ctx = TestContext::new();
    keygen(&ctx, "k");
    let digest = build(&ctx, "a", "a", &["--sign-key", "k.key"]);

    let (code, out) = verify(
        &ctx,
        &[
            "oci:out-a",
            "--key",
            "k.pub",
            "--attestation",
            "slsaprovenance1",
            "--recipe",
            "a.toml",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("✓ signature {digest} by key ")),
        "{out}"
    );
    assert!(out.contains("identity hello"), "{out}");
    assert!(
        out.contains(&format!(
            "✓ attestation https://slsa.dev/provenance/v1 {digest}"
        )),
        "{out}"
    );
    let (_, json_out) = verify(
        &ctx,
        &[
            "oci:out-a",
            "--key",
            "k.pub",
            "--recipe",
            "a.toml",
            "--json",
        ],
    );
    let report: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(report["verified"], true);
    assert_eq!(report["digest"], digest.as_str());
    assert_eq!(report["signatures"]["layers"][0]["verdict"], "verified");
    assert_eq!(
        report["attestations"][0]["layers"][0]["verdict"],
        "verified"
    );

    // Signing is deterministic (RFC 6979): the same build signed with the same key is the
    // same layout, attachment tags included.
    run_ok(
        ctx.kiln()
            .args(["build", "a.toml", "-o", "again", "--sign-key", "k.key"]),
    );
    assert_eq!(
        std::fs::read(ctx.join("again/index.json")).unwrap(),
        std::fs::read(ctx.join("out-a/index.json")).unwrap()
    );

    // Another recipe's digest is not what this provenance records.
    ctx.write("other.toml", recipe_text("other"));
    let (code, out) = verify(
        &ctx,
        &["oci:out-a", "--key", "k.pub", "--recipe", "other.toml"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("recipe-digest"), "{out}");

    // The layout still has one image, which skopeo opens without a tag; the tags are in the
    // side index (README "Output layout"), where plain JSON finds them.
    let inspected: Value = serde_json::from_str(&run_ok(
        tool("skopeo")
            .current_dir(ctx.path())
            .args(["inspect", "oci:out-a"]),
    ))
    .unwrap();
    assert_eq!(inspected["Digest"], digest.as_str());
    let sig = tagged_manifest(&ctx.join("out-a"), &format!("sha256-{}.sig", hex(&digest)));
    assert_eq!(
        sig["layers"][0]["mediaType"], "application/vnd.dev.cosign.simplesigning.v1+json",
        "{sig}"
    );
    let inspect = run_ok(ctx.kiln().args(["inspect", "oci:out-a", "--json"]));
    let inspect: Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["digest"], digest.as_str());

    // Signing needs a layout: other formats are refused before anything is built.
    let err = stderr(&run_err(ctx.kiln().args([
        "build",
        "a.toml",
        "-o",
        "a.tar",
        "--format",
        "docker-archive",
        "--sign-key",
        "k.key",
    ])));
    assert!(err.contains("--format oci"), "{err}");
    assert!(!ctx.join("a.tar").exists());
}

#[test]
fn sign_appends_to_the_signatures_already_there() {
    let ctx = TestContext::new();
    keygen(&ctx, "k1");
    keygen(&ctx, "k2");
    keygen(&ctx, "never");
    let digest = build(&ctx, "a", "a", &[]);
    let (code, out) = verify(&ctx, &["oci:out-a:hello", "--key", "k1.pub"]);
    assert_eq!(code, 1, "unsigned images do not verify: {out}");
    assert!(out.contains("no signature"), "{out}");

    for key in ["k1.key", "k2.key", "k1.key"] {
        let stdout = run_ok(ctx.kiln().args(["sign", "oci:out-a:hello", "--key", key]));
        assert_eq!(last_line(&stdout), digest);
    }
    let sig = tagged_manifest(&ctx.join("out-a"), &format!("sha256-{}.sig", hex(&digest)));
    assert_eq!(
        sig["layers"].as_array().unwrap().len(),
        2,
        "k1 twice is one signature"
    );
    for key in ["k1.pub", "k2.pub"] {
        let (code, out) = verify(&ctx, &[&format!("oci:out-a@{digest}"), "--key", key]);
        assert_eq!(code, 0, "{key}: {out}");
    }
    let (code, out) = verify(&ctx, &["oci:out-a:hello", "--key", "never.pub"]);
    assert_eq!(code, 1, "{out}");
    let entries = layout_entries(&ctx.join("out-a"));
    let tags: Vec<&str> = entries
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .collect();
    assert_eq!(tags, ["hello", &format!("sha256-{}.sig", hex(&digest))]);
}

#[test]
fn attest_writes_a_dsse_statement_that_securesystemslib_verifies() {
    let ctx = TestContext::new();
    keygen(&ctx, "k");
    let digest = build(&ctx, "a", "a", &[]);
    ctx.write("sbom.json", r#"{"spdxVersion":"SPDX-2.3","name":"hello"}"#);
    run_ok(ctx.kiln().args([
        "attest",
        "oci:out-a:hello",
        "--key",
        "k.key",
        "--predicate",
        "sbom.json",
        "--type",
        "spdxjson",
    ]));
    // `verify` always requires a signature too.
    let args = [
        "oci:out-a:hello",
        "--key",
        "k.pub",
        "--attestation",
        "spdxjson",
    ];
    let (code, out) = verify(&ctx, &args);
    assert_eq!(code, 1, "{out}");
    run_ok(
        ctx.kiln()
            .args(["sign", "oci:out-a:hello", "--key", "k.key"]),
    );
    let (code, out) = verify(&ctx, &args);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("✓ attestation https://spdx.dev/Document"),
        "{out}"
    );
    let (code, out) = verify(
        &ctx,
        &[
            "oci:out-a:hello",
            "--key",
            "k.pub",
            "--attestation",
            "cyclonedx",
        ],
    );
    assert_eq!(code, 1, "no CycloneDX attestation: {out}");
    let layout = ctx.join("out-a");
    let att = tagged_manifest(&layout, &format!("sha256-{}.att", hex(&digest)));
    let layer = &att["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.dsse.envelope.v1+json");
    assert_eq!(
        layer["annotations"]["predicateType"],
        "https://spdx.dev/Document"
    );
    let envelope = blob_path(&layout, layer["digest"].as_str().unwrap());
    let python = python();
    let pubkey = ctx.join("k.pub");
    let args = [
        "dsse",
        "--key",
        pubkey.to_str().unwrap(),
        "--envelope",
        envelope.to_str().unwrap(),
        "--payload-type",
        "application/vnd.in-toto+json",
    ];
    let (code, stdout, err) = verify_py(&python, &args, "");
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("\"verified\": true"), "{stdout}");
}
