//! `InRelease`: a clearsigned `Release` file, verified against a keyring before anything in it
//! is believed.
//!
//! The trust chain of a Debian repository starts here: the keyring (a pinned recipe input)
//! vouches for `InRelease`, whose `SHA256` list vouches for each `Packages` index, whose
//! `SHA256` fields vouch for each `.deb`. So this module refuses everything apt's `gpgv` step
//! would: a file that is not clearsigned, a signature by a key outside the keyring, a signature
//! that does not verify, an expired or revoked key or signature, and a release whose
//! `Valid-Until` has passed. The current time comes from the caller (an injected clock): it is
//! the one place a build reads wall time, and it never reaches an output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pgp::composed::{CleartextSignedMessage, Deserializable, SignedPublicKey};
use pgp::packet::{Signature, SignatureType};
use pgp::types::{KeyDetails, PublicKeyTrait, Tag};

use super::control::{ControlError, Stanza};
use crate::digest::Sha256Digest;

/// The largest `InRelease` accepted (bookworm's is ~150 KiB).
pub const MAX_INRELEASE: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("failed to read the keyring {path}: it holds no OpenPGP public key")]
    EmptyKeyring { path: PathBuf },
    #[error("failed to read the keyring {path}")]
    Keyring {
        path: PathBuf,
        #[source]
        source: pgp::errors::Error,
    },
    #[error("{url} is not a clearsigned InRelease; unsigned repositories are refused")]
    Unsigned {
        url: String,
        #[source]
        source: pgp::errors::Error,
    },
    #[error(
        "{url} is signed only by keys that are not in the keyring {keyring} (issuers: {}); \
         check that the keyring is the right one for this repository",
        issuers.join(", ")
    )]
    UnknownKey {
        url: String,
        keyring: PathBuf,
        issuers: Vec<String>,
    },
    #[error("{url}: the signature by key {key} does not verify: the file was altered")]
    BadSignature { url: String, key: String },
    #[error("{url}: key {key} in {keyring} is not valid ({reason})")]
    InvalidKey {
        url: String,
        key: String,
        keyring: PathBuf,
        reason: String,
    },
    #[error("{url}: the signing key {key} expired at unix time {expired}")]
    KeyExpired {
        url: String,
        key: String,
        expired: i64,
    },
    #[error("{url}: the signing key {key} is revoked")]
    KeyRevoked { url: String, key: String },
    #[error("{url}: the signature by key {key} expired at unix time {expired}")]
    SignatureExpired {
        url: String,
        key: String,
        expired: i64,
    },
    #[error(
        "{url}: the release is only valid until {valid_until}, which has passed: the mirror \
         is stale or replaying an old release"
    )]
    ValidUntilPast { url: String, valid_until: String },
    #[error("{url}: field `{field}` is missing")]
    MissingField { url: String, field: &'static str },
    #[error("{url}: field `{field}` has an unreadable value `{value}`")]
    BadField {
        url: String,
        field: &'static str,
        value: String,
    },
    #[error(transparent)]
    Control(#[from] ControlError),
}

/// The keys a repository's releases may be signed with (binary or ASCII-armored keyring).
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
    path: PathBuf,
}

impl Keyring {
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Keyring, ReleaseError> {
        let keyring_err = |source| ReleaseError::Keyring {
            path: path.to_path_buf(),
            source,
        };
        let (iter, _) = SignedPublicKey::from_reader_many(bytes).map_err(keyring_err)?;
        let keys = iter.collect::<Result<Vec<_>, _>>().map_err(keyring_err)?;
        if keys.is_empty() {
            return Err(ReleaseError::EmptyKeyring {
                path: path.to_path_buf(),
            });
        }
        Ok(Keyring {
            keys,
            path: path.to_path_buf(),
        })
    }
}

/// An index file listed in the release's `SHA256` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFile {
    pub size: u64,
    pub sha256: Sha256Digest,
}

/// A verified release.
#[derive(Debug, Clone)]
pub struct Release {
    /// `Date` as written.
    pub date: String,
    /// `SHA256`, by path relative to the `dists/SUITE/` directory.
    pub sha256: BTreeMap<String, IndexFile>,
    /// Fingerprint (upper hex) of the key whose signature was accepted.
    pub signed_by: String,
}

