//! Cosign's tag-based signature layout, which `cosign verify` and containers/image (skopeo,
//! podman `sigstoreSigned` policies) read without kiln-specific code.
//!
//! Signatures and attestations of image `sha256:X` live in a small OCI image tagged
//! `sha256-X.sig` / `sha256-X.att`, one layer per signature: the layer blob is the signed
//! payload, the signature rides in a layer annotation. Everything here is pure bytes in, bytes
//! out; where the blobs are stored (layout, archive, registry) is the caller's business. The
//! manifest and config are serialized with a fixed key order and no timestamps, and signing is
//! deterministic (RFC 6979), so signing the same image twice yields the same manifest and
//! re-adding an identical signature is a no-op.

use std::collections::BTreeMap;

use oci_spec::image::{Arch, Config, ImageConfigurationBuilder, Os, RootFs};
use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::media::{
    COSIGN_SIMPLE_SIGNING, DOCKER_MANIFEST, DSSE_ENVELOPE, OCI_CONFIG, OCI_MANIFEST,
};

/// Layer annotation holding the standard base64 DER signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Layer annotation holding an attestation's predicate type URI.
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";
/// `critical.type` of a simple-signing payload.
pub const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CosignError {
    #[error("failed to parse the signature manifest: {reason}")]
    ManifestJson { reason: String },
    #[error(
        "unsupported signature manifest media type `{media_type}`: expected \
         `{OCI_MANIFEST}` or `{DOCKER_MANIFEST}`"
    )]
    ManifestMediaType { media_type: String },
    #[error("unsupported signature manifest schemaVersion {0}: expected 2")]
    SchemaVersion(u32),
}

/// Which attachment tag kiln reads and writes: signatures or attestations (kiln attaches its
/// SBOMs as referrers, not in cosign's `.sbom` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentKind {
    Signature,
    Attestation,
}

/// The tag holding `kind` attachments of the image `subject`: `sha256-<hex>.sig` / `.att`.
pub fn attachment_tag(subject: &Sha256Digest, kind: AttachmentKind) -> String {
    let suffix = match kind {
        AttachmentKind::Signature => "sig",
        AttachmentKind::Attestation => "att",
    };
    format!("sha256-{}.{suffix}", subject.hex())
}

/// The simple-signing payload for `docker_reference` (`HOST/REPO:TAG`, no transport prefix)
/// at `manifest_digest`, byte for byte as cosign writes it.
pub fn simple_signing_payload(docker_reference: &str, manifest_digest: &Sha256Digest) -> Vec<u8> {
    let reference = serde_json::to_string(docker_reference).expect("a string always serializes");
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":{reference}}},"image":{{"docker-manifest-digest":"{manifest_digest}"}},"type":"{SIMPLE_SIGNING_TYPE}"}},"optional":null}}"#
    )
    .into_bytes()
}

/// An OCI descriptor, serialized as `mediaType`, `digest`, `size`, `annotations` (omitted when
/// empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: Sha256Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A blob to store, with its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub digest: Sha256Digest,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self {
            digest: Sha256Digest::of(&bytes),
            bytes,
        }
    }
}

/// A signature or attestation layer about to be added: its blob and its descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLayer {
    pub descriptor: Descriptor,
    pub blob: Blob,
}

impl NewLayer {
    fn new(media_type: &str, payload: Vec<u8>, annotations: BTreeMap<String, String>) -> Self {
        let blob = Blob::new(payload);
        let descriptor = Descriptor {
            media_type: media_type.to_string(),
            digest: blob.digest,
            size: blob.bytes.len() as u64,
            annotations,
        };
        Self { descriptor, blob }
    }

    /// A signature layer: the simple-signing `payload` and the base64 DER signature over it.
    pub fn signature(payload: Vec<u8>, signature_b64: &str) -> Self {
        let annotations =
            BTreeMap::from([(SIGNATURE_ANNOTATION.to_string(), signature_b64.to_string())]);
        Self::new(COSIGN_SIMPLE_SIGNING, payload, annotations)
    }

    /// An attestation layer: the DSSE envelope JSON, with an empty signature annotation (the
    /// signature is inside the envelope) and the predicate type URI, as cosign writes them.
    pub fn attestation(envelope_json: Vec<u8>, predicate_type_uri: &str) -> Self {
        let annotations = BTreeMap::from([
            (SIGNATURE_ANNOTATION.to_string(), String::new()),
            (
                PREDICATE_TYPE_ANNOTATION.to_string(),
                predicate_type_uri.to_string(),
            ),
        ]);
        Self::new(DSSE_ENVELOPE, envelope_json, annotations)
    }
}

