//! Checks on every manifest a registry hands us, before anyone looks inside it.
//!
//! The digest is always computed from the bytes received; a pull by digest must match it, and a
//! `Docker-Content-Digest` header that disagrees with the bytes is a lie (SECURITY.md 16). The
//! media type must be stated consistently by the body and `Content-Type` (19), schema 1 is
//! refused (its layer list is signed with keys nobody checks, and it has no config digest), and
//! an index may not list itself. No bytes can contain their own sha256, so a server that tries
//! it is caught by the digest check when the child is fetched; `image::remote::open_registry`
//! also follows exactly one index level and refuses an index whose platform entry is again an
//! index, so no chain of indexes can make kiln loop.

use serde::Deserialize;

use super::error::{RegistryError, Result};
use crate::digest::Sha256Digest;
use crate::media::{is_index, DOCKER_SCHEMA1, IMAGE_MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST};
use crate::platform::{Fit, Platform};

/// A manifest as received and verified: its bytes are exactly what `digest` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PulledManifest {
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub digest: Sha256Digest,
}

/// What the response said about the manifest, for [`verify_manifest`].
pub(crate) struct Received<'a> {
    pub reference: &'a str,
    pub url: &'a str,
    pub content_type: Option<&'a str>,
    pub digest_header: Option<&'a str>,
}

#[derive(Deserialize)]
struct Shape {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<serde_json::Value>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<Vec<ChildRef>>,
    layers: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ChildRef {
    digest: String,
}

pub(crate) fn verify_manifest(
    rx: &Received<'_>,
    bytes: &[u8],
    expected: Option<&Sha256Digest>,
    accept: &[&str],
) -> Result<(String, Sha256Digest)> {
    let digest = Sha256Digest::of(bytes);
    let mismatch = |expected: Sha256Digest| RegistryError::DigestMismatch {
        what: "manifest",
        url: rx.url.to_string(),
        expected,
        actual: digest,
    };
    if let Some(e) = expected {
        if *e != digest {
            return Err(mismatch(*e));
        }
    }
    if let Some(h) = rx
        .digest_header
        .map(str::trim)
        .filter(|h| h.starts_with("sha256:"))
    {
        let claimed =
            h.parse::<Sha256Digest>()
                .map_err(|_| RegistryError::InvalidDigestHeader {
                    url: rx.url.to_string(),
                    value: h.to_string(),
                })?;
        if claimed != digest {
            return Err(mismatch(claimed));
        }
    }
    let content_type = rx
        .content_type
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|c| !c.is_empty());
    if content_type
        .as_deref()
        .is_some_and(|c| DOCKER_SCHEMA1.contains(&c))
    {
        return Err(RegistryError::Schema1 {
            reference: rx.reference.into(),
            url: rx.url.into(),
        });
    }
    let shape: Shape = serde_json::from_slice(bytes).map_err(|e| RegistryError::InvalidJson {
        what: "manifest",
        reference: rx.reference.into(),
        url: rx.url.into(),
        source: e,
    })?;
    let schema1 = shape.schema_version.as_ref().and_then(|v| v.as_u64()) == Some(1)
        || shape
            .media_type
            .as_deref()
            .is_some_and(|m| DOCKER_SCHEMA1.contains(&m));
    if schema1 {
        return Err(RegistryError::Schema1 {
            reference: rx.reference.into(),
            url: rx.url.into(),
        });
    }
    let media_type = match (shape.media_type, content_type) {
        (Some(body), Some(header)) if body != header => {
            return Err(RegistryError::MediaTypeMismatch {
                reference: rx.reference.into(),
                url: rx.url.into(),
                media_type: body,
                content_type: header,
            })
        }
        (Some(body), _) => body,
        // OCI allows a manifest without `mediaType`; then only Content-Type says what it is,
        // and a generic JSON type is resolved by the document's shape.
        (None, Some(header)) if header != "application/json" => header,
        (None, _) if shape.manifests.is_some() => OCI_INDEX.to_string(),
        (None, _) if shape.layers.is_some() => OCI_MANIFEST.to_string(),
        (None, _) => {
            return Err(RegistryError::NoMediaType {
                reference: rx.reference.into(),
                url: rx.url.into(),
            })
        }
    };
    if !accept.is_empty() && !accept.contains(&media_type.as_str()) {
        return Err(RegistryError::UnacceptedMediaType {
            reference: rx.reference.into(),
            url: rx.url.into(),
            media_type,
            accepted: accept.iter().map(|s| s.to_string()).collect(),
        });
    }
    if is_index(&media_type) {
        let me = digest.to_string();
        if shape.manifests.iter().flatten().any(|c| c.digest == me) {
            return Err(RegistryError::SelfReferencingIndex { digest });
        }
    }
    Ok((media_type, digest))
}

