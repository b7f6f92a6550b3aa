use super::printer::outln;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::args::InspectArgs;
use super::printer::human_size;
use crate::image::{self, layout::digest_of, ImageRef};
use crate::recipe::Platform;

pub fn run(args: InspectArgs) -> Result<ExitCode> {
    let reference: ImageRef = args.reference.parse()?;
    let platform = args
        .platform
        .clone()
        .unwrap_or_else(|| Platform::host().to_string());
    let cache = super::args::CacheArgs {
        cache: args.cache.clone(),
        offline: false,
        mirror: Vec::new(),
        max_download_size: crate::fetch::DEFAULT_MAX_DOWNLOAD_SIZE,
    };
    let ctx = super::copy::transports(&cache, &args.registry)?;
    let img = image::open_image_with(&reference, &platform, &ctx)
        .with_context(|| format!("failed to inspect {}", args.reference))?;
    let report = describe(&img)?;
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
    let mut referrers = Vec::new();
    for r in &img.referrers {
        let d = digest_of(r)?;
        let manifest: Value = serde_json::from_slice(&img.read_blob(&d)?)?;
        referrers.push(json!({
            "digest": d.to_string(),
            "artifactType": r.artifact_type().as_ref().map(|a| a.to_string()),
            "predicateType": manifest.pointer("/annotations/in-toto.io~1predicate-type"),
        }));
    }
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
}
