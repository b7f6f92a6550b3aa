//! `kiln sign`, `kiln attest`, `kiln verify`, and the signing step of `kiln build --sign-key`.
//!
//! Thin glue: resolve the reference to a digest ([`target`]), build the layer with the format
//! layer (`attest`), append it to the attachment tag ([`AttachmentStore`]); for verification,
//! read the tags back and print the [`VerificationReport`]s.

use super::printer::outln;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::args::{AttestArgs, RegistryArgs, SignArgs, VerifyArgs};
use super::key::{load_signing_key, load_verifying_key};
use super::printer::status;
use crate::attest::cosign::AttachmentKind;
pub use crate::attest::image::SigningNames;
use crate::attest::image::{
    sign_layout, verify_target, ImageVerification, LayoutSigned, Verification, VerifyRequest,
};
use crate::attest::store::AttachmentStore;
use crate::attest::store::MAX_ATTACHMENT_BLOB;
use crate::attest::target::{self, Target};
use crate::attest::verify::LayerVerdict;
use crate::attest::{attestation_layer, keys, signature_layer, PredicateType, SigningKey};
use crate::digest::Sha256Digest;
use crate::image::{ImageRef, Layout};
use crate::registry::{Client, ClientOptions};

pub(super) fn client(args: &RegistryArgs) -> Result<Client> {
    Ok(Client::new(ClientOptions {
        tls_verify: args.tls_verify,
        auth_files: super::copy::registry_options(args).auth_files(),
        ..ClientOptions::default()
    })?)
}

pub(super) fn resolve<'a>(reference: &str, client: &'a Client) -> Result<Target<'a>> {
    let parsed: ImageRef = reference.parse()?;
    Ok(target::resolve(&parsed, client)?)
}

pub fn run_sign(args: SignArgs) -> Result<ExitCode> {
    let key = load_signing_key(&args.key)?;
    let client = client(&args.registry)?;
    let target = resolve(&args.reference, &client)?;
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| target.docker_reference.clone());
    let layer = signature_layer(&key, &identity, &target.digest);
    let appended = target
        .store
        .append(&target.digest, AttachmentKind::Signature, vec![layer])
        .with_context(|| format!("failed to sign {}", args.reference))?;
    status(&format!(
        "signed {} ({}) as {identity} with key {}: {} holds {} signature(s){}",
        args.reference,
        target.digest,
        keys::key_id(key.verifying_key()),
        appended.tag,
        appended.total,
        if appended.added == 0 {
            ", this one was already there"
        } else {
            ""
        }
    ));
    outln!("{}", target.digest);
    Ok(ExitCode::SUCCESS)
}

pub fn run_attest(args: AttestArgs) -> Result<ExitCode> {
    let predicate_type: PredicateType = args.predicate_type.parse()?;
    let predicate = read_predicate(&args.predicate)?;
    let key = load_signing_key(&args.key)?;
    let client = client(&args.registry)?;
    let target = resolve(&args.reference, &client)?;
    let name = args
        .identity
        .clone()
        .unwrap_or_else(|| target.subject_name.clone());
    let layer = attestation_layer(&key, &name, &target.digest, &predicate_type, predicate);
    let appended = target
        .store
        .append(&target.digest, AttachmentKind::Attestation, vec![layer])
        .with_context(|| format!("failed to attest {}", args.reference))?;
    status(&format!(
        "attested {} ({}) with a {predicate_type} statement about {name}: {} holds {} \
         attestation(s)",
        args.reference, target.digest, appended.tag, appended.total
    ));
    outln!("{}", target.digest);
    Ok(ExitCode::SUCCESS)
}

fn read_predicate(path: &Path) -> Result<serde_json::Value> {
    use std::io::Read as _;
    let file = fs_err::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_ATTACHMENT_BLOB + 1).read_to_end(&mut bytes)?;
    anyhow::ensure!(
        bytes.len() as u64 <= MAX_ATTACHMENT_BLOB,
        "the predicate {} is larger than {MAX_ATTACHMENT_BLOB} bytes, the largest attestation kiln reads",
        path.display()
    );
    serde_json::from_slice(&bytes)
        .with_context(|| format!("failed to parse the predicate {} as JSON", path.display()))
}

/// `kiln build --sign-key`: signs and attests the built image in the layout at `dir` (see
/// [`sign_layout`]) and says so.
pub fn sign_built_layout(
    dir: &Path,
    names: &SigningNames,
    digest: &Sha256Digest,
    statement: &[u8],
    more: Vec<(PredicateType, serde_json::Value)>,
    key: &SigningKey,
) -> Result<()> {
    print_signed(&sign_layout(dir, names, digest, statement, more, key)?);
    Ok(())
}

