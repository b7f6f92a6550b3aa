//! What `kiln inspect --attestation` shows: the statements attached to an image, read without
//! verifying them (`kiln verify` checks signatures): the payloads of the `.att` tag's DSSE
//! layers, then the statements among its OCI 1.1 referrers.

use serde_json::Value;

use super::cosign::{AttachmentKind, PREDICATE_TYPE_ANNOTATION};
use super::dsse::{DsseError, Envelope};
use super::store::StoredAttachment;
use crate::digest::Sha256Digest;
use crate::image::referrer::referrer_statements;
use crate::image::{ImageError, OpenedImage};

#[derive(Debug, thiserror::Error)]
pub enum AttachedError {
    #[error("attestation layer {layer} is not a DSSE envelope")]
    NotDsse {
        layer: Sha256Digest,
        #[source]
        source: DsseError,
    },
    #[error("attestation layer {layer} does not hold a JSON statement")]
    NotJson {
        layer: Sha256Digest,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to read the referrers of {reference}")]
    Referrers {
        reference: String,
        #[source]
        source: Box<ImageError>,
    },
}

/// The statements of `predicate_type` attached to `img`: those in the attestation layers of
/// `attachments` (its cosign tags), then its referrers'; each distinct statement once.
pub fn attached_statements(
    img: &OpenedImage,
    attachments: &[(AttachmentKind, StoredAttachment)],
    predicate_type: &str,
) -> Result<Vec<Value>, AttachedError> {
    let mut out: Vec<Value> = Vec::new();
    let layers = attachments
        .iter()
        .filter(|(kind, _)| *kind == AttachmentKind::Attestation)
        .flat_map(|(_, stored)| &stored.layers);
    for (desc, blob) in layers {
        if desc
            .annotations
            .get(PREDICATE_TYPE_ANNOTATION)
            .map(String::as_str)
            != Some(predicate_type)
        {
            continue;
        }
        let payload = Envelope::from_json(blob)
            .and_then(|e| e.payload_bytes())
            .map_err(|source| AttachedError::NotDsse {
                layer: desc.digest,
                source,
            })?;
        out.push(
            serde_json::from_slice(&payload).map_err(|source| AttachedError::NotJson {
                layer: desc.digest,
                source,
            })?,
        );
    }
    let referred =
        referrer_statements(img, predicate_type).map_err(|source| AttachedError::Referrers {
            reference: img.reference.clone(),
            source: Box::new(source),
        })?;
    out.extend(referred.into_iter().map(|(_, statement)| statement));
    let mut distinct: Vec<Value> = Vec::new();
    for s in out {
        if !distinct.contains(&s) {
            distinct.push(s);
        }
    }
    Ok(distinct)
}
