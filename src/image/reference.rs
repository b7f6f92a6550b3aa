//! Image references in the transports skopeo, podman and buildah users already know:
//! `oci:PATH[:TAG][@sha256:HEX]`, `oci-archive:FILE[:TAG][@sha256:HEX]`,
//! `docker-archive:FILE`, `docker://HOST[:PORT]/REPO[:TAG][@sha256:HEX]`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::digest::Sha256Digest;

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
    /// A registry: `HOST[:PORT]/REPO[:TAG][@sha256:HEX]` (the part after `docker://`).
    Docker {
        reference: String,
        digest: Option<Sha256Digest>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RefError {
    #[error(
        "invalid image reference `{0}`: expected oci:PATH[:TAG][@sha256:HEX], \
         oci-archive:FILE, docker-archive:FILE or docker://HOST/REPO[:TAG][@sha256:HEX]"
    )]
    UnknownTransport(String),
    #[error("invalid image reference `{reference}`: {reason}")]
    Invalid { reference: String, reason: String },
}

impl ImageRef {
    /// The pinned manifest digest, if the reference carries one.
    pub fn digest(&self) -> Option<&Sha256Digest> {
        match self {
            ImageRef::Oci { digest, .. }
            | ImageRef::OciArchive { digest, .. }
            | ImageRef::Docker { digest, .. } => digest.as_ref(),
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
            ImageRef::Docker { .. } => "docker",
        }
    }
}

/// Splits `rest` into `(body, digest)` at a trailing `@sha256:…`.
fn split_digest(full: &str, rest: &str) -> Result<(String, Option<Sha256Digest>), RefError> {
    match rest.rsplit_once('@') {
        Some((body, d)) => {
            let digest = d.parse::<Sha256Digest>().map_err(|e| RefError::Invalid {
                reference: full.to_string(),
                reason: e.to_string(),
            })?;
            Ok((body.to_string(), Some(digest)))
        }
        None => Ok((rest.to_string(), None)),
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

impl FromStr for ImageRef {
    type Err = RefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| RefError::Invalid {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = s.strip_prefix("docker://") {
            let (body, digest) = split_digest(s, rest)?;
            if body.is_empty() || !body.contains('/') {
                return Err(invalid(
                    "expected docker://HOST[:PORT]/REPO[:TAG][@sha256:HEX]",
                ));
            }
            return Ok(ImageRef::Docker {
                reference: body,
                digest,
            });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (body, digest) = split_digest(s, rest)?;
            let (path, tag) = split_tag(&body);
            if path.as_os_str().is_empty() {
                return Err(invalid("missing archive path"));
            }
            return Ok(ImageRef::OciArchive { path, tag, digest });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            if rest.is_empty() {
                return Err(invalid("missing archive path"));
            }
            return Ok(ImageRef::DockerArchive {
                path: PathBuf::from(rest),
            });
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            let (body, digest) = split_digest(s, rest)?;
            let (path, tag) = split_tag(&body);
            if path.as_os_str().is_empty() {
                return Err(invalid("missing layout path"));
            }
            return Ok(ImageRef::Oci { path, tag, digest });
        }
        Err(RefError::UnknownTransport(s.to_string()))
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with = |f: &mut fmt::Formatter<'_>,
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
            ImageRef::Oci { path, tag, digest } => with(f, "oci", path, tag, digest),
            ImageRef::OciArchive { path, tag, digest } => with(f, "oci-archive", path, tag, digest),
            ImageRef::DockerArchive { path } => write!(f, "docker-archive:{}", path.display()),
            ImageRef::Docker { reference, digest } => {
                write!(f, "docker://{reference}")?;
                if let Some(d) = digest {
                    write!(f, "@{d}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_every_transport() {
        let d: Sha256Digest = D.parse().unwrap();
        let cases: Vec<(String, ImageRef)> = vec![
            (
                "oci:out/hello".into(),
                ImageRef::Oci {
                    path: "out/hello".into(),
                    tag: None,
                    digest: None,
                },
            ),
            (
                "oci:out/hello:v1".into(),
                ImageRef::Oci {
                    path: "out/hello".into(),
                    tag: Some("v1".into()),
                    digest: None,
                },
            ),
            (
                format!("oci:/a/b:v1@{D}"),
                ImageRef::Oci {
                    path: "/a/b".into(),
                    tag: Some("v1".into()),
                    digest: Some(d),
                },
            ),
            (
                format!("oci:./x@{D}"),
                ImageRef::Oci {
                    path: "./x".into(),
                    tag: None,
                    digest: Some(d),
                },
            ),
            (
                "oci-archive:img.tar".into(),
                ImageRef::OciArchive {
                    path: "img.tar".into(),
                    tag: None,
                    digest: None,
                },
            ),
            (
                "docker-archive:img.tar".into(),
                ImageRef::DockerArchive {
                    path: "img.tar".into(),
                },
            ),
            (
                format!("docker://127.0.0.1:5000/lib/busybox@{D}"),
                ImageRef::Docker {
                    reference: "127.0.0.1:5000/lib/busybox".into(),
                    digest: Some(d),
                },
            ),
        ];
        for (text, want) in cases {
            let got: ImageRef = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(got, want, "{text}");
            assert_eq!(got.to_string(), text);
        }
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "out/hello",
            "oci:",
            "docker://",
            "docker://busybox",
            "oci:x@sha256:12",
        ] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad}");
        }
    }
}
