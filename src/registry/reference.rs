//! `docker://HOST[:PORT]/REPO[:TAG][@sha256:HEX]` references, parsed once into a newtype.
//!
//! kiln is hermetic, so unlike `docker pull debian` nothing is implied: the registry host is
//! always written out (no silent `docker.io/library/` prefix). A tag is optional; `latest` is
//! only assumed by [`Reference::tag_or_latest`] where an operation really needs a tag.

use std::fmt;
use std::str::FromStr;

use crate::digest::Sha256Digest;

/// The transport prefix, as skopeo and podman spell it.
pub const DOCKER_TRANSPORT: &str = "docker://";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid registry reference `{input}`: {reason}")]
pub struct ReferenceError {
    pub input: String,
    pub reason: &'static str,
}

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
        let err = |reason| ReferenceError {
            input: input.clone(),
            reason,
        };
        if !valid_registry(registry) {
            return Err(err("the registry must be HOST or HOST:PORT"));
        }
        if !valid_repo_path(name) {
            return Err(err(
                "the repository must be lowercase path components of [a-z0-9] joined by `.`, `_`, `__` or `-`",
            ));
        }
        Ok(Self {
            registry: registry.to_string(),
            name: name.to_string(),
        })
    }

    /// `host[:port]` as written by the user.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path, e.g. `library/debian`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host the HTTP API lives on (`docker.io` is served by `registry-1.docker.io`).
    pub fn api_host(&self) -> &str {
        if self.registry == "docker.io" {
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

/// A parsed `docker://` image reference. `Display` prints it back exactly in canonical form.
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
            if !valid_tag(tag) {
                return Err(ReferenceError {
                    input: format!("{repository}:{tag}"),
                    reason: "a tag is 1 to 128 characters of [A-Za-z0-9_.-], not starting with `.` or `-`",
                });
            }
        }
        Ok(Self {
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// Parses the part after `docker://`: `HOST[:PORT]/REPO[:TAG][@sha256:HEX]`.
    pub fn parse_name(input: &str) -> Result<Self, ReferenceError> {
        let err = |reason| ReferenceError {
            input: input.to_string(),
            reason,
        };
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => {
                let digest = d.parse::<Sha256Digest>().map_err(|_| {
                    err("the digest must be `sha256:` followed by 64 lowercase hex digits")
                })?;
                (rest, Some(digest))
            }
            None => (input, None),
        };
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| err("expected HOST[:PORT]/REPOSITORY; the registry host is required"))?;
        if !looks_like_host(registry) {
            return Err(err(
                "the first component must be a registry host (with a `.` or a `:port`, or `localhost`); kiln never assumes docker.io",
            ));
        }
        // A `:` after the last `/` starts the tag.
        let (name, tag) = match path.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
            _ => (path, None),
        };
        let repository = Repository::new(registry, name).map_err(|e| err(e.reason))?;
        Self::new(repository, tag, digest).map_err(|e| err(e.reason))
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
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s
            .strip_prefix(DOCKER_TRANSPORT)
            .ok_or_else(|| ReferenceError {
                input: s.to_string(),
                reason: "a registry reference starts with `docker://`",
            })?;
        Self::parse_name(name).map_err(|e| ReferenceError {
            input: s.to_string(),
            reason: e.reason,
        })
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

fn looks_like_host(s: &str) -> bool {
    s == "localhost" || s.contains('.') || s.contains(':') || s.starts_with('[')
}

fn valid_registry(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        // [v6addr] or [v6addr]:port
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

fn valid_repo_path(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.split('/').all(valid_path_component)
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, the distribution spec's path component.
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

fn valid_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || x == b'_' || x == b'.' || x == b'-')
}

/// Validates a tag-or-digest string for the `/manifests/` endpoint.
pub(crate) fn valid_manifest_ref(s: &str) -> bool {
    if s.starts_with("sha256:") {
        s.parse::<Sha256Digest>().is_ok()
    } else {
        valid_tag(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_valid_references_and_round_trips() {
        // (input, registry, repo, tag, has_digest)
        let d = format!("@sha256:{HEX}");
        let cases: Vec<(String, &str, &str, Option<&str>, bool)> = vec![
            (
                "docker://127.0.0.1:5000/kiln/base".into(),
                "127.0.0.1:5000",
                "kiln/base",
                None,
                false,
            ),
            (
                "docker://localhost/x:v1.2".into(),
                "localhost",
                "x",
                Some("v1.2"),
                false,
            ),
            (
                "docker://localhost:80/a/b/c:latest".into(),
                "localhost:80",
                "a/b/c",
                Some("latest"),
                false,
            ),
            (
                format!("docker://reg.example/lib/debian{d}"),
                "reg.example",
                "lib/debian",
                None,
                true,
            ),
            (
                format!("docker://reg.example/lib/debian:12{d}"),
                "reg.example",
                "lib/debian",
                Some("12"),
                true,
            ),
            (
                "docker://[::1]:5000/a__b/c-d.e".into(),
                "[::1]:5000",
                "a__b/c-d.e",
                None,
                false,
            ),
            (
                "docker://docker.io/library/debian:bookworm".into(),
                "docker.io",
                "library/debian",
                Some("bookworm"),
                false,
            ),
        ];
        for (input, registry, repo, tag, has_digest) in cases {
            let r: Reference = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.repository().registry(), registry, "{input}");
            assert_eq!(r.repository().name(), repo, "{input}");
            assert_eq!(r.tag(), tag, "{input}");
            assert_eq!(r.digest().is_some(), has_digest, "{input}");
            assert_eq!(r.to_string(), input, "round trip");
        }
    }

    #[test]
    fn refuses_invalid_references() {
        let cases = [
            "127.0.0.1:5000/x",                   // no transport
            "docker://debian",                    // no host
            "docker://debian/slim",               // first component is not a host
            "docker://reg.example/",              // empty repo
            "docker://reg.example/UPPER",         // uppercase repo
            "docker://reg.example/a//b",          // empty component
            "docker://reg.example/a:",            // empty tag
            "docker://reg.example/a:.x",          // tag starting with a dot
            "docker://reg.example/a@sha256:abc",  // short digest
            "docker://reg.example/a@sha512:abcd", // other algorithm
            "docker://reg.example:99999/a",       // port out of range
            "docker://reg.example:/a",            // empty port
            "docker://-bad.example/a",            // bad host label
            "docker://reg.example/a_-b",          // mixed separator
        ];
        for input in cases {
            assert!(
                input.parse::<Reference>().is_err(),
                "{input} should be refused"
            );
        }
    }

    #[test]
    fn manifest_ref_prefers_digest_and_defaults_to_latest() {
        let r: Reference = "docker://localhost:5000/a".parse().unwrap();
        assert_eq!(r.tag_or_latest(), "latest");
        assert_eq!(r.manifest_ref(), "latest");
        let pinned = r.with_digest(
            HEX.parse::<Sha256Digest>()
                .unwrap_or_else(|_| format!("sha256:{HEX}").parse().unwrap()),
        );
        assert_eq!(pinned.manifest_ref(), format!("sha256:{HEX}"));
        assert_eq!(
            pinned.to_string(),
            format!("docker://localhost:5000/a@sha256:{HEX}")
        );
    }

    #[test]
    fn docker_io_uses_its_api_host() {
        let r: Reference = "docker://docker.io/library/debian".parse().unwrap();
        assert_eq!(r.repository().api_host(), "registry-1.docker.io");
    }
}
