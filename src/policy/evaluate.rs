//! Applying a [`Policy`] to the signature and attestation layers attached to one image.
//!
//! Each rule looks only at evidence whose signature verifies with a key the policy lists for
//! it: `signers` for the signature, provenance, rebuild verdict, scan and SBOM, `reviewers` for
//! approvals. What the scan attestation must say (cosign's `vuln` predicate, read by kiln):
//! - `/scanner/result/summary`: an object of finding counts by severity (`critical`, `high`,
//!   `medium`, `low`, and `unknown` / `unevaluated`, which always fail when non-zero);
//! - `/metadata/scanFinishedOn`: RFC 3339 time the scan finished, for the age limit.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{json, Value};

use super::{AcceptedVerdict, Policy, PolicyKey, Severity};
use crate::attest::cosign::{Descriptor, PREDICATE_TYPE_ANNOTATION};
use crate::attest::dsse::Envelope;
use crate::attest::keys::VerifyingKey;
use crate::attest::verify::{verify_signatures, LayerVerdict, RECIPE_DIGEST_POINTER};
use crate::attest::{IdentityPolicy, PredicateType, Statement};
use crate::diff::REBUILD_PREDICATE_TYPE;
use crate::digest::Sha256Digest;
use crate::media::{DSSE_ENVELOPE, IN_TOTO};

/// The predicate type of `kiln approve` statements.
pub const APPROVAL_PREDICATE_TYPE: &str = "https://kiln.build/approval/v1";
/// The predicate type of `kiln promote` statements.
pub const PROMOTION_PREDICATE_TYPE: &str = "https://kiln.build/promotion/v1";

/// Where SLSA provenance names its builder.
const BUILDER_ID_POINTER: &str = "/runDetails/builder/id";
/// Where a vuln predicate keeps its finding counts by severity.
const SCAN_SUMMARY_POINTER: &str = "/scanner/result/summary";
/// Where a vuln predicate records when the scan finished.
const SCAN_FINISHED_POINTER: &str = "/metadata/scanFinishedOn";
/// A scan may claim to finish this far in the future (clock skew) and still count.
const CLOCK_SKEW_SECONDS: i64 = 300;

/// What is attached to the image: layers of its `.sig` and `.att` tags.
pub struct Evidence<'a> {
    pub subject: Sha256Digest,
    pub signatures: &'a [(Descriptor, Vec<u8>)],
    pub attestations: &'a [(Descriptor, Vec<u8>)],
}

/// One rule's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleResult {
    pub rule: &'static str,
    pub passed: bool,
    /// The attachment layers the verdict rests on.
    pub evidence: Vec<Sha256Digest>,
    pub why: String,
}

/// Every rule's outcome for one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    pub subject: Sha256Digest,
    #[serde(rename = "policySha256")]
    pub policy_sha256: Sha256Digest,
    pub passed: bool,
    pub rules: Vec<RuleResult>,
}

/// A statement whose envelope verifies with a listed key.
struct Signed {
    layer: Sha256Digest,
    key_id: String,
    statement: Statement,
}

/// The in-toto statements in `layers` signed by one of `keys`.
fn authenticated(layers: &[(Descriptor, Vec<u8>)], keys: &[&PolicyKey]) -> Vec<Signed> {
    let mut out = Vec::new();
    for (descriptor, blob) in layers {
        if descriptor.media_type != DSSE_ENVELOPE {
            continue;
        }
        let Ok(envelope) = Envelope::from_json(blob) else {
            continue;
        };
        if envelope.payload_type != IN_TOTO {
            continue;
        }
        for key in keys {
            let Ok(payload) = envelope.verify(&key.key) else {
                continue;
            };
            if let Ok(statement) = Statement::from_json(&payload) {
                out.push(Signed {
                    layer: descriptor.digest,
                    key_id: key.id.clone(),
                    statement,
                });
            }
        }
    }
    out
}

fn short(key_id: &str) -> &str {
    &key_id[..key_id.len().min(12)]
}

fn fail(rule: &'static str, evidence: Vec<Sha256Digest>, why: String) -> RuleResult {
    RuleResult {
        rule,
        passed: false,
        evidence,
        why,
    }
}

