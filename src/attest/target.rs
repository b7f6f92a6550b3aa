//! Which image a `sign`, `attest` or `verify` is about, and under which name.
//!
//! A signature binds a manifest *digest*; a tag only says where to find the image. So a target
//! is resolved once to its digest (a pinned `@sha256:` is used as given; a tag is resolved by
//! reading the layout's index or asking the registry), and the attachments are stored next to
//! it ([`AttachmentStore`]).
//!
//! The names written into what is signed:
//! - `docker://HOST/REPO:TAG…`: the simple-signing `docker-reference` is the reference as the
//!   user gave it, as cosign 2 writes it: `HOST/REPO:TAG` when a tag is written (also with a
//!   digest), `HOST/REPO@sha256:…` for a reference by digest only, `HOST/REPO:latest` when
//!   neither is written. The in-toto subject name is the repository, `HOST/REPO`, as cosign
//!   writes it.
//! - `oci:PATH[:TAG]`: a layout has no registry name, so both are the image's name in the
//!   layout, its `org.opencontainers.image.ref.name` (what `kiln build` writes from
//!   `[image] name`), falling back to the layout directory's name. Pass an explicit identity
//!   (`kiln sign --identity HOST/REPO:TAG`) when the image is going to be pushed, so that
//!   policies matching the registry name (containers/image `matchRepository`) accept it.

use std::path::{Path, PathBuf};

use super::store::{AttachmentStore, StoreError};
use crate::digest::Sha256Digest;
use crate::image::layout::digest_of;
use crate::image::{ImageError, ImageRef, Layout};
use crate::media;
use crate::media::ALL_MANIFEST_TYPES;
use crate::registry::{Client, Reference, RegistryError};

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(
        "cannot sign or verify {reference} in place: use an oci: layout or a docker:// \
         registry reference (copy the archive into a layout first)"
    )]
    UnsupportedTransport { reference: String },
    #[error("failed to open layout {}", path.display())]
    Layout {
        path: PathBuf,
        #[source]
        source: ImageError,
    },
    #[error("failed to resolve {reference}: {reason}")]
    Select { reference: String, reason: String },
    #[error("failed to resolve {reference}")]
    Registry {
        reference: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("failed to check that {digest} exists in {reference}")]
    Check {
        reference: String,
        digest: Sha256Digest,
        #[source]
        source: Box<StoreError>,
    },
    #[error("{reference}: manifest {digest} does not exist there")]
    Missing {
        reference: String,
        digest: Sha256Digest,
    },
}

/// A resolved image, ready to have attachments written or read.
pub struct Target<'a> {
    /// The reference as given, for messages.
    pub reference: String,
    pub store: AttachmentStore<'a>,
    /// The manifest (or index) digest the reference resolved to.
    pub digest: Sha256Digest,
    /// The simple-signing `docker-reference`.
    pub docker_reference: String,
    /// The in-toto subject name.
    pub subject_name: String,
}

/// Resolves `reference` (`oci:` or `docker://`). `client` is used for registries.
pub fn resolve<'a>(reference: &ImageRef, client: &'a Client) -> Result<Target<'a>, TargetError> {
    let text = reference.to_string();
    match reference {
        ImageRef::Oci { path, tag, digest } => {
            resolve_layout(text, path, tag.as_deref(), digest.as_ref())
        }
        ImageRef::Docker(parsed) => resolve_registry(text, parsed, client),
        ImageRef::OciArchive { .. } | ImageRef::DockerArchive { .. } => {
            Err(TargetError::UnsupportedTransport { reference: text })
        }
    }
}

/// Whether an index entry is an attachment or referrer rather than an image to sign.
fn is_attachment(desc: &oci_spec::image::Descriptor) -> bool {
    desc.artifact_type().is_some()
        || ref_name(desc).is_some_and(|n| n.starts_with("sha256-") && n.contains('.'))
}

fn ref_name(desc: &oci_spec::image::Descriptor) -> Option<&str> {
    desc.annotations()
        .as_ref()?
        .get(media::ANNOTATION_REF_NAME)
        .map(String::as_str)
}

fn resolve_layout<'a>(
    reference: String,
    path: &Path,
    tag: Option<&str>,
    pinned: Option<&Sha256Digest>,
) -> Result<Target<'a>, TargetError> {
    let layout_err = |source| TargetError::Layout {
        path: path.to_path_buf(),
        source,
    };
    let select = |reason: String| TargetError::Select {
        reference: reference.clone(),
        reason,
    };
    let layout = Layout::open(path).map_err(layout_err)?;
    let index = layout.read_index().map_err(layout_err)?;
    let entry = match (pinned, tag) {
        (Some(d), _) => index.manifests().iter().find(|m| {
            digest_of(m).ok().as_ref() == Some(d) && tag.is_none_or(|t| ref_name(m) == Some(t))
        }),
        (None, Some(t)) => Some(
            index
                .manifests()
                .iter()
                .find(|m| ref_name(m) == Some(t))
                .ok_or_else(|| select(format!("the layout has no image tagged `{t}`")))?,
        ),
        (None, None) => {
            let images: Vec<_> = index
                .manifests()
                .iter()
                .filter(|m| !is_attachment(m))
                .collect();
            match images.as_slice() {
                [one] => Some(*one),
                [] => return Err(select("the layout lists no image".into())),
                _ => {
                    return Err(select(
                        "the layout holds several images; name one with :TAG or @sha256:…".into(),
                    ))
                }
            }
        }
    };
    let digest = match (entry, pinned) {
        (Some(e), _) => digest_of(e).map_err(layout_err)?,
        (None, Some(d)) => *d,
        (None, None) => unreachable!("an unpinned reference always selects an entry"),
    };
    if !layout.has_blob(&digest) {
        return Err(TargetError::Missing { reference, digest });
    }
    let name = tag
        .map(str::to_string)
        .or_else(|| entry.and_then(ref_name).map(str::to_string))
        .unwrap_or_else(|| {
            path.file_name()
                .map_or_else(|| "image".into(), |n| n.to_string_lossy().into_owned())
        });
    Ok(Target {
        reference,
        store: AttachmentStore::Layout(layout),
        digest,
        docker_reference: name.clone(),
        subject_name: name,
    })
}

