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

/// The manifest and config digests of the layout's image.
fn image_digests(ctx: &TestContext, layout: &str) -> (String, String) {
    let entry = &layout_entries(&ctx.join(layout))[0];
    let manifest = entry["digest"].as_str().unwrap().to_string();
    let blob = ctx.join(layout).join("blobs/sha256").join(&manifest[7..]);
    let parsed: Value = serde_json::from_slice(&std::fs::read(blob).unwrap()).unwrap();
    (
        manifest,
        parsed["config"]["digest"].as_str().unwrap().to_string(),
    )
}

/// A `trivy image -f json` report (Trivy 0.58's fields) naming `image_id`.
fn trivy_report(image_id: &str) -> Value {
    let vuln = |id: &str, pkg: &str, version: &str, fixed: &str, severity: &str, status: &str| {
        json!({
            "VulnerabilityID": id,
            "PkgID": format!("{pkg}@{version}"),
            "PkgName": pkg,
            "PkgIdentifier": {
                "PURL": format!("pkg:deb/debian/{pkg}@{version}?arch=amd64&distro=debian-12"),
                "UID": "4b1c2bd0a7e5a0c1",
            },
            "InstalledVersion": version,
            "FixedVersion": fixed,
            "Status": status,
            "Layer": {"DiffID": "sha256:9c1f0b3c0b3b4f1e6c9f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d"},
            "SeveritySource": "debian",
            "PrimaryURL": format!("https://avd.aquasec.com/nvd/{}", id.to_lowercase()),
            "DataSource": {"ID": "debian", "Name": "Debian Security Tracker",
                           "URL": "https://salsa.debian.org/security-tracker-team/security-tracker"},
            "Title": format!("{pkg}: a test vulnerability"),
            "Description": "written for kiln's tests",
            "Severity": severity,
            "CweIDs": ["CWE-787"],
            "VendorSeverity": {"debian": 4, "nvd": 4},
            "References": [format!("https://security-tracker.debian.org/tracker/{id}")],
            "PublishedDate": "2024-01-10T15:15:00Z",
            "LastModifiedDate": "2024-02-01T10:00:00Z",
        })
    };
    json!({
        "SchemaVersion": 2,
        "CreatedAt": "2026-12-03T08:15:42.181943291Z",
        "ArtifactName": "out/pkgs",
        "ArtifactType": "container_image",
        "Metadata": {
            "Size": 12288,
            "OS": {"Family": "debian", "Name": "12"},
            "ImageID": image_id,
            "DiffIDs": [],
            "RepoTags": [],
            "RepoDigests": [],
            "ImageConfig": {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "config": {}},
        },
        "Results": [{
            "Target": "out/pkgs (debian 12)",
            "Class": "os-pkgs",
            "Type": "debian",
            "Vulnerabilities": [
                vuln("CVE-2024-0001", "libssl3", "3.0.11-1~deb12u2+b1", "3.0.13-1~deb12u1", "CRITICAL", "fixed"),
                vuln("CVE-2024-0002", "bash", "5.2.15-2+b2", "", "LOW", "affected"),
            ],
        }],
    })
}