/// The statements of `types` by `keys`; fails when one is about another image, or none exist.
fn statements_of<'a>(
    rule: &'static str,
    signed: &'a [Signed],
    types: &[&str],
    subject: &Sha256Digest,
    attestations: &[(Descriptor, Vec<u8>)],
) -> Result<Vec<&'a Signed>, RuleResult> {
    let of_type: Vec<&Signed> = signed
        .iter()
        .filter(|s| types.contains(&s.statement.predicate_type.as_str()))
        .collect();
    if let Some(other) = of_type.iter().find(|s| !s.statement.is_about(subject)) {
        let about: Vec<String> = other
            .statement
            .subject
            .iter()
            .map(|s| {
                format!(
                    "{} sha256:{}",
                    s.name,
                    s.digest.get("sha256").map_or("?", |h| h)
                )
            })
            .collect();
        return Err(fail(
            rule,
            vec![other.layer],
            format!(
                "a statement by key {} is about [{}], not {subject}",
                short(&other.key_id),
                about.join(", ")
            ),
        ));
    }
    if of_type.is_empty() {
        let unlisted = attestations
            .iter()
            .filter(|(d, _)| {
                d.annotations
                    .get(PREDICATE_TYPE_ANNOTATION)
                    .is_some_and(|t| types.contains(&t.as_str()))
            })
            .count();
        return Err(fail(
            rule,
            Vec::new(),
            format!(
                "no {} attestation signed by a listed key{}",
                types.join(" or "),
                if unlisted > 0 {
                    format!(" ({unlisted} signed by other keys, ignored)")
                } else {
                    String::new()
                }
            ),
        ));
    }
    Ok(of_type)
}

/// Passes when every statement of `types` passes `check` (and there is one); the reasons of the
/// passing ones are the `why`.
fn every_statement(
    rule: &'static str,
    signed: &[Signed],
    types: &[&str],
    evidence: &Evidence<'_>,
    check: impl Fn(&Statement) -> Result<String, String>,
) -> RuleResult {
    let statements = match statements_of(
        rule,
        signed,
        types,
        &evidence.subject,
        evidence.attestations,
    ) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let layers: Vec<Sha256Digest> = statements.iter().map(|s| s.layer).collect();
    let mut reasons = BTreeSet::new();
    for s in &statements {
        match check(&s.statement) {
            Ok(reason) => reasons.insert(format!("{reason} (key {})", short(&s.key_id))),
            Err(reason) => return fail(rule, vec![s.layer], reason),
        };
    }
    RuleResult {
        rule,
        passed: true,
        evidence: layers,
        why: reasons.into_iter().collect::<Vec<_>>().join("; "),
    }
}

fn signature_rule(policy: &Policy, evidence: &Evidence<'_>) -> RuleResult {
    let mut layers = Vec::new();
    let mut signers = Vec::new();
    for key in &policy.signers {
        let report = verify_signatures(
            evidence.signatures,
            &key.key,
            &evidence.subject,
            &IdentityPolicy::Any,
        );
        for layer in &report.layers {
            let signed_by_key = layer
                .checks
                .iter()
                .any(|c| c.name == "signature" && c.passed);
            match layer.verdict {
                LayerVerdict::Verified => layers.push(layer.digest),
                LayerVerdict::Rejected if signed_by_key => {
                    let reason = layer
                        .failed_check()
                        .and_then(|c| c.detail.clone())
                        .unwrap_or_default();
                    return fail(
                        "signature",
                        vec![layer.digest],
                        format!("a signature by key {} is refused: {reason}", short(&key.id)),
                    );
                }
                _ => {}
            }
        }
        if report.verified {
            signers.push(short(&key.id).to_string());
        }
    }
    if signers.is_empty() {
        let count = evidence.signatures.len();
        return fail(
            "signature",
            Vec::new(),
            format!(
                "no signature by a listed key ({count} signature layer(s), none verifies with \
                 the {} listed key(s))",
                policy.signers.len()
            ),
        );
    }
    RuleResult {
        rule: "signature",
        passed: true,
        evidence: layers,
        why: format!("signed by key {}", signers.join(", ")),
    }
}

fn provenance_check(rule: &super::ProvenanceRule, s: &Statement) -> Result<String, String> {
    let recipe = s
        .predicate
        .pointer(RECIPE_DIGEST_POINTER)
        .and_then(Value::as_str);
    let mut said = Vec::new();
    if !rule.recipe_sha256.is_empty() {
        match recipe {
            Some(hex) if rule.recipe_sha256.iter().any(|d| d.hex() == hex) => {
                said.push(format!("recipe sha256:{hex}"))
            }
            Some(hex) => {
                return Err(format!(
                    "the provenance names recipe sha256:{hex}, not one the policy lists"
                ))
            }
            None => return Err("the provenance names no recipe digest".into()),
        }
    }
    if let Some(want) = &rule.builder_id {
        match s
            .predicate
            .pointer(BUILDER_ID_POINTER)
            .and_then(Value::as_str)
        {
            Some(id) if id == want => said.push(format!("builder {id}")),
            Some(id) => return Err(format!("the provenance names builder {id}, not {want}")),
            None => return Err("the provenance names no builder id".into()),
        }
    }
    if said.is_empty() {
        said.push("provenance present".into());
    }
    Ok(said.join(", "))
}

