//! `kiln approve`, `kiln promote`, `kiln verify --policy` and `kiln list`: the review gate.
//!
//! Thin glue around [`crate::policy`]: read what is attached to the image, evaluate, print the
//! table; `promote` writes to the destination only after every rule passed.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::json;

use super::args::{ApproveArgs, ListArgs, PromoteArgs, VerifyArgs};
use super::key::{load_signing_key, load_verifying_key};
use super::printer::{outln, status};
use super::sign::{client, resolve};
use crate::attest::cosign::AttachmentKind;
use crate::attest::store::AttachmentStore;
use crate::attest::target::Target;
use crate::attest::{attestation_layer, keys, PredicateType};
use crate::digest::Sha256Digest;
use crate::image::layout::looks_like_attachment;
use crate::image::{self, ImageRef};
use crate::media::ALL_MANIFEST_TYPES;
use crate::policy::{
    approval_predicate, evaluate, promotions, Evaluation, Evidence, Policy, PolicyKey, Promotion,
    RuleResult, APPROVAL_PREDICATE_TYPE, PROMOTION_PREDICATE_TYPE,
};
use crate::recipe::Platform;
use crate::registry::Reference;

/// Unix seconds now: approvals and promotions are attestations, dated by the wall clock.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub fn run_approve(args: ApproveArgs) -> Result<ExitCode> {
    let key = load_signing_key(&args.key)?;
    let client = client(&args.registry)?;
    let target = resolve(&args.reference, &client)?;
    let time = crate::build::rfc3339(now());
    let predicate = approval_predicate(
        key.verifying_key(),
        args.comment.as_deref(),
        &target.digest,
        &time,
    );
    let predicate_type = PredicateType::Uri(APPROVAL_PREDICATE_TYPE.to_string());
    let layer = attestation_layer(
        &key,
        &target.subject_name,
        &target.digest,
        &predicate_type,
        predicate,
    );
    let appended = target
        .store
        .append(&target.digest, AttachmentKind::Attestation, vec![layer])
        .with_context(|| format!("failed to approve {}", args.reference))?;
    status(&format!(
        "approved {} ({}) as reviewer key {}: {} holds {} attestation(s)",
        args.reference,
        target.digest,
        keys::key_id(key.verifying_key()),
        appended.tag,
        appended.total
    ));
    outln!("{}", target.digest);
    Ok(ExitCode::SUCCESS)
}

/// Reads the `.sig` and `.att` layers of the target and evaluates `policy` on them.
fn evaluate_target(
    policy: &Policy,
    target: &Target<'_>,
    promoted_by: Option<&PolicyKey>,
) -> Result<Evaluation> {
    let read = |kind| {
        target
            .store
            .read(&target.digest, kind)
            .with_context(|| format!("failed to read the attachments of {}", target.reference))
            .map(|stored| stored.map(|s| s.layers).unwrap_or_default())
    };
    let signatures = read(AttachmentKind::Signature)?;
    let attestations = read(AttachmentKind::Attestation)?;
    let evidence = Evidence {
        subject: target.digest,
        signatures: &signatures,
        attestations: &attestations,
    };
    Ok(evaluate(policy, &evidence, now(), promoted_by))
}

/// The `--json` report of `promote` and `verify --policy` (schema version 1).
#[derive(Serialize)]
struct PolicyOutput<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    reference: &'a str,
    policy: String,
    #[serde(flatten)]
    evaluation: &'a Evaluation,
    #[serde(skip_serializing_if = "Option::is_none")]
    promoted: Option<String>,
}

fn short_digest(d: &Sha256Digest) -> String {
    format!("sha256:{}", &d.hex()[..12])
}

/// The table: rule, result, evidence, why.
fn print_table(rules: &[RuleResult]) {
    let width = rules.iter().map(|r| r.rule.len()).max().unwrap_or(4).max(4);
    let evidence: Vec<String> = rules
        .iter()
        .map(|r| match r.evidence.as_slice() {
            [] => "-".to_string(),
            [one] => short_digest(one),
            [first, rest @ ..] => format!("{} +{}", short_digest(first), rest.len()),
        })
        .collect();
    let ewidth = evidence.iter().map(String::len).max().unwrap_or(8).max(8);
    outln!("{:width$}  RESULT  {:ewidth$}  WHY", "RULE", "EVIDENCE");
    for (r, e) in rules.iter().zip(&evidence) {
        let result = if r.passed { "pass" } else { "FAIL" };
        outln!("{:width$}  {result:6}  {e:ewidth$}  {}", r.rule, r.why);
    }
}

