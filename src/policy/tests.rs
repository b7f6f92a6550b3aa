use std::path::Path;

use serde_json::json;

use super::*;
use crate::attest::cosign::NewLayer;
use crate::attest::{attestation_layer, signature_layer, PredicateType, SigningKey};

fn keys_by_name(names: &[(&str, &SigningKey)]) -> impl Fn(&Path) -> std::io::Result<String> {
    let pems: Vec<(String, String)> = names
        .iter()
        .map(|(n, k)| (n.to_string(), keys::write_public_pem(k.verifying_key())))
        .collect();
    move |p: &Path| {
        pems.iter()
            .find(|(n, _)| Path::new(n) == p)
            .map(|(_, pem)| pem.clone())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
}

#[test]
fn unknown_keys_and_bad_values_name_file_line_and_column() {
    let k = keys::generate();
    let read = keys_by_name(&[("k.pub", &k)]);
    let cases = [
        (
            "signers = [\"k.pub\"]\nsigner = 1\n",
            "policy.toml:2:1",
            "unknown field `signer`",
        ),
        (
            "signers = [\"k.pub\"]\n[rebuild]\naccept = [\"different\"]\n",
            "policy.toml:3:",
            "different",
        ),
        (
            "signers = [\"k.pub\"]\n[scan]\nmax-severity = \"severe\"\nmax-age-days = 1\n",
            "policy.toml:3:",
            "severe",
        ),
        (
            "signers = [\"k.pub\"]\n[provenance]\nrecipe-sha256 = [\"abc\"]\n",
            "policy.toml:3:18",
            "not a sha256",
        ),
        (
            "signers = [\"k.pub\"]\n[approvals]\ncount = 2\nreviewers = [\"k.pub\"]\n",
            "policy.toml:3:9",
            "between 1 and the 1",
        ),
        (
            "signers = [\"k.pub\", \"absent.pub\"]\n",
            "policy.toml:1:21",
            "absent.pub",
        ),
        ("signers = []\n", "policy.toml:1:11", "lists no key"),
        ("[sbom]\nrequired = true\n", "policy.toml:1:1", "signers"),
    ];
    for (text, at, what) in cases {
        let err = Policy::parse(Path::new("policy.toml"), text.as_bytes(), &read).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with(at), "{text:?}: {msg}");
        assert!(
            msg.contains(what) || format!("{err:?}").contains(what),
            "{text:?}: {msg}"
        );
    }
}

#[test]
fn rfc3339_times_parse_to_unix_seconds() {
    for epoch in [0, 1_700_000_000, 951_782_400, 4_102_444_799] {
        let text = crate::build::rfc3339(epoch);
        assert_eq!(parse_rfc3339(&text), Some(epoch), "{text}");
    }
    assert_eq!(parse_rfc3339("1970-01-01T01:00:00.123+01:00"), Some(0));
    for bad in [
        "",
        "2024-13-01T00:00:00Z",
        "2024-01-01 00:00:00Z",
        "2024-01-01T00:00:00",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad}");
    }
}

struct Fixture {
    signer: SigningKey,
    alice: SigningKey,
    bob: SigningKey,
    policy: Policy,
    subject: Sha256Digest,
}

const NOW: i64 = 1_800_000_000;

fn fixture() -> Fixture {
    let (signer, alice, bob) = (keys::generate(), keys::generate(), keys::generate());
    let read = keys_by_name(&[("s.pub", &signer), ("a.pub", &alice), ("b.pub", &bob)]);
    let text = format!(
        "signers = [\"s.pub\"]\n[provenance]\nrecipe-sha256 = [\"{}\"]\n\
         builder-id = \"https://kiln.build/kiln\"\n[rebuild]\naccept = [\"identical\"]\n\
         [scan]\nmax-severity = \"medium\"\nmax-age-days = 7\n[sbom]\nrequired = true\n\
         [approvals]\ncount = 2\nreviewers = [\"a.pub\", \"b.pub\"]\n",
        Sha256Digest::of(b"recipe").hex()
    );
    let policy = Policy::parse(Path::new("p.toml"), text.as_bytes(), read).unwrap();
    Fixture {
        signer,
        alice,
        bob,
        policy,
        subject: Sha256Digest::of(b"image"),
    }
}

fn stored(layers: Vec<NewLayer>) -> Vec<(Descriptor, Vec<u8>)> {
    layers
        .into_iter()
        .map(|l| (l.descriptor, l.blob.bytes))
        .collect()
}

