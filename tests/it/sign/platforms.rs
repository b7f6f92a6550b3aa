//! `kiln verify` of a multi-platform index built with `--sign-key`: the index's own signature,
//! and each platform's image with its signature and provenance, reported per platform, in a
//! layout and in a real registry; a per-platform attestation swapped for another image's is
//! rejected, naming the platform.

use serde_json::Value;

use super::*;
use crate::registry_support::LocalRegistry;

const RECIPE: &str = "[image]\nname = \"hello\"\nepoch = 1700000000\n\
    platforms = [\"linux/amd64\", \"linux/arm64\"]\n\
    [[layer]]\n[[layer.step]]\nwrite = \"/hello\"\ncontent = \"hi\\n\"\n";

/// `kiln verify ARGS --json`: (exit code, report).
fn verify_json(ctx: &TestContext, args: &[&str]) -> (i32, Value) {
    let mut all = args.to_vec();
    all.extend(["--tls-verify=false", "--json"]);
    let (code, out) = verify(ctx, &all);
    (code, serde_json::from_str(&out).unwrap())
}

/// (platform, digest, verified) of each platform of a `--json` report.
fn platforms(report: &Value) -> Vec<(String, String, bool)> {
    report["platforms"]
        .as_array()
        .unwrap_or_else(|| panic!("no platforms: {report}"))
        .iter()
        .map(|p| {
            (
                p["platform"].as_str().unwrap().to_string(),
                p["digest"].as_str().unwrap().to_string(),
                p["verified"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn verify_of_a_signed_index_checks_each_platform_image_and_names_a_tampered_one() {
    let ctx = TestContext::new();
    keygen(&ctx, "k");
    ctx.write("multi.toml", RECIPE);
    let registry = LocalRegistry::start(&[]);
    let tagged = registry.reference("team/multi:v1");
    let index = last_line(&run_ok(ctx.kiln().args([
        "build",
        "multi.toml",
        "-o",
        "out",
        "--sign-key",
        "k.key",
        "--push",
        &tagged,
    ])));
    let out = ctx.join("out");
    let index_json = read_json(&blob_path(&out, &index));
    let images: Vec<(String, String)> = index_json["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let arch = m["platform"]["architecture"].as_str().unwrap();
            (
                format!("linux/{arch}"),
                m["digest"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(images.len(), 2, "{index_json}");
    let (amd64, arm64) = (&images[0].1, &images[1].1);
    let layout = "oci:out".to_string();

    for reference in [tagged.as_str(), layout.as_str()] {
        // Without --attestation: the index's own signature, as `cosign verify` checks it.
        let (code, report) = verify_json(&ctx, &[reference, "--key", "k.pub"]);
        assert_eq!(code, 0, "{report}");
        assert_eq!(report["digest"], index.as_str());
        assert_eq!(report["signatures"]["verified"], true);
        assert!(report.get("platforms").is_none(), "{report}");

        // With it: the index's signature, then each image's signature and provenance.
        let args = [
            reference,
            "--key",
            "k.pub",
            "--attestation",
            "slsaprovenance1",
        ];
        let (code, report) = verify_json(&ctx, &args);
        assert_eq!(code, 0, "{reference}: {report}");
        assert_eq!(report["verified"], true);
        assert_eq!(report["digest"], index.as_str());
        assert_eq!(report["attestations"], serde_json::json!([]));
        let want: Vec<(String, String, bool)> = images
            .iter()
            .map(|(p, d)| (p.clone(), d.clone(), true))
            .collect();
        assert_eq!(platforms(&report), want, "{report}");
        for p in report["platforms"].as_array().unwrap() {
            assert_eq!(p["signatures"]["verified"], true, "{p}");
            assert_eq!(p["attestations"][0]["verified"], true, "{p}");
            assert_eq!(
                p["attestations"][0]["predicateType"], "https://slsa.dev/provenance/v1",
                "{p}"
            );
        }
        let (code, text) = verify(&ctx, &[args.as_slice(), &["--tls-verify=false"]].concat());
        assert_eq!(code, 0, "{text}");
        for (platform, digest) in &images {
            assert!(
                text.contains(&format!(
                    "✓ {platform}: attestation https://slsa.dev/provenance/v1 {digest} by key"
                )),
                "{text}"
            );
            assert!(
                text.contains(&format!("✓ {platform}: signature {digest} by key")),
                "{text}"
            );
        }
        assert!(
            text.contains("and its images for linux/amd64, linux/arm64"),
            "{text}"
        );

        // --platform: the index's signature and that one image.
        let one = [reference, "--key", "k.pub", "--platform", "linux/arm64"];
        let (code, report) = verify_json(&ctx, &one);
        assert_eq!(code, 0, "{report}");
        assert_eq!(
            platforms(&report),
            [("linux/arm64".to_string(), arm64.clone(), true)]
        );
        let err = stderr(&run_err(ctx.kiln().args([
            "verify",
            "--tls-verify=false",
            reference,
            "--key",
            "k.pub",
            "--platform",
            "linux/s390x",
        ])));
        assert!(
            err.contains("no image for linux/s390x") && err.contains("linux/amd64, linux/arm64"),
            "{err}"
        );
    }
    // --platform of a single image is refused rather than ignored.
    let err = stderr(&run_err(ctx.kiln().args([
        "verify",
        "--tls-verify=false",
        &format!("{}@{amd64}", registry.reference("team/multi")),
        "--key",
        "k.pub",
        "--platform",
        "linux/amd64",
    ])));
    assert!(err.contains("not an index"), "{err}");

    // Tampered: arm64's attestation tag now holds amd64's (valid, same key) provenance.
    let swapped = tagged_manifest(&out, &att_tag(amd64));
    set_tag(&out, &att_tag(arm64), &swapped, &out);
    // The same tag in the registry, pushed by skopeo from the layout's index.json.
    let repo = registry.reference("team/multi");
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
            .arg(format!("oci:out:{}", att_tag(arm64)))
            .arg(format!("{repo}:{}", att_tag(arm64))),
    );
    for reference in [tagged.as_str(), layout.as_str()] {
        let args = [
            reference,
            "--key",
            "k.pub",
            "--attestation",
            "slsaprovenance1",
        ];
        let (code, report) = verify_json(&ctx, &args);
        assert_eq!(code, 1, "{reference}: {report}");
        assert_eq!(report["verified"], false);
        assert_eq!(
            platforms(&report),
            [
                ("linux/amd64".to_string(), amd64.clone(), true),
                ("linux/arm64".to_string(), arm64.clone(), false)
            ]
        );
        let (code, text) = verify(&ctx, &[args.as_slice(), &["--tls-verify=false"]].concat());
        assert_eq!(code, 1, "{text}");
        assert!(
            text.contains("✗ linux/arm64: attestation https://slsa.dev/provenance/v1 layer 0 (")
                && text.contains("): subject: "),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "NOT verified: {reference} ({index}): the image for linux/arm64 failed"
            )),
            "{text}"
        );
        // The other platform, alone, still verifies.
        let amd = [
            reference,
            "--key",
            "k.pub",
            "--attestation",
            "slsaprovenance1",
            "--platform",
            "linux/amd64",
            "--tls-verify=false",
        ];
        assert_eq!(verify(&ctx, &amd).0, 0);
    }
}
