//! Reading the claims of a cosign simple-signing payload, as strictly as containers/image does.
//!
//! A verifier that is laxer than the others is a parser differential waiting to happen: if
//! kiln accepted an extra field, or read the last of two duplicate `docker-manifest-digest`
//! keys while another tool read the first, a payload could mean one thing to kiln and another to
//! podman. So objects must have exactly the documented fields, no key may repeat, and
//! `critical.type` must be the cosign constant.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::attest::cosign::SIMPLE_SIGNING_TYPE;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PayloadError {
    #[error("the payload is not JSON: {reason}")]
    Json { reason: String },
    #[error("`{what}` is not an object")]
    NotObject { what: &'static str },
    #[error("`{what}` has fields {found:?}, expected exactly {expected:?}")]
    Fields {
        what: &'static str,
        found: Vec<String>,
        expected: Vec<&'static str>,
    },
    #[error("`critical.type` is {found}, expected {SIMPLE_SIGNING_TYPE:?}")]
    Type { found: String },
    #[error("`{field}` is not a string")]
    NotString { field: &'static str },
    #[error("`optional` is neither null nor an object")]
    Optional,
}

/// What a simple-signing payload claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleSigningClaims {
    /// `critical.image.docker-manifest-digest`, as written.
    pub docker_manifest_digest: String,
    /// `critical.identity.docker-reference`, as written.
    pub docker_reference: String,
}

/// A JSON value whose objects had no duplicate keys.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value without duplicate object keys")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(value) = map.next_value()?;
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key `{key}`"
                )));
            }
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Checks that `value` is an object with exactly the keys `expected`.
fn exact_object<'v>(
    value: &'v Value,
    what: &'static str,
    expected: &[&'static str],
) -> Result<&'v Map<String, Value>, PayloadError> {
    let object = value.as_object().ok_or(PayloadError::NotObject { what })?;
    let found: Vec<String> = object.keys().cloned().collect(); // sorted: serde_json's map
    let mut wanted = expected.to_vec();
    wanted.sort_unstable();
    if found != wanted {
        return Err(PayloadError::Fields {
            what,
            found,
            expected: wanted,
        });
    }
    Ok(object)
}

fn string_field(
    object: &Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<String, PayloadError> {
    object[key]
        .as_str()
        .map(str::to_string)
        .ok_or(PayloadError::NotString { field })
}

/// Parses a simple-signing payload with exact field sets and no duplicate keys.
pub fn parse_payload(payload: &[u8]) -> Result<SimpleSigningClaims, PayloadError> {
    let StrictValue(value) = serde_json::from_slice(payload).map_err(|e| PayloadError::Json {
        reason: e.to_string(),
    })?;
    let top = exact_object(&value, "payload", &["critical", "optional"])?;
    if !(top["optional"].is_null() || top["optional"].is_object()) {
        return Err(PayloadError::Optional);
    }
    let critical = exact_object(&top["critical"], "critical", &["identity", "image", "type"])?;
    if critical["type"] != SIMPLE_SIGNING_TYPE {
        return Err(PayloadError::Type {
            found: critical["type"].to_string(),
        });
    }
    let image = exact_object(
        &critical["image"],
        "critical.image",
        &["docker-manifest-digest"],
    )?;
    let identity = exact_object(
        &critical["identity"],
        "critical.identity",
        &["docker-reference"],
    )?;
    Ok(SimpleSigningClaims {
        docker_manifest_digest: string_field(
            image,
            "docker-manifest-digest",
            "critical.image.docker-manifest-digest",
        )?,
        docker_reference: string_field(
            identity,
            "docker-reference",
            "critical.identity.docker-reference",
        )?,
    })
}

/// Which `docker-reference` a signature must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityPolicy {
    /// Any identity (the digest check alone binds the signature to the image).
    Any,
    /// Exactly this `HOST/REPO:TAG`.
    Exact(String),
    /// Any tag or digest of this `HOST/REPO` (containers/image's `matchRepository`).
    Repository(String),
}

