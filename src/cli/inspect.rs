use super::printer::outln;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::args::InspectArgs;
use super::printer::human_size;
use crate::attest::attached::attached_statements;
use crate::attest::cosign::{AttachmentKind, PREDICATE_TYPE_ANNOTATION};
use crate::attest::simple_signing::parse_payload;
use crate::attest::store::{AttachmentStore, StoredAttachment};
use crate::attest::PredicateType;
use crate::image::referrer::read_referrers;
use crate::image::{self, ImageRef, Layout};
use crate::recipe::Platform;
use crate::registry::Client;

pub fn run(args: InspectArgs) -> Result<ExitCode> {
    let reference: ImageRef = args.reference.parse()?;
    let platform = args.platform.clone().unwrap_or_else(Platform::host);
    let cache = super::args::CacheArgs {
        cache: args.cache.clone(),
        offline: false,
        mirror: Vec::new(),
        max_download_size: crate::fetch::DEFAULT_MAX_DOWNLOAD_SIZE,
    };
    let ctx = super::copy::transports(&cache, &args.registry)?;
    let img = image::open_image_with(&reference, Some(&platform), &ctx)
        .with_context(|| format!("failed to inspect {}", args.reference))?;
    let client = super::sign::client(&args.registry)?;
    let attachments = read_attachments(&reference, &img, &client)
        .with_context(|| format!("failed to read the attachments of {}", args.reference))?;
    if let Some(wanted) = &args.attestation {
        let wanted: PredicateType = wanted.parse()?;
        let statements = attached_statements(&img, &attachments, wanted.uri())?;
        if statements.is_empty() {
            anyhow::bail!(
                "{} has no attestation of type {wanted} (neither in its `.att` tag nor among its referrers)",
                args.reference
            );
        }
        for statement in statements {
            outln!("{}", serde_json::to_string_pretty(&statement)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut report = describe(&img)?;
    report["attachments"] = Value::Array(attachments.iter().map(attachment_json).collect());
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// The inspect report, also the `--json` schema (version 1).
pub fn describe(img: &image::OpenedImage) -> Result<Value> {
    let diff_ids = img.diff_ids();
    let layers: Vec<Value> = img
        .manifest
        .layers()
        .iter()
        .enumerate()
        .map(|(i, l)| {
            json!({
                "digest": l.digest().to_string(),
                "size": l.size(),
                "mediaType": l.media_type().to_string(),
                "diffId": diff_ids.get(i),
            })
        })
        .collect();
    let referrers: Vec<Value> = read_referrers(img)?
        .into_iter()
        .map(|r| {
            json!({
                "digest": r.digest.to_string(),
                "artifactType": r.artifact_type,
                "predicateType": r.predicate_type,
            })
        })
        .collect();
    let config: Value = serde_json::from_slice(&img.config_bytes)?;
    Ok(json!({
        "schemaVersion": 1,
        "reference": img.reference,
        "digest": img.manifest_digest.to_string(),
        "resolvedDigest": img.resolved_digest.to_string(),
        "mediaType": img.manifest_media_type,
        "platform": img.platform(),
        "created": config.get("created"),
        "config": config.get("config").cloned().unwrap_or(json!({})),
        "configDigest": img.manifest.config().digest().to_string(),
        "layers": layers,
        "referrers": referrers,
    }))
}

/// The cosign-style `.sig` and `.att` tags of the image (in a layout or a registry; archives
/// have none), those that exist.
fn read_attachments(
    reference: &ImageRef,
    img: &image::OpenedImage,
    client: &Client,
) -> Result<Vec<(AttachmentKind, StoredAttachment)>> {
    let store = match reference {
        ImageRef::Oci { path, .. } => AttachmentStore::Layout(Layout::open(path)?),
        ImageRef::Docker(parsed) => AttachmentStore::Registry {
            client,
            repository: parsed.repository().clone(),
        },
        ImageRef::OciArchive { .. } | ImageRef::DockerArchive { .. } => return Ok(Vec::new()),
    };
    let mut out = Vec::new();
    for kind in [AttachmentKind::Signature, AttachmentKind::Attestation] {
        if let Some(stored) = store.read(&img.resolved_digest, kind)? {
            out.push((kind, stored));
        }
    }
    Ok(out)
}

/// One attachment tag for the report: each layer with the identity it signs or the predicate
/// type it attests.
fn attachment_json((kind, stored): &(AttachmentKind, StoredAttachment)) -> Value {
    let layers: Vec<Value> = stored
        .layers
        .iter()
        .map(|(desc, blob)| match kind {
            AttachmentKind::Signature => json!({
                "digest": desc.digest.to_string(),
                "identity": parse_payload(blob).ok().map(|p| p.docker_reference),
            }),
            _ => json!({
                "digest": desc.digest.to_string(),
                "predicateType": desc.annotations.get(PREDICATE_TYPE_ANNOTATION),
            }),
        })
        .collect();
    let kind = match kind {
        AttachmentKind::Signature => "signatures",
        AttachmentKind::Attestation => "attestations",
    };
    json!({"kind": kind, "tag": stored.tag, "layers": layers})
}

fn print_text(r: &Value) {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    outln!("Reference: {}", s(&r["reference"]));
    outln!("Digest:    {}", s(&r["digest"]));
    if r["resolvedDigest"] != r["digest"] {
        outln!("Index:     {}", s(&r["resolvedDigest"]));
    }
    outln!("Platform:  {}", s(&r["platform"]));
    outln!("Created:   {}", s(&r["created"]));
    let cfg = &r["config"];
    for (label, key) in [
        ("Entrypoint", "Entrypoint"),
        ("Cmd", "Cmd"),
        ("Env", "Env"),
        ("User", "User"),
        ("Workdir", "WorkingDir"),
        ("Ports", "ExposedPorts"),
        ("Labels", "Labels"),
    ] {
        if let Some(v) = cfg.get(key) {
            outln!("{label:<10} {v}");
        }
    }
    let layers = r["layers"].as_array().cloned().unwrap_or_default();
    outln!("Layers:    {}", layers.len());
    for l in &layers {
        outln!(
            "  {}  {:>10}  diff_id {}",
            s(&l["digest"]),
            human_size(l["size"].as_u64().unwrap_or(0)),
            s(&l["diffId"])
        );
    }
    let refs = r["referrers"].as_array().cloned().unwrap_or_default();
    outln!("Referrers: {}", refs.len());
    for x in &refs {
        outln!(
            "  {}  {}  {}",
            s(&x["digest"]),
            s(&x["artifactType"]),
            s(&x["predicateType"])
        );
    }
    for a in r["attachments"].as_array().cloned().unwrap_or_default() {
        let layers = a["layers"].as_array().cloned().unwrap_or_default();
        let label = if a["kind"] == "signatures" {
            "Signatures:"
        } else {
            "Attestations:"
        };
        outln!("{label} {}  {} layer(s)", s(&a["tag"]), layers.len());
        for l in &layers {
            let what = if a["kind"] == "signatures" {
                format!("identity {}", s(&l["identity"]))
            } else {
                s(&l["predicateType"])
            };
            outln!("  {}  {what}", s(&l["digest"]));
        }
    }
}
