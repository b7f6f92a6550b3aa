//! Reading a Trivy or Grype JSON report of an image, made elsewhere (where a network and their
//! databases exist), into kiln's findings, so the same gate, output and attestation apply.
//!
//! A report is only accepted for the image it is about: its manifest digest (Grype's
//! `source.target.manifestDigest`, either tool's repo digests `NAME@sha256:…`) must be the
//! image's manifest digest (or the index digest the reference resolved through), or its image
//! ID (both tools: the config digest) must be the image's config digest. Anything else is
//! refused, so a clean report of another image never passes the gate.
//!
//! Formats, as the tools emit them:
//! - Trivy (`trivy image -f json`, `SchemaVersion` 2): `Metadata.{ImageID, RepoDigests,
//!   ImageConfig}`, `Results[].Vulnerabilities[]{VulnerabilityID, VendorIDs, PkgName,
//!   InstalledVersion, FixedVersion, Severity, Title}`, optional `CreatedAt` and
//!   `Trivy.Version`.
//! - Grype (`grype -o json`): `source{type: image, target{imageID, manifestDigest,
//!   repoDigests}}`, `matches[]{vulnerability{id, severity, fix{versions, state}, description},
//!   relatedVulnerabilities[]{id}, artifact{name, version, type, upstreams[]{name}}}`,
//!   `descriptor{name, version, timestamp, db}`.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::osv::{Finding, Status};
use super::vuln::Scanner;
use super::{InstalledPackage, Severity};
use crate::digest::Sha256Digest;

/// The largest report kiln reads.
pub const MAX_REPORT: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    Trivy,
    Grype,
}

impl ReportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trivy => "trivy",
            Self::Grype => "grype",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("failed to read the {format} report {path}")]
    Read {
        format: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the {format} report {path} is larger than {MAX_REPORT} bytes")]
    TooLarge { format: &'static str, path: PathBuf },
    #[error("the {format} report {path} is not valid: {reason}")]
    Parse {
        format: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "the {format} report {path} is about another image: it names {named}, the image is \
         manifest {manifest} (config {config})"
    )]
    OtherImage {
        format: &'static str,
        path: PathBuf,
        named: String,
        manifest: String,
        config: String,
    },
}

impl ImportError {
    /// What the user can do about it, when kiln knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::OtherImage { format, .. } => Some(format!(
                "scan this image by digest with {format} and pass that report"
            )),
            _ => None,
        }
    }
}

/// The digests that identify the scanned image.
#[derive(Debug, Clone, Copy)]
pub struct ImageIdentity<'a> {
    pub manifest: &'a Sha256Digest,
    /// The index digest the reference resolved through (the manifest digest otherwise).
    pub resolved: &'a Sha256Digest,
    pub config: &'a Sha256Digest,
}

/// What a report said, as kiln's findings.
#[derive(Debug, Clone)]
pub struct Imported {
    pub scanner: Scanner,
    pub findings: Vec<Finding>,
    /// When the report says it was made (Trivy `CreatedAt`, Grype `descriptor.timestamp`).
    pub created: Option<String>,
    /// Findings whose package or version differs from the image's dpkg records.
    pub warnings: Vec<String>,
}

