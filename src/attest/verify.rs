//! Verification of cosign-layout signatures and attestations against a public key.
//!
//! Every layer of the `.sig` / `.att` image is checked in order (media type, blob digest,
//! signature, then what the signed payload claims) and each check lands in a serializable
//! [`VerificationReport`], so `kiln verify --json` can show exactly what passed. A check runs
//! only after the one before it passed: the claims of an unauthenticated payload mean nothing.
//!
//! The verdict follows cosign: the image is verified when at least one layer passes every
//! check. Layers signed by other keys are reported and otherwise ignored (several parties may
//! sign one image). But a layer whose signature *does* verify with this key and that vouches
//! for a different image, or for a different recipe, fails the whole verification: the key's
//! owner never said that about this image, so the tag has been tampered with or mixed up.
//!
//! Payloads are checked the way containers/image checks them (see `simple_signing`): exact
//! field sets and no duplicate keys, so that an extra field smuggled into `critical` is refused
//! rather than ignored.

use p256::ecdsa::VerifyingKey;
use serde::Serialize;
use serde_json::Value;

use crate::attest::cosign::{Descriptor, SIGNATURE_ANNOTATION};
use crate::attest::dsse::{self, Envelope};
use crate::attest::intoto::{PredicateType, Statement};
use crate::attest::simple_signing::parse_payload;
pub use crate::attest::simple_signing::IdentityPolicy;
use crate::digest::Sha256Digest;
use crate::media::{COSIGN_SIMPLE_SIGNING, DSSE_ENVELOPE, IN_TOTO};

/// Where a SLSA provenance predicate records the recipe's sha256 (kiln's provenance writer
/// puts it there).
pub const RECIPE_DIGEST_POINTER: &str = "/buildDefinition/externalParameters/recipe/digest/sha256";

/// A report that did not verify, as an error (the tests' view of a report; the CLI prints
/// reports itself).
#[cfg(test)]
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum VerifyError {
    #[error("failed to verify the {kind} of {subject}: {}", failures.join("; "))]
    NotVerified {
        subject: Sha256Digest,
        kind: ReportKind,
        failures: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    Signature,
    Attestation,
}

impl std::fmt::Display for ReportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Signature => "signatures",
            Self::Attestation => "attestations",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerVerdict {
    /// Every check passed.
    Verified,
    /// A check failed.
    Rejected,
    /// Not a layer of the kind (or predicate type) being verified.
    Skipped,
}

/// One named check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerReport {
    pub index: usize,
    pub digest: Sha256Digest,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub verdict: LayerVerdict,
    pub checks: Vec<Check>,
}

impl LayerReport {
    /// The first failed check, if any.
    pub fn failed_check(&self) -> Option<&Check> {
        self.checks.iter().find(|c| !c.passed)
    }

    fn signature_verified(&self) -> bool {
        self.checks
            .iter()
            .any(|c| c.name == "signature" && c.passed)
    }

