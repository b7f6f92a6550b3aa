//! Every kind of tampering `kiln verify` must catch, one test each: the tags are edited in an
//! OCI layout with plain JSON (not kiln's code), verified there, then pushed with skopeo to a
//! real registry and verified there too.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::*;
use crate::registry_support::LocalRegistry;

/// A layout `out-a` signed and attested with key `k` by `kiln build --sign-key`.
fn signed_layout(ctx: &TestContext) -> (PathBuf, String) {
    keygen(ctx, "k");
    let digest = build(ctx, "a", "a", &["--sign-key", "k.key"]);
    (ctx.join("out-a"), digest)
}

/// `kiln verify` of the image in `out-{layout}` fails with exit 1 and names the failed `check`;
/// then the same image and its (tampered) tags are pushed to a real registry with skopeo, and
/// verifying there fails the same way.
fn assert_rejected(ctx: &TestContext, layout: &str, digest: &str, extra: &[&str], check: &str) {
    let expect = |reference: String| {
        let mut args = vec![reference.as_str(), "--key", "k.pub"];
        args.extend(extra);
        let (code, out) = verify(ctx, &args);
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains(&format!(": {check}: ")),
            "expected a failed {check} check: {out}"
        );
        assert!(out.contains("NOT verified"), "{out}");
    };
    expect(format!("oci:out-{layout}:hello"));

    let registry = LocalRegistry::start(&[]);
    let repo = registry.reference("tampered/app");
    // skopeo reads tags from `index.json` only: list the side index's entries there too (the
    // older layout, which kiln reads the same way).
    let dir = ctx.join(format!("out-{layout}"));
    let mut entries = layout_entries(&dir);
    for e in &mut entries {
        if let Some(a) = e["annotations"].as_object_mut() {
            a.remove("build.kiln.referrers");
        }
    }
    let index = json!({"schemaVersion": 2, "manifests": entries});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    push(ctx, &format!("out-{layout}"), &format!("{repo}:hello"));
    for tag in [sig_tag(digest), att_tag(digest)] {
        let present = layout_entries(&ctx.join(format!("out-{layout}")))
            .iter()
            .any(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag.as_str());
        if present {
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
                    .arg(format!("oci:out-{layout}:{tag}"))
                    .arg(format!("{repo}:{tag}")),
            );
        }
    }
    expect(format!("{repo}@{digest}"));
}

#[test]
fn tampered_payload_is_rejected() {
    let ctx = TestContext::new();
    let (layout, digest) = signed_layout(&ctx);
    let mut sig = tagged_manifest(&layout, &sig_tag(&digest));
    let payload_digest = sig["layers"][0]["digest"].as_str().unwrap().to_string();
    let payload = std::fs::read_to_string(blob_path(&layout, &payload_digest)).unwrap();
    // The claimed identity changes; the signature annotation is kept.
    let forged = payload.replace("\"hello\"", "\"evil.example/hello:v1\"");
    assert_ne!(forged, payload);
    let (d, size) = put_blob(&layout, forged.as_bytes());
    sig["layers"][0]["digest"] = json!(d);
    sig["layers"][0]["size"] = json!(size);
    set_tag(&layout, &sig_tag(&digest), &sig, &layout);
    assert_rejected(&ctx, "a", &digest, &[], "signature");

    // Python `cryptography` agrees, on the same bytes.
    let python = python();
    let signature = ctx.write(
        "sig.b64",
        sig["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"]
            .as_str()
            .unwrap(),
    );
    let forged_path = ctx.write("forged.json", &forged);
    let original = ctx.write("payload.json", &payload);
    let pubkey = ctx.join("k.pub");
    for (path, want) in [(&original, 0), (&forged_path, 1)] {
        let args = [
            "sig",
            "--key",
            pubkey.to_str().unwrap(),
            "--payload",
            path.to_str().unwrap(),
            "--signature",
            signature.to_str().unwrap(),
        ];
        assert_eq!(verify_py(&python, &args, "").0, want, "{}", path.display());
    }
}

#[test]
fn signature_for_another_digest_is_rejected() {
    let ctx = TestContext::new();
    let (layout_a, digest_a) = signed_layout(&ctx);
    let digest_b = build(&ctx, "b", "b", &[]);
    assert_ne!(digest_a, digest_b);
    // A's valid signature, moved under B's tag.
    let sig = tagged_manifest(&layout_a, &sig_tag(&digest_a));
    set_tag(&ctx.join("out-b"), &sig_tag(&digest_b), &sig, &layout_a);
    assert_rejected(&ctx, "b", &digest_b, &[], "payload-digest");
}

#[test]
fn swapped_public_key_is_rejected() {
    let ctx = TestContext::new();
    let (_, digest) = signed_layout(&ctx);
    keygen(&ctx, "other");
    // The trusted key file now holds another key.
    std::fs::copy(ctx.join("other.pub"), ctx.join("k.pub")).unwrap();
    let (code, out) = verify(&ctx, &["oci:out-a:hello", "--key", "k.pub", "--json"]);
    assert_eq!(code, 1, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["verified"], false);
    assert_eq!(report["signatures"]["layers"][0]["verdict"], "rejected");
    let (_, text) = verify(&ctx, &["oci:out-a:hello", "--key", "k.pub"]);
    assert!(text.contains(": signature: "), "{text}");
    assert_rejected(&ctx, "a", &digest, &[], "signature");
}

#[test]
fn attestation_about_another_image_is_rejected() {
    let ctx = TestContext::new();
    let (layout_a, digest_a) = signed_layout(&ctx);
    // B is properly signed, but carries A's (valid, same-key) provenance.
    let digest_b = build(&ctx, "b", "b", &["--sign-key", "k.key"]);
    let att = tagged_manifest(&layout_a, &att_tag(&digest_a));
    set_tag(&ctx.join("out-b"), &att_tag(&digest_b), &att, &layout_a);
    let args = [
        "oci:out-b:hello",
        "--key",
        "k.pub",
        "--attestation",
        "slsaprovenance1",
    ];
    assert_rejected(&ctx, "b", &digest_b, &args[3..], "subject");
    // The signatures alone still verify: only the attestation check fails.
    assert_eq!(verify(&ctx, &["oci:out-b:hello", "--key", "k.pub"]).0, 0);
}

#[test]
fn truncated_signature_is_rejected() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let ctx = TestContext::new();
    let (layout, digest) = signed_layout(&ctx);
    let mut sig = tagged_manifest(&layout, &sig_tag(&digest));
    let annotation = &mut sig["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"];
    let der = b64.decode(annotation.as_str().unwrap()).unwrap();
    *annotation = json!(b64.encode(&der[..der.len() - 5]));
    set_tag(&layout, &sig_tag(&digest), &sig, &layout);
    assert_rejected(&ctx, "a", &digest, &[], "signature");
}