use crate::attest::cosign::Descriptor;

fn att(key: &SigningKey, subject: &Sha256Digest, t: &str, p: serde_json::Value) -> NewLayer {
    attestation_layer(key, "r/app", subject, &PredicateType::from_uri(t), p)
}

fn complete(f: &Fixture) -> (Vec<NewLayer>, Vec<NewLayer>) {
    let s = &f.subject;
    let approval = |k: &SigningKey| {
        let p = approval_predicate(k.verifying_key(), Some("ok"), s, "2027-01-15T00:00:00Z");
        att(k, s, APPROVAL_PREDICATE_TYPE, p)
    };
    let provenance = json!({
        "buildDefinition": {"externalParameters": {"recipe": {"digest": {"sha256": Sha256Digest::of(b"recipe").hex()}}}},
        "runDetails": {"builder": {"id": "https://kiln.build/kiln"}},
    });
    let scan = json!({
        "scanner": {"result": {"summary": {"critical": 0, "high": 0, "medium": 3, "low": 9}}},
        "metadata": {"scanFinishedOn": crate::build::rfc3339(NOW - 86_400)},
    });
    let sigs = vec![signature_layer(&f.signer, "r/app:1", s)];
    let atts = vec![
        att(
            &f.signer,
            s,
            PredicateType::SlsaProvenance1.uri(),
            provenance,
        ),
        att(&f.signer, s, REBUILD_TYPE, json!({"verdict": "identical"})),
        att(&f.signer, s, PredicateType::Vuln.uri(), scan),
        att(&f.signer, s, PredicateType::SpdxJson.uri(), json!({})),
        approval(&f.alice),
        approval(&f.bob),
    ];
    (sigs, atts)
}

const REBUILD_TYPE: &str = crate::diff::REBUILD_PREDICATE_TYPE;

fn run(f: &Fixture, sigs: Vec<NewLayer>, atts: Vec<NewLayer>) -> Evaluation {
    let (sigs, atts) = (stored(sigs), stored(atts));
    let evidence = Evidence {
        subject: f.subject,
        signatures: &sigs,
        attestations: &atts,
    };
    evaluate(&f.policy, &evidence, NOW, None)
}

fn failed(e: &Evaluation) -> Vec<(&'static str, String)> {
    e.rules
        .iter()
        .filter(|r| !r.passed)
        .map(|r| (r.rule, r.why.clone()))
        .collect()
}

#[test]
fn a_complete_image_passes_every_rule() {
    let f = fixture();
    let (sigs, atts) = complete(&f);
    let e = run(&f, sigs, atts);
    assert!(e.passed, "{:?}", failed(&e));
    let names: Vec<_> = e.rules.iter().map(|r| r.rule).collect();
    assert_eq!(
        names,
        [
            "signature",
            "provenance",
            "rebuild",
            "scan",
            "sbom",
            "approvals"
        ]
    );
    assert!(e.rules.iter().all(|r| !r.evidence.is_empty()));
}

