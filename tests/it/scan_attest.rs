//! Attestations from `kiln scan` and `kiln build --sbom`, against a real registry:
//! - `kiln scan --attest`: the scan result becomes a cosign `vuln` attestation that the
//!   independent Python verifier (securesystemslib DSSE) accepts, that `kiln verify
//!   --attestation vuln` finds, and that `kiln promote`'s `[scan]` rule reads: a scan without
//!   criticals lets the image through, a scan that found one stops it.
//! - `kiln build --sbom`: SPDX and CycloneDX statements beside the provenance in the layout and
//!   in the registry (listed by skopeo), equal to `kiln sbom`, signed with `--sign-key`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::promote::{envelope, python_dsse, tags};
use crate::registry_support::LocalRegistry;
use crate::scan::{build_dpkg_image, record, write_db};
use crate::sign::{keygen, python, verify_py};
use crate::support::*;

const VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
const SPDX: &str = "https://spdx.dev/Document";
const CYCLONEDX: &str = "https://cyclonedx.org/bom";
const SLSA: &str = "https://slsa.dev/provenance/v1";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `kiln scan REF --attest --key signer.key` at `SOURCE_DATE_EPOCH` = `epoch`; returns the
/// exit code and stderr.
fn scan_attest(ctx: &TestContext, reference: &str, db: &str, epoch: i64) -> (i32, String) {
    let out = ctx
        .kiln()
        .args(["scan", "--tls-verify=false", reference, "--db", db])
        .args(["--attest", "--key", "signer.key"])
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        .output()
        .unwrap();
    (out.status.code().unwrap(), stderr(&out))
}

fn promote(ctx: &TestContext, reference: &str, to: &str) -> (i32, String) {
    let out = ctx
        .kiln()
        .args(["promote", "--tls-verify=false", reference])
        .args([
            "--policy",
            "policy.toml",
            "--to",
            to,
            "--key",
            "promoter.key",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap(), text)
}

/// The `vuln` layers in the image's `.att` tag.
fn vuln_layers(registry: &LocalRegistry, repo: &str, digest: &str) -> usize {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let (status, body) = crate::promote::http_get(
        &registry.host,
        &format!("/v2/{repo}/manifests/sha256-{hex}.att"),
        "application/vnd.oci.image.manifest.v1+json",
    );
    assert_eq!(status, 200);
    let manifest: Value = serde_json::from_slice(&body).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["annotations"]["predicateType"] == VULN)
        .count()
}

#[test]
fn scan_attestation_is_verified_and_gates_promotion() {
    let ctx = TestContext::new();
    let registry = LocalRegistry::start(&[]);
    for key in ["signer", "promoter"] {
        keygen(&ctx, key);
    }
    build_dpkg_image(&ctx);
    let reference = registry.reference("team/pkgs:v1");
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
            .arg("oci:out/pkgs:pkgs")
            .arg(&reference),
    );
    let digest = last_line(&run_ok(ctx.kiln().args([
        "sign",
        "--tls-verify=false",
        &reference,
        "--key",
        "signer.key",
    ])));
    ctx.write(
        "policy.toml",
        "signers = [\"signer.pub\"]\n\n[scan]\nmax-severity = \"high\"\nmax-age-days = 7\n",
    );

    // A database whose only match is a medium (the epoch record of the scan tests).
    let clean = ctx.join("osv-clean");
    record(
        &clean,
        "epoch.json",
        json!({
            "id": "ZLIB-1",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N"}],
            "affected": [{"package": {"ecosystem": "Debian:12", "name": "zlib"},
                          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:1.2.13.dfsg-2"}]}]}],
        }),
    );
    let at = now() - 3600;
    let (code, err) = scan_attest(&ctx, &reference, clean.to_str().unwrap(), at);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("attested the scan"), "{err}");

    // The statement, checked by code kiln did not write.
    let statement = python_dsse(
        &ctx,
        &envelope(&registry, "team/pkgs", &digest, VULN),
        "signer.pub",
    );
    assert_eq!(statement["predicateType"], VULN);
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        digest.strip_prefix("sha256:").unwrap()
    );
    let p = &statement["predicate"];
    let when = kiln::build::rfc3339(at);
    assert_eq!(
        p["metadata"],
        json!({"scanStartedOn": when, "scanFinishedOn": when})
    );
    assert_eq!(
        p["scanner"]["result"]["summary"],
        json!({"critical": 0, "high": 0, "medium": 1, "low": 0, "unknown": 0, "unevaluated": 0})
    );
    assert_eq!(p["scanner"]["uri"], "https://kiln.build/scanner/v1");
    assert_eq!(p["scanner"]["version"], env!("CARGO_PKG_VERSION"));
    let db_version = p["scanner"]["db"]["version"].as_str().unwrap();
    assert!(db_version.starts_with("sha256:"), "{db_version}");
    assert_eq!(p["scanner"]["result"]["digest"], digest);
    assert_eq!(p["scanner"]["result"]["findings"][0]["id"], "ZLIB-1");
    let keys: Vec<&String> = p["invocation"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["builder.id", "event_id", "parameters", "uri"]);

    // Same database, same SOURCE_DATE_EPOCH: the same attestation, not a second one.
    let (code, err) = scan_attest(&ctx, &reference, clean.to_str().unwrap(), at);
    assert_eq!(code, 0, "{err}");
    assert_eq!(vuln_layers(&registry, "team/pkgs", &digest), 1);

    run_ok(ctx.kiln().args([
        "verify",
        "--tls-verify=false",
        &reference,
        "--key",
        "signer.pub",
        "--attestation",
        "vuln",
    ]));
    let verified = registry.reference("verified/pkgs:v1");
    let (code, out) = promote(&ctx, &reference, &verified);
    assert_eq!(code, 0, "{out}");

    // The full test database has a critical record for openssl: that scan stops the image.
    let critical = write_db(&ctx);
    let (code, err) = scan_attest(&ctx, &reference, critical.to_str().unwrap(), now() - 60);
    assert_eq!(code, 0, "no --fail-on: the scan itself passes; {err}");
    assert_eq!(vuln_layers(&registry, "team/pkgs", &digest), 2);
    let refused = registry.reference("refused/pkgs:v1");
    let (code, out) = promote(&ctx, &reference, &refused);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("scan") && out.contains("1 critical finding(s)"),
        "{out}"
    );
    let (status, _) = tags(&registry, "refused/pkgs");
    assert_eq!(status, 404, "nothing was written to the refused repository");

    // A lock has no digest to attach to.
    ctx.write("app.lock", "");
    let out = run_err(
        ctx.kiln()
            .args(["scan", "app.lock", "--db", "osv-clean", "--attest"])
            .args(["--key", "signer.key"]),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--attest needs an image"),
        "{}",
        stderr(&out)
    );
}

