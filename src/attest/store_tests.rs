//! Attachment tags in an OCI layout (the registry side is exercised against a real registry in
//! `tests/it/sign.rs`).

use super::*;
use crate::attest::cosign::SIGNATURE_ANNOTATION;
use crate::attest::{keys, signature_layer};
use crate::image::layout::descriptor;

/// A layout whose index lists one "image" (any blob will do) tagged `app` and returns it.
fn layout_with_image(dir: &std::path::Path) -> (Layout, Sha256Digest) {
    let layout = Layout::create(dir).unwrap();
    let manifest = br#"{"schemaVersion":2}"#;
    let digest = layout.put_blob(manifest).unwrap();
    let mut entry = descriptor(media::OCI_MANIFEST, &digest, manifest.len() as u64);
    entry.set_annotations(Some(
        [(media::ANNOTATION_REF_NAME.to_string(), "app".to_string())]
            .into_iter()
            .collect(),
    ));
    layout.write_index(vec![entry]).unwrap();
    (layout, digest)
}

fn index_names(layout: &Layout) -> Vec<(String, Option<String>)> {
    layout
        .read_index()
        .unwrap()
        .manifests()
        .iter()
        .map(|d| {
            (
                ref_name(d).unwrap_or_default().to_string(),
                d.artifact_type().as_ref().map(|a| a.to_string()),
            )
        })
        .collect()
}

#[test]
fn layout_tags_are_created_appended_and_replaced_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, subject) = layout_with_image(dir.path());
    let store = AttachmentStore::Layout(layout.clone());
    assert!(store
        .read(&subject, AttachmentKind::Signature)
        .unwrap()
        .is_none());

    let (k1, k2) = (keys::generate(), keys::generate());
    let first = store
        .append(
            &subject,
            AttachmentKind::Signature,
            vec![signature_layer(&k1, "app", &subject)],
        )
        .unwrap();
    assert_eq!(first.tag, format!("sha256-{}.sig", subject.hex()));
    assert_eq!((first.added, first.total), (1, 1));

    // The same signature again changes nothing; another key's signature is appended.
    let again = store
        .append(
            &subject,
            AttachmentKind::Signature,
            vec![signature_layer(&k1, "app", &subject)],
        )
        .unwrap();
    assert_eq!(
        again,
        Appended {
            added: 0,
            ..first.clone()
        }
    );
    let second = store
        .append(
            &subject,
            AttachmentKind::Signature,
            vec![signature_layer(&k2, "app", &subject)],
        )
        .unwrap();
    assert_eq!((second.added, second.total), (1, 2));

    // One index entry for the tag (replaced, not duplicated), after the image, marked as an
    // artifact so it is not counted as an image.
    assert_eq!(
        index_names(&layout),
        vec![
            ("app".to_string(), None),
            (second.tag.clone(), Some(OCI_CONFIG.to_string())),
        ]
    );

    let stored = store
        .read(&subject, AttachmentKind::Signature)
        .unwrap()
        .unwrap();
    assert_eq!(stored.tag, second.tag);
    assert_eq!(stored.layers.len(), 2);
    for (key, (desc, blob)) in [&k1, &k2].into_iter().zip(&stored.layers) {
        let sig = &desc.annotations[SIGNATURE_ANNOTATION];
        crate::attest::dsse::verify_der_b64(key.verifying_key(), blob, sig).unwrap();
    }
    // The attestation tag is separate.
    assert!(store
        .read(&subject, AttachmentKind::Attestation)
        .unwrap()
        .is_none());
}

#[test]
fn a_corrupt_attachment_blob_is_refused_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, subject) = layout_with_image(dir.path());
    let store = AttachmentStore::Layout(layout.clone());
    store
        .append(
            &subject,
            AttachmentKind::Signature,
            vec![signature_layer(&keys::generate(), "app", &subject)],
        )
        .unwrap();
    let stored = store
        .read(&subject, AttachmentKind::Signature)
        .unwrap()
        .unwrap();
    let payload = layout.blob_path(&stored.layers[0].0.digest);
    let mut bytes = fs_err::read(&payload).unwrap();
    bytes[10] ^= 1;
    fs_err::write(&payload, bytes).unwrap();
    let err = store.read(&subject, AttachmentKind::Signature).unwrap_err();
    assert!(matches!(err, StoreError::Layout { .. }), "{err:?}");
}

#[test]
fn concurrent_appends_to_one_layout_lose_no_signature() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, subject) = layout_with_image(dir.path());
    std::thread::scope(|s| {
        for _ in 0..4 {
            let layout = layout.clone();
            s.spawn(move || {
                let store = AttachmentStore::Layout(layout);
                for _ in 0..3 {
                    store
                        .append(
                            &subject,
                            AttachmentKind::Signature,
                            vec![signature_layer(&keys::generate(), "app", &subject)],
                        )
                        .unwrap();
                }
            });
        }
    });
    let store = AttachmentStore::Layout(layout);
    let stored = store
        .read(&subject, AttachmentKind::Signature)
        .unwrap()
        .unwrap();
    assert_eq!(stored.layers.len(), 12);
}

#[test]
fn oversized_attachment_tags_are_refused_before_any_blob_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, subject) = layout_with_image(dir.path());
    let store = AttachmentStore::Layout(layout);
    // Descriptors only: the blobs do not exist, so reading any of them would fail differently.
    let huge = NewLayer {
        descriptor: Descriptor {
            media_type: crate::media::COSIGN_SIMPLE_SIGNING.into(),
            digest: Sha256Digest::of(b"huge"),
            size: MAX_ATTACHMENT_TOTAL + 1,
            annotations: Default::default(),
        },
        blob: Blob::new(b"huge".to_vec()),
    };
    store
        .append(&subject, AttachmentKind::Signature, vec![huge])
        .unwrap();
    let err = store.read(&subject, AttachmentKind::Signature).unwrap_err();
    assert!(
        matches!(err, StoreError::TooManyLayers { layers: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn a_layer_too_large_to_read_back_is_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, subject) = layout_with_image(dir.path());
    let store = AttachmentStore::Layout(layout);
    let limit = usize::try_from(MAX_ATTACHMENT_BLOB).unwrap();
    let big = NewLayer::attestation(vec![b' '; limit + 1], "https://example.org/p");
    let digest = big.blob.digest;
    let err = store
        .append(&subject, AttachmentKind::Attestation, vec![big])
        .unwrap_err();
    assert!(
        matches!(err, StoreError::TooLarge { digest: d, size, .. } if d == digest && size == MAX_ATTACHMENT_BLOB + 1),
        "{err:?}"
    );
    assert!(store
        .read(&subject, AttachmentKind::Attestation)
        .unwrap()
        .is_none());
}
