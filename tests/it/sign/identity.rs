//! Signing where the image goes: `build --sign-key --push` signs the destination's identity,
//! `rebuild --sign-key` signs the verdict, and `kiln inspect` shows what is attached.

use serde_json::Value;

use super::*;
use crate::registry_support::LocalRegistry;

/// Regression (issue 12.10): `build --sign-key --push docker://HOST/REPO:TAG` signed the
/// layout name, so `verify --identity HOST/REPO` of the pushed image failed.
#[test]
fn build_sign_key_with_push_signs_the_push_destination() {
    let ctx = TestContext::new();
    let registry = LocalRegistry::start(&[]);
    keygen(&ctx, "k1");
    let repo = registry.reference("team/app");
    let digest = build(
        &ctx,
        "a",
        "a",
        &["--sign-key", "k1.key", "--push", &format!("{repo}:v1")],
    );
    let host = &registry.host;
    for identity in [format!("{host}/team/app"), format!("{host}/team/app:v1")] {
        let (code, out) = verify(
            &ctx,
            &[
                &format!("{repo}:v1"),
                "--key",
                "k1.pub",
                "--identity",
                &identity,
                "--attestation",
                "slsaprovenance1",
                "--recipe",
                "a.toml",
            ],
        );
        assert_eq!(code, 0, "{identity}: {out}\n{}", registry.log());
        assert!(
            out.contains(&format!("identity {host}/team/app:v1")),
            "{out}"
        );
    }
    let (code, out) = verify(
        &ctx,
        &[
            &format!("{repo}:v1"),
            "--key",
            "k1.pub",
            "--identity",
            "hello",
        ],
    );
    assert_eq!(code, 1, "the layout name is no longer the identity: {out}");

    // inspect lists the tags, and prints the signed provenance statement.
    let text = run_ok(ctx.kiln().args(["inspect", &format!("{repo}:v1")]));
    let hex = hex(&digest);
    assert!(
        text.contains(&format!("Signatures: sha256-{hex}.sig  1 layer(s)")),
        "{text}"
    );
    assert!(
        text.contains(&format!("identity {host}/team/app:v1")),
        "{text}"
    );
    assert!(
        text.contains(&format!("Attestations: sha256-{hex}.att  1 layer(s)")),
        "{text}"
    );
    let json: Value = serde_json::from_str(&run_ok(ctx.kiln().args([
        "inspect",
        "--json",
        &format!("{repo}:v1"),
    ])))
    .unwrap();
    assert_eq!(json["attachments"][0]["tag"], format!("sha256-{hex}.sig"));
    assert_eq!(
        json["attachments"][1]["layers"][0]["predicateType"],
        "https://slsa.dev/provenance/v1"
    );
    // One JSON document per statement: the signed one from the `.att` tag (named after the
    // repository), then the build's referrer (named after the image).
    let out = run_ok(ctx.kiln().args([
        "inspect",
        &format!("{repo}:v1"),
        "--attestation",
        "slsaprovenance1",
    ]));
    let statements: Vec<Value> = serde_json::Deserializer::from_str(&out)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(statements.len(), 2, "{out}");
    for s in &statements {
        assert_eq!(s["predicateType"], "https://slsa.dev/provenance/v1");
        assert_eq!(s["subject"][0]["digest"]["sha256"], hex);
        assert_eq!(s["predicate"], statements[0]["predicate"]);
    }
    assert_eq!(
        statements[0]["subject"][0]["name"],
        format!("{host}/team/app")
    );
    assert_eq!(statements[1]["subject"][0]["name"], "hello");

    // An explicit --identity wins over the push destination.
    let (code, _) = {
        build(
            &ctx,
            "b",
            "b",
            &[
                "--sign-key",
                "k1.key",
                "--identity",
                "registry.example/x/y:1",
            ],
        );
        verify(
            &ctx,
            &[
                "oci:out-b",
                "--key",
                "k1.pub",
                "--identity",
                "registry.example/x/y",
            ],
        )
    };
    assert_eq!(code, 0);
}

/// `rebuild --sign-key` signs the rebuilt image and attests its provenance and the verdict;
/// `verify --attestation https://kiln.build/rebuild/v1` accepts it and `inspect --attestation`
/// prints it.
#[test]
fn rebuild_sign_key_attests_the_verdict() {
    let ctx = TestContext::new();
    keygen(&ctx, "k1");
    build(&ctx, "up", "same", &[]);
    // The provenance of an unsigned build is a referrer: inspect prints it too.
    let provenance: Value = serde_json::from_str(&run_ok(ctx.kiln().args([
        "inspect",
        "oci:out-up",
        "--attestation",
        "slsaprovenance1",
    ])))
    .unwrap();
    assert_eq!(
        provenance["predicateType"],
        "https://slsa.dev/provenance/v1"
    );

    run_ok(ctx.kiln().args([
        "rebuild",
        "up.toml",
        "--against",
        "oci:out-up",
        "-o",
        "rebuilt",
        "--sign-key",
        "k1.key",
    ]));
    let (code, out) = verify(
        &ctx,
        &[
            "oci:rebuilt",
            "--key",
            "k1.pub",
            "--attestation",
            "https://kiln.build/rebuild/v1",
            "--attestation",
            "slsaprovenance1",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("✓ attestation https://kiln.build/rebuild/v1"),
        "{out}"
    );
    let out = run_ok(ctx.kiln().args([
        "inspect",
        "oci:rebuilt",
        "--attestation",
        "https://kiln.build/rebuild/v1",
    ]));
    let statement: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(statement["predicate"]["verdict"], "identical");
    assert_eq!(statement["predicate"]["passed"], true);

    // Another key's verification fails: the verdict is really signed.
    keygen(&ctx, "k2");
    let (code, _) = verify(
        &ctx,
        &[
            "oci:rebuilt",
            "--key",
            "k2.pub",
            "--attestation",
            "https://kiln.build/rebuild/v1",
        ],
    );
    assert_eq!(code, 1);
}
