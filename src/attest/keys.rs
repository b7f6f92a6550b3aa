//! ECDSA P-256 signing keys in the file formats users already have.
//!
//! kiln signs with the same key material cosign does, so that a key made by `cosign
//! generate-key-pair` signs with kiln and a key made by `kiln key generate` signs with cosign.
//! The public key is a PEM `PUBLIC KEY` (SPKI). The private key is written in cosign's encrypted
//! format: a PEM `ENCRYPTED SIGSTORE PRIVATE KEY` block whose body is JSON naming an scrypt key
//! derivation and a NaCl secretbox (XSalsa20-Poly1305) that seals the PKCS#8 DER key. That is
//! the layout of go-securesystemslib's `encrypted` package, which cosign uses. For reading, kiln
//! also takes the older `ENCRYPTED COSIGN PRIVATE KEY` label and unencrypted PKCS#8 (`PRIVATE
//! KEY`) and SEC1 (`EC PRIVATE KEY`, as `openssl ecparam -genkey` writes) keys.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;
use p256::pkcs8::der::pem::{self, LineEnding};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;

pub use p256::ecdsa::{SigningKey, VerifyingKey};

/// The PEM label cosign writes for its encrypted private keys.
pub const SIGSTORE_PRIVATE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// The label older cosign versions wrote; still accepted for reading.
pub const COSIGN_PRIVATE_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";

const SCRYPT_NAME: &str = "scrypt";
const SECRETBOX_NAME: &str = "nacl/secretbox";
/// The scrypt cost kiln writes (cosign's "legacy" strength, which every cosign version reads).
const SCRYPT_LOG_N: u8 = 15;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
/// The costs go-securesystemslib accepts when decrypting; anything else is refused so that a
/// hostile key file cannot demand gigabytes of scrypt memory.
const ACCEPTED_SCRYPT_N: [u64; 3] = [1 << 15, 1 << 16, 1 << 17];
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;

pub type Result<T, E = KeyError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("failed to find a PEM block (`-----BEGIN …-----`) in the key text")]
    NoPemBlock,
    #[error("failed to decode the PEM block `{label}`: {reason}")]
    Pem { label: String, reason: String },
    #[error(
        "unsupported key block `{label}`: expected `{SIGSTORE_PRIVATE_KEY_LABEL}`, \
         `{COSIGN_PRIVATE_KEY_LABEL}`, `PRIVATE KEY` or `EC PRIVATE KEY`"
    )]
    UnsupportedLabel { label: String },
    #[error("failed to parse the JSON body of the `{label}` block")]
    EncryptedJson {
        label: String,
        source: serde_json::Error,
    },
    #[error("unsupported key derivation `{name}` in the encrypted key: expected `scrypt`")]
    UnsupportedKdf { name: String },
    #[error("unsupported cipher `{name}` in the encrypted key: expected `nacl/secretbox`")]
    UnsupportedCipher { name: String },
    #[error("unsupported scrypt parameters N={n} r={r} p={p} in the encrypted key")]
    UnsupportedScryptParams { n: u64, r: u32, p: u32 },
    #[error("invalid base64 in the `{field}` field of the encrypted key")]
    Base64 {
        field: &'static str,
        source: base64::DecodeError,
    },
    #[error("invalid secretbox nonce in the encrypted key: {len} bytes, expected 24")]
    NonceLength { len: usize },
    #[error("failed to decrypt the private key: wrong password or corrupted key file")]
    Decrypt,
    #[error("failed to encrypt the private key")]
    Encrypt,
    #[error("failed to parse the `{label}` key: expected an ECDSA P-256 key")]
    PrivateKey {
        label: String,
        source: p256::pkcs8::Error,
    },
    #[error("failed to parse the `EC PRIVATE KEY` block: expected an ECDSA P-256 key")]
    Sec1 { source: p256::elliptic_curve::Error },
    #[error("failed to parse the public key: expected a PEM `PUBLIC KEY` (SPKI) for ECDSA P-256")]
    PublicKey { source: p256::pkcs8::spki::Error },
    #[error("failed to encode the key")]
    Encode { source: p256::pkcs8::Error },
    #[error("failed to use key file {path}")]
    File {
        path: std::path::PathBuf,
        source: Box<KeyError>,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl KeyError {
    /// What the user can do about it, when kiln knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Decrypt => Some(
                "an encrypted key's password is read from KILN_PASSWORD or COSIGN_PASSWORD"
                    .to_string(),
            ),
            _ => None,
        }
    }
}