fn rebuild_check(accept: &[AcceptedVerdict], s: &Statement) -> Result<String, String> {
    let Some(verdict) = s.predicate.get("verdict").and_then(Value::as_str) else {
        return Err("the rebuild statement has no verdict".into());
    };
    if accept.iter().any(|a| a.as_str() == verdict) {
        Ok(format!("verdict {verdict}"))
    } else {
        let names: Vec<&str> = accept.iter().map(|a| a.as_str()).collect();
        Err(format!(
            "verdict {verdict}, the policy accepts {}",
            names.join(", ")
        ))
    }
}

fn scan_check(rule: &super::ScanRule, s: &Statement, now: i64) -> Result<String, String> {
    let Some(summary) = s
        .predicate
        .pointer(SCAN_SUMMARY_POINTER)
        .and_then(Value::as_object)
    else {
        return Err(format!("the scan has no summary at {SCAN_SUMMARY_POINTER}"));
    };
    let count = |name: &str| summary.get(name).and_then(Value::as_u64).unwrap_or(0);
    for name in ["unknown", "unevaluated"] {
        if count(name) > 0 {
            return Err(format!(
                "the scan has {} {name} finding(s), which the policy cannot rank",
                count(name)
            ));
        }
    }
    for severity in Severity::FINDINGS {
        let n = count(severity.as_str());
        if severity > rule.max_severity && n > 0 {
            return Err(format!(
                "the scan has {n} {} finding(s), the policy allows up to {}",
                severity.as_str(),
                rule.max_severity.as_str()
            ));
        }
    }
    let Some(finished) = s
        .predicate
        .pointer(SCAN_FINISHED_POINTER)
        .and_then(Value::as_str)
    else {
        return Err(format!("the scan has no time at {SCAN_FINISHED_POINTER}"));
    };
    let Some(at) = parse_rfc3339(finished) else {
        return Err(format!("the scan time `{finished}` is not RFC 3339"));
    };
    let age = now - at;
    if age < -CLOCK_SKEW_SECONDS {
        return Err(format!("the scan finished in the future ({finished})"));
    }
    if age > rule.max_age_seconds {
        return Err(format!(
            "the scan finished {finished}, {} day(s) ago; the policy allows {}",
            age / 86_400,
            rule.max_age_seconds / 86_400
        ));
    }
    Ok(format!(
        "nothing above {}, scanned {finished}",
        rule.max_severity.as_str()
    ))
}

fn approvals_rule(rule: &super::ApprovalRule, evidence: &Evidence<'_>) -> RuleResult {
    let keys: Vec<&PolicyKey> = rule.reviewers.iter().collect();
    let signed = authenticated(evidence.attestations, &keys);
    let types = [APPROVAL_PREDICATE_TYPE];
    let statements = match statements_of(
        "approvals",
        &signed,
        &types,
        &evidence.subject,
        evidence.attestations,
    ) {
        Ok(s) => s,
        Err(r) if r.evidence.is_empty() => Vec::new(),
        Err(r) => return r,
    };
    let subject = evidence.subject.to_string();
    let mut reviewers = BTreeSet::new();
    for s in &statements {
        let image = s
            .statement
            .predicate
            .pointer("/image/digest")
            .and_then(Value::as_str);
        if image != Some(subject.as_str()) {
            return fail(
                "approvals",
                vec![s.layer],
                format!(
                    "an approval by key {} is for {}, not {subject}",
                    short(&s.key_id),
                    image.unwrap_or("no image")
                ),
            );
        }
        reviewers.insert(short(&s.key_id).to_string());
    }
    let approving: BTreeSet<&Sha256Digest> = statements.iter().map(|s| &s.layer).collect();
    let ignored = evidence
        .attestations
        .iter()
        .filter(|(d, _)| {
            d.annotations
                .get(PREDICATE_TYPE_ANNOTATION)
                .map(String::as_str)
                == Some(APPROVAL_PREDICATE_TYPE)
                && !approving.contains(&d.digest)
        })
        .count();
    let names: Vec<String> = reviewers.iter().cloned().collect();
    let mut why = format!(
        "{} of {} approval(s) by distinct listed reviewers{}",
        reviewers.len(),
        rule.count,
        if names.is_empty() {
            String::new()
        } else {
            format!(" ({})", names.join(", "))
        }
    );
    if ignored > 0 {
        why.push_str(&format!(
            "; {ignored} approval(s) by keys not listed, ignored"
        ));
    }
    RuleResult {
        rule: "approvals",
        passed: reviewers.len() >= rule.count,
        evidence: statements.iter().map(|s| s.layer).collect(),
        why,
    }
}

