//! Image references, parsed once: the transports skopeo, podman and buildah users already know,
//! `oci:PATH[:TAG][@sha256:HEX]`, `oci-archive:FILE[:TAG][@sha256:HEX]`, `docker-archive:FILE`
//! and `docker://[HOST[:PORT]/]REPO[:TAG][@sha256:HEX]`.
//!
//! Every command and the recipe parse a reference here and pass the [`ImageRef`] on, so the
//! recipe refuses (with its line) exactly what a build, a copy or a push would refuse, and
//! nothing re-parses text further down.

mod docker;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::Sha256Digest;

pub(crate) use docker::valid_manifest_ref;
pub use docker::{Reference, Repository, DOCKER_TRANSPORT};

/// A reference that does not parse, and which part of it is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference `{input}`: {problem}")]
pub struct ReferenceError {
    pub input: String,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("no known transport; expected oci:PATH[:TAG][@sha256:HEX], oci-archive:FILE[:TAG][@sha256:HEX], docker-archive:FILE or docker://[HOST[:PORT]/]REPO[:TAG][@sha256:HEX]")]
    UnknownTransport,
    #[error("a registry reference starts with `docker://`")]
    NotDocker,
    #[error("nothing follows `{0}`")]
    Empty(&'static str),
    #[error("the digest `{0}` is not `sha256:` followed by 64 lowercase hex digits")]
    Digest(String),
    #[error("a docker-archive: tarball has no manifest digest to pin; use oci: or oci-archive:")]
    DigestNotAllowed,
    #[error("the registry `{0}` is not HOST or HOST:PORT")]
    Registry(String),
    #[error(
        "the path component `{0}` is not lowercase [a-z0-9] runs joined by `.`, `_`, `__` or `-`"
    )]
    PathComponent(String),
    #[error("the repository `{0}` is 64 hex digits, which names an image ID, not a repository")]
    ImageId(String),
    #[error("the name is {0} characters long; at most 255 are allowed")]
    NameTooLong(usize),
    #[error("the tag `{0}` is not 1 to 128 characters of [A-Za-z0-9_.-] starting with a letter, a digit or `_`")]
    Tag(String),
    #[error("the tag `{0}` is not a valid OCI reference name: [A-Za-z0-9] runs joined by one of `-._:@+` or `--`")]
    LayoutTag(String),
}

/// An image in one of the transports kiln reads and writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageRef {
    /// An OCI image layout directory.
    Oci {
        path: PathBuf,
        tag: Option<String>,
        digest: Option<Sha256Digest>,
    },
    /// A tar of an OCI image layout.
    OciArchive {
        path: PathBuf,
        tag: Option<String>,
        digest: Option<Sha256Digest>,
    },
    /// A `docker save` / `podman save` tarball.
    DockerArchive { path: PathBuf },
    /// A registry.
    Docker(Reference),
}

impl ImageRef {
    /// The pinned manifest digest, if the reference carries one.
    pub fn digest(&self) -> Option<&Sha256Digest> {
        match self {
            ImageRef::Oci { digest, .. } | ImageRef::OciArchive { digest, .. } => digest.as_ref(),
            ImageRef::Docker(r) => r.digest(),
            ImageRef::DockerArchive { .. } => None,
        }
    }

    pub fn is_pinned(&self) -> bool {
        self.digest().is_some()
    }

    pub fn transport(&self) -> &'static str {
        match self {
            ImageRef::Oci { .. } => "oci",
            ImageRef::OciArchive { .. } => "oci-archive",
            ImageRef::DockerArchive { .. } => "docker-archive",
            ImageRef::Docker(_) => "docker",
        }
    }

    /// This reference pinned to `digest`, its tag kept; `None` for a docker-archive, which
    /// has no manifest digest to pin.
    pub fn pinned(&self, digest: Sha256Digest) -> Option<ImageRef> {
        self.with_digest(Some(digest))
    }

    /// This reference without its `@sha256:` pin.
    pub fn unpinned(&self) -> ImageRef {
        self.with_digest(None).unwrap_or_else(|| self.clone())
    }

    fn with_digest(&self, digest: Option<Sha256Digest>) -> Option<ImageRef> {
        Some(match self {
            ImageRef::Oci { path, tag, .. } => ImageRef::Oci {
                path: path.clone(),
                tag: tag.clone(),
                digest,
            },
            ImageRef::OciArchive { path, tag, .. } => ImageRef::OciArchive {
                path: path.clone(),
                tag: tag.clone(),
                digest,
            },
            ImageRef::Docker(r) => ImageRef::Docker(match digest {
                Some(d) => r.with_digest(d),
                None => r.without_digest(),
            }),
            ImageRef::DockerArchive { .. } => return None,
        })
    }

    /// The registry reference, for `docker://`.
    #[cfg(test)]
    pub fn registry(&self) -> Option<&Reference> {
        match self {
            ImageRef::Docker(r) => Some(r),
            _ => None,
        }
    }
}

