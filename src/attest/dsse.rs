//! DSSE (Dead Simple Signing Envelope), the wrapper cosign, in-toto and SLSA verifiers expect
//! around an attestation.
//!
//! The signature covers the pre-authentication encoding (PAE) of the payload type and the
//! payload, never the JSON envelope, so re-serializing the envelope cannot change what is
//! signed, and the payload type cannot be swapped without breaking the signature. Signatures
//! are ECDSA P-256 over SHA-256 in ASN.1 DER, as cosign writes them.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

pub type Result<T, E = DsseError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DsseError {
    #[error("failed to parse the DSSE envelope: {reason}")]
    Json { reason: String },
    #[error("failed to decode the DSSE payload: invalid base64")]
    PayloadBase64,
    #[error("failed to verify the DSSE envelope: it has no signatures")]
    NoSignatures,
    #[error(
        "failed to verify the DSSE envelope: no signature verifies with the given key ({failures})"
    )]
    NotVerified { failures: String },
}

/// The PAE of DSSE v1: `"DSSEv1" SP len(type) SP type SP len(body) SP body`, lengths in
/// decimal bytes.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope. Field order is the serialization order: `payload`, `payloadType`,
/// `signatures`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Standard base64 of the payload bytes.
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// A hint naming the key; not authenticated, never trusted for anything.
    #[serde(default)]
    pub keyid: String,
    /// Standard base64 of the DER signature over the PAE.
    pub sig: String,
}

impl Envelope {
    /// Signs `payload` of type `payload_type` with `key` (deterministic RFC 6979 nonces, so the
    /// same inputs give the same envelope bytes).
    pub fn sign(payload_type: &str, payload: &[u8], key: &SigningKey, keyid: &str) -> Self {
        let sig: DerSignature = key.sign(&pae(payload_type, payload));
        Self {
            payload: B64.encode(payload),
            payload_type: payload_type.to_string(),
            signatures: vec![EnvelopeSignature {
                keyid: keyid.to_string(),
                sig: B64.encode(sig.as_bytes()),
            }],
        }
    }

    /// An envelope with no signatures, for payloads whose integrity is checked otherwise (an
    /// unsigned layer cache record: its digests are verified on use).
    pub fn unsigned(payload_type: &str, payload: &[u8]) -> Self {
        Self {
            payload: B64.encode(payload),
            payload_type: payload_type.to_string(),
            signatures: Vec::new(),
        }
    }

    /// Parses an envelope from its JSON bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| DsseError::Json {
            reason: e.to_string(),
        })
    }

    /// The compact JSON bytes, keys in the struct's order.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serializes")
    }

    /// The decoded payload bytes (not yet verified).
    pub fn payload_bytes(&self) -> Result<Vec<u8>> {
        B64.decode(&self.payload)
            .map_err(|_| DsseError::PayloadBase64)
    }

    /// Checks that at least one signature verifies over the PAE with `key`, and returns the
    /// payload that is thereby authenticated. `keyid`s are ignored, as the DSSE spec asks.
    pub fn verify(&self, key: &VerifyingKey) -> Result<Vec<u8>> {
        let payload = self.payload_bytes()?;
        if self.signatures.is_empty() {
            return Err(DsseError::NoSignatures);
        }
        let message = pae(&self.payload_type, &payload);
        let mut failures = Vec::new();
        for (index, signature) in self.signatures.iter().enumerate() {
            match verify_der_b64(key, &message, &signature.sig) {
                Ok(()) => return Ok(payload),
                Err(reason) => failures.push(format!("signature {index}: {reason}")),
            }
        }
        Err(DsseError::NotVerified {
            failures: failures.join("; "),
        })
    }
}

/// Why a base64 DER signature failed to verify.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum SignatureProblem {
    #[error("the signature is not valid base64")]
    Base64,
    #[error("the signature is not an ASN.1 DER ECDSA P-256 signature")]
    Der,
    #[error("the signature does not verify with the given public key")]
    Mismatch,
}

/// Verifies a standard-base64 DER ECDSA signature over SHA-256(`message`).
pub fn verify_der_b64(
    key: &VerifyingKey,
    message: &[u8],
    sig_b64: &str,
) -> std::result::Result<(), SignatureProblem> {
    let der = B64
        .decode(sig_b64.trim())
        .map_err(|_| SignatureProblem::Base64)?;
    let sig = DerSignature::from_bytes(&der).map_err(|_| SignatureProblem::Der)?;
    key.verify(message, &sig)
        .map_err(|_| SignatureProblem::Mismatch)
}

/// Signs SHA-256(`message`) and returns the standard base64 of the DER signature.
pub fn sign_der_b64(key: &SigningKey, message: &[u8]) -> String {
    let sig: DerSignature = key.sign(message);
    B64.encode(sig.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::keys;
    use crate::media::IN_TOTO;

    #[test]
    fn pae_matches_the_spec_vector() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
        // Lengths are bytes, not characters.
        assert_eq!(pae("t", "é".as_bytes()), "DSSEv1 1 t 2 é".as_bytes());
    }

    #[test]
    fn envelope_serializes_in_the_interop_key_order() {
        let key = keys::generate();
        let env = Envelope::sign(IN_TOTO, b"{}", &key, "k1");
        let json = String::from_utf8(env.to_json()).unwrap();
        let expected_prefix = r#"{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"keyid":"k1","sig":""#;
        assert!(json.starts_with(expected_prefix), "{json}");
        assert_eq!(Envelope::from_json(json.as_bytes()).unwrap(), env);
    }

    #[test]
    fn sign_then_verify_round_trips_and_is_deterministic() {
        let key = keys::generate();
        let a = Envelope::sign(IN_TOTO, b"statement", &key, "");
        let b = Envelope::sign(IN_TOTO, b"statement", &key, "");
        assert_eq!(
            a.to_json(),
            b.to_json(),
            "RFC 6979 signatures are deterministic"
        );
        assert_eq!(a.verify(key.verifying_key()).unwrap(), b"statement");
    }

    #[test]
    fn tampering_is_caught() {
        let key = keys::generate();
        let env = Envelope::sign(IN_TOTO, b"statement", &key, "");

        let mut changed_payload = env.clone();
        changed_payload.payload = B64.encode(b"statemenT");
        assert!(matches!(
            changed_payload.verify(key.verifying_key()),
            Err(DsseError::NotVerified { .. })
        ));

        let mut changed_type = env.clone();
        changed_type.payload_type = "application/json".to_string();
        assert!(changed_type.verify(key.verifying_key()).is_err());

        let other = keys::generate();
        assert!(env.verify(other.verifying_key()).is_err());

        let mut truncated = env.clone();
        let der = B64.decode(&env.signatures[0].sig).unwrap();
        truncated.signatures[0].sig = B64.encode(&der[..der.len() - 1]);
        let err = truncated.verify(key.verifying_key()).unwrap_err();
        assert!(err.to_string().contains("not an ASN.1 DER"), "{err}");

        let mut none = env;
        none.signatures.clear();
        assert_eq!(
            none.verify(key.verifying_key()),
            Err(DsseError::NoSignatures)
        );
    }
}
