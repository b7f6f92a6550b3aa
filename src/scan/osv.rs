//! OSV records (ossf.github.io/osv-schema) and matching them against installed packages.
//!
//! A database is a directory (searched recursively for `*.json`) or a zip of such files, as
//! osv.dev publishes per ecosystem (`Debian/all.zip`). Debian records name the *source*
//! package, so an installed package matches by its source name and source version. A record
//! is read only up to [`MAX_RECORD`] bytes. What cannot be read (malformed JSON, a record over
//! the cap) is a warning naming the file; what cannot be evaluated for an installed package (a
//! version dpkg refuses, a range type other than `ECOSYSTEM`) is an `unevaluated` finding, so
//! the gate never passes silently.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cvss::base_score_v3;
use super::dpkg::InstalledPackage;
use super::report::Severity;
use super::{Result, ScanError};
use crate::deb::version::Version;

/// OSV records larger than this are refused (osv.dev's largest Debian records are ~100 KiB).
pub const MAX_RECORD: u64 = 16 * 1024 * 1024;

#[derive(Debug, Deserialize)]
struct Record {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    withdrawn: Option<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    affected: Vec<Affected>,
    #[serde(default)]
    severity: Vec<SeverityEntry>,
    #[serde(default)]
    database_specific: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Affected {
    package: Option<PackageRef>,
    #[serde(default)]
    ranges: Vec<Range>,
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default)]
    severity: Vec<SeverityEntry>,
    #[serde(default)]
    ecosystem_specific: Option<Value>,
    #[serde(default)]
    database_specific: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct PackageRef {
    ecosystem: String,
    name: String,
}

#[derive(Debug, Deserialize)]
struct Range {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
struct SeverityEntry {
    #[serde(rename = "type")]
    kind: String,
    score: String,
}

/// Whether an installed package is affected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Affected,
    /// The record names the package but kiln could not decide (see `note`).
    Unevaluated,
}

/// One record that applies to one installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub id: String,
    pub aliases: Vec<String>,
    pub package: String,
    pub architecture: String,
    pub source: String,
    pub installed_version: String,
    /// The first fixed version above the installed one; `None` is "no fix".
    pub fixed_version: Option<String>,
    pub severity: Severity,
    /// The CVSS v3 base score it comes from, when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The dpkg record (or lock) the package comes from.
    pub location: String,
    /// The OSV file (relative to the database) the record comes from.
    pub record: String,
}

/// A loaded database: the records that name an ecosystem package, parsed lazily per file.
#[derive(Debug, Default)]
pub struct Database {
    /// `(file name, bytes)` of every `*.json`, sorted by name.
    files: Vec<(String, Vec<u8>)>,
}

impl Database {
    /// Reads a directory (recursively) or a zip.
    pub fn open(path: &Path, warnings: &mut Vec<String>) -> Result<Database> {
        let db_err = |source| ScanError::Database {
            path: path.to_path_buf(),
            source,
        };
        let meta = fs_err::metadata(path).map_err(db_err)?;
        let mut files = Vec::new();
        if meta.is_dir() {
            let mut stack = vec![PathBuf::new()];
            while let Some(rel) = stack.pop() {
                let mut entries: Vec<_> = fs_err::read_dir(path.join(&rel))
                    .map_err(db_err)?
                    .collect::<std::io::Result<_>>()
                    .map_err(db_err)?;
                entries.sort_by_key(|e| e.file_name());
                for e in entries {
                    let name = rel.join(e.file_name());
                    let kind = e.file_type().map_err(db_err)?;
                    if kind.is_dir() {
                        stack.push(name);
                    } else if kind.is_file() && name.extension().is_some_and(|x| x == "json") {
                        let shown = name.to_string_lossy().into_owned();
                        let file = fs_err::File::open(e.path()).map_err(db_err)?;
                        if let Some(bytes) = read_capped(file, &shown, warnings).map_err(db_err)? {
                            files.push((shown, bytes));
                        }
                    }
                }
            }
        } else {
            let file = fs_err::File::open(path).map_err(db_err)?;
            let zip_err = |source| ScanError::Zip {
                path: path.to_path_buf(),
                source,
            };
            let mut archive = zip::ZipArchive::new(file).map_err(zip_err)?;
            for i in 0..archive.len() {
                let entry = archive.by_index(i).map_err(zip_err)?;
                if !entry.is_file() || !entry.name().ends_with(".json") {
                    continue;
                }
                let shown = entry.name().to_string();
                if let Some(bytes) = read_capped(entry, &shown, warnings).map_err(db_err)? {
                    files.push((shown, bytes));
                }
            }
        }
        if files.is_empty() {
            return Err(ScanError::EmptyDatabase {
                path: path.to_path_buf(),
            });
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Database { files })
    }

