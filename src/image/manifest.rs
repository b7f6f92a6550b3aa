//! The image manifests and indexes kiln writes, built with oci-spec's types.
//!
//! They are serialized as canonical JSON ([`to_canonical_vec`]: sorted keys at every depth), so
//! the bytes depend neither on oci-spec's field order nor on the `HashMap`s it keeps annotations
//! in, and are the bytes kiln wrote when it assembled these documents by hand (the tests pin
//! them). oci-spec omits every unset optional field, as kiln always did.
//!
//! What stays hand-written, and why: the image config (`build::config` keeps the base config's
//! fields that kiln does not model, which `ImageConfiguration` would drop), the cosign
//! signature image (`attest::cosign`: cosign's key order, not sorted keys), and docker-archive's
//! `manifest.json` (a Docker format oci-spec has no type for). oci-spec 0.10 also writes a
//! platform's `os.version` as `os_version`, so a platform here never carries one.

use std::collections::{BTreeMap, HashMap};

use oci_spec::image::{
    Descriptor, ImageIndex, ImageManifestBuilder, MediaType, Platform, PlatformBuilder,
    SCHEMA_VERSION,
};

use super::json::to_canonical_vec;

/// An OCI image manifest (schema 2, with its media type) of `config` and `layers`. Set
/// `artifact_type`, `subject` or annotations ([`with_annotations`]) on it, then serialize it
/// with [`manifest_bytes`].
pub fn image_manifest(config: Descriptor, layers: Vec<Descriptor>) -> ImageManifestBuilder {
    ImageManifestBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(layers)
}

/// `manifest` with `annotations`, or without the field when there are none.
pub fn with_annotations(
    manifest: ImageManifestBuilder,
    annotations: BTreeMap<String, String>,
) -> ImageManifestBuilder {
    if annotations.is_empty() {
        manifest
    } else {
        manifest.annotations(annotations.into_iter().collect::<HashMap<_, _>>())
    }
}

/// The canonical JSON of `manifest`.
pub fn manifest_bytes(manifest: ImageManifestBuilder) -> Vec<u8> {
    let manifest = manifest
        .build()
        .expect("image_manifest sets every required field");
    to_canonical_vec(&manifest).expect("a manifest serializes")
}

/// An OCI image index (schema 2, with its media type) listing `manifests`.
pub fn image_index(manifests: Vec<Descriptor>) -> ImageIndex {
    let mut index = ImageIndex::default();
    index.set_media_type(Some(MediaType::ImageIndex));
    index.set_manifests(manifests);
    index
}