/// The signature manifest. Our own serde types, not oci-spec's: cosign writes its keys in this
/// declaration order (not sorted), and oci-spec keeps annotations in a `HashMap`, whose order
/// `serde_json::to_vec` would leak into the bytes (sorting them instead would change every
/// existing signature manifest's digest). The config is oci-spec's: its field order is cosign's.
#[derive(Serialize, Deserialize)]
struct ManifestJson {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

/// The built signature image: what to store and what to tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureImage {
    /// The manifest bytes; tag them `attachment_tag(subject, kind)`.
    pub manifest: Blob,
    /// The image config blob (`rootfs.diff_ids` = the layer digests, no timestamps).
    pub config: Blob,
    /// Layer blobs added by this build. Layers carried over from an existing manifest are not
    /// repeated here: they are already stored next to it.
    pub new_layers: Vec<Blob>,
}

/// The layers of a signature (or attestation) image, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignatureManifest {
    pub layers: Vec<Descriptor>,
    /// Manifest-level annotations, carried over from an existing manifest.
    pub annotations: BTreeMap<String, String>,
    new_layers: Vec<Blob>,
}

impl SignatureManifest {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads an existing signature manifest (cosign's or kiln's, OCI or Docker media type).
    /// Its config is not needed: kiln derives the config from the layers.
    pub fn parse(manifest_json: &[u8]) -> Result<Self, CosignError> {
        let parsed: ManifestJson =
            serde_json::from_slice(manifest_json).map_err(|e| CosignError::ManifestJson {
                reason: e.to_string(),
            })?;
        if parsed.schema_version != 2 {
            return Err(CosignError::SchemaVersion(parsed.schema_version));
        }
        match parsed.media_type.as_deref() {
            None | Some(OCI_MANIFEST) | Some(DOCKER_MANIFEST) => {}
            Some(other) => {
                return Err(CosignError::ManifestMediaType {
                    media_type: other.to_string(),
                })
            }
        }
        Ok(Self {
            layers: parsed.layers,
            annotations: parsed.annotations,
            new_layers: vec![],
        })
    }

    /// Appends `layer` unless a layer with the same media type, digest and annotations is
    /// already present. Returns whether it was added.
    pub fn append(&mut self, layer: NewLayer) -> bool {
        if self.layers.contains(&layer.descriptor) {
            return false;
        }
        self.layers.push(layer.descriptor);
        self.new_layers.push(layer.blob);
        true
    }

    /// The config, manifest and new layer blobs.
    pub fn build(&self) -> SignatureImage {
        let mut rootfs = RootFs::default();
        rootfs.set_diff_ids(self.layers.iter().map(|l| l.digest.to_string()).collect());
        // cosign's config: empty platform, empty `config`, the layers as diff_ids.
        let config = ImageConfigurationBuilder::default()
            .architecture(Arch::Other(String::new()))
            .os(Os::Other(String::new()))
            .config(Config::default())
            .rootfs(rootfs)
            .build()
            .expect("architecture, os and rootfs are set");
        let config = Blob::new(serde_json::to_vec(&config).expect("a config always serializes"));
        let manifest = ManifestJson {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.to_string()),
            config: Descriptor {
                media_type: OCI_CONFIG.to_string(),
                digest: config.digest,
                size: config.bytes.len() as u64,
                annotations: BTreeMap::new(),
            },
            layers: self.layers.clone(),
            annotations: self.annotations.clone(),
        };
        let manifest =
            Blob::new(serde_json::to_vec(&manifest).expect("a manifest always serializes"));
        SignatureImage {
            manifest,
            config,
            new_layers: self.new_layers.clone(),
        }
    }
}

/// A signature image holding `layers` (duplicates dropped).
#[cfg(test)]
pub fn build_signature_image(layers: Vec<NewLayer>) -> SignatureImage {
    let mut manifest = SignatureManifest::new();
    for layer in layers {
        manifest.append(layer);
    }
    manifest.build()
}

