use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use super::args::{FailOn, SbomArgs, SbomFormat, ScanArgs};
use super::printer::{outln, status};
use crate::deb::lockfile::Lock;
use crate::image::{self, ImageRef};
use crate::recipe::Platform;
use crate::scan::import::{ImageIdentity, ReportFormat};
use crate::scan::report::ImportedFrom;
use crate::scan::sbom;
use crate::scan::vuln::{self, ScanTimes, Scanner};
use crate::scan::{self, InstalledPackage, Report, Severity};

fn open(
    target: &str,
    platform: &Option<Platform>,
    cache: &Option<std::path::PathBuf>,
    registry: &super::args::RegistryArgs,
) -> Result<image::OpenedImage> {
    let reference: ImageRef = target.parse()?;
    let platform = platform.clone().unwrap_or_else(Platform::host);
    let cache = super::args::CacheArgs {
        cache: cache.clone(),
        offline: false,
        mirror: Vec::new(),
        max_download_size: crate::fetch::DEFAULT_MAX_DOWNLOAD_SIZE,
    };
    let ctx = super::copy::transports(&cache, registry)?;
    image::open_image_with(&reference, Some(&platform), &ctx)
        .with_context(|| format!("failed to open {target}"))
}

pub fn run_sbom(args: SbomArgs) -> Result<ExitCode> {
    let img = open(&args.reference, &args.platform, &args.cache, &args.registry)?;
    let name = args.name.as_deref().unwrap_or(&args.reference);
    let format = match args.format {
        SbomFormat::SpdxJson => sbom::SbomFormat::SpdxJson,
        SbomFormat::CyclonedxJson => sbom::SbomFormat::CyclonedxJson,
    };
    let doc = sbom::image_sbom(&img, name, format)?;
    let mut bytes = serde_json::to_vec_pretty(&doc)?;
    bytes.push(b'\n');
    match &args.output {
        Some(path) => fs_err::write(path, &bytes)?,
        None => outln!("{}", String::from_utf8_lossy(&bytes).trim_end()),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: ScanArgs) -> Result<ExitCode> {
    // Load the key first: a wrong password fails before the scan.
    let key = match &args.key {
        Some(path) => Some(super::key::load_signing_key(path)?),
        None => None,
    };
    if args.attest && is_lock(&args.target) {
        bail!(
            "--attest needs an image: {} is a lock, which has no digest to attach a scan to",
            args.target
        );
    }
    let started = scan_clock()?;
    let ignore = match &args.ignore {
        Some(path) => Some(scan::IgnoreList::read(path, today())?),
        None => None,
    };
    let (report, scanner, reported_time) = match imported_report(&args) {
        Some((format, file)) => scan_imported(&args, format, file, ignore.as_ref())?,
        None => scan_osv(&args, ignore.as_ref())?,
    };
    let times = match reported_time {
        Some(at) => ScanTimes {
            started: at,
            finished: at,
        },
        None => ScanTimes {
            started,
            finished: scan_clock()?,
        },
    };
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
    if let Some(key) = &key {
        attest_scan(&args, &report, &scanner, times, key)
            .with_context(|| format!("failed to attest the scan of {}", args.target))?;
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `--from-trivy` / `--from-grype`, when given.
fn imported_report(args: &ScanArgs) -> Option<(ReportFormat, &Path)> {
    match (&args.from_trivy, &args.from_grype) {
        (Some(file), _) => Some((ReportFormat::Trivy, file)),
        (_, Some(file)) => Some((ReportFormat::Grype, file)),
        _ => None,
    }
}

/// kiln's own match of the packages against the OSV records of `--db`.
fn scan_osv(
    args: &ScanArgs,
    ignore: Option<&scan::IgnoreList>,
) -> Result<(Report, Scanner, Option<i64>)> {
    let db_path = args.db.as_deref().context("--db is required")?;
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
    let db = scan::Database::open(db_path, &mut warnings)?;
    let (findings, facts) = scan::match_packages(&db, &ecosystem, &packages, &mut warnings);
    // The attestation names the database by its content; hashing it costs a read of every
    // record, so only when attesting.
    let db_version = if args.attest {
        db.digest().to_string()
    } else {
        String::new()
    };
    let scanner = Scanner::kiln(db_path.display().to_string(), db_version);
    let report = Report::new(
        args.target.clone(),
        digest,
        ecosystem,
        packages.len(),
        facts,
        findings,
        ignore,
        warnings,
        args.fail_on.map(severity),
    );
    Ok((report, scanner, None))
}

/// The findings of a Trivy or Grype report about the image, checked to be about its digest.
/// The scan time is the report's own, when it says one.
fn scan_imported(
    args: &ScanArgs,
    format: ReportFormat,
    file: &Path,
    ignore: Option<&scan::IgnoreList>,
) -> Result<(Report, Scanner, Option<i64>)> {
    if is_lock(&args.target) {
        bail!(
            "--from-{} takes an image reference, not the lock {}",
            format.as_str(),
            args.target
        );
    }
    let img = open(&args.target, &args.platform, &args.cache, &args.registry)?;
    let found = scan::read_image_packages(&img)?;
    let config = crate::digest::Sha256Digest::of(&img.config_bytes);
    let id = ImageIdentity {
        manifest: &img.manifest_digest,
        resolved: &img.resolved_digest,
        config: &config,
    };
    let imported = scan::import::read_report(format, file, id, &found.packages)?;
    let ecosystem = args
        .ecosystem
        .clone()
        .or_else(|| found.ecosystem())
        .unwrap_or_default();
    let mut report = Report::new(
        args.target.clone(),
        Some(img.manifest_digest.to_string()),
        ecosystem,
        found.packages.len(),
        scan::osv::DatabaseFacts::default(),
        imported.findings,
        ignore,
        imported.warnings,
        args.fail_on.map(severity),
    );
    report.imported = Some(ImportedFrom {
        format,
        file: file.display().to_string(),
        scanner: imported.scanner.uri.clone(),
        created: imported.created.clone(),
    });
    let time = imported
        .created
        .as_deref()
        .and_then(crate::policy::parse_rfc3339);
    Ok((report, imported.scanner, time))
}

/// Unix seconds for the scan's times: `SOURCE_DATE_EPOCH` when set (reproducible runs), else
/// the clock. The only wall-clock value kiln writes: a scan attestation is about an event.
fn scan_clock() -> Result<i64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|s| *s >= 0)
            .with_context(|| {
                format!(
                    "SOURCE_DATE_EPOCH must be a non-negative integer (Unix seconds), not `{v}`"
                )
            }),
        Err(_) => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)),
    }
}

