//! `docker://` names: the distribution reference grammar,
//! `[DOMAIN[:PORT]/]PATH[:TAG][@sha256:HEX]`, normalised as skopeo and podman do (a name with no
//! registry is on `docker.io`, and a one-component path there is under `library/`).
//!
//! A pinned base is still required where kiln builds; the normalisation only decides which
//! registry a name means, exactly as the tools users compare kiln with decide it.

use std::fmt;
use std::str::FromStr;

use super::{Problem, ReferenceError};
use crate::digest::Sha256Digest;

/// The transport prefix, as skopeo and podman spell it.
pub const DOCKER_TRANSPORT: &str = "docker://";

/// The registry a name without one is on, and the one `index.docker.io` is an old name for.
const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Where a one-component repository on `docker.io` lives (`debian` is `library/debian`).
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The longest `DOMAIN/PATH` the grammar allows.
const MAX_NAME_LEN: usize = 255;
/// The longest tag the grammar allows.
const MAX_TAG_LEN: usize = 128;

/// A repository inside one registry: `HOST[:PORT]/PATH`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Repository {
    registry: String,
    name: String,
}

impl Repository {
    /// Validates `registry` (`host[:port]`) and `name` (`a/b/c`, lowercase components).
    pub fn new(registry: &str, name: &str) -> Result<Self, ReferenceError> {
        let input = format!("{registry}/{name}");
        check_repository(registry, name).map_err(|problem| ReferenceError { input, problem })?;
        Ok(Self {
            registry: registry.to_string(),
            name: name.to_string(),
        })
    }

    /// `host[:port]`, normalised (`docker.io` for Docker Hub).
    pub(crate) fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path, e.g. `library/debian`.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The host the HTTP API lives on (`docker.io` is served by `registry-1.docker.io`).
    pub(crate) fn api_host(&self) -> &str {
        if self.registry == DEFAULT_DOMAIN {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.name)
    }
}

/// A parsed `docker://` image reference. `Display` prints its canonical form, with the
/// transport.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    repository: Repository,
    tag: Option<String>,
    digest: Option<Sha256Digest>,
}

impl Reference {
    pub fn new(
        repository: Repository,
        tag: Option<&str>,
        digest: Option<Sha256Digest>,
    ) -> Result<Self, ReferenceError> {
        if let Some(tag) = tag {
            check_tag(tag).map_err(|problem| ReferenceError {
                input: format!("{repository}:{tag}"),
                problem,
            })?;
        }
        Ok(Self {
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Sha256Digest> {
        self.digest.as_ref()
    }

    /// The tag, or `latest` when none was written (for operations that need a tag).
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// What to ask the registry's `/manifests/` endpoint for: the digest when pinned, else the
    /// tag (or `latest`).
    #[cfg(test)]
    pub fn manifest_ref(&self) -> String {
        match &self.digest {
            Some(d) => d.to_string(),
            None => self.tag_or_latest().to_string(),
        }
    }

    /// This reference pinned to `digest` (the tag is kept for display).
    pub fn with_digest(&self, digest: Sha256Digest) -> Self {
        Self {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// This reference without its digest (the tag, if any, is what it names).
    pub fn without_digest(&self) -> Self {
        Self {
            digest: None,
            ..self.clone()
        }
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |problem| ReferenceError {
            input: s.to_string(),
            problem,
        };
        let name = s
            .strip_prefix(DOCKER_TRANSPORT)
            .ok_or_else(|| err(Problem::NotDocker))?;
        parse_name(name).map_err(err)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{DOCKER_TRANSPORT}{}", self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `[DOMAIN[:PORT]/]PATH[:TAG][@sha256:HEX]`, normalised.
pub(super) fn parse_name(input: &str) -> Result<Reference, Problem> {
    if input.is_empty() {
        return Err(Problem::Empty(DOCKER_TRANSPORT));
    }
    let (rest, digest) = match input.split_once('@') {
        Some((rest, d)) => (rest, Some(super::parse_digest(d)?)),
        None => (input, None),
    };
    // A `:` after the last `/` starts the tag.
    let (name, tag) = match rest.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (rest, None),
    };
    let (registry, path) = split_domain(name);
    if is_image_id(path) {
        return Err(Problem::ImageId(path.to_string()));
    }
    let path = if registry == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_REPO_PREFIX}{path}")
    } else {
        path.to_string()
    };
    check_repository(registry, &path)?;
    if let Some(tag) = tag {
        check_tag(tag)?;
    }
    Ok(Reference {
        repository: Repository {
            registry: registry.to_string(),
            name: path,
        },
        tag: tag.map(str::to_string),
        digest,
    })
}

/// The registry and the path of `name`, as distribution's `splitDockerDomain` decides: the
/// first component is a registry when it has a `.` or a `:`, is `localhost`, or has an
/// upper-case letter (which a path component cannot have).
fn split_domain(name: &str) -> (&str, &str) {
    let (registry, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DEFAULT_DOMAIN, name),
    };
    if registry == LEGACY_DEFAULT_DOMAIN {
        (DEFAULT_DOMAIN, path)
    } else {
        (registry, path)
    }
}

/// 64 hex digits read as an image ID, so the grammar refuses them as a repository name.
fn is_image_id(path: &str) -> bool {
    path.len() == 64
        && path
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn check_repository(registry: &str, path: &str) -> Result<(), Problem> {
    if !valid_registry(registry) {
        return Err(Problem::Registry(registry.to_string()));
    }
    if let Some(bad) = path.split('/').find(|c| !valid_path_component(c)) {
        return Err(Problem::PathComponent(bad.to_string()));
    }
    let len = registry.len() + 1 + path.len();
    if len > MAX_NAME_LEN {
        return Err(Problem::NameTooLong(len));
    }
    Ok(())
}

/// `host[:port]`: dot-separated labels of `[A-Za-z0-9-]` not starting or ending with `-`, or a
/// bracketed IPv6 address.
fn valid_registry(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, tail)) => {
                if v6.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                match tail {
                    "" => return true,
                    t => ("x", t.strip_prefix(':').unwrap_or("bad")),
                }
            }
            None => return false,
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, p),
            None => (s, "0"),
        }
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    host_ok && !port.is_empty() && port.len() <= 5 && port.parse::<u16>().is_ok()
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, the distribution grammar's path component.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn check_tag(s: &str) -> Result<(), Problem> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || x == b'_' || x == b'.' || x == b'-');
    if ok {
        Ok(())
    } else {
        Err(Problem::Tag(s.to_string()))
    }
}

/// Validates a tag-or-digest string for the `/manifests/` endpoint.
pub(crate) fn valid_manifest_ref(s: &str) -> bool {
    if s.starts_with("sha256:") {
        s.parse::<Sha256Digest>().is_ok()
    } else {
        check_tag(s).is_ok()
    }
}
