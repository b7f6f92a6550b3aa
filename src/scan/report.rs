//! The scan result: findings, what was ignored and why, warnings, a summary by severity, and
//! the gate's verdict. `--json` prints [`Report`]; `--sarif` prints [`Report::sarif`].

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use super::ignore::{IgnoreEntry, IgnoreList};
use super::osv::{DatabaseFacts, Finding, Status};

/// Ordered: `unknown` < `low` < … < `critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// CVSS v3 qualitative rating (a score of 0.0 is "none", listed as low).
    pub fn from_score(score: f64) -> Severity {
        match score {
            s if s >= 9.0 => Severity::Critical,
            s if s >= 7.0 => Severity::High,
            s if s >= 4.0 => Severity::Medium,
            _ => Severity::Low,
        }
    }

    /// GHSA/OSV `database_specific.severity` and Debian `urgency` words.
    pub fn from_name(name: &str) -> Severity {
        match name.to_ascii_lowercase().trim_end_matches('*') {
            "critical" => Severity::Critical,
            "high" | "important" => Severity::High,
            "medium" | "moderate" => Severity::Medium,
            "low" | "negligible" | "unimportant" => Severity::Low,
            _ => Severity::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "unknown",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Unknown,
    ];
}

/// A finding `--ignore` removed, with the entry that removed it.
#[derive(Debug, Clone, Serialize)]
pub struct Ignored {
    pub finding: Finding,
    pub entry: IgnoreEntry,
}

/// Which report the findings of an imported scan come from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportedFrom {
    pub format: super::import::ReportFormat,
    pub file: String,
    /// The scanner's `pkg:github/…@VERSION`.
    pub scanner: String,
    /// When the report says it was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

/// Version 1 of the `--json` schema.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub schema_version: u32,
    /// The image reference or lock file scanned.
    pub target: String,
    /// The image's manifest digest (absent for a lock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    pub ecosystem: String,
    pub packages: usize,
    pub database: DatabaseFacts,
    /// Set when the findings come from a Trivy or Grype report (`--from-trivy`,
    /// `--from-grype`) rather than kiln's own match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported: Option<ImportedFrom>,
    pub findings: Vec<Finding>,
    pub ignored: Vec<Ignored>,
    pub warnings: Vec<String>,
    /// Findings per severity, plus `unevaluated`.
    pub summary: BTreeMap<String, usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_on: Option<Severity>,
    /// False when a finding at or above `fail_on` (or any unevaluated one) remains.
    pub passed: bool,
}

impl Report {
    /// Applies `ignore`, counts, and decides the gate.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        target: String,
        digest: Option<String>,
        ecosystem: String,
        packages: usize,
        database: DatabaseFacts,
        findings: Vec<Finding>,
        ignore: Option<&IgnoreList>,
        warnings: Vec<String>,
        fail_on: Option<Severity>,
    ) -> Report {
        let mut kept = Vec::new();
        let mut ignored = Vec::new();
        for f in findings {
            match ignore.and_then(|i| i.covering(&f.id, &f.aliases)) {
                Some(entry) => ignored.push(Ignored {
                    entry: entry.clone(),
                    finding: f,
                }),
                None => kept.push(f),
            }
        }
        let mut summary: BTreeMap<String, usize> = Severity::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), 0))
            .collect();
        summary.insert("unevaluated".into(), 0);
        for f in &kept {
            let key = match f.status {
                Status::Affected => f.severity.as_str(),
                Status::Unevaluated => "unevaluated",
            };
            *summary.entry(key.to_string()).or_default() += 1;
        }
        let passed = match fail_on {
            None => true,
            Some(level) => !kept
                .iter()
                .any(|f| f.status == Status::Unevaluated || f.severity >= level),
        };
        Report {
            schema_version: 1,
            target,
            digest,
            ecosystem,
            packages,
            database,
            imported: None,
            findings: kept,
            ignored,
            warnings,
            summary,
            fail_on,
            passed,
        }
    }

    /// SARIF 2.1.0: one rule per record id, one result per finding, located at the package's
    /// dpkg record.
    pub fn sarif(&self) -> Value {
        let mut rules: BTreeMap<&str, Value> = BTreeMap::new();
        for f in &self.findings {
            rules.entry(&f.id).or_insert_with(|| {
                json!({
                    "id": f.id,
                    "shortDescription": {"text": f.summary.clone().unwrap_or_else(|| f.id.clone())},
                    "helpUri": format!("https://osv.dev/vulnerability/{}", f.id),
                    "properties": {"aliases": f.aliases, "severity": f.severity.as_str()},
                })
            });
        }
        let index: BTreeMap<&str, usize> = rules.keys().enumerate().map(|(i, k)| (*k, i)).collect();
        let results: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                let level = match (f.status, f.severity) {
                    (Status::Unevaluated, _) => "error",
                    (_, Severity::Critical | Severity::High) => "error",
                    (_, Severity::Medium) => "warning",
                    _ => "note",
                };
                let fix = f.fixed_version.as_deref().unwrap_or("no fix");
                json!({
                    "ruleId": f.id,
                    "ruleIndex": index[f.id.as_str()],
                    "level": level,
                    "message": {"text": format!(
                        "{} {} (source {}) is affected by {}; fixed version: {}",
                        f.package, f.installed_version, f.source, f.id, fix
                    )},
                    "locations": [{
                        "physicalLocation": {"artifactLocation": {
                            "uri": f.location.trim_start_matches('/'),
                        }},
                        "logicalLocations": [{"name": f.package, "kind": "package"}],
                    }],
                    "properties": {
                        "severity": f.severity.as_str(),
                        "status": f.status,
                        "installedVersion": f.installed_version,
                        "fixedVersion": f.fixed_version,
                    },
                })
            })
            .collect();
        json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {
                    "name": "kiln",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules.into_values().collect::<Vec<_>>(),
                }},
                "results": results,
            }],
        })
    }
}
