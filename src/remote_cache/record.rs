//! The cache record: what one layer cache key built, as a DSSE envelope stored in a registry as
//! an OCI artifact.
//!
//! ```text
//! tag       kiln-cache-<hex of the layer cache key>
//! manifest  artifactType application/vnd.kiln.cache.record.v1+json, config = the empty
//!           descriptor, layers = [the envelope (application/vnd.dsse.envelope.v1+json),
//!           the layer blob it names]
//! envelope  DSSE, payloadType application/vnd.kiln.cache.record.v1+json, payload = the
//!           record's canonical JSON; signed with --cache-key (ECDSA P-256, RFC 6979), or with
//!           no signatures
//! ```
//!
//! Why these choices: every byte is a function of the record and the signing key (canonical
//! JSON, deterministic signatures), so writers of the same layer with the same key write the
//! same tag with the same bytes and concurrent pushes cannot disagree. The manifest lists the
//! layer blob, so the registry refuses the record until the blob is there (a writer killed
//! mid-push leaves at most blobs without a record) and its garbage collector keeps the blob as
//! long as the record. The record repeats its key, so a record copied under another tag is
//! refused; the signature covers the key, the digests and the encoder, never the tag.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::attest::dsse::{DsseError, Envelope};
use crate::attest::{keys, SigningKey, VerifyingKey};
use crate::digest::Sha256Digest;
use crate::image::json::to_canonical_vec;
use crate::image::layout::empty_descriptor;
use crate::media;

/// The payload type of a record envelope and the artifact type of its manifest.
pub const RECORD_TYPE: &str = "application/vnd.kiln.cache.record.v1+json";
/// The media type of the envelope blob.
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The manifest annotation naming the key (for people browsing the repository).
pub const ANNOTATION_KEY: &str = "build.kiln.cache.key";
/// Envelopes are a few hundred bytes; anything larger is not a record.
pub const MAX_ENVELOPE_BYTES: u64 = 64 * 1024;

/// What one layer cache key built. Field names are the JSON's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CacheRecord {
    /// The layer cache key, from the build plan.
    pub key: Sha256Digest,
    /// The layer blob: its media type, digest and size.
    pub media_type: String,
    pub digest: Sha256Digest,
    pub size: u64,
    /// The sha256 of the uncompressed tar.
    pub diff_id: Sha256Digest,
    /// The encoder and its settings (the plan's `image.encoder`).
    pub encoder: String,
    /// The kiln version that built it.
    pub kiln: String,
}

/// Why a record was not used.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RecordError {
    #[error("its envelope is not a record: {0}")]
    Envelope(#[from] DsseError),
    #[error("its envelope's payloadType is `{found}`, not `{RECORD_TYPE}`")]
    PayloadType { found: String },
    #[error("its payload is not a cache record: {reason}")]
    Json { reason: String },
    #[error("it is the record of key {found}, not of {expected} (copied under another tag?)")]
    OtherKey {
        expected: Sha256Digest,
        found: Sha256Digest,
    },
    #[error("it is not signed by a trusted key (--cache-trust {trusted}): {reason}")]
    Untrusted { trusted: String, reason: String },
    #[error("its layer media type `{media_type}` is not one the encoder `{encoder}` writes")]
    MediaType { media_type: String, encoder: String },
    #[error("it was built with encoder `{found}`, this build uses `{expected}`")]
    Encoder { expected: String, found: String },
}

/// A record that passed [`open`]: authentic when `signed_by` names a trusted key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenedRecord {
    pub record: CacheRecord,
    /// The key id (sha256 of the SPKI) of the trusted key whose signature verified.
    pub signed_by: Option<String>,
}

/// The tag a record for `key` lives under.
pub fn tag(key: &Sha256Digest) -> String {
    format!("kiln-cache-{}", key.hex())
}

impl CacheRecord {
    /// The payload: canonical JSON (sorted keys, compact).
    pub(crate) fn payload(&self) -> Vec<u8> {
        to_canonical_vec(self).expect("a record serializes")
    }

    /// The envelope bytes: signed with `key` (deterministically), or unsigned.
    pub(crate) fn envelope(&self, key: Option<&SigningKey>) -> Vec<u8> {
        let payload = self.payload();
        let envelope = match key {
            Some(k) => Envelope::sign(RECORD_TYPE, &payload, k, &keys::key_id(k.verifying_key())),
            None => Envelope::unsigned(RECORD_TYPE, &payload),
        };
        envelope.to_json()
    }