/// Reads `path` as a `format` report about the image `id`; `packages` (the image's dpkg
/// records) give each finding its architecture and source package, and are checked against
/// the versions the report names.
pub fn read_report(
    format: ReportFormat,
    path: &Path,
    id: ImageIdentity<'_>,
    packages: &[InstalledPackage],
) -> Result<Imported, ImportError> {
    use std::io::Read as _;
    let name = format.as_str();
    let read_err = |source| ImportError::Read {
        format: name,
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    fs_err::File::open(path)
        .map_err(read_err)?
        .take(MAX_REPORT + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_REPORT {
        return Err(ImportError::TooLarge {
            format: name,
            path: path.to_path_buf(),
        });
    }
    let parse_err = |reason: String| ImportError::Parse {
        format: name,
        path: path.to_path_buf(),
        reason,
    };
    let doc: Value = serde_json::from_slice(&bytes).map_err(|e| parse_err(e.to_string()))?;
    let shown = path.display().to_string();
    let parsed = match format {
        ReportFormat::Trivy => parse_trivy(&doc, &shown),
        ReportFormat::Grype => parse_grype(&doc, &shown),
    }
    .map_err(parse_err)?;
    if !parsed.is_about(id) {
        return Err(ImportError::OtherImage {
            format: name,
            path: path.to_path_buf(),
            named: parsed.named(),
            manifest: id.manifest.to_string(),
            config: id.config.to_string(),
        });
    }
    let mut warnings = Vec::new();
    let mut findings = Vec::new();
    for mut f in parsed.findings {
        let installed: Vec<&InstalledPackage> =
            packages.iter().filter(|p| p.name == f.package).collect();
        match installed.iter().find(|p| p.version == f.installed_version) {
            Some(p) => {
                f.architecture = p.architecture.clone();
                f.source = p.source.clone();
                f.location = p.location.clone();
            }
            None if installed.is_empty() => warnings.push(format!(
                "{shown}: {} names package {} {}, which the image's dpkg records do not list",
                f.id, f.package, f.installed_version
            )),
            None => warnings.push(format!(
                "{shown}: {} names package {} {}, the image has version {}",
                f.id, f.package, f.installed_version, installed[0].version
            )),
        }
        findings.push(f);
    }
    findings.sort_by(|a: &Finding, b: &Finding| {
        (&a.package, &a.id, &a.installed_version).cmp(&(&b.package, &b.id, &b.installed_version))
    });
    findings.dedup();
    Ok(Imported {
        scanner: parsed.scanner,
        findings,
        created: parsed.created,
        warnings,
    })
}

/// A report read, before the identity check.
struct Parsed {
    scanner: Scanner,
    created: Option<String>,
    manifest_digests: Vec<String>,
    image_id: Option<String>,
    findings: Vec<Finding>,
}

impl Parsed {
    fn is_about(&self, id: ImageIdentity<'_>) -> bool {
        let ours = [id.manifest.to_string(), id.resolved.to_string()];
        self.manifest_digests.iter().any(|d| ours.contains(d))
            || self.image_id.as_deref() == Some(id.config.to_string().as_str())
    }

    fn named(&self) -> String {
        let mut names: Vec<String> = self
            .manifest_digests
            .iter()
            .map(|d| format!("manifest {d}"))
            .collect();
        if let Some(i) = &self.image_id {
            names.push(format!("image ID {i}"));
        }
        if names.is_empty() {
            "no image digest".into()
        } else {
            names.join(", ")
        }
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The digest of a `NAME@sha256:…` repo digest.
fn repo_digest(s: &str) -> Option<String> {
    s.rsplit_once('@').map(|(_, d)| d.to_string())
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn finding(id: String, package: &str, version: &str, record: &str) -> Finding {
    Finding {
        id,
        aliases: Vec::new(),
        package: package.to_string(),
        architecture: String::new(),
        source: package.to_string(),
        installed_version: version.to_string(),
        fixed_version: None,
        severity: Severity::Unknown,
        score: None,
        summary: None,
        status: Status::Affected,
        note: None,
        location: String::new(),
        record: record.to_string(),
    }
}

fn parse_trivy(doc: &Value, shown: &str) -> Result<Parsed, String> {
    match doc.get("SchemaVersion").and_then(Value::as_u64) {
        Some(2) => {}
        Some(v) => return Err(format!("SchemaVersion {v}, kiln reads version 2")),
        None => return Err("no SchemaVersion: not a Trivy JSON report (trivy -f json)".into()),
    }
    let mut findings = Vec::new();
    let results = doc.get("Results").and_then(Value::as_array);
    for (r, result) in results.into_iter().flatten().enumerate() {
        let vulns = result.get("Vulnerabilities").and_then(Value::as_array);
        for (i, v) in vulns.into_iter().flatten().enumerate() {
            let field = |name: &str| {
                str_at(v, &format!("/{name}"))
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| format!("Results[{r}].Vulnerabilities[{i}] has no {name}"))
            };
            let mut f = finding(
                field("VulnerabilityID")?.to_string(),
                field("PkgName")?,
                field("InstalledVersion")?,
                shown,
            );
            f.aliases = strings(v.get("VendorIDs"));
            f.fixed_version = str_at(v, "/FixedVersion")
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            f.severity = Severity::from_name(str_at(v, "/Severity").unwrap_or("UNKNOWN"));
            f.summary = str_at(v, "/Title").map(str::to_string);
            f.note = str_at(v, "/Status").map(|s| format!("trivy status: {s}"));
            findings.push(f);
        }
    }
    let mut manifest_digests: Vec<String> = strings(doc.pointer("/Metadata/RepoDigests"))
        .iter()
        .filter_map(|d| repo_digest(d))
        .collect();
    manifest_digests.sort();
    manifest_digests.dedup();
    let version = str_at(doc, "/Trivy/Version").unwrap_or("").to_string();
    Ok(Parsed {
        scanner: Scanner {
            uri: format!("pkg:github/aquasecurity/trivy@{version}"),
            version,
            db_uri: String::new(),
            db_version: String::new(),
        },
        created: str_at(doc, "/CreatedAt").map(str::to_string),
        manifest_digests,
        image_id: str_at(doc, "/Metadata/ImageID").map(str::to_string),
        findings,
    })
}

fn parse_grype(doc: &Value, shown: &str) -> Result<Parsed, String> {
    let Some(matches) = doc.get("matches").and_then(Value::as_array) else {
        return Err("no `matches` array: not a Grype JSON report (grype -o json)".into());
    };
    match str_at(doc, "/source/type") {
        Some("image") => {}
        Some(other) => return Err(format!("source type `{other}`, kiln reads image reports")),
        None => return Err("no source.type".into()),
    }
    let mut findings = Vec::new();
    for (i, m) in matches.iter().enumerate() {
        let field = |pointer: &str| {
            str_at(m, pointer)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("matches[{i}] has no {}", &pointer[1..].replace('/', ".")))
        };
        let mut f = finding(
            field("/vulnerability/id")?.to_string(),
            field("/artifact/name")?,
            field("/artifact/version")?,
            shown,
        );
        let mut aliases: Vec<String> = m
            .get("relatedVulnerabilities")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| str_at(r, "/id"))
            .filter(|id| *id != f.id)
            .map(str::to_string)
            .collect();
        aliases.sort();
        aliases.dedup();
        f.aliases = aliases;
        f.fixed_version = strings(m.pointer("/vulnerability/fix/versions"))
            .into_iter()
            .next();
        f.severity = Severity::from_name(str_at(m, "/vulnerability/severity").unwrap_or(""));
        f.summary = str_at(m, "/vulnerability/description").map(str::to_string);
        f.note = str_at(m, "/vulnerability/fix/state").map(|s| format!("grype fix state: {s}"));
        findings.push(f);
    }
    let mut manifest_digests: Vec<String> = strings(doc.pointer("/source/target/repoDigests"))
        .iter()
        .filter_map(|d| repo_digest(d))
        .chain(str_at(doc, "/source/target/manifestDigest").map(str::to_string))
        .collect();
    manifest_digests.sort();
    manifest_digests.dedup();
    let version = str_at(doc, "/descriptor/version").unwrap_or("").to_string();
    let db = |p: &str| {
        str_at(doc, &format!("/descriptor/db{p}"))
            .or_else(|| str_at(doc, &format!("/descriptor/db/status{p}")))
            .unwrap_or("")
            .to_string()
    };
    Ok(Parsed {
        scanner: Scanner {
            uri: format!("pkg:github/anchore/grype@{version}"),
            version,
            db_uri: db("/location"),
            db_version: match db("/checksum") {
                c if c.is_empty() => db("/built"),
                c => c,
            },
        },
        created: str_at(doc, "/descriptor/timestamp").map(str::to_string),
        manifest_digests,
        image_id: str_at(doc, "/source/target/imageID").map(str::to_string),
        findings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(s: &str) -> Sha256Digest {
        Sha256Digest::of(s.as_bytes())
    }

    fn write(dir: &tempfile::TempDir, doc: &Value) -> PathBuf {
        let p = dir.path().join("report.json");
        std::fs::write(&p, serde_json::to_vec(doc).unwrap()).unwrap();
        p
    }

    fn pkg(name: &str, version: &str, source: &str) -> InstalledPackage {
        InstalledPackage {
            name: name.into(),
            version: version.into(),
            architecture: "amd64".into(),
            source: source.into(),
            source_version: version.into(),
            location: format!("/var/lib/dpkg/status.d/{name}"),
        }
    }

    #[test]
    fn trivy_report_about_this_image_is_read_and_others_are_refused() {
        let (m, c) = (d("manifest"), d("config"));
        let id = ImageIdentity {
            manifest: &m,
            resolved: &m,
            config: &c,
        };
        let dir = tempfile::tempdir().unwrap();
        let report = |image_id: &Sha256Digest, repo: &Sha256Digest| {
            json!({
                "SchemaVersion": 2,
                "CreatedAt": "2026-12-01T10:00:00.123456789Z",
                "ArtifactName": "registry.example/app:v1",
                "ArtifactType": "container_image",
                "Metadata": {
                    "OS": {"Family": "debian", "Name": "12.8"},
                    "ImageID": image_id.to_string(),
                    "RepoDigests": [format!("registry.example/app@{repo}")],
                },
                "Results": [{
                    "Target": "registry.example/app:v1 (debian 12.8)",
                    "Class": "os-pkgs",
                    "Type": "debian",
                    "Vulnerabilities": [{
                        "VulnerabilityID": "CVE-2024-0001",
                        "VendorIDs": ["DSA-5000-1"],
                        "PkgName": "libfoo1",
                        "InstalledVersion": "1.0-1",
                        "FixedVersion": "1.0-2",
                        "Status": "fixed",
                        "Severity": "CRITICAL",
                        "Title": "foo: overflow",
                    }],
                }],
            })
        };
        let packages = [pkg("libfoo1", "1.0-1", "foo")];
        for (image_id, repo) in [(&c, &d("other")), (&d("other"), &m)] {
            let path = write(&dir, &report(image_id, repo));
            let got = read_report(ReportFormat::Trivy, &path, id, &packages).unwrap();
            assert_eq!(got.findings.len(), 1);
            let f = &got.findings[0];
            assert_eq!(
                (f.id.as_str(), f.source.as_str(), f.severity),
                ("CVE-2024-0001", "foo", Severity::Critical)
            );
            assert_eq!(f.aliases, ["DSA-5000-1"]);
            assert_eq!(f.fixed_version.as_deref(), Some("1.0-2"));
            assert!(got.warnings.is_empty(), "{:?}", got.warnings);
        }
        let path = write(&dir, &report(&d("x"), &d("y")));
        let err = read_report(ReportFormat::Trivy, &path, id, &packages).unwrap_err();
        assert!(matches!(err, ImportError::OtherImage { .. }), "{err}");
        let path = write(&dir, &json!({"SchemaVersion": 1, "Results": []}));
        let err = read_report(ReportFormat::Trivy, &path, id, &packages).unwrap_err();
        assert!(err.to_string().contains("not valid"), "{err}");
    }

    #[test]
    fn grype_report_maps_fix_related_ids_and_checks_versions() {
        let (m, c) = (d("manifest"), d("config"));
        let id = ImageIdentity {
            manifest: &m,
            resolved: &m,
            config: &c,
        };
        let dir = tempfile::tempdir().unwrap();
        let doc = json!({
            "matches": [{
                "vulnerability": {
                    "id": "CVE-2024-0002", "namespace": "debian:distro:debian:12",
                    "severity": "Negligible", "fix": {"versions": [], "state": "not-fixed"},
                },
                "relatedVulnerabilities": [{"id": "CVE-2024-0002", "namespace": "nvd:cpe"}],
                "artifact": {"name": "libbar", "version": "2.0-1", "type": "deb",
                             "upstreams": [{"name": "bar"}]},
            }, {
                "vulnerability": {
                    "id": "GHSA-xxxx", "severity": "High",
                    "fix": {"versions": ["2.0-3"], "state": "fixed"},
                },
                "relatedVulnerabilities": [{"id": "CVE-2024-0003"}],
                "artifact": {"name": "libbar", "version": "2.0-0", "type": "deb"},
            }],
            "source": {"type": "image", "target": {
                "userInput": "registry.example/app:v1",
                "imageID": d("another config").to_string(),
                "manifestDigest": m.to_string(),
                "repoDigests": [],
            }},
            "descriptor": {"name": "grype", "version": "0.86.1",
                           "timestamp": "2026-12-01T10:00:00.5+01:00",
                           "db": {"built": "2026-12-01T01:30:00Z", "schemaVersion": 5}},
        });
        let path = write(&dir, &doc);
        let packages = [pkg("libbar", "2.0-1", "bar")];
        let got = read_report(ReportFormat::Grype, &path, id, &packages).unwrap();
        assert_eq!(got.scanner.uri, "pkg:github/anchore/grype@0.86.1");
        assert_eq!(got.scanner.db_version, "2026-12-01T01:30:00Z");
        let ids: Vec<(&str, Severity, Option<&str>, &[String])> = got
            .findings
            .iter()
            .map(|f| {
                (
                    f.id.as_str(),
                    f.severity,
                    f.fixed_version.as_deref(),
                    f.aliases.as_slice(),
                )
            })
            .collect();
        assert_eq!(
            ids,
            [
                ("CVE-2024-0002", Severity::Low, None, &[][..]),
                (
                    "GHSA-xxxx",
                    Severity::High,
                    Some("2.0-3"),
                    &["CVE-2024-0003".to_string()][..]
                ),
            ]
        );
        assert_eq!(got.warnings.len(), 1, "{:?}", got.warnings);
        assert!(got.warnings[0].contains("the image has version 2.0-1"));
    }
}
