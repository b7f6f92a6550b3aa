//! Provenance (SLSA v1 in-toto statements), DSSE envelopes, keys and signatures.
//!
//! Everything here produces and checks the formats the ecosystem already verifies (cosign's
//! tag layout and key files, DSSE, in-toto), byte-exact, so that cosign, containers/image and
//! in-toto verifiers accept kiln's output without kiln-specific code (see INTEROP.md). The
//! format modules are pure: bytes and keys in, bytes and reports out; only [`store`] and
//! [`target`] touch layouts and registries.
//!
//! - [`keys`]: P-256 key generation, cosign's encrypted key files, PKCS#8/SEC1/SPKI PEM.
//! - [`dsse`]: PAE, envelopes, DER signatures.
//! - [`intoto`]: Statement v1 and predicate types.
//! - [`cosign`]: the simple-signing payload, `sha256-<hex>.sig` tags, signature images.
//! - [`simple_signing`]: strict reading of simple-signing payloads, identity policies.
//! - [`verify`]: checks of signature and attestation images, as a serializable report.
//! - [`store`]: reading and appending attachment tags in a layout or a registry.
//! - [`target`]: resolving `oci:` / `docker://` references to the digest and names to sign.

pub mod attached;
pub mod cosign;
pub mod dsse;
pub mod image;
pub mod intoto;
pub mod keys;
pub mod provenance;
pub mod simple_signing;
pub mod store;
pub mod target;
pub mod verify;

#[cfg(test)]
mod containers_image_interop;
#[cfg(test)]
mod python_interop;

use crate::digest::Sha256Digest;

pub use cosign::NewLayer;
pub use intoto::{PredicateType, Statement};
pub use keys::{SigningKey, VerifyingKey};
pub use simple_signing::IdentityPolicy;
pub use verify::{AttestationPolicy, VerificationReport};

/// A signature layer for the image `digest` known as `docker_reference` (`HOST/REPO:TAG`):
/// the simple-signing payload and its DER signature, ready for [`SignatureManifest::append`].
pub fn signature_layer(
    key: &SigningKey,
    docker_reference: &str,
    digest: &Sha256Digest,
) -> NewLayer {
    let payload = cosign::simple_signing_payload(docker_reference, digest);
    let signature = dsse::sign_der_b64(key, &payload);
    NewLayer::signature(payload, &signature)
}

/// An attestation layer: `predicate` of `predicate_type` about the image `digest` of
/// repository `name`, as an in-toto statement in a DSSE envelope signed by `key`.
pub fn attestation_layer(
    key: &SigningKey,
    name: &str,
    digest: &Sha256Digest,
    predicate_type: &PredicateType,
    predicate: serde_json::Value,
) -> NewLayer {
    let statement = Statement::new(name, digest, predicate_type, predicate);
    let envelope = dsse::Envelope::sign(
        crate::media::IN_TOTO,
        &statement.to_json(),
        key,
        &keys::key_id(key.verifying_key()),
    );
    NewLayer::attestation(envelope.to_json(), predicate_type.uri())
}