/// A `grype -o json` report (Grype 0.86's fields) about the manifest `digest`.
fn grype_report(digest: &str, image_id: &str) -> Value {
    json!({
        "matches": [{
            "vulnerability": {
                "id": "CVE-2024-0003",
                "dataSource": "https://security-tracker.debian.org/tracker/CVE-2024-0003",
                "namespace": "debian:distro:debian:12",
                "severity": "Medium",
                "urls": ["https://security-tracker.debian.org/tracker/CVE-2024-0003"],
                "description": "zlib: a test vulnerability",
                "cvss": [],
                "fix": {"versions": ["1:1.2.13.dfsg-2"], "state": "fixed"},
                "advisories": [],
            },
            "relatedVulnerabilities": [{
                "id": "CVE-2024-0003",
                "dataSource": "https://nvd.nist.gov/vuln/detail/CVE-2024-0003",
                "namespace": "nvd:cpe",
                "severity": "Medium",
            }, {"id": "DSA-5001-1", "namespace": "debian:distro:debian:12"}],
            "matchDetails": [{
                "type": "exact-indirect-match",
                "matcher": "dpkg-matcher",
                "searchedBy": {"distro": {"type": "debian", "version": "12"},
                               "namespace": "debian:distro:debian:12",
                               "package": {"name": "zlib", "version": "1:1.2.13.dfsg-1"}},
                "found": {"versionConstraint": "< 1:1.2.13.dfsg-2 (deb)", "vulnerabilityID": "CVE-2024-0003"},
            }],
            "artifact": {
                "id": "7d8f2a0b3c4e5f61",
                "name": "zlib1g",
                "version": "1:1.2.13.dfsg-1",
                "type": "deb",
                "locations": [{"path": "/var/lib/dpkg/status.d/zlib1g", "layerID": "sha256:00"}],
                "language": "",
                "licenses": [],
                "cpes": ["cpe:2.3:a:zlib1g:zlib1g:1\\:1.2.13.dfsg-1:*:*:*:*:*:*:*"],
                "purl": "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&upstream=zlib&distro=debian-12",
                "upstreams": [{"name": "zlib"}],
            },
        }],
        "source": {
            "type": "image",
            "target": {
                "userInput": "oci-dir:out/pkgs",
                "imageID": image_id,
                "manifestDigest": digest,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "tags": [],
                "imageSize": 12288,
                "layers": [],
                "repoDigests": [],
                "architecture": "amd64",
                "os": "linux",
            },
        },
        "distro": {"name": "debian", "version": "12", "idLike": []},
        "descriptor": {
            "name": "grype",
            "version": "0.86.1",
            "configuration": {"output": ["json"], "db": {"cache-dir": "/root/.cache/grype/db"}},
            "db": {"status": {"built": "2026-12-02T01:31:07Z", "schemaVersion": "v6.0.2",
                              "from": "https://grype.anchore.io/databases/v6/vulnerability-db_v6.0.2_2026-12-02T01:31:07Z_1733103067.tar.zst",
                              "valid": true}},
            "timestamp": "2026-12-03T09:15:42.123456+01:00",
        },
    })
}

fn scan_report(ctx: &TestContext, args: &[&str]) -> (i32, Value, String) {
    let out = ctx
        .kiln()
        .args(["scan", "oci:out/pkgs:pkgs", "--json"])
        .args(args)
        .output()
        .unwrap();
    let code = out.status.code().unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (code, report, stderr(&out))
}