/// The in-toto statements attached to `digest` as referrers in the layout, by predicate type.
fn layout_statements(layout: &std::path::Path, digest: &str) -> BTreeMap<String, Value> {
    let read = |d: &str| -> Value {
        let hex = d.strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap())
            .unwrap()
    };
    let mut out = BTreeMap::new();
    for entry in layout_entries(layout) {
        if entry["artifactType"] != "application/vnd.in-toto+json" {
            continue;
        }
        let manifest = read(entry["digest"].as_str().unwrap());
        assert_eq!(manifest["subject"]["digest"], digest);
        let kind = manifest["annotations"]["in-toto.io/predicate-type"]
            .as_str()
            .unwrap()
            .to_string();
        let statement = read(manifest["layers"][0]["digest"].as_str().unwrap());
        assert_eq!(statement["predicateType"], kind.as_str());
        out.insert(kind, statement);
    }
    out
}

#[test]
fn build_sbom_attaches_both_sboms_beside_the_provenance_signed_and_pushed() {
    let ctx = TestContext::new();
    let registry = LocalRegistry::start(&[]);
    keygen(&ctx, "signer");
    build_dpkg_image(&ctx);
    let push = registry.reference("team/pkgs:v1");
    let digest = last_line(&run_ok(ctx.kiln().args([
        "build",
        "pkgs/recipe.toml",
        "-o",
        "out/sbom",
        "--sbom",
        "--sign-key",
        "signer.key",
        "--push",
        &push,
        "--tls-verify=false",
    ])));
    let name = format!("{}/team/pkgs", registry.host);

    // In the layout: provenance, SPDX and CycloneDX referrers; the SBOMs equal `kiln sbom`.
    let statements = layout_statements(&ctx.join("out/sbom"), &digest);
    let kinds: Vec<&str> = statements.keys().map(String::as_str).collect();
    assert_eq!(kinds, [CYCLONEDX, SLSA, SPDX]);
    for (kind, format) in [(SPDX, "spdx-json"), (CYCLONEDX, "cyclonedx-json")] {
        let statement = &statements[kind];
        assert_eq!(statement["subject"][0]["name"], name.as_str());
        let sbom =
            run_ok(
                ctx.kiln()
                    .args(["sbom", "oci:out/sbom", "--name", &name, "--format", format]),
            );
        let sbom: Value = serde_json::from_str(&sbom).unwrap();
        assert_eq!(statement["predicate"], sbom, "{kind}");
    }
    let spdx = &statements[SPDX]["predicate"];
    assert_eq!(spdx["name"], name.as_str());
    let names: Vec<&str> = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"libssl3") && names.contains(&"zlib1g"),
        "{names:?}"
    );
    // The image is still the layout's only runnable choice.
    run_ok(
        tool("skopeo")
            .current_dir(ctx.path())
            .args(["inspect", "oci:out/sbom"]),
    );

    // Signed: kiln verify and the Python verifier accept both SBOM attestations.
    run_ok(ctx.kiln().args([
        "verify",
        "oci:out/sbom",
        "--key",
        "signer.pub",
        "--attestation",
        "spdxjson",
        "--attestation",
        "cyclonedx",
    ]));
    let key = ctx.join("signer.pub");
    for kind in [SPDX, CYCLONEDX] {
        let args = [
            "registry",
            "--registry",
            registry.host.as_str(),
            "--repo",
            "team/pkgs",
            "--digest",
            &digest,
            "--key",
            key.to_str().unwrap(),
            "--attestation",
            kind,
        ];
        let (code, out, err) = verify_py(&python(), &args, "");
        assert_eq!(code, 0, "{kind}: {out}{err}");
        let result: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(result["predicate"], statements[kind]["predicate"], "{kind}");
    }

    // In the registry, skopeo lists the referrers under the OCI 1.1 fallback tag.
    let hex = digest.strip_prefix("sha256:").unwrap();
    let raw = run_ok(tool("skopeo").env("HOME", ctx.join("home")).args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &registry.reference(&format!("team/pkgs:sha256-{hex}")),
    ]));
    let index: Value = serde_json::from_str(&raw).unwrap();
    let mut pushed = Vec::new();
    for m in index["manifests"].as_array().unwrap() {
        let raw = run_ok(tool("skopeo").env("HOME", ctx.join("home")).args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &registry.reference(&format!("team/pkgs@{}", m["digest"].as_str().unwrap())),
        ]));
        let manifest: Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(manifest["subject"]["digest"], digest.as_str());
        pushed.push(
            manifest["annotations"]["in-toto.io/predicate-type"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    pushed.sort();
    assert_eq!(pushed, [CYCLONEDX, SLSA, SPDX]);
}