/// Adds `layers` to the signature image whose manifest is `existing_manifest`, keeping its
/// layers (and their annotations) in order; identical layers are not added twice.
#[cfg(test)]
pub fn append_to_signature_image(
    existing_manifest: &[u8],
    layers: Vec<NewLayer>,
) -> Result<SignatureImage, CosignError> {
    let mut manifest = SignatureManifest::parse(existing_manifest)?;
    for layer in layers {
        manifest.append(layer);
    }
    Ok(manifest.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{DOCKER_CONFIG, OCI_INDEX};

    fn digest() -> Sha256Digest {
        Sha256Digest::of(b"image manifest")
    }

    #[test]
    fn tags_follow_cosigns_rule() {
        let d = digest();
        assert_eq!(
            attachment_tag(&d, AttachmentKind::Signature),
            format!("sha256-{}.sig", d.hex())
        );
        assert_eq!(
            attachment_tag(&d, AttachmentKind::Attestation),
            format!("sha256-{}.att", d.hex())
        );
    }

    #[test]
    fn payload_is_byte_exact() {
        let d = digest();
        let payload = simple_signing_payload("localhost:5000/app:v1", &d);
        assert_eq!(
            String::from_utf8(payload).unwrap(),
            format!(
                "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"localhost:5000/app:v1\"}},\
                 \"image\":{{\"docker-manifest-digest\":\"sha256:{}\"}},\
                 \"type\":\"cosign container image signature\"}},\"optional\":null}}",
                d.hex()
            )
        );
        // A hostile reference cannot inject JSON.
        let odd = simple_signing_payload("a\"b", &d);
        let value: serde_json::Value = serde_json::from_slice(&odd).unwrap();
        assert_eq!(value["critical"]["identity"]["docker-reference"], "a\"b");
    }

    #[test]
    fn signature_image_is_reproducible_and_shaped_like_cosigns() {
        let layer = || NewLayer::signature(b"payload".to_vec(), "c2ln");
        let a = build_signature_image(vec![layer()]);
        let b = build_signature_image(vec![layer()]);
        assert_eq!(a, b);
        let payload_digest = Sha256Digest::of(b"payload");
        assert_eq!(
            String::from_utf8(a.config.bytes.clone()).unwrap(),
            format!(
                r#"{{"architecture":"","os":"","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{payload_digest}"]}}}}"#
            )
        );
        assert_eq!(
            String::from_utf8(a.manifest.bytes.clone()).unwrap(),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"{payload_digest}","size":7,"annotations":{{"dev.cosignproject.cosign/signature":"c2ln"}}}}]}}"#,
                a.config.digest,
                a.config.bytes.len()
            )
        );
        assert_eq!(a.new_layers, vec![Blob::new(b"payload".to_vec())]);
    }

    #[test]
    fn appending_keeps_existing_layers_and_skips_duplicates() {
        let first = build_signature_image(vec![NewLayer::signature(b"one".to_vec(), "AAAA")]);
        // Same layer again: nothing changes.
        let same = append_to_signature_image(
            &first.manifest.bytes,
            vec![NewLayer::signature(b"one".to_vec(), "AAAA")],
        )
        .unwrap();
        assert_eq!(same.manifest, first.manifest);
        assert!(same.new_layers.is_empty());

        // A new signature is appended after the existing one.
        let more = append_to_signature_image(
            &first.manifest.bytes,
            vec![NewLayer::signature(b"two".to_vec(), "BBBB")],
        )
        .unwrap();
        let parsed = SignatureManifest::parse(&more.manifest.bytes).unwrap();
        let digests: Vec<_> = parsed.layers.iter().map(|l| l.digest).collect();
        assert_eq!(
            digests,
            [Sha256Digest::of(b"one"), Sha256Digest::of(b"two")]
        );
        assert_eq!(more.new_layers, vec![Blob::new(b"two".to_vec())]);
    }

    #[test]
    fn foreign_annotations_survive_an_append() {
        // A cosign-written layer with a bundle annotation and a Docker manifest media type.
        let existing = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","digest":"{}","size":2}},"layers":[{{"mediaType":"{COSIGN_SIMPLE_SIGNING}","digest":"{}","size":3,"annotations":{{"dev.cosignproject.cosign/signature":"AAAA","dev.sigstore.cosign/bundle":"{{}}"}}}}]}}"#,
            Sha256Digest::of(b"{}"),
            Sha256Digest::of(b"one"),
        );
        let out = append_to_signature_image(
            existing.as_bytes(),
            vec![NewLayer::attestation(
                b"{}".to_vec(),
                "https://slsa.dev/provenance/v1",
            )],
        )
        .unwrap();
        let parsed = SignatureManifest::parse(&out.manifest.bytes).unwrap();
        assert_eq!(parsed.layers.len(), 2);
        assert_eq!(
            parsed.layers[0].annotations["dev.sigstore.cosign/bundle"],
            "{}"
        );
        assert_eq!(parsed.layers[1].media_type, DSSE_ENVELOPE);
        assert_eq!(parsed.layers[1].annotations[SIGNATURE_ANNOTATION], "");
        assert_eq!(
            parsed.layers[1].annotations[PREDICATE_TYPE_ANNOTATION],
            "https://slsa.dev/provenance/v1"
        );
    }

    #[test]
    fn malformed_manifests_are_refused() {
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","config":{{"mediaType":"x","digest":"{}","size":0}},"layers":[]}}"#,
            Sha256Digest::of(b"")
        );
        let table: [(&[u8], &str); 3] = [
            (b"{", "failed to parse"),
            (
                br#"{"schemaVersion":1,"config":{"mediaType":"x","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":0},"layers":[]}"#,
                "schemaVersion 1",
            ),
            (
                index.as_bytes(),
                "media type",
            ),
        ];
        for (input, expected) in table {
            let err = SignatureManifest::parse(input).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
    }
}
