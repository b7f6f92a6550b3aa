//! Checks `[base] ref`: a transport the rest of kiln can read, and a pin.
//!
//! The recipe only validates the shape; resolving and fetching belong to the image and fetch
//! modules. The syntax is the one skopeo, podman and buildah users know, with `@sha256:HEX`
//! accepted after any transport, because a base must be pinned whatever it comes from.

use crate::digest::Sha256Digest;

/// The transports a base image may come from.
pub const TRANSPORTS: [&str; 4] = ["oci:", "oci-archive:", "docker-archive:", "docker://"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("`{0}` has no known transport; expected one of: oci:PATH[:TAG][@sha256:HEX], oci-archive:FILE, docker-archive:FILE, docker://HOST[:PORT]/REPO[:TAG][@sha256:HEX]")]
    UnknownTransport(String),
    #[error("`{0}` names no image after its transport")]
    Empty(String),
    #[error(
        "`{0}` has an invalid digest: expected `@sha256:` followed by 64 lowercase hex digits"
    )]
    BadDigest(String),
    #[error("`{0}` is not HOST[:PORT]/REPO[:TAG][@sha256:HEX] with a lowercase repository")]
    BadDockerReference(String),
}

/// The `@sha256:` pin of `reference`, or `None` when it is not pinned.
pub(crate) fn check_reference(reference: &str) -> Result<Option<Sha256Digest>, ReferenceError> {
    let rest = TRANSPORTS
        .iter()
        .find_map(|t| reference.strip_prefix(t).map(|rest| (*t, rest)))
        .ok_or_else(|| ReferenceError::UnknownTransport(reference.to_string()))?;
    let (transport, rest) = rest;
    let (name, digest) = match rest.rsplit_once('@') {
        Some((name, pin)) => {
            let digest = pin
                .parse::<Sha256Digest>()
                .map_err(|_| ReferenceError::BadDigest(reference.to_string()))?;
            (name, Some(digest))
        }
        None => (rest, None),
    };
    if name.is_empty() {
        return Err(ReferenceError::Empty(reference.to_string()));
    }
    if transport == "docker://" && !docker_name_ok(name) {
        return Err(ReferenceError::BadDockerReference(reference.to_string()));
    }
    Ok(digest)
}

/// `HOST[:PORT]/REPO[:TAG]`, as in the distribution reference grammar (host required: kiln
/// never guesses `docker.io`).
fn docker_name_ok(name: &str) -> bool {
    let Some((host, path)) = name.split_once('/') else {
        return false;
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        && !host.starts_with(['-', '.', ':']);
    // A tag is after the last `:` that follows the last `/`.
    let (repo, tag) = match path.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
        _ => (path, None),
    };
    let repo_ok = repo.split('/').all(|c| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && c.as_bytes()[0].is_ascii_alphanumeric()
            && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
    });
    let tag_ok = tag.is_none_or(|t| {
        (1..=128).contains(&t.len())
            && t.as_bytes()[0] != b'.'
            && t.as_bytes()[0] != b'-'
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    });
    host_ok && repo_ok && tag_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn references() {
        let pinned = |s: &str| format!("{s}@sha256:{HEX}");
        let good_pinned = [
            pinned("docker://registry.example/library/debian"),
            pinned("docker://registry.example/library/debian:12"),
            pinned("docker://127.0.0.1:5000/a/b/c:v1.2"),
            pinned("oci:/var/lib/images/debian:12"),
            pinned("oci:layouts/base"),
            pinned("oci-archive:base.tar"),
            pinned("docker-archive:/tmp/base.tar"),
        ];
        for r in &good_pinned {
            assert_eq!(
                check_reference(r).unwrap().map(|d| d.hex()),
                Some(HEX.to_string()),
                "{r}"
            );
        }
        for r in [
            "docker://registry.example/debian:12",
            "oci:base",
            "oci-archive:x.tar",
        ] {
            assert_eq!(check_reference(r).unwrap(), None, "{r}");
        }
        type Is = fn(&ReferenceError) -> bool;
        let bad: &[(&str, Is)] = &[
            ("debian:12", |e| {
                matches!(e, ReferenceError::UnknownTransport(_))
            }),
            ("docker:registry.example/debian", |e| {
                matches!(e, ReferenceError::UnknownTransport(_))
            }),
            ("containers-storage:x", |e| {
                matches!(e, ReferenceError::UnknownTransport(_))
            }),
            ("oci:", |e| matches!(e, ReferenceError::Empty(_))),
            ("docker://reg/debian@sha256:abc", |e| {
                matches!(e, ReferenceError::BadDigest(_))
            }),
            ("docker://reg/debian@sha512:abc", |e| {
                matches!(e, ReferenceError::BadDigest(_))
            }),
            ("docker://debian", |e| {
                matches!(e, ReferenceError::BadDockerReference(_))
            }),
            ("docker://reg/Debian", |e| {
                matches!(e, ReferenceError::BadDockerReference(_))
            }),
            ("docker://reg/debian:", |e| {
                matches!(e, ReferenceError::BadDockerReference(_))
            }),
            ("docker://reg//debian", |e| {
                matches!(e, ReferenceError::BadDockerReference(_))
            }),
        ];
        for (r, is) in bad {
            let err = check_reference(r).unwrap_err();
            assert!(is(&err), "{r}: {err}");
        }
    }
}