    #[cfg(test)]
    fn describe_failure(&self) -> Option<String> {
        let check = self.failed_check()?;
        Some(format!(
            "layer {} ({}): {}: {}",
            self.index,
            self.digest,
            check.name,
            check.detail.as_deref().unwrap_or("failed")
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerificationReport {
    pub subject: Sha256Digest,
    pub kind: ReportKind,
    #[serde(rename = "predicateType", skip_serializing_if = "Option::is_none")]
    pub predicate_type: Option<String>,
    pub verified: bool,
    pub layers: Vec<LayerReport>,
}

impl VerificationReport {
    fn new(
        subject: Sha256Digest,
        kind: ReportKind,
        predicate_type: Option<String>,
        layers: Vec<LayerReport>,
    ) -> Self {
        let any_verified = layers.iter().any(|l| l.verdict == LayerVerdict::Verified);
        let key_vouches_otherwise = layers
            .iter()
            .any(|l| l.verdict == LayerVerdict::Rejected && l.signature_verified());
        Self {
            subject,
            kind,
            predicate_type,
            verified: any_verified && !key_vouches_otherwise,
            layers,
        }
    }

    /// One line per failed layer: `layer N (sha256:…): check: detail`.
    #[cfg(test)]
    pub fn failures(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .layers
            .iter()
            .filter_map(|l| l.describe_failure())
            .collect();
        out.extend(self.missing());
        out
    }

    /// When no layer is of the kind (or predicate type) verified, what is missing: `no
    /// signatures layer`, `no attestation layer with predicate type `…``.
    pub fn missing(&self) -> Option<String> {
        if self
            .layers
            .iter()
            .any(|l| l.verdict != LayerVerdict::Skipped)
        {
            return None;
        }
        Some(match &self.predicate_type {
            Some(t) => format!("no attestation layer with predicate type `{t}`"),
            None => format!("no {} layer", self.kind),
        })
    }

    /// `Ok(self)` when verified, else an error listing every failed layer.
    #[cfg(test)]
    pub fn into_result(self) -> Result<Self, VerifyError> {
        if self.verified {
            Ok(self)
        } else {
            Err(VerifyError::NotVerified {
                subject: self.subject,
                kind: self.kind,
                failures: self.failures(),
            })
        }
    }
}

/// Accumulates checks for one layer; the first failure ends the layer.
struct LayerChecks {
    checks: Vec<Check>,
}

impl LayerChecks {
    fn pass(&mut self, name: &'static str) {
        self.checks.push(Check {
            name,
            passed: true,
            detail: None,
        });
    }

    fn fail(&mut self, name: &'static str, detail: String) -> LayerVerdict {
        self.checks.push(Check {
            name,
            passed: false,
            detail: Some(detail),
        });
        LayerVerdict::Rejected
    }

    fn skip(&mut self, name: &'static str, detail: String) -> LayerVerdict {
        self.checks.push(Check {
            name,
            passed: true,
            detail: Some(detail),
        });
        LayerVerdict::Skipped
    }
}

fn check_blob(
    c: &mut LayerChecks,
    descriptor: &Descriptor,
    blob: &[u8],
) -> Result<(), LayerVerdict> {
    let actual = Sha256Digest::of(blob);
    if actual != descriptor.digest || blob.len() as u64 != descriptor.size {
        return Err(c.fail(
            "blob-digest",
            format!(
                "the blob is {actual} ({} bytes), the manifest says {} ({} bytes)",
                blob.len(),
                descriptor.digest,
                descriptor.size
            ),
        ));
    }
    c.pass("blob-digest");
    Ok(())
}

fn verify_signature_layer(
    descriptor: &Descriptor,
    blob: &[u8],
    key: &VerifyingKey,
    subject: &Sha256Digest,
    identity: &IdentityPolicy,
) -> (LayerVerdict, Vec<Check>) {
    let mut c = LayerChecks { checks: Vec::new() };
    let verdict = (|| {
        if descriptor.media_type != COSIGN_SIMPLE_SIGNING {
            return c.skip(
                "media-type",
                format!("not a signature layer ({})", descriptor.media_type),
            );
        }
        c.pass("media-type");
        if let Err(v) = check_blob(&mut c, descriptor, blob) {
            return v;
        }
        let Some(sig) = descriptor.annotations.get(SIGNATURE_ANNOTATION) else {
            return c.fail(
                "signature",
                format!("the `{SIGNATURE_ANNOTATION}` annotation is missing"),
            );
        };
        if let Err(problem) = dsse::verify_der_b64(key, blob, sig) {
            return c.fail("signature", problem.to_string());
        }
        c.pass("signature");
        let claims = match parse_payload(blob) {
            Ok(claims) => claims,
            Err(e) => return c.fail("payload-format", e.to_string()),
        };
        let digest = claims.docker_manifest_digest;
        c.pass("payload-format");
        if digest != subject.to_string() {
            return c.fail(
                "payload-digest",
                format!("the payload signs {digest}, not {subject}"),
            );
        }
        c.pass("payload-digest");
        if *identity != IdentityPolicy::Any {
            if let Err(reason) = identity.check(&claims.docker_reference) {
                return c.fail("payload-identity", reason);
            }
            c.pass("payload-identity");
        }
        LayerVerdict::Verified
    })();
    (verdict, c.checks)
}

/// One report per layer, in manifest order, from `verify` applied to each layer.
fn layer_reports<F>(layers: &[(Descriptor, Vec<u8>)], verify: F) -> Vec<LayerReport>
where
    F: Fn(&Descriptor, &[u8]) -> (LayerVerdict, Vec<Check>),
{
    layers
        .iter()
        .enumerate()
        .map(|(index, (descriptor, blob))| {
            let (verdict, checks) = verify(descriptor, blob);
            LayerReport {
                index,
                digest: descriptor.digest,
                media_type: descriptor.media_type.clone(),
                verdict,
                checks,
            }
        })
        .collect()
}

/// Verifies the layers of a `.sig` image (descriptor + blob bytes each, in manifest order)
/// against `key` for the image `subject`; `identity` says which `docker-reference` the payload
/// must name.
pub fn verify_signatures(
    layers: &[(Descriptor, Vec<u8>)],
    key: &VerifyingKey,
    subject: &Sha256Digest,
    identity: &IdentityPolicy,
) -> VerificationReport {
    let reports = layer_reports(layers, |descriptor, blob| {
        verify_signature_layer(descriptor, blob, key, subject, identity)
    });
    VerificationReport::new(*subject, ReportKind::Signature, None, reports)
}

/// What an attestation must say to be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationPolicy {
    pub predicate_type: PredicateType,
    /// When set, the provenance must record this recipe digest at [`RECIPE_DIGEST_POINTER`].
    pub recipe_sha256: Option<Sha256Digest>,
}

fn verify_attestation_layer(
    descriptor: &Descriptor,
    blob: &[u8],
    key: &VerifyingKey,
    subject: &Sha256Digest,
    policy: &AttestationPolicy,
) -> (LayerVerdict, Vec<Check>) {
    let mut c = LayerChecks { checks: Vec::new() };
    let verdict = (|| {
        if descriptor.media_type != DSSE_ENVELOPE {
            return c.skip(
                "media-type",
                format!("not an attestation layer ({})", descriptor.media_type),
            );
        }
        c.pass("media-type");
        if let Err(v) = check_blob(&mut c, descriptor, blob) {
            return v;
        }
        let envelope = match Envelope::from_json(blob) {
            Ok(e) => e,
            Err(e) => return c.fail("envelope", e.to_string()),
        };
        c.pass("envelope");
        if envelope.payload_type != IN_TOTO {
            return c.fail(
                "payload-type",
                format!(
                    "payloadType is {:?}, expected {IN_TOTO:?}",
                    envelope.payload_type
                ),
            );
        }
        c.pass("payload-type");
        let payload = match envelope.verify(key) {
            Ok(p) => p,
            Err(e) => return c.fail("signature", e.to_string()),
        };
        c.pass("signature");
        let statement = match Statement::from_json(&payload) {
            Ok(s) => s,
            Err(e) => return c.fail("statement", e.to_string()),
        };
        c.pass("statement");
        if !statement.is_about(subject) {
            let names: Vec<String> = statement
                .subject
                .iter()
                .map(|s| format!("{} {:?}", s.name, s.digest.get("sha256")))
                .collect();
            return c.fail(
                "subject",
                format!(
                    "the statement is about [{}], not {subject}",
                    names.join(", ")
                ),
            );
        }
        c.pass("subject");
        if statement.predicate_type != policy.predicate_type.uri() {
            return c.skip(
                "predicate-type",
                format!(
                    "predicate type {}, not {}",
                    statement.predicate_type, policy.predicate_type
                ),
            );
        }
        c.pass("predicate-type");
        if let Some(expected) = &policy.recipe_sha256 {
            let recorded = statement
                .predicate
                .pointer(RECIPE_DIGEST_POINTER)
                .and_then(Value::as_str);
            match recorded {
                Some(hex) if hex == expected.hex() => c.pass("recipe-digest"),
                Some(hex) => {
                    return c.fail(
                        "recipe-digest",
                        format!("the provenance records recipe sha256:{hex}, expected {expected}"),
                    )
                }
                None => {
                    return c.fail(
                        "recipe-digest",
                        format!("the provenance has no recipe digest at {RECIPE_DIGEST_POINTER}"),
                    )
                }
            }
        }
        LayerVerdict::Verified
    })();
    (verdict, c.checks)
}

/// Verifies the layers of an `.att` image (descriptor + blob bytes each) against `key` for the
/// image `subject` and `policy`.
pub fn verify_attestations(
    layers: &[(Descriptor, Vec<u8>)],
    key: &VerifyingKey,
    subject: &Sha256Digest,
    policy: &AttestationPolicy,
) -> VerificationReport {
    let reports = layer_reports(layers, |descriptor, blob| {
        verify_attestation_layer(descriptor, blob, key, subject, policy)
    });
    VerificationReport::new(
        *subject,
        ReportKind::Attestation,
        Some(policy.predicate_type.uri().to_string()),
        reports,
    )
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
