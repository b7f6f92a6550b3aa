//! Tests of `verify`: round trips and every tampering case of the signing issue.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::json;

use super::*;
use crate::attest::cosign::{build_signature_image, NewLayer, SignatureManifest};
use crate::attest::keys::{self, SigningKey};
use crate::attest::{attestation_layer, signature_layer};

const REFERENCE: &str = "localhost:5000/app:v1";

fn image() -> Sha256Digest {
    Sha256Digest::of(b"the image manifest")
}

fn other_image() -> Sha256Digest {
    Sha256Digest::of(b"another image manifest")
}

/// Builds the image from `layers`, then reads it back as a verifier would: manifest parsed,
/// blobs looked up by digest.
fn stored(layers: Vec<NewLayer>) -> Vec<(Descriptor, Vec<u8>)> {
    let blobs: Vec<_> = layers.iter().map(|l| l.blob.clone()).collect();
    let built = build_signature_image(layers);
    let manifest = SignatureManifest::parse(&built.manifest.bytes).unwrap();
    manifest
        .layers
        .into_iter()
        .map(|d| {
            let blob = blobs
                .iter()
                .find(|b| b.digest == d.digest)
                .unwrap()
                .bytes
                .clone();
            (d, blob)
        })
        .collect()
}

fn failed(report: &VerificationReport, layer: usize) -> &'static str {
    report.layers[layer]
        .failed_check()
        .expect("a failed check")
        .name
}

/// Replaces a layer's payload and fixes up its descriptor, as an attacker who can push to the
/// `.sig` tag would.
fn replace_payload(layer: &mut (Descriptor, Vec<u8>), payload: Vec<u8>) {
    layer.0.digest = Sha256Digest::of(&payload);
    layer.0.size = payload.len() as u64;
    layer.1 = payload;
}

fn provenance(recipe: &Sha256Digest) -> serde_json::Value {
    json!({
        "buildDefinition": {
            "buildType": "https://kiln.dev/build/v1",
            "externalParameters": {"recipe": {"path": "recipes/app.toml", "digest": {"sha256": recipe.hex()}}},
        },
        "runDetails": {"builder": {"id": "https://kiln.dev/builder"}},
    })
}

fn slsa_policy(recipe: Option<Sha256Digest>) -> AttestationPolicy {
    AttestationPolicy {
        predicate_type: PredicateType::SlsaProvenance1,
        recipe_sha256: recipe,
    }
}

#[test]
fn signature_round_trip_verifies_every_check() {
    let key = keys::generate();
    let layers = stored(vec![signature_layer(&key, REFERENCE, &image())]);
    let report = verify_signatures(
        &layers,
        key.verifying_key(),
        &image(),
        &IdentityPolicy::Exact(REFERENCE.into()),
    );
    assert!(report.verified, "{report:?}");
    let names: Vec<_> = report.layers[0].checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "media-type",
            "blob-digest",
            "signature",
            "payload-format",
            "payload-digest",
            "payload-identity"
        ]
    );
    assert!(report.layers[0].checks.iter().all(|c| c.passed));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["verified"], true);
    assert_eq!(json["kind"], "signature");
    assert_eq!(json["layers"][0]["verdict"], "verified");
    report.into_result().unwrap();
}

#[test]
fn tampered_changed_payload_is_rejected() {
    let key = keys::generate();
    let mut layers = stored(vec![signature_layer(&key, REFERENCE, &image())]);
    let changed = String::from_utf8(layers[0].1.clone())
        .unwrap()
        .replace("app:v1", "app:v2");
    replace_payload(&mut layers[0], changed.into_bytes());
    let report = verify_signatures(&layers, key.verifying_key(), &image(), &IdentityPolicy::Any);
    assert!(!report.verified);
    assert_eq!(failed(&report, 0), "signature");

    // Changing the blob without fixing the manifest is caught before the signature.
    let mut layers = stored(vec![signature_layer(&key, REFERENCE, &image())]);
    layers[0].1.push(b' ');
    let report = verify_signatures(&layers, key.verifying_key(), &image(), &IdentityPolicy::Any);
    assert_eq!(failed(&report, 0), "blob-digest");
}

#[test]
fn tampered_signature_for_another_digest_is_rejected() {
    let key = keys::generate();
    // A genuine signature, but of another image, placed in this image's `.sig` tag.
    let layers = stored(vec![signature_layer(&key, REFERENCE, &other_image())]);
    let report = verify_signatures(&layers, key.verifying_key(), &image(), &IdentityPolicy::Any);
    assert!(!report.verified);
    assert_eq!(failed(&report, 0), "payload-digest");
    let err = report.into_result().unwrap_err().to_string();
    assert!(
        err.contains(&format!("layer 0 ({})", layers[0].0.digest)),
        "{err}"
    );
    assert!(err.contains(&other_image().to_string()), "{err}");

    // Even next to a valid signature, the key vouching for another image fails verification.
    let layers = stored(vec![
        signature_layer(&key, REFERENCE, &image()),
        signature_layer(&key, REFERENCE, &other_image()),
    ]);
    let report = verify_signatures(&layers, key.verifying_key(), &image(), &IdentityPolicy::Any);
    assert_eq!(report.layers[0].verdict, LayerVerdict::Verified);
    assert!(!report.verified);
}