fn report(
    json: bool,
    reference: &str,
    policy: &Policy,
    evaluation: &Evaluation,
    promoted: Option<String>,
) -> Result<()> {
    if json {
        let output = PolicyOutput {
            schema_version: 1,
            reference,
            policy: policy.path.display().to_string(),
            evaluation,
            promoted,
        };
        outln!("{}", serde_json::to_string_pretty(&output)?);
    } else {
        print_table(&evaluation.rules);
    }
    Ok(())
}

fn failed_rules(evaluation: &Evaluation) -> String {
    let names: Vec<&str> = evaluation
        .rules
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.rule)
        .collect();
    names.join(", ")
}

/// `REF` pinned to the digest it resolved to, for the copy.
fn pinned_source(target: &Target<'_>) -> Result<ImageRef> {
    Ok(match &target.store {
        AttachmentStore::Registry { repository, .. } => {
            Reference::new(repository.clone(), None, Some(target.digest))?.into()
        }
        AttachmentStore::Layout(layout) => ImageRef::Oci {
            path: layout.root().to_path_buf(),
            tag: None,
            digest: Some(target.digest),
        },
    })
}

pub fn run_promote(args: PromoteArgs) -> Result<ExitCode> {
    let policy = Policy::load(&args.policy)?;
    let destination: Reference = args
        .to
        .parse()
        .with_context(|| format!("--to takes docker://HOST/REPO[:TAG], not `{}`", args.to))?;
    anyhow::ensure!(
        destination.digest().is_none(),
        "--to takes docker://HOST/REPO[:TAG]: the digest is the promoted image's"
    );
    let key = match (&args.key, args.dry_run) {
        (Some(path), _) => Some(load_signing_key(path)?),
        (None, true) => None,
        (None, false) => anyhow::bail!("--key is required to sign the promotion (or --dry-run)"),
    };
    let client = client(&args.registry)?;
    let target = resolve(&args.reference, &client)?;
    let evaluation = evaluate_target(&policy, &target, None)?;
    if !evaluation.passed || args.dry_run {
        report(args.json, &args.reference, &policy, &evaluation, None)?;
        if !evaluation.passed {
            status(&format!(
                "refused {} ({}): {} failed; nothing was written to {}",
                args.reference,
                target.digest,
                failed_rules(&evaluation),
                args.to
            ));
            return Ok(ExitCode::from(1));
        }
        status(&format!(
            "dry run: {} ({}) passes every rule",
            args.reference, target.digest
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let key = key.expect("a key unless --dry-run");

    let ctx = super::copy::transports(&args.cache, &args.registry)?;
    let source = pinned_source(&target)?;
    let img = image::open_image_with(&source, Some(&Platform::host()), &ctx)
        .with_context(|| format!("failed to open {}", args.reference))?;
    anyhow::ensure!(
        img.manifest_digest == target.digest,
        "{} is an index ({}): promote copies single images only, name a platform's manifest \
         by digest",
        args.reference,
        target.digest
    );
    let dest = ImageRef::from(destination.clone());
    let copied = image::copy_image(&img, &dest, &ctx, 0)
        .with_context(|| format!("failed to copy {} to {}", args.reference, args.to))?;
    super::copy::report(&args.to, &copied);

    let predicate = json!({
        "policy": {
            "uri": args.policy.file_name().map(|n| n.to_string_lossy().into_owned()),
            "sha256": policy.sha256.hex(),
        },
        "image": {
            "digest": target.digest.to_string(),
            "source": args.reference,
            "destination": args.to,
        },
        "rules": evaluation.rules,
        "promoter": {"keyId": keys::key_id(key.verifying_key())},
        "time": crate::build::rfc3339(now()),
    });
    let subject = destination.repository().to_string();
    let layer = attestation_layer(
        &key,
        &subject,
        &target.digest,
        &PredicateType::Uri(PROMOTION_PREDICATE_TYPE.to_string()),
        predicate,
    );
    let store = AttachmentStore::Registry {
        client: &client,
        repository: destination.repository().clone(),
    };
    store
        .append(&target.digest, AttachmentKind::Attestation, vec![layer])
        .with_context(|| format!("failed to attest the promotion at {}", args.to))?;
    let promoted = format!("docker://{subject}@{}", target.digest);
    report(
        args.json,
        &args.reference,
        &policy,
        &evaluation,
        Some(promoted.clone()),
    )?;
    status(&format!(
        "promoted {} to {} ({promoted}) under policy sha256:{}, signed by key {}",
        args.reference,
        args.to,
        policy.sha256.hex(),
        keys::key_id(key.verifying_key())
    ));
    if !args.json {
        outln!("{}", target.digest);
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiln verify REF --policy FILE [--promoted-by PUB]`.
pub fn run_verify_policy(args: &VerifyArgs) -> Result<ExitCode> {
    let path = args.policy.as_ref().expect("called with --policy");
    let policy = Policy::load(path)?;
    let promoter = args
        .promoted_by
        .as_deref()
        .map(load_policy_key)
        .transpose()?;
    let client = client(&args.registry)?;
    let target = resolve(&args.reference, &client)?;
    let evaluation = evaluate_target(&policy, &target, promoter.as_ref())?;
    report(args.json, &args.reference, &policy, &evaluation, None)?;
    if evaluation.passed {
        if !args.json {
            outln!("verified {} ({})", args.reference, target.digest);
        }
        Ok(ExitCode::SUCCESS)
    } else {
        if !args.json {
            outln!(
                "NOT verified: {} ({}): {} failed",
                args.reference,
                target.digest,
                failed_rules(&evaluation)
            );
        }
        Ok(ExitCode::from(1))
    }
}

fn load_policy_key(path: &std::path::Path) -> Result<PolicyKey> {
    let key = load_verifying_key(path)?;
    Ok(PolicyKey {
        id: keys::key_id(&key),
        key,
    })
}

/// One row of `kiln list`.
#[derive(Serialize)]
struct ListedTag {
    tag: String,
    digest: Sha256Digest,
    promotions: Vec<Promotion>,
}

pub fn run_list(args: ListArgs) -> Result<ExitCode> {
    let reference: Reference = args
        .repository
        .parse()
        .with_context(|| format!("list takes docker://HOST/REPO, not `{}`", args.repository))?;
    let promoters = args
        .promoted_by
        .iter()
        .map(|p| load_policy_key(p))
        .collect::<Result<Vec<_>>>()?;
    let client = client(&args.registry)?;
    let repository = reference.repository().clone();
    let tags = client
        .list_tags(&repository)
        .with_context(|| format!("failed to list the tags of {repository}"))?;
    let store = AttachmentStore::Registry {
        client: &client,
        repository: repository.clone(),
    };
    let mut rows = Vec::new();
    for tag in tags.into_iter().filter(|t| !looks_like_attachment(t)) {
        let digest = client
            .get_manifest(&repository, &tag, ALL_MANIFEST_TYPES)
            .with_context(|| format!("failed to read {repository}:{tag}"))?
            .digest;
        let attestations = store
            .read(&digest, AttachmentKind::Attestation)
            .with_context(|| format!("failed to read the attestations of {repository}:{tag}"))?
            .map(|s| s.layers)
            .unwrap_or_default();
        rows.push(ListedTag {
            promotions: promotions(&attestations, &digest, &promoters),
            tag,
            digest,
        });
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    for row in &rows {
        let status = if row.promotions.is_empty() {
            "not promoted".to_string()
        } else {
            let each: Vec<String> = row
                .promotions
                .iter()
                .map(|p| {
                    format!(
                        "promoted by key {} under policy sha256:{} at {}",
                        &p.key_id[..12],
                        p.policy_sha256.as_deref().unwrap_or("?"),
                        p.time.as_deref().unwrap_or("?")
                    )
                })
                .collect();
            each.join("; ")
        };
        outln!("{}\t{}\t{status}", row.tag, row.digest);
    }
    Ok(ExitCode::SUCCESS)
}
