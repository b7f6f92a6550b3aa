//! Signing and verifying one resolved image: what `kiln verify` checks and reports
//! ([`verify_target`] → [`Verification`]), and what `build --sign-key` / `rebuild --sign-key`
//! write beside a built image ([`sign_layout`] → [`LayoutSigned`]). The caller prints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::cosign::{AttachmentKind, PREDICATE_TYPE_ANNOTATION};
use super::simple_signing::{parse_payload, repository_of};
use super::store::{AttachmentStore, StoreError};
use super::target::{self, Target};
use super::verify::{verify_attestations, verify_signatures, LayerVerdict};
use super::{
    attestation_layer, keys, signature_layer, AttestationPolicy, IdentityPolicy, PredicateType,
    SigningKey, VerificationReport, VerifyingKey,
};
use crate::digest::Sha256Digest;
use crate::image::{ImageError, Layout};
use crate::media::is_index;
use crate::platform::Platform;
use crate::registry::{index_images, IndexEntry, ReferenceError, RegistryError};

#[derive(Debug, thiserror::Error)]
pub enum SignImageError {
    #[error("--push takes a docker://HOST/REPO[:TAG] reference, not `{push}`")]
    Push {
        push: String,
        #[source]
        source: ReferenceError,
    },
    #[error("failed to read the build's provenance")]
    Provenance(#[source] serde_json::Error),
    #[error("the build's provenance has no predicate")]
    NoPredicate,
    #[error("failed to open layout {}", path.display())]
    Layout {
        path: PathBuf,
        #[source]
        source: ImageError,
    },
    #[error(transparent)]
    Store(#[from] Box<StoreError>),
    #[error("failed to read the index {reference}")]
    Index {
        reference: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error(
        "{reference} ({digest}) is one image, not an index: --platform {platform} picks an image \
         from an index"
    )]
    NotAnIndex {
        reference: String,
        digest: Sha256Digest,
        platform: Platform,
    },
    #[error(
        "the index {reference} has no image for {platform}; it lists {}",
        available.join(", ")
    )]
    NoPlatform {
        reference: String,
        platform: Platform,
        available: Vec<String>,
    },
    #[error(
        "the index {reference} ({digest}) lists no image whose attestations could be verified"
    )]
    EmptyIndex {
        reference: String,
        digest: Sha256Digest,
    },
    #[error("failed to read the attachments of {reference}")]
    Read {
        reference: String,
        #[source]
        source: Box<StoreError>,
    },
}

impl From<StoreError> for SignImageError {
    fn from(e: StoreError) -> Self {
        SignImageError::Store(Box::new(e))
    }
}

/// The names `build --sign-key` and `rebuild --sign-key` sign under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningNames {
    /// The simple-signing `docker-reference`.
    pub identity: String,
    /// The in-toto subject name.
    pub subject: String,
}

impl SigningNames {
    /// `--identity` when given (its repository is the subject); else the `--push`
    /// destination's names, as `kiln sign docker://…` would write them (`HOST/REPO:TAG`, and
    /// `HOST/REPO`); else the image's name in the layout.
    pub fn new(
        identity: Option<&str>,
        push: Option<&str>,
        image_name: &str,
    ) -> Result<Self, SignImageError> {
        if let Some(identity) = identity {
            return Ok(Self {
                identity: identity.to_string(),
                subject: repository_of(identity).to_string(),
            });
        }
        if let Some(push) = push {
            let parsed: crate::registry::Reference =
                push.parse().map_err(|source| SignImageError::Push {
                    push: push.to_string(),
                    source,
                })?;
            return Ok(Self {
                identity: target::docker_reference(&parsed),
                subject: parsed.repository().to_string(),
            });
        }
        Ok(Self {
            identity: image_name.to_string(),
            subject: image_name.to_string(),
        })
    }
}

/// What [`sign_layout`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayoutSigned {
    pub digest: Sha256Digest,
    /// The simple-signing identity signed.
    pub identity: String,
    /// sha256 of the public key's SPKI DER, in hex.
    pub key_id: String,
    /// The attested predicate types, in order (the provenance first).
    pub predicate_types: Vec<String>,
}