/// A fresh P-256 key from the operating system's random source.
pub fn generate() -> SigningKey {
    SigningKey::random(&mut OsRng)
}

/// The public key as PEM `PUBLIC KEY` (SPKI), the form cosign's `.pub` files have.
pub fn write_public_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(LineEnding::LF)
        .expect("a valid P-256 point always encodes as SPKI")
}

/// Parses a PEM `PUBLIC KEY` (SPKI) holding a P-256 point.
pub fn load_public_key(pem_text: &str) -> Result<VerifyingKey> {
    VerifyingKey::from_public_key_pem(pem_text.trim())
        .map_err(|source| KeyError::PublicKey { source })
}

/// A stable identifier for a public key: the sha256 of its SPKI DER encoding, in hex. kiln puts
/// it in DSSE `keyid` fields; verifiers treat it as a hint only.
pub fn key_id(key: &VerifyingKey) -> String {
    let der = key
        .to_public_key_der()
        .expect("a valid P-256 point always encodes as SPKI");
    Sha256Digest::of(der.as_bytes()).hex()
}

#[derive(Serialize, Deserialize)]
struct EncryptedKey {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

fn scrypt_key(password: &[u8], salt: &[u8], log_n: u8, r: u32, p: u32) -> [u8; 32] {
    let params =
        scrypt::Params::new(log_n, r, p, 32).expect("accepted scrypt parameters are valid");
    let mut key = [0u8; 32];
    scrypt::scrypt(password, salt, &params, &mut key).expect("32 bytes is a valid scrypt output");
    key
}

/// The private key in cosign's encrypted format (PEM `ENCRYPTED SIGSTORE PRIVATE KEY`), sealed
/// with `password` (empty is allowed, as with cosign). Salt and nonce are random.
pub fn encrypt_cosign_private_key(key: &SigningKey, password: &str) -> Result<String> {
    let der = key
        .to_pkcs8_der()
        .map_err(|source| KeyError::Encode { source })?;
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut nonce);
    let box_key = scrypt_key(password.as_bytes(), &salt, SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P);
    let ciphertext = XSalsa20Poly1305::new(&box_key.into())
        .encrypt(&nonce.into(), der.as_bytes())
        .map_err(|_| KeyError::Encrypt)?;
    let body = EncryptedKey {
        kdf: Kdf {
            name: SCRYPT_NAME.to_string(),
            params: ScryptParams {
                n: 1 << SCRYPT_LOG_N,
                r: SCRYPT_R,
                p: SCRYPT_P,
            },
            salt: B64.encode(salt),
        },
        cipher: Cipher {
            name: SECRETBOX_NAME.to_string(),
            nonce: B64.encode(nonce),
        },
        ciphertext: B64.encode(ciphertext),
    };
    let json = serde_json::to_vec(&body).expect("the encrypted key body always serializes");
    pem::encode_string(SIGSTORE_PRIVATE_KEY_LABEL, LineEnding::LF, &json).map_err(|e| {
        KeyError::Pem {
            label: SIGSTORE_PRIVATE_KEY_LABEL.to_string(),
            reason: e.to_string(),
        }
    })
}

fn decrypt_cosign_body(label: &str, body: &[u8], password: &str) -> Result<Vec<u8>> {
    let parsed: EncryptedKey =
        serde_json::from_slice(body).map_err(|source| KeyError::EncryptedJson {
            label: label.to_string(),
            source,
        })?;
    if parsed.kdf.name != SCRYPT_NAME {
        return Err(KeyError::UnsupportedKdf {
            name: parsed.kdf.name,
        });
    }
    if parsed.cipher.name != SECRETBOX_NAME {
        return Err(KeyError::UnsupportedCipher {
            name: parsed.cipher.name,
        });
    }
    let ScryptParams { n, r, p } = parsed.kdf.params;
    if !ACCEPTED_SCRYPT_N.contains(&n) || r != SCRYPT_R || p != SCRYPT_P {
        return Err(KeyError::UnsupportedScryptParams { n, r, p });
    }
    let decode = |field: &'static str, text: &str| {
        B64.decode(text)
            .map_err(|source| KeyError::Base64 { field, source })
    };
    let salt = decode("kdf.salt", &parsed.kdf.salt)?;
    let nonce = decode("cipher.nonce", &parsed.cipher.nonce)?;
    let ciphertext = decode("ciphertext", &parsed.ciphertext)?;
    let nonce: [u8; NONCE_LEN] = nonce
        .as_slice()
        .try_into()
        .map_err(|_| KeyError::NonceLength { len: nonce.len() })?;
    let box_key = scrypt_key(password.as_bytes(), &salt, n.trailing_zeros() as u8, r, p);
    XSalsa20Poly1305::new(&box_key.into())
        .decrypt(&nonce.into(), ciphertext.as_slice())
        .map_err(|_| KeyError::Decrypt)
}

