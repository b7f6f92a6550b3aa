//! `kiln key generate`, and reading keys for `sign`, `attest`, `verify` and `build --sign-key`.
//!
//! Passwords come from the environment only (`KILN_PASSWORD`, else `COSIGN_PASSWORD`, else
//! empty), never from a prompt: kiln runs in CI, and cosign users already export
//! `COSIGN_PASSWORD`.

use super::printer::outln;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::args::{KeyArgs, KeyCommand};
use super::printer::status;
use crate::attest::{keys, SigningKey, VerifyingKey};

/// The key password: `KILN_PASSWORD`, else `COSIGN_PASSWORD`, else empty.
pub fn password() -> String {
    std::env::var("KILN_PASSWORD")
        .or_else(|_| std::env::var("COSIGN_PASSWORD"))
        .unwrap_or_default()
}

/// Reads a private key file (cosign's encrypted format or plain PEM).
pub fn load_signing_key(path: &Path) -> Result<SigningKey> {
    keys::read_private_key(path, &password())
        .with_context(|| format!("failed to load the signing key {}", path.display()))
}

/// Reads a public key file (SPKI PEM).
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey> {
    keys::read_public_key(path)
        .with_context(|| format!("failed to load the public key {}", path.display()))
}

pub fn run(args: KeyArgs) -> Result<ExitCode> {
    match args.command {
        KeyCommand::Generate(gen) => {
            let key = keys::generate();
            keys::write_key_pair(&gen.out, &key, &password()).with_context(|| {
                format!(
                    "failed to write the key pair {0}.key / {0}.pub",
                    gen.out.display()
                )
            })?;
            let prefix = gen.out.display();
            status(&format!("wrote {prefix}.key (private) and {prefix}.pub"));
            outln!("{}", keys::key_id(key.verifying_key()));
            Ok(ExitCode::SUCCESS)
        }
    }
}