/// Verifies `bytes` (an `InRelease` fetched from `url`) against `keyring` at unix time `now`
/// and parses the signed text. At least one signature must be by a keyring key and verify; a
/// keyring key's signature that fails is an error even when another one verifies.
pub fn verify_inrelease(
    bytes: &[u8],
    keyring: &Keyring,
    now: i64,
    url: &str,
) -> Result<Release, ReleaseError> {
    let text = String::from_utf8_lossy(bytes);
    let (message, _) =
        CleartextSignedMessage::from_string(&text).map_err(|source| ReleaseError::Unsigned {
            url: url.to_string(),
            source,
        })?;
    let signed = message.signed_text();
    let mut unknown = Vec::new();
    let mut accepted = None;
    let mut refusal = None;
    for sig in message.signatures() {
        match check_signature(sig, signed.as_bytes(), keyring, now, url) {
            Ok(Some(fpr)) => {
                accepted.get_or_insert(fpr);
            }
            Ok(None) => unknown.extend(issuers(sig)),
            Err(e @ ReleaseError::BadSignature { .. }) => return Err(e),
            Err(e) => {
                refusal.get_or_insert(e);
            }
        }
    }
    let Some(signed_by) = accepted else {
        return Err(refusal.unwrap_or(ReleaseError::UnknownKey {
            url: url.to_string(),
            keyring: keyring.path.clone(),
            issuers: unknown,
        }));
    };
    // The text that was hashed has CRLF line ends; the release itself uses LF.
    let body = signed.replace("\r\n", "\n");
    parse_release(&body, signed_by, now, url)
}

fn issuers(sig: &Signature) -> Vec<String> {
    let mut out: Vec<String> = sig
        .issuer_fingerprint()
        .iter()
        .map(|f| format!("{f:X}"))
        .collect();
    if out.is_empty() {
        out = sig.issuer().iter().map(hex::encode_upper).collect();
    }
    out
}

/// `Ok(Some(fingerprint))` when `sig` is by a keyring key and valid, `Ok(None)` when its key is
/// not in the keyring.
fn check_signature(
    sig: &Signature,
    data: &[u8],
    keyring: &Keyring,
    now: i64,
    url: &str,
) -> Result<Option<String>, ReleaseError> {
    let fingerprints = sig.issuer_fingerprint();
    let key_ids = sig.issuer();
    let matches = |k: &dyn KeyDetails| {
        fingerprints.iter().any(|f| **f == k.fingerprint())
            || key_ids.iter().any(|i| **i == k.key_id())
    };
    for cert in &keyring.keys {
        let name = format!("{:X}", cert.primary_key.fingerprint());
        let invalid = |reason: String| ReleaseError::InvalidKey {
            url: url.to_string(),
            key: name.clone(),
            keyring: keyring.path.clone(),
            reason,
        };
        // The signer is the primary key or a signing subkey bound to it.
        let (signer_expiry, signer_revoked): (Option<i64>, bool);
        if matches(&cert.primary_key) {
            sig.verify(&cert.primary_key, data)
                .map_err(|_| ReleaseError::BadSignature {
                    url: url.to_string(),
                    key: name.clone(),
                })?;
            signer_expiry = None;
            signer_revoked = false;
        } else if let Some(sub) = cert.public_subkeys.iter().find(|s| matches(&s.key)) {
            sig.verify(&sub.key, data)
                .map_err(|_| ReleaseError::BadSignature {
                    url: url.to_string(),
                    key: format!("{:X}", sub.key.fingerprint()),
                })?;
            sub.verify(&cert.primary_key)
                .map_err(|e| invalid(format!("subkey binding: {e}")))?;
            let binding = sub
                .signatures
                .iter()
                .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding))
                .max_by_key(|s| s.created().map(|t| t.timestamp()));
            if !binding.is_some_and(|b| b.key_flags().sign()) {
                return Err(invalid("the subkey is not bound for signing".to_string()));
            }
            signer_expiry = binding.and_then(|b| {
                b.key_expiration_time()
                    .map(|d| sub.key.created_at().timestamp() + d.num_seconds())
            });
            signer_revoked = sub
                .signatures
                .iter()
                .any(|s| s.typ() == Some(SignatureType::SubkeyRevocation));
        } else {
            continue;
        }
        // The certificate's own self-signatures must hold, or its expiry and revocation
        // information cannot be trusted.
        let primary_expiry = self_signed_expiry(cert).map_err(&invalid)?;
        if signer_revoked || is_revoked(cert) {
            return Err(ReleaseError::KeyRevoked {
                url: url.to_string(),
                key: name,
            });
        }
        let signer_expiry = match (primary_expiry, signer_expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(expired) = signer_expiry.filter(|&t| t <= now) {
            return Err(ReleaseError::KeyExpired {
                url: url.to_string(),
                key: name,
                expired,
            });
        }
        let created = sig.created().map(|t| t.timestamp()).unwrap_or(0);
        if let Some(expired) = sig
            .signature_expiration_time()
            .map(|d| created + d.num_seconds())
            .filter(|&t| t <= now)
        {
            return Err(ReleaseError::SignatureExpired {
                url: url.to_string(),
                key: name,
                expired,
            });
        }
        return Ok(Some(name));
    }
    Ok(None)
}