    /// The artifact manifest of this record whose envelope has `envelope_digest` and
    /// `envelope_size`: canonical JSON.
    pub(crate) fn manifest(&self, envelope_digest: &Sha256Digest, envelope_size: u64) -> Vec<u8> {
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "artifactType": RECORD_TYPE,
            "config": serde_json::to_value(empty_descriptor()).expect("descriptor serializes"),
            "layers": [
                {"mediaType": DSSE_ENVELOPE, "digest": envelope_digest.to_string(), "size": envelope_size},
                {"mediaType": self.media_type, "digest": self.digest.to_string(), "size": self.size},
            ],
            "annotations": {ANNOTATION_KEY: self.key.to_string()},
        });
        to_canonical_vec(&manifest).expect("JSON serializes")
    }
}

/// The envelope's descriptor (digest, size) in a record manifest, if it lists one.
pub fn envelope_in(manifest: &[u8]) -> Option<(Sha256Digest, u64)> {
    let v: serde_json::Value = serde_json::from_slice(manifest).ok()?;
    if v["artifactType"] != RECORD_TYPE {
        return None;
    }
    v["layers"].as_array()?.iter().find_map(|l| {
        (l["mediaType"] == DSSE_ENVELOPE).then_some(())?;
        let digest = l["digest"].as_str()?.parse().ok()?;
        Some((digest, l["size"].as_u64()?))
    })
}

/// What a build expects of the record of one layer.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// The layer's cache key.
    pub key: &'a Sha256Digest,
    /// The encoder (the plan's `image.encoder`) and the media type it writes.
    pub encoder: &'a str,
    pub media_type: &'a str,
}

