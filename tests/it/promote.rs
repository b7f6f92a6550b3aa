//! `kiln approve`, `kiln promote` and `kiln verify --policy` against a real registry: an image
//! lacking each piece of evidence in turn is refused naming the rule, and the destination
//! repository stays empty (checked through the registry's HTTP API); a complete image is
//! promoted and verifies at the destination by tag and by digest; the approval and promotion
//! statements verify with the independent Python verifier (securesystemslib DSSE).

use std::io::{Read, Write};

use serde_json::{json, Value};

use crate::registry_support::LocalRegistry;
use crate::sign::{build, keygen, push, python, verify_py};
use crate::support::*;

const APPROVAL: &str = "https://kiln.build/approval/v1";
const PROMOTION: &str = "https://kiln.build/promotion/v1";
const REBUILD: &str = "https://kiln.build/rebuild/v1";
const BUILDER: &str = "https://kiln.build/kiln";

/// A plain HTTP/1.0 GET to the registry (code kiln did not write): (status, body).
pub(crate) fn http_get(host: &str, path: &str, accept: &str) -> (u16, Vec<u8>) {
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: {accept}\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, response[split + 4..].to_vec())
}

pub(crate) fn tags(registry: &LocalRegistry, repo: &str) -> (u16, Vec<u8>) {
    http_get(&registry.host, &format!("/v2/{repo}/tags/list"), "*/*")
}

/// What to attach to an image before promoting it.
struct Case {
    name: &'static str,
    /// The key that signs the image, or none.
    signer: Option<&'static str>,
    recipe_sha256: String,
    verdict: &'static str,
    scan: Value,
    /// Reviewer keys that run `kiln approve`.
    approvers: &'static [&'static str],
    /// A reviewer key that approves another digest (attached to this image).
    approves_other: Option<&'static str>,
}

fn scan(summary: Value, finished: &str) -> Value {
    json!({
        "scanner": {"uri": "https://example.com/scanner", "result": {"summary": summary}},
        "metadata": {"scanFinishedOn": finished},
    })
}

fn attest(ctx: &TestContext, reference: &str, key: &str, kind: &str, predicate: &Value) {
    let file = format!(
        "predicate-{}.json",
        kiln::Sha256Digest::of(kind.as_bytes()).hex()
    );
    ctx.write(&file, serde_json::to_vec(predicate).unwrap());
    run_ok(ctx.kiln().args([
        "attest",
        "--tls-verify=false",
        reference,
        "--key",
        &format!("{key}.key"),
        "--predicate",
        &file,
        "--type",
        kind,
    ]));
}

/// Builds and pushes `team/{name}:v1` and attaches the case's evidence; returns (reference,
/// digest).
fn stage(ctx: &TestContext, registry: &LocalRegistry, case: &Case) -> (String, String) {
    let digest = build(ctx, case.name, case.name, &[]);
    let reference = registry.reference(&format!("team/{}:v1", case.name));
    push(ctx, &format!("out-{}", case.name), &reference);
    if let Some(key) = case.signer {
        run_ok(ctx.kiln().args([
            "sign",
            "--tls-verify=false",
            &reference,
            "--key",
            &format!("{key}.key"),
        ]));
    }
    let provenance = json!({
        "buildDefinition": {"externalParameters": {"recipe": {"uri": "app.toml", "digest": {"sha256": case.recipe_sha256}}}},
        "runDetails": {"builder": {"id": BUILDER}},
    });
    attest(ctx, &reference, "signer", "slsaprovenance1", &provenance);
    attest(
        ctx,
        &reference,
        "signer",
        REBUILD,
        &json!({"verdict": case.verdict}),
    );
    attest(ctx, &reference, "signer", "vuln", &case.scan);
    attest(
        ctx,
        &reference,
        "signer",
        "spdxjson",
        &json!({"spdxVersion": "SPDX-2.3"}),
    );
    for reviewer in case.approvers {
        run_ok(ctx.kiln().args([
            "approve",
            "--tls-verify=false",
            &reference,
            "--key",
            &format!("{reviewer}.key"),
            "--comment",
            "looked at the diff",
        ]));
    }
    if let Some(reviewer) = case.approves_other {
        let other = kiln::Sha256Digest::of(b"another image");
        let predicate = json!({
            "reviewer": {"keyId": "x"}, "comment": "", "image": {"digest": other.to_string()},
            "time": "2026-01-01T00:00:00Z",
        });
        attest(ctx, &reference, reviewer, APPROVAL, &predicate);
    }
    (reference, digest)
}

