//! kiln's signatures, envelopes and key files checked by code kiln did not write: Python
//! `cryptography`, `securesystemslib`, `hashlib.scrypt` and PyNaCl, driven through
//! `tests/verifiers/verify.py`.
//!
//! The interpreter comes from `KILN_TEST_PYTHON`, else `.venv/bin/python` at the repository
//! root (`python3 -m venv .venv && .venv/bin/pip install -r tests/verifiers/requirements.txt`).
//! Without it these tests fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;

use crate::attest::cosign::simple_signing_payload;
use crate::attest::dsse::{self, Envelope};
use crate::attest::intoto::{PredicateType, Statement};
use crate::attest::keys;
use crate::digest::Sha256Digest;
use crate::media::IN_TOTO;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python with tests/verifiers/requirements.txt; its absence fails the test.
fn python() -> PathBuf {
    let path = std::env::var_os("KILN_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    if path.exists() {
        return path;
    }
    let message = format!(
        "python interop test needs {} with tests/verifiers/requirements.txt installed \
         (set KILN_TEST_PYTHON, or create .venv from tests/verifiers/requirements.txt)",
        path.display()
    );
    panic!("{message}");
}

struct Verifier {
    python: PathBuf,
    dir: tempfile::TempDir,
}

impl Verifier {
    fn new() -> Self {
        Self {
            python: python(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        fs_err::write(&path, bytes).unwrap();
        path
    }

    fn run(&self, args: &[&Path]) -> Output {
        self.run_with_password(args, "")
    }

    /// Runs verify.py with `COSIGN_PASSWORD` set to `password`.
    fn run_with_password(&self, args: &[&Path], password: &str) -> Output {
        let output = Command::new(&self.python)
            .arg(repo_root().join("tests/verifiers/verify.py"))
            .args(args)
            .env("COSIGN_PASSWORD", password)
            .output()
            .unwrap_or_else(|e| panic!("failed to run {}: {e}", self.python.display()));
        let code = output.status.code();
        assert!(
            code == Some(0) || code == Some(1),
            "verify.py could not run ({code:?}): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Runs `verify.py sig`; Ok(stdout JSON) when verified, Err(stderr) when rejected.
    fn sig(
        &self,
        key: &Path,
        payload: &Path,
        signature: &Path,
    ) -> Result<serde_json::Value, String> {
        let out = self.run(&[
            Path::new("sig"),
            Path::new("--key"),
            key,
            Path::new("--payload"),
            payload,
            Path::new("--signature"),
            signature,
        ]);
        result(out)
    }

    fn dsse(&self, key: &Path, envelope: &Path) -> Result<serde_json::Value, String> {
        let out = self.run(&[
            Path::new("dsse"),
            Path::new("--key"),
            key,
            Path::new("--envelope"),
            envelope,
            Path::new("--payload-type"),
            Path::new(IN_TOTO),
        ]);
        result(out)
    }
}

fn result(out: Output) -> Result<serde_json::Value, String> {
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn python_cryptography_verifies_kiln_signatures_and_catches_tampering() {
    let v = Verifier::new();
    let key = keys::generate();
    let digest = Sha256Digest::of(b"image manifest");
    let payload = simple_signing_payload("localhost:5000/app:v1", &digest);
    let signature = dsse::sign_der_b64(&key, &payload);

    let pub_path = v.write(
        "key.pub",
        keys::write_public_pem(key.verifying_key()).as_bytes(),
    );
    let payload_path = v.write("payload.json", &payload);
    let sig_path = v.write("payload.sig", signature.as_bytes());
    let ok = v.sig(&pub_path, &payload_path, &sig_path).unwrap();
    assert_eq!(ok["payload_sha256"], Sha256Digest::of(&payload).hex());

    // Changed payload.
    let changed = String::from_utf8(payload.clone())
        .unwrap()
        .replace("app:v1", "app:v2");
    let changed_path = v.write("changed.json", changed.as_bytes());
    let err = v.sig(&pub_path, &changed_path, &sig_path).unwrap_err();
    assert!(err.contains("does not verify"), "{err}");

    // A signature for another digest.
    let other = simple_signing_payload("localhost:5000/app:v1", &Sha256Digest::of(b"other"));
    let other_sig = v.write("other.sig", dsse::sign_der_b64(&key, &other).as_bytes());
    assert!(v.sig(&pub_path, &payload_path, &other_sig).is_err());

    // Swapped public key.
    let stranger = keys::generate();
    let stranger_pub = v.write(
        "stranger.pub",
        keys::write_public_pem(stranger.verifying_key()).as_bytes(),
    );
    assert!(v.sig(&stranger_pub, &payload_path, &sig_path).is_err());

    // Truncated signature.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let der = b64.decode(&signature).unwrap();
    let truncated = v.write(
        "truncated.sig",
        b64.encode(&der[..der.len() - 2]).as_bytes(),
    );
    assert!(v.sig(&pub_path, &payload_path, &truncated).is_err());
}

#[test]
fn securesystemslib_verifies_kiln_dsse_envelopes_and_catches_tampering() {
    let v = Verifier::new();
    let key = keys::generate();
    let digest = Sha256Digest::of(b"image manifest");
    let statement = Statement::new(
        "localhost:5000/app",
        &digest,
        &PredicateType::SlsaProvenance1,
        json!({"buildDefinition": {"buildType": "https://kiln.dev/build/v1"}}),
    );
    let payload = statement.to_json();
    let envelope = Envelope::sign(IN_TOTO, &payload, &key, &keys::key_id(key.verifying_key()));
    let pub_path = v.write(
        "key.pub",
        keys::write_public_pem(key.verifying_key()).as_bytes(),
    );
    let env_path = v.write("envelope.json", &envelope.to_json());
    let ok = v.dsse(&pub_path, &env_path).unwrap();
    assert_eq!(ok["payload_sha256"], Sha256Digest::of(&payload).hex());
    assert_eq!(ok["payloadType"], IN_TOTO);

    // Statement re-pointed at another image without re-signing.
    let mut changed = envelope.clone();
    let other = Statement::new(
        "localhost:5000/app",
        &Sha256Digest::of(b"other"),
        &PredicateType::SlsaProvenance1,
        statement.predicate.clone(),
    );
    use base64::Engine as _;
    changed.payload = base64::engine::general_purpose::STANDARD.encode(other.to_json());
    let changed_path = v.write("changed.json", &changed.to_json());
    let err = v.dsse(&pub_path, &changed_path).unwrap_err();
    assert!(err.contains("does not verify"), "{err}");

    // Swapped public key.
    let stranger = keys::generate();
    let stranger_pub = v.write(
        "stranger.pub",
        keys::write_public_pem(stranger.verifying_key()).as_bytes(),
    );
    assert!(v.dsse(&stranger_pub, &env_path).is_err());
}

#[test]
fn kiln_signs_with_keys_python_wrote() {
    let v = Verifier::new();
    let prefix = v.dir.path().join("py");
    let out = v.run(&[Path::new("genkey"), Path::new("--out"), &prefix]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pub_path = v.dir.path().join("py.pub");
    let payload = simple_signing_payload("r/a:t", &Sha256Digest::of(b"m"));
    let payload_path = v.write("payload.json", &payload);
    for private in ["py.pkcs8.pem", "py.sec1.pem"] {
        let key = keys::read_private_key(&v.dir.path().join(private), "").unwrap();
        let public = keys::read_public_key(&pub_path).unwrap();
        assert_eq!(key.verifying_key(), &public, "{private}");
        let sig_path = v.write("sig", dsse::sign_der_b64(&key, &payload).as_bytes());
        v.sig(&pub_path, &payload_path, &sig_path)
            .unwrap_or_else(|e| panic!("{private}: {e}"));
    }
}

#[test]
fn cosign_key_files_cross_between_kiln_and_an_independent_implementation() {
    let v = Verifier::new();
    let dir = v.dir.path();

    // kiln writes, Python (hashlib.scrypt + NaCl secretbox + PKCS#8 DER) opens.
    let key = keys::generate();
    keys::write_key_pair(&dir.join("kiln"), &key, "s3cret").unwrap();
    let decrypt = |password: &str| {
        let args = [
            Path::new("cosign-decrypt"),
            Path::new("--key"),
            &dir.join("kiln.key"),
            Path::new("--public"),
            &dir.join("kiln.pub"),
        ];
        result(v.run_with_password(&args, password))
    };
    assert_eq!(decrypt("s3cret").unwrap()["scrypt_n"], 32768);
    let err = decrypt("wrong").unwrap_err();
    assert!(err.contains("wrong password"), "{err}");

    // Python writes (N=65536 as current cosign does, and N=32768), kiln opens and signs.
    let payload = simple_signing_payload("r/a:t", &Sha256Digest::of(b"m"));
    let payload_path = v.write("payload.json", &payload);
    for (n, password) in [("65536", ""), ("32768", "pw")] {
        let prefix = dir.join(format!("py{n}"));
        let args = [
            Path::new("cosign-encrypt"),
            Path::new("--out"),
            &prefix,
            Path::new("--scrypt-n"),
            Path::new(n),
        ];
        result(v.run_with_password(&args, password)).unwrap();
        let key_path = dir.join(format!("py{n}.key"));
        let pub_path = dir.join(format!("py{n}.pub"));
        let loaded = keys::read_private_key(&key_path, password).unwrap();
        assert_eq!(
            loaded.verifying_key(),
            &keys::read_public_key(&pub_path).unwrap()
        );
        assert!(keys::read_private_key(&key_path, "not it").is_err());
        let sig_path = v.write("sig", dsse::sign_der_b64(&loaded, &payload).as_bytes());
        v.sig(&pub_path, &payload_path, &sig_path).unwrap();
    }
}