/// Applies every rule of `policy` to `evidence`; `now` (Unix seconds) dates the scan age.
/// `promoted_by`, when given, adds the `promotion` rule: a promotion statement by that key,
/// under this policy.
pub fn evaluate(
    policy: &Policy,
    evidence: &Evidence<'_>,
    now: i64,
    promoted_by: Option<&PolicyKey>,
) -> Evaluation {
    let signer_keys: Vec<&PolicyKey> = policy.signers.iter().collect();
    let signed = authenticated(evidence.attestations, &signer_keys);
    let mut rules = vec![signature_rule(policy, evidence)];
    if let Some(rule) = &policy.provenance {
        let types = [PredicateType::SlsaProvenance1.uri()];
        rules.push(every_statement(
            "provenance",
            &signed,
            &types,
            evidence,
            |s| provenance_check(rule, s),
        ));
    }
    if let Some(accept) = &policy.rebuild {
        rules.push(every_statement(
            "rebuild",
            &signed,
            &[REBUILD_PREDICATE_TYPE],
            evidence,
            |s| rebuild_check(accept, s),
        ));
    }
    if let Some(rule) = &policy.scan {
        let types = [PredicateType::Vuln.uri()];
        rules.push(every_statement("scan", &signed, &types, evidence, |s| {
            scan_check(rule, s, now)
        }));
    }
    if policy.sbom {
        let types = [
            PredicateType::SpdxJson.uri(),
            PredicateType::CycloneDx.uri(),
        ];
        rules.push(every_statement("sbom", &signed, &types, evidence, |s| {
            Ok(format!("{} present", s.predicate_type))
        }));
    }
    if let Some(rule) = &policy.approvals {
        rules.push(approvals_rule(rule, evidence));
    }
    if let Some(key) = promoted_by {
        let signed = authenticated(evidence.attestations, &[key]);
        let want = policy.sha256.hex();
        rules.push(every_statement(
            "promotion",
            &signed,
            &[PROMOTION_PREDICATE_TYPE],
            evidence,
            |s| match s
                .predicate
                .pointer("/policy/sha256")
                .and_then(Value::as_str)
            {
                Some(hex) if hex == want => Ok(format!("promoted under policy sha256:{hex}")),
                Some(hex) => Err(format!(
                    "promoted under policy sha256:{hex}, not this policy (sha256:{want})"
                )),
                None => Err("the promotion statement names no policy".into()),
            },
        ));
    }
    Evaluation {
        subject: evidence.subject,
        policy_sha256: policy.sha256,
        passed: rules.iter().all(|r| r.passed),
        rules,
    }
}

/// The predicate of a `kiln approve` statement.
pub fn approval_predicate(
    reviewer: &VerifyingKey,
    comment: Option<&str>,
    image: &Sha256Digest,
    time: &str,
) -> Value {
    json!({
        "reviewer": {"keyId": crate::attest::keys::key_id(reviewer)},
        "comment": comment.unwrap_or(""),
        "image": {"digest": image.to_string()},
        "time": time,
    })
}

/// Unix seconds of an RFC 3339 time (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(range)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let h: i64 = rest[1..3].parse().ok()?;
            let m: i64 = rest[4..6].parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm), the inverse of `build::config::rfc3339`.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss - offset)
}

/// A promotion statement about an image, signed by a known key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Promotion {
    /// The attestation layer holding it.
    pub layer: Sha256Digest,
    #[serde(rename = "keyId")]
    pub key_id: String,
    /// The policy's sha256 (hex), as recorded.
    #[serde(rename = "policySha256")]
    pub policy_sha256: Option<String>,
    pub destination: Option<String>,
    pub time: Option<String>,
}

/// The promotion statements about `subject` in `attestations` signed by one of `keys`.
pub fn promotions(
    attestations: &[(Descriptor, Vec<u8>)],
    subject: &Sha256Digest,
    keys: &[PolicyKey],
) -> Vec<Promotion> {
    let keys: Vec<&PolicyKey> = keys.iter().collect();
    let text = |s: &Signed, pointer: &str| {
        s.statement
            .predicate
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    authenticated(attestations, &keys)
        .iter()
        .filter(|s| {
            s.statement.predicate_type == PROMOTION_PREDICATE_TYPE && s.statement.is_about(subject)
        })
        .map(|s| Promotion {
            layer: s.layer,
            key_id: s.key_id.clone(),
            policy_sha256: text(s, "/policy/sha256"),
            destination: text(s, "/image/destination"),
            time: text(s, "/time"),
        })
        .collect()
}