/// Runs `kiln promote`; returns (exit code, stdout, stderr).
fn promote(ctx: &TestContext, reference: &str, to: &str, extra: &[&str]) -> (i32, String, String) {
    let out = ctx
        .kiln()
        .args(["promote", "--tls-verify=false", reference])
        .args([
            "--policy",
            "policy/policy.toml",
            "--to",
            to,
            "--key",
            "promoter.key",
        ])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn verify_policy(ctx: &TestContext, reference: &str) -> (i32, String) {
    let out = ctx
        .kiln()
        .args(["verify", "--tls-verify=false", reference])
        .args([
            "--policy",
            "policy/policy.toml",
            "--promoted-by",
            "promoter.pub",
        ])
        .output()
        .unwrap();
    let code = out.status.code().unwrap();
    assert!(code < 2, "{}", String::from_utf8_lossy(&out.stderr));
    (code, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The DSSE envelope of the `predicate_type` layer in `repo`'s `.att` tag for `digest`.
pub(crate) fn envelope(
    registry: &LocalRegistry,
    repo: &str,
    digest: &str,
    predicate_type: &str,
) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let (status, body) = http_get(
        &registry.host,
        &format!("/v2/{repo}/manifests/sha256-{hex}.att"),
        "application/vnd.oci.image.manifest.v1+json",
    );
    assert_eq!(status, 200);
    let manifest: Value = serde_json::from_slice(&body).unwrap();
    let layer = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["annotations"]["predicateType"] == predicate_type)
        .unwrap_or_else(|| panic!("no {predicate_type} layer in {manifest}"));
    let blob = layer["digest"].as_str().unwrap();
    let (status, body) = http_get(&registry.host, &format!("/v2/{repo}/blobs/{blob}"), "*/*");
    assert_eq!(status, 200);
    body
}

/// The Python verifier checks the envelope with `key`; returns the in-toto statement.
pub(crate) fn python_dsse(ctx: &TestContext, envelope: &[u8], key: &str) -> Value {
    let file = ctx.write("envelope.json", envelope);
    let key = ctx.join(key);
    let args = [
        "dsse",
        "--key",
        key.to_str().unwrap(),
        "--envelope",
        file.to_str().unwrap(),
    ];
    let (code, _, err) = verify_py(&python(), &args, "");
    assert_eq!(code, 0, "{err}");
    let envelope: Value = serde_json::from_slice(envelope).unwrap();
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&payload).unwrap()
}

fn write_policy(ctx: &TestContext, recipe_sha256: &str) {
    for key in ["signer", "alice", "bob"] {
        std::fs::create_dir_all(ctx.join("policy/keys")).unwrap();
        std::fs::copy(
            ctx.join(format!("{key}.pub")),
            ctx.join(format!("policy/keys/{key}.pub")),
        )
        .unwrap();
    }
    ctx.write(
        "policy/policy.toml",
        format!(
            "signers = [\"keys/signer.pub\"]\n\n[provenance]\nrecipe-sha256 = [\"{recipe_sha256}\"]\n\
             builder-id = \"{BUILDER}\"\n\n[rebuild]\naccept = [\"identical\", \"same-layers\"]\n\n\
             [scan]\nmax-severity = \"medium\"\nmax-age-days = 7\n\n[sbom]\nrequired = true\n\n\
             [approvals]\ncount = 2\nreviewers = [\"keys/alice.pub\", \"keys/bob.pub\"]\n"
        ),
    );
}