impl IdentityPolicy {
    /// Ok when `docker_reference` satisfies the policy, else why not.
    pub fn check(&self, docker_reference: &str) -> Result<(), String> {
        let ok = match self {
            Self::Any => true,
            Self::Exact(expected) => docker_reference == expected,
            Self::Repository(repo) => repository_of(docker_reference) == repository_of(repo),
        };
        if ok {
            return Ok(());
        }
        Err(match self {
            Self::Any => unreachable!("any identity is accepted"),
            Self::Exact(e) => format!("the payload names {docker_reference:?}, expected {e:?}"),
            Self::Repository(r) => format!(
                "the payload names {docker_reference:?}, expected a reference in repository {:?}",
                repository_of(r)
            ),
        })
    }
}

/// `HOST[:PORT]/REPO` of a reference: without `@digest` and without a `:tag` after the last
/// `/` (a `:` before it is the registry port).
pub fn repository_of(reference: &str) -> &str {
    let without_digest = reference
        .split_once('@')
        .map_or(reference, |(name, _)| name);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest[last_slash..].find(':') {
        Some(colon) => &without_digest[..last_slash + colon],
        None => without_digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::cosign::simple_signing_payload;
    use crate::digest::Sha256Digest;

    #[test]
    fn kilns_payload_parses() {
        let d = Sha256Digest::of(b"m");
        let claims = parse_payload(&simple_signing_payload("h:5000/r:t", &d)).unwrap();
        assert_eq!(claims.docker_manifest_digest, d.to_string());
        assert_eq!(claims.docker_reference, "h:5000/r:t");
    }

    #[test]
    fn malformed_payloads_are_refused() {
        let ok_critical = r#""identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"d"},"type":"cosign container image signature""#;
        let table: Vec<(String, &str)> = vec![
            ("not json".into(), "not JSON"),
            ("[]".into(), "`payload` is not an object"),
            (format!(r#"{{"critical":{{{ok_critical}}}}}"#), "`payload` has fields"),
            (format!(r#"{{"critical":{{{ok_critical},"x":1}},"optional":null}}"#), "`critical` has fields"),
            (format!(r#"{{"critical":{{{ok_critical}}},"optional":[]}}"#), "`optional`"),
            (
                r#"{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"d"},"type":"other"},"optional":null}"#.into(),
                "`critical.type`",
            ),
            (
                r#"{"critical":{"identity":{"docker-reference":1},"image":{"docker-manifest-digest":"d"},"type":"cosign container image signature"},"optional":null}"#.into(),
                "docker-reference` is not a string",
            ),
            (
                r#"{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"d","docker-manifest-digest":"e"},"type":"cosign container image signature"},"optional":null}"#.into(),
                "duplicate key `docker-manifest-digest`",
            ),
        ];
        for (input, expected) in table {
            let err = parse_payload(input.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(expected), "{input}: {err}");
        }
    }

    #[test]
    fn repositories_are_cut_at_tag_and_digest_not_port() {
        let table = [
            ("localhost:5000/app:v1", "localhost:5000/app"),
            ("localhost:5000/app", "localhost:5000/app"),
            ("localhost:5000/ns/app@sha256:abc", "localhost:5000/ns/app"),
            ("registry.example/app:v1@sha256:abc", "registry.example/app"),
            ("app", "app"),
        ];
        for (input, repo) in table {
            assert_eq!(repository_of(input), repo, "{input}");
        }
    }

    #[test]
    fn identity_policies() {
        let r = "localhost:5000/app:v1";
        assert!(IdentityPolicy::Any.check(r).is_ok());
        assert!(IdentityPolicy::Exact(r.into()).check(r).is_ok());
        assert!(IdentityPolicy::Exact("localhost:5000/app:v2".into())
            .check(r)
            .is_err());
        assert!(IdentityPolicy::Repository("localhost:5000/app".into())
            .check(r)
            .is_ok());
        assert!(
            IdentityPolicy::Repository("localhost:5000/app@sha256:00".into())
                .check(r)
                .is_ok()
        );
        assert!(IdentityPolicy::Repository("localhost:5000/other".into())
            .check(r)
            .is_err());
        assert!(IdentityPolicy::Repository("localhost:5001/app".into())
            .check(r)
            .is_err());
    }
}
