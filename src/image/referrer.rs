//! Attaching an in-toto statement to an image in a layout as an OCI 1.1 referrer: a manifest
//! with `artifactType` `application/vnd.in-toto+json`, the statement as its one layer, and
//! `subject` = the image manifest, listed with the layout's entries (in its side index, see
//! [`super::layout`]). The build's
//! provenance and `kiln rebuild`'s verdict are attached this way, so `kiln inspect`, oras and
//! the registry referrers API find them; [`read_referrers`] and [`referrer_statements`] read
//! them back from an opened image of any transport.

use std::collections::BTreeMap;

use oci_spec::image::{Descriptor, MediaType};
use serde::Deserialize;

use super::layout::{descriptor, digest_of, empty_descriptor};
use super::manifest::{image_manifest, manifest_bytes, with_annotations};
use super::{ImageError, Layout, OpenedImage, Result};
use crate::digest::Sha256Digest;
use crate::media;

/// The image a statement is about.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    pub media_type: &'a str,
    pub digest: &'a Sha256Digest,
    pub size: u64,
}

/// The referrer manifest for a statement (`statement_digest`, `statement_size`) about
/// `subject`, annotated with its predicate type. Canonical JSON.
pub fn statement_manifest(
    subject: Subject<'_>,
    statement_digest: &Sha256Digest,
    statement_size: u64,
    predicate_type: &str,
) -> Vec<u8> {
    let layer = descriptor(media::IN_TOTO, statement_digest, statement_size);
    let manifest = image_manifest(empty_descriptor(), vec![layer])
        .artifact_type(MediaType::from(media::IN_TOTO))
        .subject(descriptor(subject.media_type, subject.digest, subject.size));
    let annotations = BTreeMap::from([(
        media::ANNOTATION_PREDICATE_TYPE.to_string(),
        predicate_type.to_string(),
    )]);
    manifest_bytes(with_annotations(manifest, annotations))
}

/// Writes `statement` and its referrer manifest into `layout` and returns the descriptor to
/// list in `index.json` (the caller writes the index).
pub fn put_statement(
    layout: &Layout,
    subject: Subject<'_>,
    statement: &[u8],
    predicate_type: &str,
) -> Result<Descriptor> {
    let statement_digest = layout.put_blob(statement)?;
    layout.put_blob(media::EMPTY_JSON)?;
    let manifest = statement_manifest(
        subject,
        &statement_digest,
        statement.len() as u64,
        predicate_type,
    );
    let digest = layout.put_blob(&manifest)?;
    let mut desc = descriptor(media::OCI_MANIFEST, &digest, manifest.len() as u64);
    desc.set_artifact_type(Some(media::IN_TOTO.into()));
    Ok(desc)
}

/// Attaches `statement` to `subject` in an existing layout: blobs first, then the index
/// rewritten (atomically) with the referrer appended. Attaching the same statement twice
/// lists it once.
pub fn attach_statement(
    layout: &Layout,
    subject: Subject<'_>,
    statement: &[u8],
    predicate_type: &str,
) -> Result<Descriptor> {
    let desc = put_statement(layout, subject, statement, predicate_type)?;
    let mut manifests = layout.read_index()?.manifests().clone();
    if !manifests.iter().any(|m| m.digest() == desc.digest()) {
        manifests.push(desc.clone());
    }
    layout.write_index(manifests)?;
    Ok(desc)
}

/// A referrer of an opened image, read back: what its manifest says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    /// The referrer manifest's digest.
    pub digest: Sha256Digest,
    pub artifact_type: Option<String>,
    /// Its `in-toto.io/predicate-type` annotation, for a statement.
    pub predicate_type: Option<String>,
    /// Its first layer: for a statement, the statement.
    pub first_layer: Option<Sha256Digest>,
}

/// The parts of a referrer manifest kiln reads; anything else in it is left alone, so
/// referrers other tools attached read too.
#[derive(Deserialize)]
struct ReferrerManifest {
    #[serde(default)]
    layers: Vec<LayerDigest>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct LayerDigest {
    digest: String,
}

/// Every referrer of `img`, in the order the image lists them.
pub fn read_referrers(img: &OpenedImage) -> Result<Vec<Referrer>> {
    img.referrers
        .iter()
        .map(|desc| {
            let digest = digest_of(desc)?;
            let manifest: ReferrerManifest = serde_json::from_slice(&img.read_blob(&digest)?)
                .map_err(|source| ImageError::BadJson {
                    what: format!("referrer manifest {digest}"),
                    source,
                })?;
            let first_layer = match manifest.layers.first() {
                Some(layer) => {
                    Some(
                        layer
                            .digest
                            .parse()
                            .map_err(|_| ImageError::UnsupportedDigest {
                                digest: layer.digest.clone(),
                            })?,
                    )
                }
                None => None,
            };
            Ok(Referrer {
                digest,
                artifact_type: desc.artifact_type().as_ref().map(|a| a.to_string()),
                predicate_type: manifest
                    .annotations
                    .get(media::ANNOTATION_PREDICATE_TYPE)
                    .cloned(),
                first_layer,
            })
        })
        .collect()
}

/// The statements attached to `img` as referrers annotated with `predicate_type`, each with
/// its referrer's digest, parsed as JSON. Not verified: a referrer carries no signature.
pub fn referrer_statements(
    img: &OpenedImage,
    predicate_type: &str,
) -> Result<Vec<(Sha256Digest, serde_json::Value)>> {
    let mut out = Vec::new();
    for referrer in read_referrers(img)? {
        if referrer.predicate_type.as_deref() != Some(predicate_type) {
            continue;
        }
        let layer = referrer.first_layer.ok_or(ImageError::NoStatementLayer {
            referrer: referrer.digest,
        })?;
        let statement = serde_json::from_slice(&img.read_blob(&layer)?).map_err(|source| {
            ImageError::BadJson {
                what: format!("the statement of referrer {}", referrer.digest),
                source,
            }
        })?;
        out.push((referrer.digest, statement));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_manifest_bytes_are_pinned() {
        // Provenance referrers are content-addressed: these bytes must never drift.
        let image = Sha256Digest::of(b"image");
        let statement = Sha256Digest::of(b"statement");
        let subject = Subject {
            media_type: media::OCI_MANIFEST,
            digest: &image,
            size: 555,
        };
        let bytes = statement_manifest(subject, &statement, 9, "https://slsa.dev/provenance/v1");
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            format!(
                r#"{{"annotations":{{"in-toto.io/predicate-type":"https://slsa.dev/provenance/v1"}},"artifactType":"application/vnd.in-toto+json","config":{{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","mediaType":"application/vnd.oci.empty.v1+json","size":2}},"layers":[{{"digest":"{statement}","mediaType":"application/vnd.in-toto+json","size":9}}],"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2,"subject":{{"digest":"{image}","mediaType":"application/vnd.oci.image.manifest.v1+json","size":555}}}}"#
            )
        );
    }
}