/// Signs the image `digest` in the layout at `dir` as `names` and attests its provenance
/// (`statement`, the in-toto statement the build wrote) there, then each of `more`
/// (predicate type, predicate).
pub fn sign_layout(
    dir: &Path,
    names: &SigningNames,
    digest: &Sha256Digest,
    statement: &[u8],
    more: Vec<(PredicateType, serde_json::Value)>,
    key: &SigningKey,
) -> Result<LayoutSigned, SignImageError> {
    let statement: serde_json::Value =
        serde_json::from_slice(statement).map_err(SignImageError::Provenance)?;
    let predicate = statement
        .get("predicate")
        .cloned()
        .ok_or(SignImageError::NoPredicate)?;
    let layout = Layout::open(dir).map_err(|source| SignImageError::Layout {
        path: dir.to_path_buf(),
        source,
    })?;
    let store = AttachmentStore::Layout(layout);
    store.append(
        digest,
        AttachmentKind::Signature,
        vec![signature_layer(key, &names.identity, digest)],
    )?;
    let attestations = std::iter::once((PredicateType::SlsaProvenance1, predicate))
        .chain(more)
        .map(|(t, p)| attestation_layer(key, &names.subject, digest, &t, p))
        .collect::<Vec<_>>();
    let predicate_types: Vec<String> = attestations
        .iter()
        .filter_map(|l| l.descriptor.annotations.get(PREDICATE_TYPE_ANNOTATION))
        .cloned()
        .collect();
    store.append(digest, AttachmentKind::Attestation, attestations)?;
    Ok(LayoutSigned {
        digest: *digest,
        identity: names.identity.clone(),
        key_id: keys::key_id(key.verifying_key()),
        predicate_types,
    })
}

/// What `kiln verify` requires of an image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyRequest {
    /// `--identity`: a repository (any tag of it) or an exact reference; `None`: any.
    pub identity: Option<String>,
    /// The attestation predicate types that must verify.
    pub predicate_types: Vec<PredicateType>,
    /// `--recipe`'s sha256: the provenance must record it (and is then required).
    pub recipe_sha256: Option<Sha256Digest>,
    /// `--platform`: of an index, the one platform whose image is verified.
    pub platform: Option<Platform>,
}

impl VerifyRequest {
    /// The identity policy of `--identity`: a bare repository accepts any of its tags.
    pub fn identity_policy(&self) -> IdentityPolicy {
        match self.identity.as_deref() {
            None => IdentityPolicy::Any,
            Some(r) if repository_of(r) == r => IdentityPolicy::Repository(r.to_string()),
            Some(r) => IdentityPolicy::Exact(r.to_string()),
        }
    }

    /// The predicate types to verify: those asked for, with the SLSA provenance when a
    /// recipe is to be checked, sorted, once each.
    pub fn predicate_types(&self) -> Vec<PredicateType> {
        let mut types = self.predicate_types.clone();
        if self.recipe_sha256.is_some() && !types.contains(&PredicateType::SlsaProvenance1) {
            types.push(PredicateType::SlsaProvenance1);
        }
        types.sort();
        types.dedup();
        types
    }
}

/// The report of `kiln verify` (its `--json` form, schema version 1).
///
/// Of an image: its signatures and the attestations asked for. Of an index (what `kiln build`
/// writes for several platforms, signed as `cosign sign --recursive` does): the index's own
/// signatures, as `cosign verify` checks them; and when attestations are asked for, or
/// `--platform` names one image, the signatures and attestations of each platform's image
/// (or that one) in [`platforms`](Self::platforms): the attestations are about the images,
/// not about the index.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    pub reference: String,
    /// sha256 of the public key's SPKI DER, in hex.
    #[serde(rename = "keyId")]
    pub key_id: String,
    pub verified: bool,
    /// What `reference` names: its digest, signatures and attestations.
    #[serde(flatten)]
    pub image: ImageVerification,
    /// The images of an index that were verified, in the index's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<PlatformVerification>,
    /// The recipe digest the provenance was checked against.
    #[serde(skip)]
    pub recipe_sha256: Option<Sha256Digest>,
}