/// The parameters that decide a scan's result, for the attestation's `invocation`.
fn invocation(args: &ScanArgs) -> Vec<String> {
    let mut out = Vec::new();
    let mut flag = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            out.push(format!("--{name}={v}"));
        }
    };
    flag("db", args.db.as_ref().map(|p| p.display().to_string()));
    flag(
        "from-trivy",
        args.from_trivy.as_ref().map(|p| p.display().to_string()),
    );
    flag(
        "from-grype",
        args.from_grype.as_ref().map(|p| p.display().to_string()),
    );
    flag("ecosystem", args.ecosystem.clone());
    flag("platform", args.platform.as_ref().map(Platform::to_string));
    flag(
        "fail-on",
        args.fail_on.map(|f| severity(f).as_str().to_string()),
    );
    flag(
        "ignore",
        args.ignore.as_ref().map(|p| p.display().to_string()),
    );
    out
}

/// `--attest`: the report as a cosign `vuln` attestation of the image scanned, appended to its
/// `.att` tag (in the layout or the registry), as `kiln attest --type vuln` would.
fn attest_scan(
    args: &ScanArgs,
    report: &Report,
    scanner: &Scanner,
    times: ScanTimes,
    key: &crate::attest::SigningKey,
) -> Result<()> {
    use crate::attest::cosign::AttachmentKind;
    use crate::attest::{attestation_layer, PredicateType};
    let Some(digest) = report.digest.as_deref() else {
        bail!("a lock has no digest to attach a scan to");
    };
    let digest: crate::digest::Sha256Digest = digest.parse()?;
    let client = super::sign::client(&args.registry)?;
    let target = super::sign::resolve(&args.target, &client)?;
    let predicate = vuln::predicate(report, scanner, &invocation(args), times);
    let layer = attestation_layer(
        key,
        &target.subject_name,
        &digest,
        &PredicateType::Vuln,
        predicate,
    );
    let appended = target
        .store
        .append(&digest, AttachmentKind::Attestation, vec![layer])?;
    status(&format!(
        "attested the scan of {} ({digest}) as {}, finished {}: {} holds {} attestation(s)",
        args.target,
        PredicateType::Vuln,
        crate::build::rfc3339(times.finished),
        appended.tag,
        appended.total
    ));
    Ok(())
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