/// The simple-signing identity for a registry reference: as given, `:latest` when bare.
pub fn docker_reference(reference: &Reference) -> String {
    let repository = reference.repository();
    match (reference.tag(), reference.digest()) {
        (Some(tag), _) => format!("{repository}:{tag}"),
        (None, Some(d)) => format!("{repository}@{d}"),
        (None, None) => format!("{repository}:latest"),
    }
}

fn resolve_registry<'a>(
    reference: String,
    parsed: &Reference,
    client: &'a Client,
) -> Result<Target<'a>, TargetError> {
    let repository = parsed.repository().clone();
    let digest = match parsed.digest() {
        Some(d) => *d,
        None => {
            client
                .get_manifest(&repository, parsed.tag_or_latest(), ALL_MANIFEST_TYPES)
                .map_err(|source| TargetError::Registry {
                    reference: reference.clone(),
                    source: Box::new(source),
                })?
                .digest
        }
    };
    let docker_reference = docker_reference(parsed);
    let store = AttachmentStore::Registry {
        client,
        repository: repository.clone(),
    };
    if parsed.digest().is_some() {
        let exists = store
            .has_manifest(&digest)
            .map_err(|source| TargetError::Check {
                reference: reference.clone(),
                digest,
                source: Box::new(source),
            })?;
        if !exists {
            return Err(TargetError::Missing { reference, digest });
        }
    }
    Ok(Target {
        reference,
        store,
        digest,
        docker_reference,
        subject_name: repository.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::layout::descriptor;

    #[test]
    fn registry_identities_follow_cosign() {
        let d = Sha256Digest::of(b"m");
        let table = [
            (
                "docker://h:5000/a/b:v1".to_string(),
                "h:5000/a/b:v1".to_string(),
            ),
            (
                format!("docker://h:5000/a/b:v1@{d}"),
                "h:5000/a/b:v1".to_string(),
            ),
            (
                format!("docker://h:5000/a/b@{d}"),
                format!("h:5000/a/b@{d}"),
            ),
            (
                "docker://h:5000/a/b".to_string(),
                "h:5000/a/b:latest".to_string(),
            ),
        ];
        for (input, want) in table {
            let parsed: Reference = input.parse().unwrap();
            assert_eq!(docker_reference(&parsed), want, "{input}");
        }
    }

    /// A layout with images `a` and (optionally) `b`, plus a `.sig` tag and a referrer.
    fn layout(dir: &Path, with_b: bool) -> Vec<Sha256Digest> {
        let layout = Layout::create(dir).unwrap();
        let mut entries = Vec::new();
        let mut digests = Vec::new();
        let mut names = vec!["a"];
        if with_b {
            names.push("b");
        }
        for name in names.iter().copied().chain(["sha256-00.sig", ""]) {
            let bytes = format!(r#"{{"name":"{name}"}}"#);
            let digest = layout.put_blob(bytes.as_bytes()).unwrap();
            let mut entry = descriptor(media::OCI_MANIFEST, &digest, bytes.len() as u64);
            if name.is_empty() {
                entry.set_artifact_type(Some(media::IN_TOTO.into()));
            } else {
                entry.set_annotations(Some(
                    [(media::ANNOTATION_REF_NAME.to_string(), name.to_string())]
                        .into_iter()
                        .collect(),
                ));
            }
            entries.push(entry);
            digests.push(digest);
        }
        layout.write_index(entries).unwrap();
        digests
    }

    fn resolve_text(text: &str) -> Result<(Sha256Digest, String), TargetError> {
        let client = Client::new(Default::default()).unwrap();
        let t = resolve(&text.parse().unwrap(), &client)?;
        assert_eq!(t.docker_reference, t.subject_name);
        Ok((t.digest, t.docker_reference))
    }

    #[test]
    fn layout_targets_resolve_by_tag_digest_or_the_only_image() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("lay");
        let digests = layout(&root, false);
        let p = root.display();
        // Attachment tags and referrers are not images: `a` is the only one.
        assert_eq!(
            resolve_text(&format!("oci:{p}")).unwrap(),
            (digests[0], "a".into())
        );
        assert_eq!(
            resolve_text(&format!("oci:{p}:a")).unwrap(),
            (digests[0], "a".into())
        );
        assert_eq!(
            resolve_text(&format!("oci:{p}@{}", digests[0])).unwrap(),
            (digests[0], "a".into())
        );
        assert!(matches!(
            resolve_text(&format!("oci:{p}:nope")),
            Err(TargetError::Select { .. })
        ));
        assert!(matches!(
            resolve_text(&format!("oci:{p}@{}", Sha256Digest::of(b"absent"))),
            Err(TargetError::Missing { .. })
        ));

        let two = dir.path().join("two");
        let digests = layout(&two, true);
        let p = two.display();
        let err = resolve_text(&format!("oci:{p}")).unwrap_err();
        assert!(err.to_string().contains("several images"), "{err}");
        assert_eq!(
            resolve_text(&format!("oci:{p}:b")).unwrap(),
            (digests[1], "b".into())
        );
        assert!(matches!(
            resolve_text("oci-archive:x.tar"),
            Err(TargetError::UnsupportedTransport { .. })
        ));
    }
}
