//! Media types, annotation keys and the size limit of the OCI JSON documents kiln reads and
//! writes: the one place they are defined. `registry` (the lowest layer that speaks them),
//! `image`, `attest` and `build` all take them from here.

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Never written (kiln tells a layer's compression from its bytes); named for the tests.
#[cfg(test)]
pub const OCI_LAYER_NONDISTRIBUTABLE_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Only the tests write Docker configs.
#[cfg(test)]
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker schema 1 manifests, which kiln refuses: their layer list is signed with keys nobody
/// checks, and they have no config digest.
pub const DOCKER_SCHEMA1: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];
/// An in-toto statement: the `artifactType` and layer of a referrer, and the DSSE `payloadType`
/// of an attestation.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
/// A cosign signature layer (blob = simple-signing payload).
pub const COSIGN_SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// A cosign attestation layer (blob = DSSE envelope).
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";

/// Every manifest type kiln reads: images and indexes, OCI and Docker schema 2.
pub const ALL_MANIFEST_TYPES: &[&str] = &[
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];
/// Single-platform image manifests.
pub const IMAGE_MANIFEST_TYPES: &[&str] = &[OCI_MANIFEST, DOCKER_MANIFEST];

/// The largest manifest, index, config or tag list kiln reads; larger ones are refused unread.
/// 4 MiB is the manifest limit of distribution (`maxManifestBodySize`, refused on PUT) and the
/// manifest and config limit of containers/image (skopeo, podman: `iolimits.MaxManifestBodySize`,
/// `MaxConfigBodySize`), so a larger document could not travel through the tools kiln
/// interoperates with anyway; a real one is a few KiB.
pub const MAX_JSON_BLOB: u64 = 4 << 20;

/// The empty JSON blob `{}` that artifacts without a real config point at.
pub const EMPTY_JSON: &[u8] = b"{}";

pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// On a built image's manifest: the base image's manifest digest and its reference.
pub const ANNOTATION_BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
pub const ANNOTATION_BASE_NAME: &str = "org.opencontainers.image.base.name";
pub const ANNOTATION_PREDICATE_TYPE: &str = "in-toto.io/predicate-type";
/// On an image's `index.json` entry: the digest of the layout's side index, an OCI image index
/// (in the format of the OCI 1.1 referrers fallback tag) that lists the manifests about the
/// layout's images: referrers and cosign `.sig`/`.att`/`.sbom` tags. They are kept out of
/// `index.json` so that the image is its only entry: skopeo and podman open a layout without
/// a tag only when `index.json` lists exactly one manifest.
pub const ANNOTATION_REFERRERS: &str = "build.kiln.referrers";

pub fn is_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// The media type a manifest or index states, else the one its shape says (OCI allows leaving
/// `mediaType` out): a document with `manifests` is an index.
pub fn of_manifest(document: &serde_json::Value) -> String {
    if let Some(media_type) = document.get("mediaType").and_then(|m| m.as_str()) {
        return media_type.to_string();
    }
    if document.get("manifests").is_some() {
        OCI_INDEX
    } else {
        OCI_MANIFEST
    }
    .into()
}