#[test]
fn tampered_swapped_public_key_is_rejected() {
    let key = keys::generate();
    let layers = stored(vec![signature_layer(&key, REFERENCE, &image())]);
    let stranger = keys::generate();
    let report = verify_signatures(
        &layers,
        stranger.verifying_key(),
        &image(),
        &IdentityPolicy::Any,
    );
    assert!(!report.verified);
    assert_eq!(failed(&report, 0), "signature");
    let detail = report.layers[0]
        .failed_check()
        .unwrap()
        .detail
        .clone()
        .unwrap();
    assert!(detail.contains("does not verify"), "{detail}");
}

#[test]
fn tampered_truncated_signature_is_rejected() {
    let key = keys::generate();
    let mut layers = stored(vec![signature_layer(&key, REFERENCE, &image())]);
    let sig = layers[0]
        .0
        .annotations
        .get_mut(SIGNATURE_ANNOTATION)
        .unwrap();
    let der = B64.decode(&*sig).unwrap();
    *sig = B64.encode(&der[..der.len() - 4]);
    let report = verify_signatures(&layers, key.verifying_key(), &image(), &IdentityPolicy::Any);
    assert!(!report.verified);
    assert_eq!(failed(&report, 0), "signature");
}

#[test]
fn signed_payload_with_extra_or_missing_fields_is_rejected() {
    let key = keys::generate();
    let d = image();
    let payloads = [
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"r"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature","extra":1}},"optional":null}}"#
        ),
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"r"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"something else"}},"optional":null}}"#
        ),
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"r"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}}}}"#
        ),
        format!(
            r#"{{"critical":{{"identity":{{}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#
        ),
        "not json".to_string(),
    ];
    for payload in payloads {
        let sig = crate::attest::dsse::sign_der_b64(&key, payload.as_bytes());
        let layers = stored(vec![NewLayer::signature(
            payload.clone().into_bytes(),
            &sig,
        )]);
        let report = verify_signatures(&layers, key.verifying_key(), &d, &IdentityPolicy::Any);
        assert!(!report.verified, "{payload}");
        assert_eq!(failed(&report, 0), "payload-format", "{payload}");
    }
}

#[test]
fn identity_is_checked_only_when_asked() {
    let key = keys::generate();
    let layers = stored(vec![signature_layer(&key, "elsewhere/app:v1", &image())]);
    assert!(
        verify_signatures(&layers, key.verifying_key(), &image(), &IdentityPolicy::Any).verified
    );
    let report = verify_signatures(
        &layers,
        key.verifying_key(),
        &image(),
        &IdentityPolicy::Exact(REFERENCE.into()),
    );
    assert!(!report.verified);
    assert_eq!(failed(&report, 0), "payload-identity");

    let by_repo = |repo: &str| {
        let policy = IdentityPolicy::Repository(repo.into());
        verify_signatures(&layers, key.verifying_key(), &image(), &policy).verified
    };
    assert!(by_repo("elsewhere/app"));
    assert!(!by_repo("localhost:5000/app"));
}

#[test]
fn other_signers_do_not_block_and_empty_images_do_not_verify() {
    let ours = keys::generate();
    let theirs = keys::generate();
    let layers = stored(vec![
        signature_layer(&theirs, REFERENCE, &image()),
        signature_layer(&ours, REFERENCE, &image()),
    ]);
    let report = verify_signatures(
        &layers,
        ours.verifying_key(),
        &image(),
        &IdentityPolicy::Any,
    );
    assert!(report.verified);
    assert_eq!(report.layers[0].verdict, LayerVerdict::Rejected);
    assert_eq!(report.layers[1].verdict, LayerVerdict::Verified);

    let report = verify_signatures(&[], ours.verifying_key(), &image(), &IdentityPolicy::Any);
    assert!(!report.verified);
    let err = report.into_result().unwrap_err().to_string();
    assert!(err.contains("no signatures layer"), "{err}");
}

fn attest(
    key: &SigningKey,
    subject: &Sha256Digest,
    predicate_type: &PredicateType,
    predicate: serde_json::Value,
) -> NewLayer {
    attestation_layer(
        key,
        "localhost:5000/app",
        subject,
        predicate_type,
        predicate,
    )
}

