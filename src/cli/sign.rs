//! `kiln sign`, `kiln attest`, `kiln verify`, and the signing step of `kiln build --sign-key`.
//!
//! Thin glue: resolve the reference to a digest ([`target`]), build the layer with the format
//! layer (`attest`), append it to the attachment tag ([`AttachmentStore`]); for verification,
//! read the tags back and print the [`VerificationReport`]s.

use super::printer::outln;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;

use super::args::{AttestArgs, RegistryArgs, SignArgs, VerifyArgs};
use super::key::{load_signing_key, load_verifying_key};
use super::printer::status;
use crate::attest::cosign::{AttachmentKind, PREDICATE_TYPE_ANNOTATION};
use crate::attest::simple_signing::{parse_payload, repository_of};
use crate::attest::store::AttachmentStore;
use crate::attest::target::{self, Target};
use crate::attest::verify::{verify_attestations, verify_signatures, LayerVerdict};
use crate::attest::{
    attestation_layer, keys, signature_layer, AttestationPolicy, IdentityPolicy, PredicateType,
    SigningKey, VerificationReport,
};
use crate::digest::Sha256Digest;
use crate::image::{ImageRef, Layout};
use crate::registry::{Client, ClientOptions};

/// The largest predicate file `kiln attest` reads.
const MAX_PREDICATE_BYTES: u64 = 64 * 1024 * 1024;

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
    file.take(MAX_PREDICATE_BYTES + 1).read_to_end(&mut bytes)?;
    anyhow::ensure!(
        bytes.len() as u64 <= MAX_PREDICATE_BYTES,
        "the predicate {} is larger than {MAX_PREDICATE_BYTES} bytes",
        path.display()
    );
    serde_json::from_slice(&bytes)
        .with_context(|| format!("failed to parse the predicate {} as JSON", path.display()))
}

/// The names `build --sign-key` and `rebuild --sign-key` sign under.
#[derive(Debug)]
pub struct SigningNames {
    /// The simple-signing `docker-reference`.
    pub identity: String,
    /// The in-toto subject name.
    pub subject: String,
}

impl SigningNames {
    /// `--identity` when given (its repository is the subject); else the `--push`
    /// destination's names, as `kiln sign docker://…` would write them (`HOST/REPO:TAG`, and
    /// `HOST/REPO`); else the image's name in the layout.
    pub fn new(identity: Option<&str>, push: Option<&str>, image_name: &str) -> Result<Self> {
        if let Some(identity) = identity {
            return Ok(Self {
                identity: identity.to_string(),
                subject: repository_of(identity).to_string(),
            });
        }
        if let Some(push) = push {
            let parsed: crate::registry::Reference = push.parse().with_context(|| {
                format!("--push takes a docker://HOST/REPO[:TAG] reference, not `{push}`")
            })?;
            return Ok(Self {
                identity: target::docker_reference(&parsed),
                subject: parsed.repository().to_string(),
            });
        }
        Ok(Self {
            identity: image_name.to_string(),
            subject: image_name.to_string(),
        })
    }
}

/// `kiln build --sign-key`: signs the image `digest` in the layout at `dir` as `names` and
/// attests its provenance (`statement`, the in-toto statement the build wrote) there, then
/// each of `more` (predicate type, predicate).
pub fn sign_built_layout(
    dir: &Path,
    names: &SigningNames,
    digest: &Sha256Digest,
    statement: &[u8],
    more: Vec<(PredicateType, serde_json::Value)>,
    key: &SigningKey,
) -> Result<()> {
    let statement: serde_json::Value =
        serde_json::from_slice(statement).context("failed to read the build's provenance")?;
    let predicate = statement
        .get("predicate")
        .cloned()
        .context("the build's provenance has no predicate")?;
    let store = AttachmentStore::Layout(Layout::open(dir)?);
    store.append(
        digest,
        AttachmentKind::Signature,
        vec![signature_layer(key, &names.identity, digest)],
    )?;
    let attestations = std::iter::once((PredicateType::SlsaProvenance1, predicate))
        .chain(more)
        .map(|(t, p)| attestation_layer(key, &names.subject, digest, &t, p))
        .collect::<Vec<_>>();
    let types: Vec<String> = attestations
        .iter()
        .filter_map(|l| l.descriptor.annotations.get(PREDICATE_TYPE_ANNOTATION))
        .cloned()
        .collect();
    let attested = types.join(", ");
    store.append(digest, AttachmentKind::Attestation, attestations)?;
    status(&format!(
        "signed {digest} as {} and attested {attested} with key {}",
        names.identity,
        keys::key_id(key.verifying_key())
    ));
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

/// The `--json` report of `kiln verify` (schema version 1).
#[derive(Serialize)]
struct VerifyOutput<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    reference: &'a str,
    digest: Sha256Digest,
    /// sha256 of the public key's SPKI DER, in hex.
    #[serde(rename = "keyId")]
    key_id: String,
    verified: bool,
    signatures: VerificationReport,
    attestations: Vec<VerificationReport>,
}

fn identity_policy(identity: Option<&str>) -> IdentityPolicy {
    match identity {
        None => IdentityPolicy::Any,
        Some(r) if repository_of(r) == r => IdentityPolicy::Repository(r.to_string()),
        Some(r) => IdentityPolicy::Exact(r.to_string()),
    }
}

