use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use super::args::{FailOn, SbomArgs, SbomFormat, ScanArgs};
use super::printer::{outln, status};
use crate::attest::provenance::SLSA_PROVENANCE_V1;
use crate::deb::lockfile::Lock;
use crate::image::layout::digest_of;
use crate::image::{self, ImageRef};
use crate::recipe::Platform;
use crate::scan::sbom::{self, Input, SbomSubject};
use crate::scan::{self, InstalledPackage, Report, Severity};
use serde_json::Value;

fn open(
    target: &str,
    platform: &Option<String>,
    cache: &Option<std::path::PathBuf>,
    registry: &super::args::RegistryArgs,
) -> Result<image::OpenedImage> {
    let reference: ImageRef = target.parse()?;
    let platform = platform
        .clone()
        .unwrap_or_else(|| Platform::host().to_string());
    let cache = super::args::CacheArgs {
        cache: cache.clone(),
        offline: false,
        mirror: Vec::new(),
        max_download_size: crate::fetch::DEFAULT_MAX_DOWNLOAD_SIZE,
    };
    let ctx = super::copy::transports(&cache, registry)?;
    image::open_image_with(&reference, &platform, &ctx)
        .with_context(|| format!("failed to open {target}"))
}

pub fn run_sbom(args: SbomArgs) -> Result<ExitCode> {
    let img = open(&args.reference, &args.platform, &args.cache, &args.registry)?;
    let packages = scan::read_image_packages(&img)?;
    let config: Value = serde_json::from_slice(&img.config_bytes)?;
    let inputs = provenance_inputs(&img)?;
    let subject = SbomSubject {
        reference: &args.reference,
        digest: img.manifest_digest,
        created: config.get("created").and_then(Value::as_str),
        packages: &packages,
        inputs: &inputs,
    };
    let doc = match args.format {
        SbomFormat::SpdxJson => sbom::spdx(&subject),
        SbomFormat::CyclonedxJson => sbom::cyclonedx(&subject),
    };
    let mut bytes = serde_json::to_vec_pretty(&doc)?;
    bytes.push(b'\n');
    match &args.output {
        Some(path) => fs_err::write(path, &bytes)?,
        None => outln!("{}", String::from_utf8_lossy(&bytes).trim_end()),
    }
    Ok(ExitCode::SUCCESS)
}