/// The signatures and attestations of one manifest (an image, or an index).
#[derive(Debug, Clone, Serialize)]
pub struct ImageVerification {
    pub digest: Sha256Digest,
    pub signatures: VerificationReport,
    pub attestations: Vec<VerificationReport>,
    /// The `docker-reference` each verified signature layer (by index) vouches for.
    #[serde(skip)]
    pub identities: BTreeMap<usize, String>,
}

impl ImageVerification {
    pub fn verified(&self) -> bool {
        self.signatures.verified && self.attestations.iter().all(|a| a.verified)
    }
}

/// One platform's image of an index, verified.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformVerification {
    /// `os/arch[/variant]` as the index states it; `unknown` when it states none.
    pub platform: String,
    pub verified: bool,
    #[serde(flatten)]
    pub image: ImageVerification,
}

/// Verifies the signatures, and the attestations `request` names, of `target` (known to the
/// user as `reference`) with `key`; of an index, also its platforms' images (see
/// [`Verification`]).
pub fn verify_target(
    reference: &str,
    target: &Target<'_>,
    key: &VerifyingKey,
    request: &VerifyRequest,
) -> Result<Verification, SignImageError> {
    let read_err = |source| SignImageError::Read {
        reference: reference.to_string(),
        source: Box::new(source),
    };
    let manifest = target.store.manifest(&target.digest).map_err(read_err)?;
    let images = if is_index(&manifest.media_type) {
        Some(
            index_images(&manifest).map_err(|source| SignImageError::Index {
                reference: reference.to_string(),
                source: Box::new(source),
            })?,
        )
    } else {
        None
    };
    let types = request.predicate_types();
    let (own_types, platforms) = match (images, &request.platform) {
        (None, None) => (types.as_slice(), Vec::new()),
        (None, Some(platform)) => {
            return Err(SignImageError::NotAnIndex {
                reference: reference.to_string(),
                digest: target.digest,
                platform: platform.clone(),
            })
        }
        (Some(images), Some(platform)) => {
            let names = platform_names(&images);
            let picked = images.into_iter().find(|(p, _)| {
                p.as_ref()
                    .is_some_and(|p| platform.is_served_by(p.os(), p.architecture(), p.variant()))
            });
            let picked = picked.ok_or_else(|| SignImageError::NoPlatform {
                reference: reference.to_string(),
                platform: platform.clone(),
                available: names,
            })?;
            (&[][..], vec![picked])
        }
        (Some(_), None) if types.is_empty() => (&[][..], Vec::new()),
        (Some(images), None) if images.is_empty() => {
            return Err(SignImageError::EmptyIndex {
                reference: reference.to_string(),
                digest: target.digest,
            })
        }
        (Some(images), None) => (&[][..], images),
    };
    let image = verify_image(target, &target.digest, key, request, own_types).map_err(read_err)?;
    let platforms = platforms
        .into_iter()
        .map(|(platform, entry)| {
            let image = verify_image(target, &entry.digest, key, request, &types)?;
            Ok(PlatformVerification {
                platform: platform.map_or_else(|| "unknown".into(), |p| p.to_string()),
                verified: image.verified(),
                image,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()
        .map_err(read_err)?;
    let verified = image.verified() && platforms.iter().all(|p| p.verified);
    Ok(Verification {
        schema_version: 1,
        reference: reference.to_string(),
        key_id: keys::key_id(key),
        verified,
        image,
        platforms,
        recipe_sha256: request.recipe_sha256,
    })
}

/// For messages: the platforms an index offers.
fn platform_names(images: &[(Option<Platform>, IndexEntry)]) -> Vec<String> {
    images
        .iter()
        .map(|(p, e)| {
            p.as_ref()
                .map_or_else(|| e.digest.to_string(), |p| p.to_string())
        })
        .collect()
}

/// Verifies the signatures of `digest` in `target`'s store, and its attestations of `types`.
fn verify_image(
    target: &Target<'_>,
    digest: &Sha256Digest,
    key: &VerifyingKey,
    request: &VerifyRequest,
    types: &[PredicateType],
) -> Result<ImageVerification, StoreError> {
    let read = |kind| {
        target
            .store
            .read(digest, kind)
            .map(|stored| stored.map(|s| s.layers).unwrap_or_default())
    };
    let signature_layers = read(AttachmentKind::Signature)?;
    let signatures = verify_signatures(&signature_layers, key, digest, &request.identity_policy());
    let identities = signatures
        .layers
        .iter()
        .filter(|l| l.verdict == LayerVerdict::Verified)
        .filter_map(|l| {
            let (_, blob) = signature_layers.get(l.index)?;
            let claims = parse_payload(blob).ok()?;
            Some((l.index, claims.docker_reference))
        })
        .collect();
    let mut attestations = Vec::new();
    if !types.is_empty() {
        let layers = read(AttachmentKind::Attestation)?;
        for predicate_type in types {
            let policy = AttestationPolicy {
                recipe_sha256: request
                    .recipe_sha256
                    .filter(|_| *predicate_type == PredicateType::SlsaProvenance1),
                predicate_type: predicate_type.clone(),
            };
            attestations.push(verify_attestations(&layers, key, digest, &policy));
        }
    }
    Ok(ImageVerification {
        digest: *digest,
        signatures,
        attestations,
        identities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `build --sign-key` and `rebuild --sign-key`: which names are signed.
    #[test]
    fn signing_names_follow_identity_then_push_then_image_name() {
        let cases = [
            (
                Some("registry.example/team/app:1"),
                Some("docker://127.0.0.1:5000/other:2"),
                ("registry.example/team/app:1", "registry.example/team/app"),
            ),
            (
                None,
                Some("docker://127.0.0.1:5000/team/app:v1"),
                ("127.0.0.1:5000/team/app:v1", "127.0.0.1:5000/team/app"),
            ),
            (
                None,
                Some("docker://127.0.0.1:5000/team/app"),
                ("127.0.0.1:5000/team/app:latest", "127.0.0.1:5000/team/app"),
            ),
            (None, None, ("hello", "hello")),
        ];
        for (identity, push, (want_identity, want_subject)) in cases {
            let names = SigningNames::new(identity, push, "hello").unwrap();
            assert_eq!(names.identity, want_identity, "{identity:?} {push:?}");
            assert_eq!(names.subject, want_subject, "{identity:?} {push:?}");
        }
        let err = SigningNames::new(None, Some("oci:out/x"), "hello").unwrap_err();
        assert!(err.to_string().contains("docker://"), "{err}");
    }

    #[test]
    fn verify_request_adds_the_provenance_for_a_recipe_and_reads_identities() {
        let request = VerifyRequest {
            identity: Some("registry.example/team/app".into()),
            predicate_types: vec![
                PredicateType::SlsaProvenance1,
                PredicateType::SlsaProvenance1,
            ],
            recipe_sha256: None,
            platform: None,
        };
        assert_eq!(request.predicate_types(), [PredicateType::SlsaProvenance1]);
        assert_eq!(
            request.identity_policy(),
            IdentityPolicy::Repository("registry.example/team/app".into())
        );
        let request = VerifyRequest {
            identity: Some("registry.example/team/app:1".into()),
            recipe_sha256: Some(Sha256Digest::of(b"recipe")),
            ..VerifyRequest::default()
        };
        assert_eq!(request.predicate_types(), [PredicateType::SlsaProvenance1]);
        assert_eq!(
            request.identity_policy(),
            IdentityPolicy::Exact("registry.example/team/app:1".into())
        );
        assert_eq!(VerifyRequest::default().predicate_types(), []);
        assert_eq!(
            VerifyRequest::default().identity_policy(),
            IdentityPolicy::Any
        );
    }
}