    /// The content digest of the records read: sha256 over each file's name, a NUL, its
    /// length in decimal, a NUL and its bytes, in name order. The same records give the same
    /// digest whether they come from a directory or a zip; the `vuln` attestation names the
    /// database by it.
    pub fn digest(&self) -> crate::digest::Sha256Digest {
        let mut hasher = crate::digest::Hasher::new();
        for (name, bytes) in &self.files {
            hasher.update(name.as_bytes());
            hasher.update(format!("\0{}\0", bytes.len()).as_bytes());
            hasher.update(bytes);
        }
        hasher.finish()
    }
}

/// Reads at most [`MAX_RECORD`] bytes; a longer record is a warning and `None`.
fn read_capped(
    reader: impl Read,
    name: &str,
    warnings: &mut Vec<String>,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    reader.take(MAX_RECORD + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_RECORD {
        warnings.push(format!(
            "{name}: skipped, the record is larger than {MAX_RECORD} bytes"
        ));
        return Ok(None);
    }
    Ok(Some(bytes))
}

/// Counts of what a match read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseFacts {
    pub files: usize,
    pub records: usize,
    pub withdrawn: usize,
    pub skipped: usize,
}

/// Matches `packages` (of OSV `ecosystem`, e.g. `Debian:12`) against every record. Returns the
/// findings, sorted, and pushes a warning for every record that could not be read.
pub fn match_packages(
    db: &Database,
    ecosystem: &str,
    packages: &[InstalledPackage],
    warnings: &mut Vec<String>,
) -> (Vec<Finding>, DatabaseFacts) {
    let mut by_source: BTreeMap<&str, Vec<&InstalledPackage>> = BTreeMap::new();
    for p in packages {
        by_source.entry(p.source.as_str()).or_default().push(p);
    }
    let mut facts = DatabaseFacts {
        files: db.files.len(),
        ..DatabaseFacts::default()
    };
    let mut findings = BTreeSet::new();
    for (name, bytes) in &db.files {
        let record: Record = match serde_json::from_slice(bytes) {
            Ok(r) => r,
            Err(e) => {
                warnings.push(format!("{name}: skipped, not a valid OSV record: {e}"));
                facts.skipped += 1;
                continue;
            }
        };
        facts.records += 1;
        if record.withdrawn.is_some() {
            facts.withdrawn += 1;
            continue;
        }
        for affected in &record.affected {
            let Some(pkg) = &affected.package else {
                continue;
            };
            if pkg.ecosystem != ecosystem {
                continue;
            }
            let Some(installed) = by_source.get(pkg.name.as_str()) else {
                continue;
            };
            for p in installed {
                let (status, fixed, note) = match evaluate(affected, &p.source_version) {
                    Ok(Some(fixed)) => (Status::Affected, fixed, None),
                    Ok(None) => continue,
                    Err(note) => {
                        warnings.push(format!(
                            "{name}: {} cannot be evaluated for {}: {note}",
                            record.id, p.name
                        ));
                        (Status::Unevaluated, None, Some(note))
                    }
                };
                let (severity, score) = severity(&record, affected);
                findings.insert(FindingKey(Finding {
                    id: record.id.clone(),
                    aliases: record.aliases.clone(),
                    package: p.name.clone(),
                    architecture: p.architecture.clone(),
                    source: p.source.clone(),
                    installed_version: p.version.clone(),
                    fixed_version: fixed,
                    severity,
                    score,
                    summary: record.summary.clone(),
                    status,
                    note,
                    location: p.location.clone(),
                    record: name.clone(),
                }));
            }
        }
    }
    (findings.into_iter().map(|k| k.0).collect(), facts)
}

/// Orders findings by package, then id (then the rest, for a total order).
#[derive(PartialEq, Eq)]
struct FindingKey(Finding);

impl FindingKey {
    fn key(&self) -> (&str, &str, &str, &str, &str) {
        let f = &self.0;
        (
            &f.package,
            &f.architecture,
            &f.id,
            &f.record,
            &f.installed_version,
        )
    }
}

impl Ord for FindingKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for FindingKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// `Ok(Some(fixed))` when `installed` is affected (`fixed` the first fix above it, if any),
/// `Ok(None)` when not, `Err(why)` when the entry cannot be evaluated.
fn evaluate(affected: &Affected, installed: &str) -> Result<Option<Option<String>>, String> {
    let v = Version::parse(installed).map_err(|e| e.to_string())?;
    let mut problems = Vec::new();
    for listed in &affected.versions {
        match Version::parse(listed) {
            Ok(l) if l == v => return Ok(Some(first_fix(affected, &v))),
            Ok(_) => {}
            Err(e) => problems.push(format!("in `versions`: {e}")),
        }
    }
    for range in &affected.ranges {
        if range.kind != "ECOSYSTEM" {
            problems.push(format!("range type `{}` is not supported", range.kind));
            continue;
        }
        match in_range(range, &v) {
            Ok(true) => return Ok(Some(first_fix(affected, &v))),
            Ok(false) => {}
            Err(e) => problems.push(e),
        }
    }
    match problems.is_empty() {
        true => Ok(None),
        false => Err(problems.join("; ")),
    }
}