#[test]
fn promote_refuses_each_missing_piece_and_promotes_a_complete_image() {
    let ctx = TestContext::new();
    let registry = LocalRegistry::start(&[]);
    for key in ["signer", "stranger", "alice", "bob", "mallory", "promoter"] {
        keygen(&ctx, key);
    }
    let recipe = kiln::Sha256Digest::of(b"the reviewed recipe").hex();
    write_policy(&ctx, &recipe);
    let fresh = kiln::build::rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            - 3600,
    );
    let good_scan = scan(
        json!({"critical": 0, "high": 0, "medium": 2, "low": 5}),
        &fresh,
    );
    let complete = |name| Case {
        name,
        signer: Some("signer"),
        recipe_sha256: recipe.clone(),
        verdict: "identical",
        scan: good_scan.clone(),
        approvers: &["alice", "bob"],
        approves_other: None,
    };
    let cases: Vec<(Case, &str, &str)> = vec![
        (
            Case {
                signer: None,
                ..complete("unsigned")
            },
            "signature",
            "no signature by a listed key",
        ),
        (
            Case {
                signer: Some("stranger"),
                ..complete("wrongsigner")
            },
            "signature",
            "none verifies",
        ),
        (
            Case {
                recipe_sha256: kiln::Sha256Digest::of(b"another recipe").hex(),
                ..complete("otherrecipe")
            },
            "provenance",
            "not one the policy lists",
        ),
        (
            Case {
                verdict: "different",
                ..complete("different")
            },
            "rebuild",
            "verdict different",
        ),
        (
            Case {
                scan: scan(json!({"high": 1}), &fresh),
                ..complete("highvuln")
            },
            "scan",
            "1 high finding",
        ),
        (
            Case {
                scan: scan(json!({}), "2020-01-01T00:00:00Z"),
                ..complete("stalescan")
            },
            "scan",
            "day(s) ago",
        ),
        (
            Case {
                approvers: &["alice"],
                ..complete("oneapproval")
            },
            "approvals",
            "1 of 2",
        ),
        (
            Case {
                approvers: &["alice", "mallory"],
                ..complete("unlisted")
            },
            "approvals",
            "not listed, ignored",
        ),
        (
            Case {
                approves_other: Some("bob"),
                ..complete("otherdigest")
            },
            "approvals",
            "is for sha256:",
        ),
    ];
    let dest = registry.reference("verified/app");
    for (case, rule, why) in &cases {
        let (reference, digest) = stage(&ctx, &registry, case);
        let (code, stdout, stderr) =
            promote(&ctx, &reference, &format!("{dest}:{}", case.name), &[]);
        assert_eq!(code, 1, "{}: {stdout}\n{stderr}", case.name);
        let line = stdout
            .lines()
            .find(|l| l.starts_with(rule) && l.contains("FAIL"))
            .unwrap_or_else(|| panic!("{}: no failed {rule} row:\n{stdout}\n{stderr}", case.name));
        assert!(line.contains(why), "{}: {line}", case.name);
        assert!(stderr.contains("nothing was written"), "{stderr}");
        // Only that rule failed.
        assert_eq!(stdout.matches("FAIL").count(), 1, "{}: {stdout}", case.name);
        // The destination repository does not exist.
        assert_eq!(tags(&registry, "verified/app").0, 404, "{}", case.name);
        // --json names the same failure.
        let (code, json_out, _) = promote(
            &ctx,
            &reference,
            &format!("{dest}:x"),
            &["--json", "--dry-run"],
        );
        assert_eq!(code, 1);
        let report: Value = serde_json::from_str(&json_out).unwrap();
        assert_eq!(report["passed"], false);
        assert_eq!(report["subject"], digest.as_str());
        let failed: Vec<&Value> = report["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["passed"] == false)
            .collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0]["rule"], *rule);
    }

    // A complete image: dry run writes nothing, then it is promoted.
    let (reference, digest) = stage(&ctx, &registry, &complete("good"));
    let (code, stdout, stderr) = promote(&ctx, &reference, &format!("{dest}:v1"), &["--dry-run"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(tags(&registry, "verified/app").0, 404);
    // Verifying at the source without a promotion fails only the promotion rule.
    let (code, out) = verify_policy(&ctx, &reference);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("promotion") && l.contains("FAIL")),
        "{out}"
    );

    let (code, stdout, stderr) = promote(&ctx, &reference, &format!("{dest}:v1"), &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}\n{}", registry.log());
    assert_eq!(last_line(&stdout), digest);
    for rule in [
        "signature",
        "provenance",
        "rebuild",
        "scan",
        "sbom",
        "approvals",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(rule) && l.contains("pass")),
            "{rule}: {stdout}"
        );
    }
    let (status, body) = tags(&registry, "verified/app");
    assert_eq!(status, 200);
    let listed: Value = serde_json::from_slice(&body).unwrap();
    let listed: Vec<&str> = listed["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let hex = digest.strip_prefix("sha256:").unwrap();
    assert!(listed.contains(&"v1"), "{listed:?}");
    assert!(
        listed.contains(&format!("sha256-{hex}.sig").as_str()),
        "{listed:?}"
    );
    assert!(
        listed.contains(&format!("sha256-{hex}.att").as_str()),
        "{listed:?}"
    );

    // At the destination: verifies with the policy and the promoter, by tag and by digest.
    for at in [format!("{dest}:v1"), format!("{dest}@{digest}")] {
        let (code, out) = verify_policy(&ctx, &at);
        assert_eq!(code, 0, "{at}: {out}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("promotion") && l.contains("pass")),
            "{out}"
        );
    }
    // Another promoter's key, or a changed policy, does not verify.
    let out = ctx
        .kiln()
        .args(["verify", "--tls-verify=false", &format!("{dest}:v1")])
        .args([
            "--policy",
            "policy/policy.toml",
            "--promoted-by",
            "mallory.pub",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let policy = std::fs::read_to_string(ctx.join("policy/policy.toml")).unwrap();
    std::fs::write(
        ctx.join("policy/policy.toml"),
        policy.replace("max-age-days = 7", "max-age-days = 6"),
    )
    .unwrap();
    let (code, out) = verify_policy(&ctx, &format!("{dest}:v1"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not this policy"), "{out}");

    // The Python verifier (securesystemslib DSSE) accepts the promotion and approval
    // statements, and they say what they should.
    let promotion = python_dsse(
        &ctx,
        &envelope(&registry, "verified/app", &digest, PROMOTION),
        "promoter.pub",
    );
    assert_eq!(promotion["predicateType"], PROMOTION);
    assert_eq!(promotion["subject"][0]["digest"]["sha256"], hex);
    assert_eq!(
        promotion["predicate"]["policy"]["sha256"],
        kiln::Sha256Digest::of(policy.as_bytes()).hex()
    );
    let rules = promotion["predicate"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 6);
    assert!(rules
        .iter()
        .all(|r| r["passed"] == true && !r["evidence"].as_array().unwrap().is_empty()));
    // `kiln list`: the promoted tag with its promoter, policy and time; an image pushed there
    // without promotion is listed as not promoted, and the attachment tags are not listed.
    push(&ctx, "out-unsigned", &format!("{dest}:raw"));
    let stdout = run_ok(ctx.kiln().args([
        "list",
        "--tls-verify=false",
        &dest,
        "--promoted-by",
        "promoter.pub",
    ]));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let policy_hex = kiln::Sha256Digest::of(policy.as_bytes()).hex();
    assert!(lines[0].starts_with("raw\tsha256:"), "{stdout}");
    assert!(lines[0].ends_with("\tnot promoted"), "{stdout}");
    assert!(
        lines[1].starts_with(&format!("v1\t{digest}\tpromoted by key ")),
        "{stdout}"
    );
    assert!(
        lines[1].contains(&format!("under policy sha256:{policy_hex} at 20")),
        "{stdout}"
    );
    let json_out = run_ok(ctx.kiln().args([
        "list",
        "--tls-verify=false",
        &dest,
        "--promoted-by",
        "mallory.pub",
        "--json",
    ]));
    let rows: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(rows[1]["tag"], "v1");
    assert_eq!(
        rows[1]["promotions"],
        json!([]),
        "another key's view: {json_out}"
    );
    let approval = python_dsse(
        &ctx,
        &envelope(&registry, "team/good", &digest, APPROVAL),
        "alice.pub",
    );
    assert_eq!(approval["predicate"]["image"]["digest"], digest.as_str());
    assert_eq!(approval["predicate"]["comment"], "looked at the diff");
    assert!(approval["predicate"]["time"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(
        approval["predicate"]["reviewer"]["keyId"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
}

#[test]
fn policy_errors_name_the_file_line_and_column() {
    let ctx = TestContext::new();
    keygen(&ctx, "signer");
    ctx.write(
        "p.toml",
        "signers = [\"signer.pub\"]\n[scan]\nmax-severity = \"low\"\nmax-age = 7\n",
    );
    let out = run_err(ctx.kiln().args([
        "promote",
        "oci:nowhere",
        "--policy",
        "p.toml",
        "--to",
        "docker://127.0.0.1:1/x",
        "--dry-run",
    ]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("p.toml:4:1: unknown field `max-age`"), "{err}");
}