/// When the primary key expires, from its newest valid self-signature (third-party
/// certifications, which Debian's keys carry, are not the key's own statement and are
/// skipped). Errors when no self-signature verifies.
fn self_signed_expiry(cert: &SignedPublicKey) -> Result<Option<i64>, String> {
    let primary = &cert.primary_key;
    let mut newest: Option<&Signature> = None;
    for user in &cert.details.users {
        for sig in &user.signatures {
            let own = sig
                .issuer_fingerprint()
                .iter()
                .any(|f| **f == primary.fingerprint())
                || sig.issuer().iter().any(|i| **i == primary.key_id());
            if !own
                || sig
                    .verify_certification(primary, Tag::UserId, &user.id)
                    .is_err()
            {
                continue;
            }
            let created = |s: &Signature| s.created().map(|t| t.timestamp());
            if newest.is_none_or(|n| created(sig) > created(n)) {
                newest = Some(sig);
            }
        }
    }
    let sig = newest.ok_or_else(|| "no user id carries a valid self-signature".to_string())?;
    Ok(sig
        .key_expiration_time()
        .map(|d| primary.created_at().timestamp() + d.num_seconds()))
}

/// A key revocation signature by the primary key itself.
fn is_revoked(cert: &SignedPublicKey) -> bool {
    cert.details
        .revocation_signatures
        .iter()
        .any(|sig| sig.verify_key(&cert.primary_key).is_ok())
}

fn parse_release(
    body: &str,
    signed_by: String,
    now: i64,
    url: &str,
) -> Result<Release, ReleaseError> {
    let stanzas = Stanza::parse_all(body, url)?;
    let stanza = stanzas.into_iter().next().unwrap_or_default();
    let date = stanza
        .get("Date")
        .ok_or_else(|| ReleaseError::MissingField {
            url: url.to_string(),
            field: "Date",
        })?
        .to_string();
    let bad = |field: &'static str, value: &str| ReleaseError::BadField {
        url: url.to_string(),
        field,
        value: value.to_string(),
    };
    parse_date(&date).ok_or_else(|| bad("Date", &date))?;
    if let Some(v) = stanza.get("Valid-Until") {
        let t = parse_date(v).ok_or_else(|| bad("Valid-Until", v))?;
        if t <= now {
            return Err(ReleaseError::ValidUntilPast {
                url: url.to_string(),
                valid_until: v.to_string(),
            });
        }
    }
    let mut sha256 = BTreeMap::new();
    for line in stanza.get("SHA256").unwrap_or("").lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [hex, size, path] = parts[..] else {
            if parts.is_empty() {
                continue;
            }
            return Err(bad("SHA256", line));
        };
        let digest = Sha256Digest::from_hex(hex).map_err(|_| bad("SHA256", line))?;
        let size = size.parse().map_err(|_| bad("SHA256", line))?;
        sha256.insert(
            path.to_string(),
            IndexFile {
                size,
                sha256: digest,
            },
        );
    }
    Ok(Release {
        date,
        sha256,
        signed_by,
    })
}

/// Parses the RFC 2822 dates of Release files (`Sat, 10 May 2025 08:52:53 UTC`, also with a
/// numeric zone) to unix seconds.
pub fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = match s.split_once(',') {
        Some((_, rest)) => rest.trim(),
        None => s,
    };
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [day, month, year, time, zone] = parts[..] else {
        return None;
    };
    let day: i64 = day.parse().ok()?;
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? as i64 + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms[..] else {
        return None;
    };
    let offset = match zone {
        "UTC" | "GMT" | "UT" | "Z" => 0,
        z if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let n: i64 = z[1..].parse().ok()?;
            let secs = (n / 100) * 3600 + (n % 100) * 60;
            if z.starts_with('-') {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86400 + h * 3600 + m * 60 + sec - offset)
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_release_dates() {
        assert_eq!(parse_date("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(
            parse_date("Sat, 10 May 2025 08:52:53 UTC"),
            Some(1_746_867_173)
        );
        assert_eq!(
            parse_date("Sat, 10 May 2025 10:52:53 +0200"),
            Some(1_746_867_173)
        );
        assert_eq!(parse_date("yesterday"), None);
    }

    #[test]
    fn debian_keyring_parses() {
        let path = Path::new("/usr/share/keyrings/debian-archive-keyring.gpg");
        let keyring = Keyring::parse(&fs_err::read(path).unwrap(), path).unwrap();
        assert!(keyring.keys.len() >= 3);
        for k in &keyring.keys {
            self_signed_expiry(k).unwrap();
            assert!(!is_revoked(k));
        }
    }
}