/// Splits `text` into its PEM blocks (label, whole block text), ignoring text between blocks,
/// so that `openssl ecparam -genkey` output (an `EC PARAMETERS` block first) is accepted.
fn pem_blocks(text: &str) -> Vec<(&str, &str)> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = rest[start..].find(&end_marker) else {
            break;
        };
        let block_end = start + end + end_marker.len();
        blocks.push((label, &rest[start..block_end]));
        rest = &rest[block_end..];
    }
    blocks
}

/// Reads a private key from PEM text: cosign's encrypted format (decrypted with `password`),
/// or an unencrypted PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY` (password ignored).
pub fn load_private_key(pem_text: &str, password: &str) -> Result<SigningKey> {
    let blocks = pem_blocks(pem_text);
    let (label, block) = blocks
        .iter()
        .copied()
        .find(|(label, _)| *label != "EC PARAMETERS")
        .ok_or(KeyError::NoPemBlock)?;
    let (_, der) = pem::decode_vec(block.as_bytes()).map_err(|e| KeyError::Pem {
        label: label.to_string(),
        reason: e.to_string(),
    })?;
    let pkcs8 = match label {
        SIGSTORE_PRIVATE_KEY_LABEL | COSIGN_PRIVATE_KEY_LABEL => {
            decrypt_cosign_body(label, &der, password)?
        }
        "PRIVATE KEY" => der,
        "EC PRIVATE KEY" => {
            let secret =
                p256::SecretKey::from_sec1_der(&der).map_err(|source| KeyError::Sec1 { source })?;
            return Ok(SigningKey::from(secret));
        }
        _ => {
            return Err(KeyError::UnsupportedLabel {
                label: label.to_string(),
            })
        }
    };
    SigningKey::from_pkcs8_der(&pkcs8).map_err(|source| KeyError::PrivateKey {
        label: label.to_string(),
        source,
    })
}