pub fn run_verify(args: VerifyArgs) -> Result<ExitCode> {
    if args.policy.is_some() {
        return super::promote::run_verify_policy(&args);
    }
    let key = load_verifying_key(args.key.as_ref().context("--key is required")?)?;
    let key_id = keys::key_id(&key);
    let mut types = args
        .attestations
        .iter()
        .map(|t| t.parse::<PredicateType>())
        .collect::<Result<Vec<_>, _>>()?;
    let recipe_sha256 = match &args.recipe {
        Some(path) => Some(Sha256Digest::of(&fs_err::read(path)?)),
        None => None,
    };
    if recipe_sha256.is_some() && !types.contains(&PredicateType::SlsaProvenance1) {
        types.push(PredicateType::SlsaProvenance1);
    }
    types.sort();
    types.dedup();
    let client = client(&args.registry)?;
    let target = resolve(&args.reference, &client)?;
    let read = |kind| {
        target
            .store
            .read(&target.digest, kind)
            .with_context(|| format!("failed to read the attachments of {}", args.reference))
            .map(|stored| stored.map(|s| s.layers).unwrap_or_default())
    };

    let signature_layers = read(AttachmentKind::Signature)?;
    let signatures = verify_signatures(
        &signature_layers,
        &key,
        &target.digest,
        &identity_policy(args.identity.as_deref()),
    );
    let mut attestations = Vec::new();
    if !types.is_empty() {
        let layers = read(AttachmentKind::Attestation)?;
        for predicate_type in types {
            let policy = AttestationPolicy {
                recipe_sha256: recipe_sha256
                    .filter(|_| predicate_type == PredicateType::SlsaProvenance1),
                predicate_type,
            };
            attestations.push(verify_attestations(&layers, &key, &target.digest, &policy));
        }
    }
    let verified = signatures.verified && attestations.iter().all(|a| a.verified);
    let output = VerifyOutput {
        schema_version: 1,
        reference: &args.reference,
        digest: target.digest,
        key_id,
        verified,
        signatures,
        attestations,
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&output)?);
    } else {
        print_report(&output, &signature_layers, recipe_sha256);
    }
    Ok(if verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Human lines: one `✓` per verified layer, one `✗` per rejected one, then the verdict.
fn print_report(
    out: &VerifyOutput<'_>,
    signature_layers: &[(crate::attest::cosign::Descriptor, Vec<u8>)],
    recipe: Option<Sha256Digest>,
) {
    let key = &out.key_id;
    let reports = std::iter::once(&out.signatures).chain(&out.attestations);
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
                            signature_layers
                                .get(layer.index)
                                .and_then(|(_, blob)| parse_payload(blob).ok())
                                .map(|c| format!("identity {}", c.docker_reference)),
                        ),
                        Some(_) => detail.extend(
                            recipe
                                .filter(|_| layer.checks.iter().any(|c| c.name == "recipe-digest"))
                                .map(|r| format!("recipe {r}")),
                        ),
                    }
                    outln!(
                        "✓ {what} {} by key {key} ({})",
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
                        "· {what} layer {} ({}): not signed by key {key}",
                        layer.index,
                        layer.digest
                    );
                }
                LayerVerdict::Rejected => {
                    let failed = layer.failed_check();
                    outln!(
                        "✗ {what} layer {} ({}): {}: {}",
                        layer.index,
                        layer.digest,
                        failed.map_or("check", |c| c.name),
                        failed.and_then(|c| c.detail.as_deref()).unwrap_or("failed")
                    );
                }
                LayerVerdict::Skipped => {}
            }
        }
        if !report.verified {
            for failure in report.failures() {
                if failure.starts_with("no ") {
                    outln!("✗ {failure} for {}", report.subject);
                }
            }
        }
    }
    if out.verified {
        outln!("verified {} ({})", out.reference, out.digest);
    } else {
        outln!("NOT verified: {} ({})", out.reference, out.digest);
    }
}

#[cfg(test)]
mod tests {
    use super::SigningNames;

    /// `build --sign-key` and `rebuild --sign-key`: which names are signed.
    #[test]
    fn signing_names_follow_identity_then_push_then_image_name() {
        let cases = [
            (
                Some("registry.example/team/app:1"),
                Some("docker://127.0.0.1:5000/other:2"),
                ("registry.example/team/app:1", "registry.example/team/app"),
            ),
            (
                None,
                Some("docker://127.0.0.1:5000/team/app:v1"),
                ("127.0.0.1:5000/team/app:v1", "127.0.0.1:5000/team/app"),
            ),
            (
                None,
                Some("docker://127.0.0.1:5000/team/app"),
                ("127.0.0.1:5000/team/app:latest", "127.0.0.1:5000/team/app"),
            ),
            (None, None, ("hello", "hello")),
        ];
        for (identity, push, (want_identity, want_subject)) in cases {
            let names = SigningNames::new(identity, push, "hello").unwrap();
            assert_eq!(names.identity, want_identity, "{identity:?} {push:?}");
            assert_eq!(names.subject, want_subject, "{identity:?} {push:?}");
        }
        let err = SigningNames::new(None, Some("oci:out/x"), "hello").unwrap_err();
        assert!(err.to_string().contains("docker://"), "{err}");
    }
}