#[test]
fn each_missing_or_wrong_piece_fails_its_rule() {
    let f = fixture();
    let stranger = keys::generate();
    let other = Sha256Digest::of(b"other image");
    type Mutate = Box<dyn Fn(&Fixture, &mut Vec<NewLayer>, &mut Vec<NewLayer>)>;
    let cases: Vec<(&str, &str, Mutate)> = vec![
        ("signature", "no signature", Box::new(|_, s, _| s.clear())),
        (
            "signature",
            "no signature",
            Box::new(move |f, s, _| {
                *s = vec![signature_layer(&keys::generate(), "r/app:1", &f.subject)]
            }),
        ),
        (
            "provenance",
            "not one the policy lists",
            Box::new(|f, _, a| {
                let p = json!({"buildDefinition": {"externalParameters": {"recipe": {"digest": {"sha256": Sha256Digest::of(b"x").hex()}}}}});
                a[0] = att(
                    &f.signer,
                    &f.subject,
                    PredicateType::SlsaProvenance1.uri(),
                    p,
                );
            }),
        ),
        (
            "rebuild",
            "verdict different",
            Box::new(|f, _, a| {
                a[1] = att(
                    &f.signer,
                    &f.subject,
                    REBUILD_TYPE,
                    json!({"verdict": "different"}),
                )
            }),
        ),
        (
            "scan",
            "1 high finding",
            Box::new(|f, _, a| {
                let p = json!({"scanner": {"result": {"summary": {"high": 1}}}, "metadata": {"scanFinishedOn": "2027-01-15T00:00:00Z"}});
                a[2] = att(&f.signer, &f.subject, PredicateType::Vuln.uri(), p);
            }),
        ),
        (
            "scan",
            "day(s) ago",
            Box::new(|f, _, a| {
                let p = json!({"scanner": {"result": {"summary": {}}}, "metadata": {"scanFinishedOn": "2020-01-01T00:00:00Z"}});
                a[2] = att(&f.signer, &f.subject, PredicateType::Vuln.uri(), p);
            }),
        ),
        (
            "scan",
            "no summary",
            Box::new(|f, _, a| {
                let p = json!({"metadata": {"scanFinishedOn": "2027-01-15T00:00:00Z"}});
                a[2] = att(&f.signer, &f.subject, PredicateType::Vuln.uri(), p);
            }),
        ),
        (
            "scan",
            "not RFC 3339",
            Box::new(|f, _, a| {
                let p = json!({"scanner": {"result": {"summary": {}}}, "metadata": {"scanFinishedOn": "yesterday"}});
                a[2] = att(&f.signer, &f.subject, PredicateType::Vuln.uri(), p);
            }),
        ),
        (
            "scan",
            "cannot rank",
            Box::new(|f, _, a| {
                let p = json!({"scanner": {"result": {"summary": {"unevaluated": 1}}}, "metadata": {"scanFinishedOn": "2027-01-15T00:00:00Z"}});
                a[2] = att(&f.signer, &f.subject, PredicateType::Vuln.uri(), p);
            }),
        ),
        (
            "provenance",
            "no https://slsa.dev/provenance/v1 attestation signed by a listed key (1 signed by other keys",
            Box::new(|f, _, a| {
                let p = json!({"buildDefinition": {}});
                a[0] = att(&keys::generate(), &f.subject, PredicateType::SlsaProvenance1.uri(), p);
            }),
        ),
        (
            "sbom",
            "no https://spdx.dev",
            Box::new(|_, _, a| {
                a.remove(3);
            }),
        ),
        (
            "approvals",
            "1 of 2",
            Box::new(|_, _, a| {
                a.pop();
            }),
        ),
        (
            "approvals",
            "not listed, ignored",
            Box::new(move |f, _, a| {
                let p = approval_predicate(stranger.verifying_key(), None, &f.subject, "t");
                a[5] = att(&stranger, &f.subject, APPROVAL_PREDICATE_TYPE, p);
            }),
        ),
        (
            "approvals",
            "is for",
            Box::new(move |f, _, a| {
                let p = approval_predicate(f.bob.verifying_key(), None, &other, "t");
                a[5] = att(&f.bob, &f.subject, APPROVAL_PREDICATE_TYPE, p);
            }),
        ),
        (
            "approvals",
            "is about",
            Box::new(move |f, _, a| {
                let p = approval_predicate(f.bob.verifying_key(), None, &other, "t");
                a[5] = att(&f.bob, &other, APPROVAL_PREDICATE_TYPE, p);
            }),
        ),
        (
            "approvals",
            "1 of 2",
            Box::new(|f, _, a| {
                a[5] = {
                    let p =
                        approval_predicate(f.alice.verifying_key(), Some("again"), &f.subject, "t");
                    att(&f.alice, &f.subject, APPROVAL_PREDICATE_TYPE, p)
                }
            }),
        ),
    ];
    for (rule, why, mutate) in cases {
        let (mut sigs, mut atts) = complete(&f);
        mutate(&f, &mut sigs, &mut atts);
        let e = run(&f, sigs, atts);
        let failed = failed(&e);
        assert!(!e.passed, "{rule} {why}");
        assert_eq!(failed.len(), 1, "{rule} {why}: {failed:?}");
        assert_eq!(failed[0].0, rule, "{failed:?}");
        assert!(failed[0].1.contains(why), "{rule}: {failed:?}");
    }
}

#[test]
fn the_example_policy_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policy.toml");
    let bytes = fs_err::read(&path).unwrap();
    let policy = Policy::parse(&path, &bytes, |p| {
        assert!(p.starts_with("keys"), "{}", p.display());
        Ok(keys::write_public_pem(keys::generate().verifying_key()))
    })
    .unwrap();
    assert_eq!(policy.signers.len(), 1);
    assert!(policy.provenance.is_some() && policy.rebuild.is_some() && policy.scan.is_some());
    assert!(policy.sbom);
    assert_eq!(policy.approvals.unwrap().count, 2);
}