/// [`load_private_key`] on the contents of `path`; errors name the file.
pub fn read_private_key(path: &Path, password: &str) -> Result<SigningKey> {
    let text = fs_err::read_to_string(path)?;
    load_private_key(&text, password).map_err(|e| KeyError::File {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

/// [`load_public_key`] on the contents of `path`; errors name the file.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey> {
    let text = fs_err::read_to_string(path)?;
    load_public_key(&text).map_err(|e| KeyError::File {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

/// Writes `PREFIX.key` (cosign's encrypted format, mode 0600) and `PREFIX.pub` (SPKI PEM).
/// Refuses to overwrite either file, as cosign does without an explicit confirmation; on
/// failure, no file this call created is left behind.
pub fn write_key_pair(prefix: &Path, key: &SigningKey, password: &str) -> Result<()> {
    let private = encrypt_cosign_private_key(key, password)?;
    let public = write_public_pem(key.verifying_key());
    let with_suffix = |suffix: &str| {
        let mut path = prefix.as_os_str().to_owned();
        path.push(suffix);
        PathBuf::from(path)
    };
    let (key_path, pub_path) = (with_suffix(".key"), with_suffix(".pub"));
    write_new_file(&key_path, private.as_bytes(), 0o600)?;
    if let Err(e) = write_new_file(&pub_path, public.as_bytes(), 0o644) {
        let _ = fs_err::remove_file(&key_path);
        return Err(e);
    }
    Ok(())
}

/// Creates `path` (never replacing an existing file) with `contents`; removes it again if
/// writing fails.
fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    use fs_err::os::unix::fs::OpenOptionsExt as _;
    use std::io::Write as _;

    let mut file = fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    if let Err(e) = file.write_all(contents).and_then(|()| file.sync_all()) {
        drop(file);
        let _ = fs_err::remove_file(path);
        return Err(e.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::{Signer, Verifier};
    use p256::ecdsa::DerSignature;

    #[test]
    fn encrypted_key_round_trips_and_signs() {
        let key = generate();
        let pem_text = encrypt_cosign_private_key(&key, "hunter2").unwrap();
        assert!(pem_text.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        let loaded = load_private_key(&pem_text, "hunter2").unwrap();
        assert_eq!(loaded.to_bytes(), key.to_bytes());

        let public = load_public_key(&write_public_pem(key.verifying_key())).unwrap();
        let sig: DerSignature = loaded.sign(b"payload");
        public.verify(b"payload", &sig).unwrap();
    }

    #[test]
    fn encrypted_key_body_has_cosigns_field_layout() {
        let pem_text = encrypt_cosign_private_key(&generate(), "").unwrap();
        let (_, body) = pem::decode_vec(pem_text.as_bytes()).unwrap();
        let body = String::from_utf8(body).unwrap();
        assert!(
            body.starts_with(
                r#"{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":""#
            ),
            "{body}"
        );
        assert!(
            body.contains(r#""cipher":{"name":"nacl/secretbox","nonce":""#),
            "{body}"
        );
        let parsed: EncryptedKey = serde_json::from_str(&body).unwrap();
        assert_eq!(B64.decode(parsed.kdf.salt).unwrap().len(), 32);
        assert_eq!(B64.decode(parsed.cipher.nonce).unwrap().len(), 24);
    }

    #[test]
    fn empty_password_is_allowed_and_wrong_password_is_refused() {
        let key = generate();
        let pem_text = encrypt_cosign_private_key(&key, "").unwrap();
        assert_eq!(
            load_private_key(&pem_text, "").unwrap().to_bytes(),
            key.to_bytes()
        );
        assert!(matches!(
            load_private_key(&pem_text, "x"),
            Err(KeyError::Decrypt)
        ));
    }

    #[test]
    fn older_cosign_label_is_accepted() {
        let key = generate();
        let pem_text = encrypt_cosign_private_key(&key, "pw")
            .unwrap()
            .replace(SIGSTORE_PRIVATE_KEY_LABEL, COSIGN_PRIVATE_KEY_LABEL);
        assert_eq!(
            load_private_key(&pem_text, "pw").unwrap().to_bytes(),
            key.to_bytes()
        );
    }

    #[test]
    fn plain_pkcs8_and_sec1_keys_load() {
        let key = generate();
        let pkcs8 = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        assert_eq!(
            load_private_key(&pkcs8, "ignored").unwrap().to_bytes(),
            key.to_bytes()
        );

        let sec1_der = p256::SecretKey::from(&key).to_sec1_der().unwrap();
        let sec1 = pem::encode_string("EC PRIVATE KEY", LineEnding::LF, &sec1_der).unwrap();
        // As `openssl ecparam -genkey` writes it: parameters first.
        let text = format!(
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{sec1}"
        );
        assert_eq!(
            load_private_key(&text, "").unwrap().to_bytes(),
            key.to_bytes()
        );
    }

    #[test]
    fn hostile_or_foreign_key_files_are_refused() {
        let key = generate();
        let good = encrypt_cosign_private_key(&key, "").unwrap();
        let (_, body) = pem::decode_vec(good.as_bytes()).unwrap();
        let body = String::from_utf8(body).unwrap();
        let reencode = |json: String| {
            pem::encode_string(SIGSTORE_PRIVATE_KEY_LABEL, LineEnding::LF, json.as_bytes()).unwrap()
        };
        let huge_n = reencode(body.replace(r#""N":32768"#, r#""N":1073741824"#));
        assert!(matches!(
            load_private_key(&huge_n, ""),
            Err(KeyError::UnsupportedScryptParams { n: 1073741824, .. })
        ));
        let other_kdf = reencode(body.replace(r#""name":"scrypt""#, r#""name":"pbkdf2""#));
        assert!(matches!(
            load_private_key(&other_kdf, ""),
            Err(KeyError::UnsupportedKdf { .. })
        ));
        assert!(matches!(
            load_private_key("not a key", ""),
            Err(KeyError::NoPemBlock)
        ));
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            load_private_key(cert, ""),
            Err(KeyError::UnsupportedLabel { .. })
        ));
        assert!(matches!(
            load_public_key(&good),
            Err(KeyError::PublicKey { .. })
        ));
    }

    #[test]
    fn key_pair_files_are_written_once_with_private_mode() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("cosign");
        let key = generate();
        write_key_pair(&prefix, &key, "pw").unwrap();
        let mode = fs_err::metadata(dir.path().join("cosign.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = read_private_key(&dir.path().join("cosign.key"), "pw").unwrap();
        assert_eq!(loaded.to_bytes(), key.to_bytes());
        let public = read_public_key(&dir.path().join("cosign.pub")).unwrap();
        assert_eq!(&public, key.verifying_key());
        assert!(
            write_key_pair(&prefix, &key, "pw").is_err(),
            "must not overwrite"
        );
    }
}
