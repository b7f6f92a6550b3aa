//! OCI 1.1 referrers (signatures, attestations, SBOMs attached to an image), with the fallback
//! the Debian `docker-registry` (distribution 2.8) needs: it has no `/referrers/` API, so
//! clients keep an index at the tag `sha256-<hex of the subject>` that lists the referrers
//! (INTEROP.md, OCI distribution spec "referrers tag schema").
//!
//! The fallback index is written with sorted JSON keys (serde_json's map is ordered), because
//! oci-spec's descriptor keeps annotations in a `HashMap`. Two writers updating the same tag at
//! once can lose an entry (the spec's own caveat); kiln pushes referrers from one process.

use oci_spec::image::{Descriptor, ImageIndex, MediaType};

use super::client::{pull_scope, Client};
use super::error::{RegistryError, Result};
use super::http::{expect_status, read_limited, Body};
use crate::digest::Sha256Digest;
use crate::media::{MAX_JSON_BLOB, OCI_INDEX};
use crate::reference::Repository;

/// The tag under which the fallback index for `subject` lives.
pub fn referrers_tag(subject: &Sha256Digest) -> String {
    format!("sha256-{}", subject.hex())
}

fn parse_descriptors(
    bytes: &[u8],
    what: &'static str,
    reference: String,
    url: String,
) -> Result<Vec<Descriptor>> {
    #[derive(serde::Deserialize)]
    struct Index {
        #[serde(default)]
        manifests: Vec<Descriptor>,
    }
    serde_json::from_slice::<Index>(bytes)
        .map(|i| i.manifests)
        .map_err(|e| RegistryError::InvalidJson {
            what,
            reference,
            url,
            source: e,
        })
}

impl Client {
    /// The referrers of `subject`: from the registry's referrers API when it has one, else from
    /// the fallback tag; empty when neither exists.
    pub(crate) fn referrers(
        &self,
        repo: &Repository,
        subject: &Sha256Digest,
    ) -> Result<Vec<Descriptor>> {
        let url = self.http.repo_url(repo, &format!("referrers/{subject}"));
        let resp = self.http.send(
            "GET",
            repo,
            &url,
            &[("Accept", OCI_INDEX)],
            &pull_scope(repo),
            Body::Empty,
        )?;
        if resp.status() == 200 {
            let bytes = read_limited(resp, MAX_JSON_BLOB, "referrers index", &url)?;
            return parse_descriptors(&bytes, "referrers index", subject.to_string(), url);
        }
        expect_status("GET", &url, resp, &[404])?;
        self.fallback_referrers(repo, subject)
    }

    /// The descriptors listed in the fallback index at tag `sha256-<hex>`; empty when absent.
    pub(crate) fn fallback_referrers(
        &self,
        repo: &Repository,
        subject: &Sha256Digest,
    ) -> Result<Vec<Descriptor>> {
        let tag = referrers_tag(subject);
        match self.get_manifest(repo, &tag, &[OCI_INDEX]) {
            Ok(m) => parse_descriptors(&m.bytes, "referrers index", tag, repo.to_string()),
            Err(RegistryError::Status { status: 404, .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Adds `referrer` (a manifest whose `subject` is `subject`) to the fallback index, unless
    /// an entry with its digest is already listed, and pushes the index. Returns the index's
    /// digest. Use this when the registry did not index the referrer itself (no referrers API,
    /// no `OCI-Subject` header on the manifest PUT).
    pub(crate) fn add_fallback_referrer(
        &self,
        repo: &Repository,
        subject: &Sha256Digest,
        referrer: &Descriptor,
    ) -> Result<Sha256Digest> {
        let mut entries = self.fallback_referrers(repo, subject)?;
        if !entries.iter().any(|d| d.digest() == referrer.digest()) {
            entries.push(referrer.clone());
        }
        let bytes = fallback_index_bytes(subject, &entries)?;
        self.put_manifest(repo, &referrers_tag(subject), OCI_INDEX, &bytes)
    }
}

/// The fallback index listing `entries`, serialized deterministically (sorted keys).
pub fn fallback_index_bytes(subject: &Sha256Digest, entries: &[Descriptor]) -> Result<Vec<u8>> {
    let ser = |e| RegistryError::Serialize {
        subject: *subject,
        source: e,
    };
    let mut index = ImageIndex::default();
    index.set_media_type(Some(MediaType::ImageIndex));
    index.set_manifests(entries.to_vec());
    // Through a `Value`, whose map is ordered: every key comes out sorted.
    let index = serde_json::to_value(&index).map_err(ser)?;
    serde_json::to_vec(&index).map_err(ser)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::DescriptorBuilder;
    use std::collections::HashMap;

    #[test]
    fn fallback_index_is_deterministic_and_names_the_tag() {
        let subject = Sha256Digest::of(b"image");
        assert_eq!(referrers_tag(&subject), format!("sha256-{}", subject.hex()));
        let d = Sha256Digest::of(b"sig");
        let mut ann = HashMap::new();
        for k in ["z", "a", "m", "b", "y"] {
            ann.insert(k.to_string(), "v".to_string());
        }
        let desc = DescriptorBuilder::default()
            .media_type(MediaType::ImageManifest)
            .digest(d.to_string().parse::<oci_spec::image::Digest>().unwrap())
            .size(10u64)
            .artifact_type(MediaType::Other(crate::media::IN_TOTO.into()))
            .annotations(ann)
            .build()
            .unwrap();
        let a = fallback_index_bytes(&subject, std::slice::from_ref(&desc)).unwrap();
        let b = fallback_index_bytes(&subject, &[desc]).unwrap();
        assert_eq!(a, b);
        let text = String::from_utf8(a).unwrap();
        assert!(
            text.contains(r#""annotations":{"a":"v","b":"v","m":"v","y":"v","z":"v"}"#),
            "{text}"
        );
        // The bytes are pinned: a registry that already holds this tag must see the same index.
        assert_eq!(
            text,
            format!(
                r#"{{"manifests":[{{"annotations":{{"a":"v","b":"v","m":"v","y":"v","z":"v"}},"artifactType":"application/vnd.in-toto+json","digest":"{d}","mediaType":"application/vnd.oci.image.manifest.v1+json","size":10}}],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}}"#
            )
        );
        let back = parse_descriptors(text.as_bytes(), "x", String::new(), String::new()).unwrap();
        assert_eq!(back[0].digest().to_string(), d.to_string());
    }
}