/// The entry of a (verified) index for `platform`: its digest, media type and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub digest: Sha256Digest,
    pub media_type: String,
    pub size: u64,
}

/// The image manifests an index lists, in its order, each with its platform (`None` when the
/// entry states none, or one that is not a valid OCI platform). Nested indexes, other
/// artifacts and entries not addressed by sha256 (which kiln cannot read) are left out.
pub fn index_images(index: &PulledManifest) -> Result<Vec<(Option<Platform>, IndexEntry)>> {
    #[derive(Deserialize)]
    struct Index {
        manifests: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        #[serde(rename = "mediaType")]
        media_type: String,
        digest: String,
        size: u64,
        platform: Option<P>,
    }
    #[derive(Deserialize)]
    struct P {
        os: String,
        architecture: String,
        variant: Option<String>,
    }
    let parsed: Index =
        serde_json::from_slice(&index.bytes).map_err(|e| RegistryError::InvalidJson {
            what: "index",
            reference: index.digest.to_string(),
            url: String::new(),
            source: e,
        })?;
    Ok(parsed
        .manifests
        .into_iter()
        .filter(|e| IMAGE_MANIFEST_TYPES.contains(&e.media_type.as_str()))
        .filter_map(|e| {
            let digest = e.digest.parse::<Sha256Digest>().ok()?;
            let platform = e.platform.and_then(|p| {
                let mut text = format!("{}/{}", p.os, p.architecture);
                if let Some(variant) = p.variant {
                    text = format!("{text}/{variant}");
                }
                text.parse::<Platform>().ok()
            });
            let entry = IndexEntry {
                digest,
                media_type: e.media_type,
                size: e.size,
            };
            Some((platform, entry))
        })
        .collect())
}