/// One range event: `introduced` ("0" is before everything), `fixed`, `last_affected`, `limit`.
enum Event {
    Introduced(Option<Version>),
    Fixed(Version),
    LastAffected(Version),
    Limit(Version),
}

impl Event {
    fn version(&self) -> Option<&Version> {
        match self {
            Event::Introduced(v) => v.as_ref(),
            Event::Fixed(v) | Event::LastAffected(v) | Event::Limit(v) => Some(v),
        }
    }
}

fn events(range: &Range) -> Result<Vec<Event>, String> {
    let mut out = Vec::new();
    for e in &range.events {
        for (k, text) in e {
            let parse = || Version::parse(text).map_err(|err| format!("event `{k}`: {err}"));
            out.push(match k.as_str() {
                "introduced" if text == "0" => Event::Introduced(None),
                "introduced" => Event::Introduced(Some(parse()?)),
                "fixed" => Event::Fixed(parse()?),
                "last_affected" => Event::LastAffected(parse()?),
                "limit" if text == "*" => continue,
                "limit" => Event::Limit(parse()?),
                other => return Err(format!("unknown range event `{other}`")),
            });
        }
    }
    // OSV's evaluation: events sorted by version, "0" first.
    out.sort_by(|a, b| match (a.version(), b.version()) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => x.cmp(y),
    });
    Ok(out)
}

/// OSV's algorithm for an `ECOSYSTEM` range.
fn in_range(range: &Range, v: &Version) -> Result<bool, String> {
    let mut affected = false;
    for e in events(range)? {
        match e {
            Event::Introduced(None) => affected = true,
            Event::Introduced(Some(i)) if *v >= i => affected = true,
            Event::Fixed(f) if *v >= f => affected = false,
            Event::LastAffected(l) if *v > l => affected = false,
            Event::Limit(l) if *v >= l => affected = false,
            _ => {}
        }
    }
    Ok(affected)
}

/// The smallest `fixed` event above `v` in any range of the entry.
fn first_fix(affected: &Affected, v: &Version) -> Option<String> {
    affected
        .ranges
        .iter()
        .filter(|r| r.kind == "ECOSYSTEM")
        .filter_map(|r| events(r).ok())
        .flatten()
        .filter_map(|e| match e {
            Event::Fixed(f) if f > *v => Some(f),
            _ => None,
        })
        .min()
        .map(|f| f.as_str().to_string())
}

/// The highest CVSS v3 score of the record or entry, else `database_specific.severity`, else
/// Debian's `urgency`.
fn severity(record: &Record, affected: &Affected) -> (Severity, Option<String>) {
    let best = record
        .severity
        .iter()
        .chain(&affected.severity)
        .filter(|s| s.kind == "CVSS_V3")
        .filter_map(|s| base_score_v3(&s.score))
        .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))));
    if let Some(score) = best {
        return (Severity::from_score(score), Some(format!("{score:.1}")));
    }
    let named = [
        record.database_specific.as_ref(),
        affected.database_specific.as_ref(),
        affected.ecosystem_specific.as_ref(),
    ]
    .into_iter()
    .flatten()
    .flat_map(|v| ["severity", "urgency"].map(|k| v.get(k).and_then(Value::as_str)))
    .flatten()
    .map(Severity::from_name)
    .max()
    .unwrap_or(Severity::Unknown);
    (named, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn affected(json: &str) -> Affected {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn ranges_follow_osv_and_dpkg_order() {
        let a = affected(
            r#"{"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1:2.0-1"}]}]}"#,
        );
        assert_eq!(evaluate(&a, "1:1.9-1"), Ok(Some(Some("1:2.0-1".into()))));
        assert_eq!(evaluate(&a, "3.0-1"), Ok(Some(Some("1:2.0-1".into()))));
        assert_eq!(evaluate(&a, "1:2.0-1"), Ok(None));
        assert_eq!(
            evaluate(&a, "1:2.0~rc1-1"),
            Ok(Some(Some("1:2.0-1".into())))
        );
        let b = affected(
            r#"{"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"2.0"},{"last_affected":"2.5"}]}]}"#,
        );
        assert_eq!(evaluate(&b, "1.9"), Ok(None));
        assert_eq!(evaluate(&b, "2.5"), Ok(Some(None)));
        assert_eq!(evaluate(&b, "2.5+deb12u1"), Ok(None));
        let c = affected(r#"{"versions":["1.0-1","1.0-2"]}"#);
        assert_eq!(evaluate(&c, "1.0-2"), Ok(Some(None)));
        assert_eq!(evaluate(&c, "1.0-3"), Ok(None));
    }

    #[test]
    fn unknown_ranges_and_bad_versions_are_not_a_pass() {
        let a = affected(r#"{"ranges":[{"type":"GIT","events":[{"introduced":"abc"}]}]}"#);
        assert!(evaluate(&a, "1.0").unwrap_err().contains("GIT"));
        let b = affected(
            r#"{"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1_0"}]}]}"#,
        );
        assert!(evaluate(&b, "1.0").unwrap_err().contains("1_0"));
    }
}
