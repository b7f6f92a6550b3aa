//! Re-resolving a base image's tag: `docker://HOST/REPO:TAG@sha256:…` keeps its text before
//! `@` and takes the digest the tag names now (an `oci:` layout's tag likewise).

use std::path::Path;

use crate::digest::Sha256Digest;
use crate::image::remote::registry_reference;
use crate::image::{open_image_with, ImageError, ImageRef, RefError, Transports};
use crate::registry::RegistryError;

#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    #[error("`{reference}` is not a valid image reference")]
    Reference {
        reference: String,
        #[source]
        source: RefError,
    },
    #[error("failed to look up the tag of `{reference}`")]
    Image {
        reference: String,
        #[source]
        source: Box<ImageError>,
    },
    #[error("failed to look up the tag of `{reference}`")]
    Registry {
        reference: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("resolving the tag of `{reference}` needs the network, and --offline was given")]
    Offline { reference: String },
    #[error("a docker-archive base cannot be pinned: it has no manifest digest; use oci-archive: or oci:")]
    DockerArchive { reference: String },
}

/// The base `reference` pinned to what its tag names now (`None`: nothing to resolve, a
/// digest-only reference). The text before `@` is kept as written; only the digest changes.
/// A relative `oci:` path is relative to `recipe_dir`.
pub fn resolve_base(
    reference: &str,
    recipe_dir: &Path,
    platform: &str,
    ctx: &Transports,
) -> Result<Option<(String, Sha256Digest)>, BaseError> {
    let image_err = |source| BaseError::Image {
        reference: reference.to_string(),
        source: Box::new(source),
    };
    let parsed: ImageRef = reference.parse().map_err(|source| BaseError::Reference {
        reference: reference.to_string(),
        source,
    })?;
    let unpinned = reference
        .rsplit_once('@')
        .map_or(reference, |(body, _)| body)
        .to_string();
    let digest = match &parsed {
        ImageRef::Docker { .. } => {
            let r = registry_reference(&parsed).map_err(image_err)?;
            if r.tag().is_none() && r.digest().is_some() {
                return Ok(None);
            }
            if ctx.offline {
                return Err(BaseError::Offline {
                    reference: reference.to_string(),
                });
            }
            ctx.client
                .resolve_tag(r.repository(), r.tag_or_latest())
                .map_err(|source| BaseError::Registry {
                    reference: reference.to_string(),
                    source: Box::new(source),
                })?
        }
        ImageRef::Oci { path, tag, .. } | ImageRef::OciArchive { path, tag, .. } => {
            if tag.is_none() && parsed.digest().is_some() {
                return Ok(None);
            }
            let path = if path.is_absolute() {
                path.clone()
            } else {
                recipe_dir.join(path)
            };
            let local = match &parsed {
                ImageRef::Oci { .. } => ImageRef::Oci {
                    path,
                    tag: tag.clone(),
                    digest: None,
                },
                _ => ImageRef::OciArchive {
                    path,
                    tag: tag.clone(),
                    digest: None,
                },
            };
            open_image_with(&local, platform, ctx)
                .map_err(image_err)?
                .resolved_digest
        }
        ImageRef::DockerArchive { .. } => {
            return Err(BaseError::DockerArchive {
                reference: reference.to_string(),
            })
        }
    };
    Ok(Some((format!("{unpinned}@{digest}"), digest)))
}