/// Checks the envelope `bytes` found for `want.key`: its type, its signature (with a
/// non-empty `trust`, one of those keys must have signed it), that it is the record of that
/// key, and that it was written by the expected encoder in its media type.
pub fn open(
    want: Expected<'_>,
    bytes: &[u8],
    trust: &[VerifyingKey],
) -> Result<OpenedRecord, RecordError> {
    let Expected {
        key,
        encoder,
        media_type,
    } = want;
    let envelope = Envelope::from_json(bytes)?;
    if envelope.payload_type != RECORD_TYPE {
        return Err(RecordError::PayloadType {
            found: envelope.payload_type,
        });
    }
    let (payload, signed_by) = if trust.is_empty() {
        (envelope.payload_bytes()?, None)
    } else {
        let mut failures = Vec::new();
        let mut verified = None;
        for k in trust {
            match envelope.verify(k) {
                Ok(payload) => {
                    verified = Some((payload, Some(keys::key_id(k))));
                    break;
                }
                Err(e) => failures.push(format!("{}: {e}", keys::key_id(k))),
            }
        }
        verified.ok_or_else(|| RecordError::Untrusted {
            trusted: trust
                .iter()
                .map(keys::key_id)
                .collect::<Vec<_>>()
                .join(", "),
            reason: failures.join("; "),
        })?
    };
    let record: CacheRecord = serde_json::from_slice(&payload).map_err(|e| RecordError::Json {
        reason: e.to_string(),
    })?;
    if record.key != *key {
        return Err(RecordError::OtherKey {
            expected: *key,
            found: record.key,
        });
    }
    if record.encoder != encoder {
        return Err(RecordError::Encoder {
            expected: encoder.to_string(),
            found: record.encoder,
        });
    }
    if record.media_type != media_type {
        return Err(RecordError::MediaType {
            media_type: record.media_type,
            encoder: encoder.to_string(),
        });
    }
    Ok(OpenedRecord { record, signed_by })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> CacheRecord {
        CacheRecord {
            key: Sha256Digest::of(b"key"),
            media_type: media::OCI_LAYER_GZIP.into(),
            digest: Sha256Digest::of(b"blob"),
            size: 4,
            diff_id: Sha256Digest::of(b"tar"),
            encoder: ENCODER.into(),
            kiln: "1.0.0".into(),
        }
    }

    const ENCODER: &str = "kiln-pgzip/2 libdeflate/1.26 level=1";

    fn want<'a>(key: &'a Sha256Digest, encoder: &'a str) -> Expected<'a> {
        Expected {
            key,
            encoder,
            media_type: media::OCI_LAYER_GZIP,
        }
    }

    #[test]
    fn the_bytes_are_a_function_of_the_record_and_the_key() {
        let key = keys::generate();
        let r = record();
        assert_eq!(r.envelope(Some(&key)), r.envelope(Some(&key)));
        assert_eq!(r.envelope(None), r.envelope(None));
        assert_ne!(r.envelope(Some(&key)), r.envelope(None));
        let payload = String::from_utf8(r.payload()).unwrap();
        assert!(payload.starts_with(r#"{"diffId":"sha256:"#), "{payload}");
        let env = r.envelope(None);
        let digest = Sha256Digest::of(&env);
        let manifest = r.manifest(&digest, env.len() as u64);
        assert_eq!(manifest, r.manifest(&digest, env.len() as u64));
        assert_eq!(envelope_in(&manifest), Some((digest, env.len() as u64)));
        let v: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(v["layers"][1]["digest"], r.digest.to_string());
        assert_eq!(v["config"]["mediaType"], media::OCI_EMPTY);
        assert_eq!(
            tag(&r.key),
            format!("kiln-cache-{}", r.key.hex()),
            "a valid tag: at most 128 characters"
        );
        assert!(tag(&r.key).len() <= 128);
    }

    #[test]
    fn open_round_trips_signed_and_unsigned_records() {
        let key = keys::generate();
        let r = record();
        let trusted = [*key.verifying_key()];
        let signed = open(want(&r.key, ENCODER), &r.envelope(Some(&key)), &trusted).unwrap();
        assert_eq!(signed.record, r);
        assert_eq!(signed.signed_by, Some(keys::key_id(key.verifying_key())));
        let unsigned = open(want(&r.key, ENCODER), &r.envelope(None), &[]).unwrap();
        assert_eq!((unsigned.record, unsigned.signed_by), (r.clone(), None));
        // Without --cache-trust a signed record is used too (its signature is not checked).
        assert!(open(want(&r.key, ENCODER), &r.envelope(Some(&key)), &[]).is_ok());
    }

    #[test]
    fn open_refuses_what_it_cannot_trust_or_use() {
        let key = keys::generate();
        let other = keys::generate();
        let r = record();
        let trusted = [*key.verifying_key()];
        let untrusted =
            open(want(&r.key, ENCODER), &r.envelope(Some(&other)), &trusted).unwrap_err();
        assert!(
            matches!(untrusted, RecordError::Untrusted { .. }),
            "{untrusted}"
        );
        assert!(untrusted
            .to_string()
            .contains(&keys::key_id(key.verifying_key())));
        let unsigned = open(want(&r.key, ENCODER), &r.envelope(None), &trusted).unwrap_err();
        assert!(
            matches!(unsigned, RecordError::Untrusted { .. }),
            "{unsigned}"
        );

        let other_key = Sha256Digest::of(b"another key");
        assert_eq!(
            open(want(&other_key, ENCODER), &r.envelope(None), &[]),
            Err(RecordError::OtherKey {
                expected: other_key,
                found: r.key
            })
        );
        assert!(matches!(
            open(want(&r.key, "kiln-zstd/1 level=3"), &r.envelope(None), &[]),
            Err(RecordError::Encoder { .. })
        ));
        let mut zstd_type = r.clone();
        zstd_type.media_type = media::OCI_LAYER_ZSTD.into();
        assert!(matches!(
            open(want(&r.key, ENCODER), &zstd_type.envelope(None), &[]),
            Err(RecordError::MediaType { .. })
        ));

        // A signed payload changed afterwards.
        let mut env = Envelope::from_json(&r.envelope(Some(&key))).unwrap();
        let mut changed = r.clone();
        changed.digest = Sha256Digest::of(b"other blob");
        env.payload = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(changed.payload())
        };
        assert!(matches!(
            open(want(&r.key, ENCODER), &env.to_json(), &trusted),
            Err(RecordError::Untrusted { .. })
        ));
        // Not a record at all.
        let statement = Envelope::unsigned("application/vnd.in-toto+json", b"{}").to_json();
        assert!(matches!(
            open(want(&r.key, ENCODER), &statement, &[]),
            Err(RecordError::PayloadType { .. })
        ));
        assert!(matches!(
            open(want(&r.key, ENCODER), b"not json", &[]),
            Err(RecordError::Envelope(_))
        ));
        let extra = Envelope::unsigned(RECORD_TYPE, br#"{"key":"x"}"#).to_json();
        assert!(matches!(
            open(want(&r.key, ENCODER), &extra, &[]),
            Err(RecordError::Json { .. })
        ));
    }
}