#[test]
fn trivy_and_grype_reports_of_this_image_are_gated_and_attested() {
    let ctx = TestContext::new();
    keygen(&ctx, "signer");
    build_dpkg_image(&ctx);
    let (manifest, config) = image_digests(&ctx, "out/pkgs");
    ctx.write(
        "trivy.json",
        serde_json::to_vec_pretty(&trivy_report(&config)).unwrap(),
    );
    let other = format!("sha256:{}", "ab".repeat(32));
    ctx.write(
        "grype.json",
        serde_json::to_vec_pretty(&grype_report(&manifest, &other)).unwrap(),
    );

    // Trivy, matched by its image ID (the config digest): the gate and --ignore apply.
    let (code, report, err) = scan_report(&ctx, &["--from-trivy", "trivy.json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["digest"], manifest.as_str());
    assert_eq!(report["imported"]["format"], "trivy");
    assert_eq!(
        report["imported"]["created"],
        "2026-12-03T08:15:42.181943291Z"
    );
    let ssl = &report["findings"][1];
    assert_eq!(
        (
            &ssl["id"],
            &ssl["package"],
            &ssl["source"],
            &ssl["severity"],
            &ssl["fixedVersion"]
        ),
        (
            &json!("CVE-2024-0001"),
            &json!("libssl3"),
            &json!("openssl"),
            &json!("critical"),
            &json!("3.0.13-1~deb12u1")
        )
    );
    assert_eq!(ssl["location"], "/var/lib/dpkg/status.d/libssl3");
    assert_eq!(report["findings"][0]["fixedVersion"], Value::Null);
    assert_eq!(report["summary"]["critical"], 1);
    assert_eq!(report["summary"]["low"], 1);
    let (code, report, _) = scan_report(&ctx, &["--from-trivy", "trivy.json", "--fail-on", "high"]);
    assert_eq!((code, &report["passed"]), (1, &json!(false)));
    ctx.write(
        "ignore.toml",
        "[[ignore]]\nid = \"CVE-2024-0001\"\nreason = \"not reachable\"\nexpires = \"2999-12-31\"\n",
    );
    let (code, report, _) = scan_report(
        &ctx,
        &[
            "--from-trivy",
            "trivy.json",
            "--fail-on",
            "high",
            "--ignore",
            "ignore.toml",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(report["ignored"][0]["finding"]["id"], "CVE-2024-0001");

    // Grype, matched by its manifest digest (its image ID is another's), attested: the scan
    // time is the report's, normalized to UTC.
    let (code, report, err) = scan_report(
        &ctx,
        &[
            "--from-grype",
            "grype.json",
            "--fail-on",
            "medium",
            "--attest",
            "--key",
            "signer.key",
        ],
    );
    assert_eq!(code, 1, "{err}");
    let f = &report["findings"][0];
    assert_eq!(
        (&f["id"], &f["source"], &f["severity"], &f["aliases"]),
        (
            &json!("CVE-2024-0003"),
            &json!("zlib"),
            &json!("medium"),
            &json!(["DSA-5001-1"])
        )
    );
    let layout = ctx.join("out/pkgs");
    let att = layout_entries(&layout)
        .into_iter()
        .find(|e| {
            e["annotations"]["org.opencontainers.image.ref.name"]
                == format!("sha256-{}.att", &manifest[7..])
        })
        .expect("an .att tag in the layout");
    let read = |d: &str| std::fs::read(layout.join("blobs/sha256").join(&d[7..])).unwrap();
    let att: Value = serde_json::from_slice(&read(att["digest"].as_str().unwrap())).unwrap();
    let envelope = read(att["layers"][0]["digest"].as_str().unwrap());
    let statement = python_dsse(&ctx, &envelope, "signer.pub");
    assert_eq!(statement["predicateType"], VULN);
    let p = &statement["predicate"];
    assert_eq!(p["metadata"]["scanFinishedOn"], "2026-12-03T08:15:42Z");
    assert_eq!(p["scanner"]["uri"], "pkg:github/anchore/grype@0.86.1");
    assert_eq!(p["scanner"]["db"]["version"], "2026-12-02T01:31:07Z");
    assert_eq!(p["scanner"]["result"]["summary"]["medium"], 1);
    assert_eq!(
        p["invocation"]["parameters"],
        json!(["--from-grype=grype.json", "--fail-on=medium"])
    );

    // SARIF from a report.
    let out = run_ok(ctx.kiln().args([
        "scan",
        "oci:out/pkgs:pkgs",
        "--from-grype",
        "grype.json",
        "--sarif",
    ]));
    let sarif: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sarif["runs"][0]["results"][0]["ruleId"], "CVE-2024-0003");

    // A report about another image is refused, naming what it is about.
    ctx.write(
        "other.json",
        serde_json::to_vec_pretty(&trivy_report(&other)).unwrap(),
    );
    let (code, _, err) = scan_report(&ctx, &["--from-trivy", "other.json"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is about another image") && err.contains(&other),
        "{err}"
    );
    // Not a report of that tool.
    let (code, _, err) = scan_report(&ctx, &["--from-trivy", "grype.json"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a Trivy JSON report"), "{err}");
}

/// An image of real Debian packages from the corpus (`scripts/setup.sh`): each `.deb`'s data
/// part and a distroless dpkg record; `kiln sbom` declares the licenses of their DEP-5
/// copyright files, and both formats still pass their validators.
#[test]
fn sbom_licenses_come_from_dep5_copyright_files_and_validate() {
    let ctx = TestContext::new();
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/debs");
    let packages = [
        "gawk",
        "tar",
        "zstd",
        "openssl",
        "less",
        "tzdata",
        "base-files",
    ];
    let mut recipe = String::from("[image]\nname = \"lic\"\n\n");
    let mut steps = String::from("[[layer]]\n");
    for name in packages {
        let deb = std::fs::read_dir(&corpus)
            .unwrap_or_else(|e| panic!("the corpus is missing ({e}): run scripts/setup.sh"))
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{name}_"))
            })
            .unwrap_or_else(|| panic!("no {name} in the corpus"));
        std::fs::copy(&deb, ctx.join(format!("{name}.deb"))).unwrap();
        let field = |f: &str| {
            let out = run_ok(tool("dpkg-deb").arg("-f").arg(&deb).arg(f));
            out.trim().to_string()
        };
        recipe += &format!("[inputs.{name}]\npath = \"{name}.deb\"\n");
        steps += &format!(
            "[[layer.step]]\nextract = \"{name}\"\ndest = \"/\"\n[[layer.step]]\n\
             write = \"/var/lib/dpkg/status.d/{name}\"\ncontent = \"Package: {name}\\nStatus: \
             install ok installed\\nVersion: {}\\nArchitecture: {}\\n\"\n",
            field("Version"),
            field("Architecture")
        );
    }
    steps += "[[layer.step]]\nwrite = \"/etc/os-release\"\ncontent = \"ID=debian\\nVERSION_ID=\\\"12\\\"\\n\"\n";
    ctx.write("lic.toml", recipe + "\n" + &steps);
    run_ok(ctx.kiln().args(["build", "lic.toml", "-o", "out/lic"]));

    run_ok(ctx.kiln().args([
        "sbom",
        "oci:out/lic",
        "--format",
        "spdx-json",
        "-o",
        "lic.spdx.json",
    ]));
    let venv = crate::scan::venv_python();
    run_ok(
        std::process::Command::new(venv.parent().unwrap().join("pyspdxtools"))
            .arg("-i")
            .arg(ctx.join("lic.spdx.json")),
    );
    let spdx: Value =
        serde_json::from_slice(&std::fs::read(ctx.join("lic.spdx.json")).unwrap()).unwrap();
    let declared: BTreeMap<&str, &str> = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| Some((p["name"].as_str()?, p["licenseDeclared"].as_str()?)))
        .collect();
    assert_eq!(declared["gawk"], "GPL-3.0-or-later");
    assert_eq!(
        declared["zstd"],
        "(BSD-3-Clause OR GPL-2.0-only) AND MIT AND Zlib"
    );
    assert_eq!(
        declared["openssl"],
        "Apache-2.0 AND (Artistic-1.0-Perl OR GPL-1.0-or-later)"
    );
    assert_eq!(declared["tzdata"], "LicenseRef-public-domain");
    assert_eq!(
        declared["base-files"], "NOASSERTION",
        "not machine-readable"
    );
    let refs: Vec<&str> = spdx["hasExtractedLicensingInfos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["licenseId"].as_str().unwrap())
        .collect();
    assert!(refs.contains(&"LicenseRef-public-domain"), "{refs:?}");

    run_ok(ctx.kiln().args([
        "sbom",
        "oci:out/lic",
        "--format",
        "cyclonedx-json",
        "-o",
        "lic.cdx.json",
    ]));
    let check = "import sys\n\
        from cyclonedx.schema import SchemaVersion\n\
        from cyclonedx.validation.json import JsonStrictValidator\n\
        e = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())\n\
        sys.exit(f'invalid: {e}' if e else 0)\n";
    run_ok(
        std::process::Command::new(&venv)
            .args(["-c", check])
            .arg(ctx.join("lic.cdx.json")),
    );
    let cdx: Value =
        serde_json::from_slice(&std::fs::read(ctx.join("lic.cdx.json")).unwrap()).unwrap();
    let gawk = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "gawk")
        .unwrap();
    assert_eq!(
        gawk["licenses"],
        json!([{"expression": "GPL-3.0-or-later"}])
    );
}