/// Whether `s` is valid as `org.opencontainers.image.ref.name` (OCI image-layout): components
/// `alphanum (separator alphanum)*`, separator `[-._:@+]` or `--`, joined by `/`. The rule for
/// a recipe's `name` and for the tag of an `oci:` or `oci-archive:` reference, which kiln
/// writes into the layout's index as that annotation.
pub(crate) fn is_ref_name(s: &str) -> bool {
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        let alnum = |x: u8| x.is_ascii_alphanumeric();
        let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
            return false;
        };
        if !alnum(first) || !alnum(last) {
            return false;
        }
        let mut i = 0;
        while i < b.len() {
            if alnum(b[i]) {
                i += 1;
            } else if b[i] == b'-'
                && b.get(i + 1) == Some(&b'-')
                && b.get(i + 2).is_some_and(|&x| alnum(x))
            {
                i += 2;
            } else if b"-._:@+".contains(&b[i]) && b.get(i + 1).is_some_and(|&x| alnum(x)) {
                i += 1;
            } else {
                return false;
            }
        }
        true
    };
    s.split('/').all(component_ok)
}

/// `sha256:HEX`, the only digest kiln pins with.
fn parse_digest(text: &str) -> Result<Sha256Digest, Problem> {
    text.parse().map_err(|_| Problem::Digest(text.to_string()))
}

/// Splits `rest` into `(body, digest)` at a trailing `@sha256:…`.
fn split_digest(rest: &str) -> Result<(&str, Option<Sha256Digest>), Problem> {
    match rest.rsplit_once('@') {
        Some((body, d)) => Ok((body, Some(parse_digest(d)?))),
        None => Ok((rest, None)),
    }
}

/// Splits a layout path from an optional `:TAG`. The tag is what follows the last `:` when it
/// contains no `/` (so `oci:./a:b/c` is a path).
fn split_tag(body: &str) -> (PathBuf, Option<String>) {
    match body.rsplit_once(':') {
        Some((path, tag)) if !tag.is_empty() && !tag.contains('/') && !path.is_empty() => {
            (PathBuf::from(path), Some(tag.to_string()))
        }
        _ => (PathBuf::from(body), None),
    }
}

/// `PATH[:TAG][@sha256:HEX]` after `oci:` or `oci-archive:`.
fn parse_layout(
    transport: &'static str,
    rest: &str,
) -> Result<(PathBuf, Option<String>, Option<Sha256Digest>), Problem> {
    let (body, digest) = split_digest(rest)?;
    let (path, tag) = split_tag(body);
    if path.as_os_str().is_empty() {
        return Err(Problem::Empty(transport));
    }
    if let Some(tag) = tag.as_ref().filter(|t| !is_ref_name(t)) {
        return Err(Problem::LayoutTag(tag.clone()));
    }
    Ok((path, tag, digest))
}

fn parse(s: &str) -> Result<ImageRef, Problem> {
    if let Some(rest) = s.strip_prefix(DOCKER_TRANSPORT) {
        return docker::parse_name(rest).map(ImageRef::Docker);
    }
    if let Some(rest) = s.strip_prefix("oci-archive:") {
        let (path, tag, digest) = parse_layout("oci-archive:", rest)?;
        return Ok(ImageRef::OciArchive { path, tag, digest });
    }
    if let Some(rest) = s.strip_prefix("docker-archive:") {
        if rest.is_empty() {
            return Err(Problem::Empty("docker-archive:"));
        }
        if rest.contains("@sha256:") {
            return Err(Problem::DigestNotAllowed);
        }
        return Ok(ImageRef::DockerArchive {
            path: PathBuf::from(rest),
        });
    }
    if let Some(rest) = s.strip_prefix("oci:") {
        let (path, tag, digest) = parse_layout("oci:", rest)?;
        return Ok(ImageRef::Oci { path, tag, digest });
    }
    Err(Problem::UnknownTransport)
}

impl FromStr for ImageRef {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s).map_err(|problem| ReferenceError {
            input: s.to_string(),
            problem,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layout = |f: &mut fmt::Formatter<'_>,
                      t: &str,
                      p: &PathBuf,
                      tag: &Option<String>,
                      d: &Option<Sha256Digest>| {
            write!(f, "{t}:{}", p.display())?;
            if let Some(tag) = tag {
                write!(f, ":{tag}")?;
            }
            if let Some(d) = d {
                write!(f, "@{d}")?;
            }
            Ok(())
        };
        match self {
            ImageRef::Oci { path, tag, digest } => layout(f, "oci", path, tag, digest),
            ImageRef::OciArchive { path, tag, digest } => {
                layout(f, "oci-archive", path, tag, digest)
            }
            ImageRef::DockerArchive { path } => write!(f, "docker-archive:{}", path.display()),
            ImageRef::Docker(r) => r.fmt(f),
        }
    }
}

impl From<Reference> for ImageRef {
    fn from(r: Reference) -> Self {
        ImageRef::Docker(r)
    }
}

impl Serialize for ImageRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ImageRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
