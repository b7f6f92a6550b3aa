//! in-toto Statement v1: the claim inside a DSSE envelope that binds a predicate (provenance,
//! SBOM, scan results) to the image it is about, by digest.
//!
//! Subjects name the image by its manifest digest, so an attestation copied next to another
//! image does not vouch for it. Predicate types are the URIs cosign and policy engines match on;
//! kiln's CLI names (`--type slsaprovenance1` …) are the ones cosign uses.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;

/// `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE_V1: &str = "https://in-toto.io/Statement/v1";
/// `_type` of the v0.1 statements older cosign versions write; accepted when reading.
pub const STATEMENT_TYPE_V01: &str = "https://in-toto.io/Statement/v0.1";

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum InTotoError {
    #[error(
        "unknown predicate type `{0}`: expected slsaprovenance1, spdxjson, cyclonedx, vuln or \
         an https:// URI"
    )]
    UnknownPredicateType(String),
    #[error("failed to parse the in-toto statement: {reason}")]
    Json { reason: String },
    #[error("unsupported statement `_type` `{0}`: expected `{STATEMENT_TYPE_V1}`")]
    StatementType(String),
}

/// The kind of predicate an attestation carries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PredicateType {
    SlsaProvenance1,
    SpdxJson,
    CycloneDx,
    Vuln,
    /// Any other predicate, by its URI.
    Uri(String),
}

impl PredicateType {
    /// The predicate type URI written into statements and the `predicateType` annotation.
    pub fn uri(&self) -> &str {
        match self {
            Self::SlsaProvenance1 => "https://slsa.dev/provenance/v1",
            Self::SpdxJson => "https://spdx.dev/Document",
            Self::CycloneDx => "https://cyclonedx.org/bom",
            Self::Vuln => "https://cosign.sigstore.dev/attestation/vuln/v1",
            Self::Uri(uri) => uri,
        }
    }

    /// The type for a predicate URI (the inverse of [`Self::uri`]).
    pub fn from_uri(uri: &str) -> Self {
        [
            Self::SlsaProvenance1,
            Self::SpdxJson,
            Self::CycloneDx,
            Self::Vuln,
        ]
        .into_iter()
        .find(|known| known.uri() == uri)
        .unwrap_or_else(|| Self::Uri(uri.to_string()))
    }
}

impl FromStr for PredicateType {
    type Err = InTotoError;

    /// Accepts the CLI names `slsaprovenance1`, `spdxjson`, `cyclonedx`, `vuln`, or a URI.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "slsaprovenance1" => Ok(Self::SlsaProvenance1),
            "spdxjson" => Ok(Self::SpdxJson),
            "cyclonedx" => Ok(Self::CycloneDx),
            "vuln" => Ok(Self::Vuln),
            uri if uri.starts_with("https://") || uri.starts_with("http://") => {
                Ok(Self::from_uri(uri))
            }
            other => Err(InTotoError::UnknownPredicateType(other.to_string())),
        }
    }
}

impl fmt::Display for PredicateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.uri())
    }
}

/// One subject: a name and its digests by algorithm (kiln writes `sha256`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    pub fn new(name: &str, digest: &Sha256Digest) -> Self {
        Self {
            name: name.to_string(),
            digest: BTreeMap::from([("sha256".to_string(), digest.hex())]),
        }
    }

    /// The subject's sha256, when present and well-formed.
    pub fn sha256(&self) -> Option<Sha256Digest> {
        self.digest
            .get("sha256")
            .and_then(|hex| Sha256Digest::from_hex(hex).ok())
    }
}

/// An in-toto statement. Field order is the serialization order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: serde_json::Value,
}

impl Statement {
    /// A v1 statement about one image, `name` being its repository (as cosign writes it) and
    /// `digest` its manifest digest.
    pub fn new(
        name: &str,
        digest: &Sha256Digest,
        predicate_type: &PredicateType,
        predicate: serde_json::Value,
    ) -> Self {
        Self {
            statement_type: STATEMENT_TYPE_V1.to_string(),
            subject: vec![Subject::new(name, digest)],
            predicate_type: predicate_type.uri().to_string(),
            predicate,
        }
    }

    /// Compact JSON. `predicate` objects serialize with sorted keys (serde_json's map), so the
    /// bytes depend only on the content.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a statement always serializes")
    }

    /// Parses a statement, accepting `_type` v1 and v0.1.
    pub fn from_json(bytes: &[u8]) -> Result<Self, InTotoError> {
        let statement: Self = serde_json::from_slice(bytes).map_err(|e| InTotoError::Json {
            reason: e.to_string(),
        })?;
        if statement.statement_type != STATEMENT_TYPE_V1
            && statement.statement_type != STATEMENT_TYPE_V01
        {
            return Err(InTotoError::StatementType(statement.statement_type));
        }
        Ok(statement)
    }

    /// Whether any subject has sha256 `digest`.
    pub fn is_about(&self, digest: &Sha256Digest) -> bool {
        self.subject
            .iter()
            .any(|s| s.sha256().as_ref() == Some(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_names_map_to_uris() {
        let table = [
            ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
            ("spdxjson", "https://spdx.dev/Document"),
            ("cyclonedx", "https://cyclonedx.org/bom"),
            ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
            (
                "https://example.com/custom/v1",
                "https://example.com/custom/v1",
            ),
        ];
        for (name, uri) in table {
            let parsed: PredicateType = name.parse().unwrap();
            assert_eq!(parsed.uri(), uri, "{name}");
            assert_eq!(PredicateType::from_uri(uri), parsed, "{uri}");
        }
        assert_eq!(
            "https://slsa.dev/provenance/v1"
                .parse::<PredicateType>()
                .unwrap(),
            PredicateType::SlsaProvenance1
        );
        for bad in ["", "slsaprovenance", "SPDXJSON", "custom"] {
            assert!(bad.parse::<PredicateType>().is_err(), "{bad}");
        }
    }

    #[test]
    fn statement_has_the_v1_shape() {
        let digest = Sha256Digest::of(b"manifest");
        let s = Statement::new(
            "registry.example/app",
            &digest,
            &PredicateType::SpdxJson,
            serde_json::json!({"b": 1, "a": 2}),
        );
        let json = String::from_utf8(s.to_json()).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"registry.example/app","digest":{{"sha256":"{}"}}}}],"predicateType":"https://spdx.dev/Document","predicate":{{"a":2,"b":1}}}}"#,
                digest.hex()
            )
        );
        let back = Statement::from_json(json.as_bytes()).unwrap();
        assert!(back.is_about(&digest));
        assert!(!back.is_about(&Sha256Digest::of(b"other")));
    }

    #[test]
    fn foreign_statement_types_are_refused() {
        let json =
            br#"{"_type":"https://example.com/x","subject":[],"predicateType":"p","predicate":{}}"#;
        assert!(matches!(
            Statement::from_json(json),
            Err(InTotoError::StatementType(_))
        ));
        let v01 = br#"{"_type":"https://in-toto.io/Statement/v0.1","subject":[],"predicateType":"p","predicate":null}"#;
        assert!(Statement::from_json(v01).is_ok());
    }
}
