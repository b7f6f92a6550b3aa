//! Against a real registry: sign, attest, verify, copy to another repository with the
//! attachment tags, verify there; Python verifiers fetch the tags over HTTP.

use serde_json::{json, Value};

use super::*;
use crate::registry_support::LocalRegistry;

#[test]
fn registry_sign_attest_verify_copy_and_verify_again() {
    let ctx = TestContext::new();
    let registry = LocalRegistry::start(&[]);
    keygen(&ctx, "k1");
    keygen(&ctx, "k2");
    let digest = build(&ctx, "a", "a", &[]);
    let repo = registry.reference("team/app");
    push(&ctx, "out-a", &format!("{repo}:v1"));

    // Sign by tag (twice, two keys: appended), attest a provenance predicate by digest.
    let stdout = run_ok(
        ctx.kiln()
            .args(["sign", &format!("{repo}:v1"), "--key", "k1.key"]),
    );
    assert_eq!(last_line(&stdout), digest);
    run_ok(
        ctx.kiln()
            .args(["sign", &format!("{repo}@{digest}"), "--key", "k2.key"]),
    );
    let recipe_sha256 = kiln::Sha256Digest::of(&std::fs::read(ctx.join("a.toml")).unwrap()).hex();
    ctx.write(
        "provenance.json",
        serde_json::to_vec(&json!({
            "buildDefinition": {
                "buildType": "https://kiln.build/recipe/v1",
                "externalParameters": {"recipe": {"uri": "a.toml", "digest": {"sha256": recipe_sha256}}},
            },
            "runDetails": {"builder": {"id": "https://kiln.build/builder/v1"}},
        }))
        .unwrap(),
    );
    run_ok(ctx.kiln().args([
        "attest",
        &format!("{repo}:v1"),
        "--key",
        "k1.key",
        "--predicate",
        "provenance.json",
        "--type",
        "slsaprovenance1",
    ]));

    let check = |reference: &str| {
        let args = [
            reference,
            "--key",
            "k1.pub",
            "--attestation",
            "slsaprovenance1",
            "--recipe",
            "a.toml",
        ];
        let (code, out) = verify(&ctx, &args);
        assert_eq!(code, 0, "{reference}: {out}\n{}", registry.log());
        assert!(
            out.contains(&format!("identity {}/team/app:v1", registry.host)),
            "{out}"
        );
        let (code, out) = verify(&ctx, &[reference, "--key", "k2.pub"]);
        assert_eq!(code, 0, "{reference}: {out}");
    };
    check(&format!("{repo}:v1"));
    // The identity policy: the exact reference and the repository pass, another repository not.
    let host = &registry.host;
    for (identity, want) in [
        (format!("{host}/team/app:v1"), 0),
        (format!("{host}/team/app"), 0),
        (format!("{host}/team/other"), 1),
    ] {
        let args = [
            &format!("{repo}:v1") as &str,
            "--key",
            "k1.pub",
            "--identity",
            &identity,
        ];
        assert_eq!(verify(&ctx, &args).0, want, "{identity}");
    }

    // Copy to another repository with the attachment tags; it verifies there too.
    let mirror = registry.reference("mirror/app");
    copy_with_attachments(&ctx, &repo, &mirror, &digest);
    check(&format!("{mirror}@{digest}"));
    check(&format!("{mirror}:copied"));

    // Images that are not there are errors (exit 2) that name the reference, not signatures.
    let absent = format!("{repo}@{}", kiln::Sha256Digest::of(b"absent"));
    for reference in [format!("{repo}:nope"), absent] {
        let out = run_err(ctx.kiln().args(["sign", &reference, "--key", "k1.key"]));
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains(&reference), "{}", stderr(&out));
    }

    // A key that never signed is refused (the registry is not trusted for anything).
    keygen(&ctx, "never");
    assert_eq!(
        verify(&ctx, &[&format!("{mirror}:copied"), "--key", "never.pub"]).0,
        1
    );

    // Python `cryptography` and `securesystemslib`, fetching the tags over plain HTTP, accept
    // kiln's signatures and attestation in both repositories.
    let python = python();
    for (name, key) in [
        ("team/app", "k1.pub"),
        ("mirror/app", "k1.pub"),
        ("mirror/app", "k2.pub"),
    ] {
        let pubkey = ctx.join(key);
        let mut args = vec![
            "registry",
            "--registry",
            host,
            "--repo",
            name,
            "--digest",
            &digest,
            "--key",
            pubkey.to_str().unwrap(),
        ];
        if key == "k1.pub" {
            // Only k1 attested.
            args.extend(["--attestation", "https://slsa.dev/provenance/v1"]);
        }
        let (code, stdout, err) = verify_py(&python, &args, "");
        assert_eq!(code, 0, "{name} {key}: {err}");
        let summary: Value = serde_json::from_str(&stdout).unwrap();
        // k2 signed by digest: cosign 2 names the reference as given.
        let identity = if key == "k1.pub" {
            format!("{host}/team/app:v1")
        } else {
            format!("{host}/team/app@{digest}")
        };
        assert_eq!(summary["identity"], identity);
        assert_eq!(summary["signatures"], 1);
        if key == "k1.pub" {
            assert_eq!(
                summary["predicate"]["buildDefinition"]["externalParameters"]["recipe"]["digest"]
                    ["sha256"],
                recipe_sha256
            );
        }
    }
    let never = ctx.join("never.pub");
    let args = [
        "registry",
        "--registry",
        host,
        "--repo",
        "mirror/app",
        "--digest",
        &digest,
        "--key",
        never.to_str().unwrap(),
    ];
    assert_eq!(verify_py(&python, &args, "").0, 1);
}