#[test]
fn attestation_round_trip_with_recipe() {
    let key = keys::generate();
    let recipe = Sha256Digest::of(b"recipe toml");
    let layers = stored(vec![
        attest(
            &key,
            &image(),
            &PredicateType::SpdxJson,
            json!({"spdxVersion": "SPDX-2.3"}),
        ),
        attest(
            &key,
            &image(),
            &PredicateType::SlsaProvenance1,
            provenance(&recipe),
        ),
    ]);
    let report = verify_attestations(
        &layers,
        key.verifying_key(),
        &image(),
        &slsa_policy(Some(recipe)),
    );
    assert!(report.verified, "{report:?}");
    assert_eq!(
        report.layers[0].verdict,
        LayerVerdict::Skipped,
        "the SBOM is another type"
    );
    assert_eq!(report.layers[1].verdict, LayerVerdict::Verified);
    let names: Vec<_> = report.layers[1].checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "media-type",
            "blob-digest",
            "envelope",
            "payload-type",
            "signature",
            "statement",
            "subject",
            "predicate-type",
            "recipe-digest"
        ]
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["predicateType"], "https://slsa.dev/provenance/v1");
}

#[test]
fn tampered_attestation_about_another_image_is_rejected() {
    let key = keys::generate();
    let recipe = Sha256Digest::of(b"recipe toml");
    let layers = stored(vec![attest(
        &key,
        &other_image(),
        &PredicateType::SlsaProvenance1,
        provenance(&recipe),
    )]);
    let report = verify_attestations(&layers, key.verifying_key(), &image(), &slsa_policy(None));
    assert!(!report.verified);
    assert_eq!(failed(&report, 0), "subject");
    let err = report.into_result().unwrap_err().to_string();
    assert!(err.contains(&other_image().hex()), "{err}");
}

#[test]
fn attestation_with_another_recipe_is_rejected() {
    let key = keys::generate();
    let layers = stored(vec![attest(
        &key,
        &image(),
        &PredicateType::SlsaProvenance1,
        provenance(&Sha256Digest::of(b"old recipe")),
    )]);
    let wanted = Sha256Digest::of(b"new recipe");
    let report = verify_attestations(
        &layers,
        key.verifying_key(),
        &image(),
        &slsa_policy(Some(wanted)),
    );
    assert!(!report.verified);
    assert_eq!(failed(&report, 0), "recipe-digest");

    let bare = stored(vec![attest(
        &key,
        &image(),
        &PredicateType::SlsaProvenance1,
        json!({}),
    )]);
    let report = verify_attestations(
        &bare,
        key.verifying_key(),
        &image(),
        &slsa_policy(Some(wanted)),
    );
    assert_eq!(failed(&report, 0), "recipe-digest");
}

#[test]
fn tampered_attestation_envelopes_are_rejected() {
    let key = keys::generate();
    let recipe = Sha256Digest::of(b"recipe toml");
    let good = stored(vec![attest(
        &key,
        &image(),
        &PredicateType::SlsaProvenance1,
        provenance(&recipe),
    )]);
    let envelope = Envelope::from_json(&good[0].1).unwrap();

    // Swapped public key.
    let stranger = keys::generate();
    let report = verify_attestations(
        &good,
        stranger.verifying_key(),
        &image(),
        &slsa_policy(None),
    );
    assert_eq!(failed(&report, 0), "signature");

    // Changed statement (re-pointed at the image by an attacker without the key).
    let mut changed = envelope.clone();
    let statement = String::from_utf8(envelope.payload_bytes().unwrap()).unwrap();
    changed.payload = B64.encode(statement.replace("kiln.dev/builder", "evil.example/builder"));
    let mut layers = good.clone();
    replace_payload(&mut layers[0], changed.to_json());
    let report = verify_attestations(&layers, key.verifying_key(), &image(), &slsa_policy(None));
    assert_eq!(failed(&report, 0), "signature");

    // Truncated signature.
    let mut truncated = envelope.clone();
    let der = B64.decode(&envelope.signatures[0].sig).unwrap();
    truncated.signatures[0].sig = B64.encode(&der[..der.len() / 2]);
    let mut layers = good.clone();
    replace_payload(&mut layers[0], truncated.to_json());
    let report = verify_attestations(&layers, key.verifying_key(), &image(), &slsa_policy(None));
    assert_eq!(failed(&report, 0), "signature");

    // Not an in-toto payload.
    let mut retyped = envelope;
    retyped.payload_type = "application/json".to_string();
    let mut layers = good;
    replace_payload(&mut layers[0], retyped.to_json());
    let report = verify_attestations(&layers, key.verifying_key(), &image(), &slsa_policy(None));
    assert_eq!(failed(&report, 0), "payload-type");
}

#[test]
fn missing_predicate_type_does_not_verify() {
    let key = keys::generate();
    let layers = stored(vec![attest(
        &key,
        &image(),
        &PredicateType::Vuln,
        json!({}),
    )]);
    let report = verify_attestations(&layers, key.verifying_key(), &image(), &slsa_policy(None));
    assert!(!report.verified);
    let err = report.into_result().unwrap_err().to_string();
    assert!(
        err.contains("no attestation layer with predicate type `https://slsa.dev/provenance/v1`"),
        "{err}"
    );
}