/// The `resolvedDependencies` of kiln's SLSA provenance referrer, when the image has one.
fn provenance_inputs(img: &image::OpenedImage) -> Result<Vec<Input>> {
    let mut out = Vec::new();
    for r in &img.referrers {
        let d = digest_of(r)?;
        let manifest: Value = serde_json::from_slice(&img.read_blob(&d)?)?;
        if manifest.pointer("/annotations/in-toto.io~1predicate-type")
            != Some(&Value::from(SLSA_PROVENANCE_V1))
        {
            continue;
        }
        let Some(layer) = manifest.pointer("/layers/0/digest").and_then(Value::as_str) else {
            continue;
        };
        let statement: Value = serde_json::from_slice(&img.read_blob(&layer.parse()?)?)?;
        let deps = statement
            .pointer("/predicate/buildDefinition/resolvedDependencies")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for d in deps {
            let s = |p: &str| {
                d.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            out.push(Input {
                name: s("/name"),
                uri: s("/uri"),
                sha256: s("/digest/sha256"),
            });
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

pub fn run(args: ScanArgs) -> Result<ExitCode> {
    let mut warnings = Vec::new();
    let (packages, ecosystem, digest) = if is_lock(&args.target) {
        let (packages, eco) = lock_packages(Path::new(&args.target))?;
        (packages, args.ecosystem.clone().or(eco), None)
    } else {
        let img = open(&args.target, &args.platform, &args.cache, &args.registry)?;
        let found = scan::read_image_packages(&img)?;
        let eco = args.ecosystem.clone().or_else(|| found.ecosystem());
        (found.packages, eco, Some(img.manifest_digest.to_string()))
    };
    let Some(ecosystem) = ecosystem else {
        return Err(scan::ScanError::NoEcosystem {
            what: args.target.clone(),
        }
        .into());
    };
    let ignore = match &args.ignore {
        Some(path) => Some(scan::IgnoreList::read(path, today())?),
        None => None,
    };
    let db = scan::Database::open(&args.db, &mut warnings)?;
    let (findings, facts) = scan::match_packages(&db, &ecosystem, &packages, &mut warnings);
    let report = Report::new(
        args.target.clone(),
        digest,
        ecosystem,
        packages.len(),
        facts,
        findings,
        ignore.as_ref(),
        warnings,
        args.fail_on.map(severity),
    );
    for w in &report.warnings {
        status(&format!("warning: {w}"));
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else if args.sarif {
        outln!("{}", serde_json::to_string_pretty(&report.sarif())?);
    } else {
        print_text(&report);
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn severity(f: FailOn) -> Severity {
    match f {
        FailOn::Unknown => Severity::Unknown,
        FailOn::Low => Severity::Low,
        FailOn::Medium => Severity::Medium,
        FailOn::High => Severity::High,
        FailOn::Critical => Severity::Critical,
    }
}

fn is_lock(target: &str) -> bool {
    target.ends_with(".lock") && Path::new(target).is_file()
}

/// The packages a lock will install, and the OSV ecosystem of its suite when kiln knows it.
fn lock_packages(path: &Path) -> Result<(Vec<InstalledPackage>, Option<String>)> {
    let Some(lock) = Lock::read(path)? else {
        bail!("{} does not exist", path.display());
    };
    let location = path.display().to_string();
    let mut packages: Vec<InstalledPackage> = lock
        .sets
        .iter()
        .flat_map(|s| &s.packages)
        .map(|p| InstalledPackage {
            name: p.name.clone(),
            version: p.version.clone(),
            architecture: p.architecture.clone(),
            source: p.source.clone(),
            source_version: p.source_version.clone(),
            location: location.clone(),
        })
        .collect();
    packages.sort_by(|a, b| (&a.name, &a.architecture).cmp(&(&b.name, &b.architecture)));
    packages.dedup();
    let releases: std::collections::BTreeSet<Option<&str>> = lock
        .repositories
        .values()
        .map(|r| debian_release(&r.suite))
        .collect();
    let eco = match releases.into_iter().collect::<Vec<_>>()[..] {
        [Some(v)] => Some(format!("Debian:{v}")),
        _ => None,
    };
    Ok((packages, eco))
}

/// Debian's release number for a codename suite (`bookworm-updates` is `12` too).
fn debian_release(suite: &str) -> Option<&'static str> {
    let codename = suite.split(['-', '/']).next()?;
    Some(match codename {
        "buster" => "10",
        "bullseye" => "11",
        "bookworm" => "12",
        "trixie" => "13",
        "forky" => "14",
        _ => return None,
    })
}

/// Today (UTC) as days since 1970-01-01: ignore entries expire by the calendar.
fn today() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (secs / 86_400) as i64
}

fn print_text(r: &Report) {
    outln!(
        "{} ({}): {} packages, {} OSV records",
        r.target,
        r.ecosystem,
        r.packages,
        r.database.records
    );
    for f in &r.findings {
        let ids = if f.aliases.is_empty() {
            f.id.clone()
        } else {
            format!("{} ({})", f.id, f.aliases.join(", "))
        };
        let sev = match f.status {
            scan::Status::Affected => f.severity.as_str(),
            scan::Status::Unevaluated => "unevaluated",
        };
        outln!(
            "{:<11} {} {} (source {}) fixed: {}  {}",
            sev,
            f.package,
            f.installed_version,
            f.source,
            f.fixed_version.as_deref().unwrap_or("no fix"),
            ids
        );
    }
    for i in &r.ignored {
        outln!(
            "ignored     {} {} {} until {}: {}",
            i.finding.package,
            i.finding.id,
            i.finding.installed_version,
            i.entry.expires,
            i.entry.reason
        );
    }
    let counts: Vec<String> = Severity::ALL
        .iter()
        .map(|s| s.as_str())
        .chain(["unevaluated"])
        .map(|k| format!("{k} {}", r.summary.get(k).copied().unwrap_or(0)))
        .collect();
    outln!(
        "{} findings ({}), {} ignored, {} warnings",
        r.findings.len(),
        counts.join(", "),
        r.ignored.len(),
        r.warnings.len()
    );
    if let Some(level) = r.fail_on {
        outln!(
            "gate --fail-on {}: {}",
            level.as_str(),
            if r.passed { "passed" } else { "failed" }
        );
    }
}