/// Picks the image manifest for `platform` in an index: the first exact entry, else the first
/// compatible one ([`Platform::fit`]).
pub fn select_platform(index: &PulledManifest, platform: &Platform) -> Result<IndexEntry> {
    Fit::best(index_images(index)?, |(p, _)| {
        let p = p.as_ref()?;
        platform.fit(p.os(), p.architecture(), p.variant())
    })
    .map(|(_, entry)| entry)
    .ok_or_else(|| RegistryError::NoMatchingPlatform {
        digest: index.digest,
        platform: platform.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{ALL_MANIFEST_TYPES, DOCKER_MANIFEST};

    fn rx<'a>(ct: Option<&'a str>, dh: Option<&'a str>) -> Received<'a> {
        Received {
            reference: "latest",
            url: "http://r/v2/a/manifests/latest",
            content_type: ct,
            digest_header: dh,
        }
    }

    /// A pulled index listing `entries` (JSON objects).
    fn pulled_index(entries: &[String]) -> PulledManifest {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
            entries.join(",")
        );
        PulledManifest {
            media_type: OCI_INDEX.into(),
            digest: Sha256Digest::of(body.as_bytes()),
            bytes: body.into_bytes(),
        }
    }

    const IMG: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;

    #[test]
    fn verifies_media_type_digest_and_shape() {
        let img = IMG.as_bytes();
        let d = Sha256Digest::of(img);
        let ds = d.to_string();
        let other = Sha256Digest::of(b"other");
        let others = other.to_string();
        let no_mt = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        let s1 = br#"{"schemaVersion":1,"name":"a","fsLayers":[]}"#;
        // (content-type, digest header, body, expected digest, accept, ok?)
        #[allow(clippy::type_complexity)]
        let cases: Vec<(
            Option<&str>,
            Option<&str>,
            &[u8],
            Option<Sha256Digest>,
            &[&str],
            Result<&str, &str>,
        )> = vec![
            (
                Some(OCI_MANIFEST),
                Some(&ds),
                img,
                Some(d),
                ALL_MANIFEST_TYPES,
                Ok(OCI_MANIFEST),
            ),
            (
                Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
                None,
                img,
                None,
                &[],
                Ok(OCI_MANIFEST),
            ),
            (None, None, img, None, &[], Ok(OCI_MANIFEST)),
            (Some(OCI_MANIFEST), None, no_mt, None, &[], Ok(OCI_MANIFEST)),
            (
                Some("application/json"),
                None,
                no_mt,
                None,
                &[],
                Ok(OCI_MANIFEST),
            ),
            (
                Some(OCI_MANIFEST),
                Some(&others),
                img,
                None,
                &[],
                Err("digest"),
            ),
            (
                Some(OCI_MANIFEST),
                Some(&ds),
                img,
                Some(other),
                &[],
                Err("digest"),
            ),
            (
                Some(DOCKER_MANIFEST),
                None,
                img,
                None,
                &[],
                Err("disagrees"),
            ),
            (
                Some(DOCKER_SCHEMA1[1]),
                None,
                s1,
                None,
                &[],
                Err("schema 1"),
            ),
            (Some(OCI_MANIFEST), None, s1, None, &[], Err("schema 1")),
            (
                Some(OCI_MANIFEST),
                None,
                b"not json",
                None,
                &[],
                Err("invalid JSON"),
            ),
            (
                Some(OCI_MANIFEST),
                None,
                img,
                None,
                &[OCI_INDEX],
                Err("not one of"),
            ),
            (
                Some("application/json"),
                None,
                b"{}",
                None,
                &[],
                Err("no media type"),
            ),
        ];
        for (i, (ct, dh, body, exp, accept, want)) in cases.into_iter().enumerate() {
            let got = verify_manifest(&rx(ct, dh), body, exp.as_ref(), accept);
            match (got, want) {
                (Ok((mt, dig)), Ok(w)) => {
                    assert_eq!(mt, w, "case {i}");
                    assert_eq!(dig, Sha256Digest::of(body), "case {i}");
                }
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "case {i}: {e}"),
                (got, want) => panic!("case {i}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn platforms_parse_and_select() {
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/v8/x",
            "linux/am d64",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
        let a = Sha256Digest::of(b"a");
        let b = Sha256Digest::of(b"b");
        let idx = pulled_index(&[
            format!(
                r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{a}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}"#
            ),
            format!(
                r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{b}","size":2,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}"#
            ),
        ]);
        let pick = |p: &str| select_platform(&idx, &p.parse().unwrap()).map(|e| e.digest);
        assert_eq!(pick("linux/amd64").unwrap(), a);
        assert_eq!(pick("linux/arm64").unwrap(), b);
        assert_eq!(pick("linux/arm64/v8").unwrap(), b);
        assert!(pick("linux/arm64/v7").is_err());
        assert!(pick("windows/amd64")
            .unwrap_err()
            .to_string()
            .contains("windows/amd64"));
        assert_eq!(
            "linux/arm64/v8".parse::<Platform>().unwrap().to_string(),
            "linux/arm64/v8"
        );
    }

    /// The registry picks as a layout does ([`Platform::fit`]): an exact entry over an earlier
    /// compatible one, a variant-less entry for its architecture's default variant, `os.version`
    /// not compared, entries that are not image manifests skipped.
    #[test]
    fn select_prefers_exact_then_compatible_entries() {
        let [a, b, c, d] = [b"a", b"b", b"c", b"d"].map(|x| Sha256Digest::of(x));
        let entry = |media_type: &str, digest: &Sha256Digest, platform: &str| {
            format!(
                r#"{{"mediaType":"{media_type}","digest":"{digest}","size":1,"platform":{platform}}}"#
            )
        };
        let idx = pulled_index(&[
            entry(OCI_INDEX, &d, r#"{"os":"linux","architecture":"arm64"}"#),
            entry(
                OCI_MANIFEST,
                &a,
                r#"{"os":"linux","architecture":"arm64","variant":"v8"}"#,
            ),
            entry(OCI_MANIFEST, &b, r#"{"os":"linux","architecture":"arm64"}"#),
            entry(
                OCI_MANIFEST,
                &c,
                r#"{"os":"windows","architecture":"amd64","os.version":"10.0.17763.1879"}"#,
            ),
        ]);
        let pick = |p: &str| select_platform(&idx, &p.parse().unwrap()).map(|e| e.digest);
        assert_eq!(pick("linux/arm64").unwrap(), b, "exact over the earlier v8");
        assert_eq!(pick("linux/arm64/v8").unwrap(), a);
        assert_eq!(
            pick("windows/amd64").unwrap(),
            c,
            "os.version is not compared"
        );
        assert!(pick("linux/arm64/v9").is_err());
    }
}