/// The platform of an index entry. oci-spec maps the names onto its own enums and back; that
/// is the identity for every OS and architecture [`crate::platform`] accepts (tested below).
pub fn platform(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
    let platform = PlatformBuilder::default().os(os).architecture(architecture);
    match variant {
        Some(v) => platform.variant(v),
        None => platform,
    }
    .build()
    .expect("os and architecture are set")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Sha256Digest;
    use crate::image::layout::{descriptor, empty_descriptor};
    use crate::media;
    use crate::platform::{KNOWN_ARCH, KNOWN_OS};

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    // The expected strings below are the bytes kiln wrote with `serde_json::json!` before it
    // used oci-spec: image digests of every recipe depend on them.

    #[test]
    fn manifest_without_layers_or_annotations() {
        let config = Sha256Digest::of(b"config");
        let m = image_manifest(descriptor(media::OCI_CONFIG, &config, 6), vec![]);
        assert_eq!(
            text(manifest_bytes(with_annotations(m, BTreeMap::new()))),
            format!(
                r#"{{"config":{{"digest":"{config}","mediaType":"application/vnd.oci.image.config.v1+json","size":6}},"layers":[],"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}}"#
            )
        );
    }

    #[test]
    fn manifest_with_layers_and_annotations() {
        let config = Sha256Digest::of(b"config");
        let (a, b) = (Sha256Digest::of(b"a"), Sha256Digest::of(b"b"));
        let m = image_manifest(
            descriptor(media::OCI_CONFIG, &config, 6),
            vec![
                descriptor(media::OCI_LAYER_GZIP, &a, 10),
                descriptor(media::DOCKER_LAYER_GZIP, &b, 11),
            ],
        );
        let annotations = BTreeMap::from([
            ("z.last".to_string(), "2".to_string()),
            ("a.first".to_string(), "\"1\"".to_string()),
        ]);
        assert_eq!(
            text(manifest_bytes(with_annotations(m, annotations))),
            format!(
                r#"{{"annotations":{{"a.first":"\"1\"","z.last":"2"}},"config":{{"digest":"{config}","mediaType":"application/vnd.oci.image.config.v1+json","size":6}},"layers":[{{"digest":"{a}","mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":10}},{{"digest":"{b}","mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":11}}],"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}}"#
            )
        );
    }

    #[test]
    fn artifact_manifest_with_subject() {
        let (subject, layer) = (Sha256Digest::of(b"image"), Sha256Digest::of(b"sbom"));
        let m = image_manifest(
            empty_descriptor(),
            vec![descriptor(media::IN_TOTO, &layer, 4)],
        )
        .artifact_type(MediaType::from(media::IN_TOTO))
        .subject(descriptor(media::OCI_MANIFEST, &subject, 555));
        assert_eq!(
            text(manifest_bytes(m)),
            format!(
                r#"{{"artifactType":"application/vnd.in-toto+json","config":{{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","mediaType":"application/vnd.oci.empty.v1+json","size":2}},"layers":[{{"digest":"{layer}","mediaType":"application/vnd.in-toto+json","size":4}}],"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2,"subject":{{"digest":"{subject}","mediaType":"application/vnd.oci.image.manifest.v1+json","size":555}}}}"#
            )
        );
    }

    #[test]
    fn index_with_platforms_and_variants() {
        let (a, b) = (Sha256Digest::of(b"amd64"), Sha256Digest::of(b"arm"));
        let mut amd64 = descriptor(media::OCI_MANIFEST, &a, 400);
        amd64.set_platform(Some(platform("linux", "amd64", None)));
        let mut arm = descriptor(media::OCI_MANIFEST, &b, 401);
        arm.set_platform(Some(platform("linux", "arm", Some("v7"))));
        let index = image_index(vec![amd64, arm]);
        assert_eq!(
            text(to_canonical_vec(&index).unwrap()),
            format!(
                r#"{{"manifests":[{{"digest":"{a}","mediaType":"application/vnd.oci.image.manifest.v1+json","platform":{{"architecture":"amd64","os":"linux"}},"size":400}},{{"digest":"{b}","mediaType":"application/vnd.oci.image.manifest.v1+json","platform":{{"architecture":"arm","os":"linux","variant":"v7"}},"size":401}}],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}}"#
            )
        );
    }

    #[test]
    fn platform_names_survive_oci_spec() {
        // oci-spec parses names into enums (and maps e.g. `armbe` to `arm64be`): every name kiln
        // accepts must come back unchanged, or index bytes would change.
        for os in KNOWN_OS {
            for arch in KNOWN_ARCH {
                let value = serde_json::to_value(platform(os, arch, Some("v8"))).unwrap();
                assert_eq!(
                    value,
                    serde_json::json!({"os": os, "architecture": arch, "variant": "v8"})
                );
            }
        }
    }

    #[test]
    fn media_types_survive_oci_spec() {
        // oci-spec parses media types into an enum; each must print as it was written.
        for mt in [
            media::OCI_MANIFEST,
            media::OCI_INDEX,
            media::OCI_CONFIG,
            media::OCI_LAYER_TAR,
            media::OCI_LAYER_GZIP,
            media::OCI_LAYER_ZSTD,
            media::OCI_LAYER_NONDISTRIBUTABLE_GZIP,
            media::OCI_EMPTY,
            media::DOCKER_MANIFEST,
            media::DOCKER_MANIFEST_LIST,
            media::DOCKER_CONFIG,
            media::DOCKER_LAYER_GZIP,
            media::DOCKER_LAYER_TAR,
            media::IN_TOTO,
        ] {
            assert_eq!(MediaType::from(mt).to_string(), mt);
        }
    }
}
