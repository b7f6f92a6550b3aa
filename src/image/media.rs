//! Media types and annotation keys kiln reads and writes.

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

/// The empty JSON blob `{}` that artifacts without a real config point at.
pub const EMPTY_JSON: &[u8] = b"{}";

pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const ANNOTATION_PREDICATE_TYPE: &str = "in-toto.io/predicate-type";
/// On an image's `index.json` entry: the digest of the layout's side index, an OCI image index
/// (in the format of the OCI 1.1 referrers fallback tag) that lists the manifests about the
/// layout's images: referrers and cosign `.sig`/`.att`/`.sbom` tags. They are kept out of
/// `index.json` so that the image is its only entry: skopeo and podman open a layout without
/// a tag only when `index.json` lists exactly one manifest.
pub const ANNOTATION_REFERRERS: &str = "build.kiln.referrers";

/// How a layer blob is compressed, from its media type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerCompression {
    None,
    Gzip,
    Zstd,
}

/// The compression of a layer media type, or `None` if it is not a layer type kiln knows.
pub fn layer_compression(media_type: &str) -> Option<LayerCompression> {
    match media_type {
        OCI_LAYER_TAR | DOCKER_LAYER_TAR => Some(LayerCompression::None),
        OCI_LAYER_GZIP | DOCKER_LAYER_GZIP => Some(LayerCompression::Gzip),
        OCI_LAYER_ZSTD => Some(LayerCompression::Zstd),
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" => {
            Some(LayerCompression::Gzip)
        }
        _ => None,
    }
}

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