/// `kiln build --sign-key` of several platforms, as `cosign sign --recursive` signs an index:
/// each image of the layout at `dir` is signed and its provenance attested
/// ([`sign_built_layout`]), and the index `index` itself gets a signature, all as `names`.
pub fn sign_built_index(
    dir: &Path,
    names: &SigningNames,
    index: &Sha256Digest,
    images: &[(Sha256Digest, &[u8])],
    key: &SigningKey,
) -> Result<()> {
    for (digest, statement) in images {
        sign_built_layout(dir, names, digest, statement, Vec::new(), key)?;
    }
    AttachmentStore::Layout(Layout::open(dir)?).append(
        index,
        AttachmentKind::Signature,
        vec![signature_layer(key, &names.identity, index)],
    )?;
    status(&format!(
        "signed the index {index} as {} with key {}",
        names.identity,
        keys::key_id(key.verifying_key())
    ));
    Ok(())
}

/// `signed DIGEST as IDENTITY and attested TYPES with key KEY_ID`.
pub fn print_signed(signed: &LayoutSigned) {
    status(&format!(
        "signed {} as {} and attested {} with key {}",
        signed.digest,
        signed.identity,
        signed.predicate_types.join(", "),
        signed.key_id
    ));
}

pub fn run_verify(args: VerifyArgs) -> Result<ExitCode> {
    if args.policy.is_some() {
        return super::promote::run_verify_policy(&args);
    }
    let key = load_verifying_key(args.key.as_ref().context("--key is required")?)?;
    let request = VerifyRequest {
        identity: args.identity.clone(),
        predicate_types: args
            .attestations
            .iter()
            .map(|t| t.parse::<PredicateType>())
            .collect::<Result<Vec<_>, _>>()?,
        recipe_sha256: match &args.recipe {
            Some(path) => Some(Sha256Digest::of(&fs_err::read(path)?)),
            None => None,
        },
        platform: args.platform.as_deref().map(str::parse).transpose()?,
    };
    let client = client(&args.registry)?;
    let target = resolve(&args.reference, &client)?;
    let verification = verify_target(&args.reference, &target, &key, &request)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&verification)?);
    } else {
        print_report(&verification);
    }
    Ok(if verification.verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Human lines: one `✓` per verified layer, one `✗` per rejected one (those of an index's
/// images prefixed with their platform), then the verdict.
fn print_report(out: &Verification) {
    print_image(&out.image, "", &out.key_id, out.recipe_sha256.as_ref());
    for platform in &out.platforms {
        let prefix = format!("{}: ", platform.platform);
        print_image(
            &platform.image,
            &prefix,
            &out.key_id,
            out.recipe_sha256.as_ref(),
        );
    }
    let failed: Vec<&str> = out
        .platforms
        .iter()
        .filter(|p| !p.verified)
        .map(|p| p.platform.as_str())
        .collect();
    let (reference, digest) = (&out.reference, &out.image.digest);
    match (out.verified, out.platforms.as_slice()) {
        (true, []) => outln!("verified {reference} ({digest})"),
        (true, platforms) => outln!(
            "verified {reference} ({digest}) and its images for {}",
            platforms
                .iter()
                .map(|p| p.platform.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (false, _) if failed.is_empty() => outln!("NOT verified: {reference} ({digest})"),
        (false, _) => outln!(
            "NOT verified: {reference} ({digest}): the image for {} failed",
            failed.join(", ")
        ),
    }
}

/// The lines of one manifest's reports, each after `prefix`.
fn print_image(
    image: &ImageVerification,
    prefix: &str,
    key: &str,
    recipe_sha256: Option<&Sha256Digest>,
) {
    let reports = std::iter::once(&image.signatures).chain(&image.attestations);
    for report in reports {
        let what = match &report.predicate_type {
            None => "signature".to_string(),
            Some(t) => format!("attestation {t}"),
        };
        for layer in &report.layers {
            match layer.verdict {
                LayerVerdict::Verified => {
                    let mut detail = vec![format!("layer {}", layer.index)];
                    match &report.predicate_type {
                        None => detail.extend(
                            image
                                .identities
                                .get(&layer.index)
                                .map(|identity| format!("identity {identity}")),
                        ),
                        Some(_) => detail.extend(
                            recipe_sha256
                                .filter(|_| layer.checks.iter().any(|c| c.name == "recipe-digest"))
                                .map(|r| format!("recipe {r}")),
                        ),
                    }
                    outln!(
                        "✓ {prefix}{what} {} by key {key} ({})",
                        report.subject,
                        detail.join(", ")
                    );
                }
                LayerVerdict::Rejected
                    if report.verified
                        && layer.failed_check().map(|c| c.name) == Some("signature") =>
                {
                    // Signed by someone else (several parties may sign one image); when
                    // nothing verifies, the reason is shown below as a failure.
                    outln!(
                        "· {prefix}{what} layer {} ({}): not signed by key {key}",
                        layer.index,
                        layer.digest
                    );
                }
                LayerVerdict::Rejected => {
                    let failed = layer.failed_check();
                    outln!(
                        "✗ {prefix}{what} layer {} ({}): {}: {}",
                        layer.index,
                        layer.digest,
                        failed.map_or("check", |c| c.name),
                        failed.and_then(|c| c.detail.as_deref()).unwrap_or("failed")
                    );
                }
                LayerVerdict::Skipped => {}
            }
        }
        if let Some(missing) = report.missing().filter(|_| !report.verified) {
            outln!("✗ {prefix}{missing} for {}", report.subject);
        }
    }
}
