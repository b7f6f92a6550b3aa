//! The update report: JSON ([`SCHEMA`]) for machines, Markdown for a pull-request body, and
//! the one-line conclusion of each recipe.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::RecipeUpdate;
use crate::diff::{Class, ClassSummary, DiffReport, Verdict};
use crate::digest::Sha256Digest;
use crate::scan::Finding;

/// The `schema` field of the JSON report; fields are only ever added.
pub const SCHEMA: &str = "https://kiln.build/update/v1";

/// The manifest digests of the image of the previous pins and of the updated one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageDigests {
    pub before: Sha256Digest,
    pub after: Sha256Digest,
}

/// The most paths a report lists (the diff counts them all).
pub const MAX_PATHS: usize = 50;

/// The diff verdict (previous → updated image), its classes (most important first) and the
/// first [`MAX_PATHS`] paths that differ.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DiffSummary {
    pub verdict: Verdict,
    pub classes: Vec<ClassSummary>,
    pub paths: Vec<ChangedPath>,
    pub paths_total: usize,
}

/// A path of the image filesystem that differs, and how.
#[derive(Debug, Clone, Serialize)]
pub struct ChangedPath {
    pub path: String,
    pub classes: Vec<Class>,
}

impl DiffSummary {
    pub fn new(report: &DiffReport) -> Self {
        Self {
            verdict: report.verdict,
            classes: report.summary.clone(),
            paths: report
                .files
                .iter()
                .take(MAX_PATHS)
                .map(|f| ChangedPath {
                    path: f.path.clone(),
                    classes: f.classes.clone(),
                })
                .collect(),
            paths_total: report.files.len(),
        }
    }
}

/// The findings of the previous image the update removes, keeps and adds.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct VulnerabilityDelta {
    /// In the previous image only (as found there).
    pub fixed: Vec<Finding>,
    /// In both (as found in the updated image).
    pub still_open: Vec<Finding>,
    /// In the updated image only.
    pub introduced: Vec<Finding>,
}

impl VulnerabilityDelta {
    /// Findings are the same when their record, package and architecture are.
    pub fn new(before: Vec<Finding>, after: Vec<Finding>) -> Self {
        let key = |f: &Finding| (f.id.clone(), f.package.clone(), f.architecture.clone());
        let before_keys: BTreeSet<_> = before.iter().map(key).collect();
        let after_keys: BTreeSet<_> = after.iter().map(key).collect();
        let fixed = before
            .into_iter()
            .filter(|f| !after_keys.contains(&key(f)))
            .collect();
        let (still_open, introduced) = after
            .into_iter()
            .partition(|f| before_keys.contains(&key(f)));
        Self {
            fixed,
            still_open,
            introduced,
        }
    }
}

/// A recipe kiln could not update, and why (the error and its causes).
#[derive(Debug, Clone, Serialize)]
pub struct RecipeFailure {
    pub recipe: PathBuf,
    pub error: String,
}

/// Every recipe of one `kiln update` run.
#[derive(Debug, Serialize)]
pub struct UpdateReport {
    pub schema: &'static str,
    pub recipes: Vec<RecipeUpdate>,
    pub failures: Vec<RecipeFailure>,
}

/// `DSA-1-1 (CVE-2024-0001)`.
fn vulnerability_name(f: &Finding) -> String {
    if f.aliases.is_empty() {
        f.id.clone()
    } else {
        format!("{} ({})", f.id, f.aliases.join(", "))
    }
}

fn names(findings: &[Finding]) -> String {
    let mut all: Vec<String> = findings.iter().map(vulnerability_name).collect();
    all.dedup();
    all.join(", ")
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One line: what moved, how the image changed, and what that does to its vulnerabilities.
pub fn conclusion(u: &RecipeUpdate) -> String {
    let pinned = match u.pinned_inputs.len() {
        0 => String::new(),
        _ => format!(
            " ({} without an `update` rule: {})",
            plural(
                u.pinned_inputs.len(),
                "input stays pinned",
                "inputs stay pinned"
            ),
            u.pinned_inputs.join(", ")
        ),
    };
    if !u.changed {
        return format!("nothing to update{pinned}");
    }
    let mut moved = Vec::new();
    if u.base.is_some() {
        moved.push("the base image".to_string());
    }
    if !u.packages.is_empty() {
        moved.push(plural(u.packages.len(), "package", "packages"));
    }
    if !u.inputs.is_empty() {
        moved.push(plural(u.inputs.len(), "input", "inputs"));
    }
    let mut line = format!("updated {}", moved.join(", "));
    if u.platforms.is_empty() {
        for clause in outcome(u.diff.as_ref(), u.vulnerabilities.as_ref()) {
            let _ = write!(line, "; {clause}");
        }
    }
    for p in &u.platforms {
        let clauses = outcome(Some(&p.diff), p.vulnerabilities.as_ref());
        let _ = write!(line, "; {}: {}", p.platform, clauses.join(", "));
    }
    line + &pinned
}

/// How an image changed (`the image is different (content)`), and what that does to its
/// vulnerabilities (`fixes 1 vulnerability (…), 0 still open, none introduced`).
fn outcome(
    diff: Option<&DiffSummary>,
    vulnerabilities: Option<&VulnerabilityDelta>,
) -> Vec<String> {
    let mut clauses = Vec::new();
    if let Some(d) = diff {
        let classes: Vec<&str> = d.classes.iter().map(|c| c.class.as_str()).collect();
        let mut clause = format!("the image is {}", d.verdict.as_str());
        if !classes.is_empty() {
            let _ = write!(clause, " ({})", classes.join(", "));
        }
        clauses.push(clause);
    }
    if let Some(v) = vulnerabilities {
        let mut clause = format!(
            "fixes {}",
            plural(v.fixed.len(), "vulnerability", "vulnerabilities")
        );
        if !v.fixed.is_empty() {
            let _ = write!(clause, " ({})", names(&v.fixed));
        }
        let _ = write!(clause, ", {} still open", v.still_open.len());
        let _ = match v.introduced.len() {
            0 => write!(clause, ", none introduced"),
            n => write!(clause, ", {n} introduced ({})", names(&v.introduced)),
        };
        clauses.push(clause);
    }
    clauses
}

fn short(d: &Sha256Digest) -> String {
    format!("`sha256:{}`", &d.hex()[..12])
}

/// `|` and line breaks would break a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

impl UpdateReport {
    /// Markdown for a pull-request body: a summary table, then one section per recipe.
    pub fn markdown(&self) -> String {
        let mut md =
            String::from("## kiln update\n\n| recipe | image | conclusion |\n|---|---|---|\n");
        for u in &self.recipes {
            let _ = writeln!(
                md,
                "| `{}` | {} | {} |",
                u.recipe.display(),
                cell(&u.image),
                cell(&u.conclusion)
            );
        }
        for f in &self.failures {
            let first = f.error.lines().next().unwrap_or_default();
            let _ = writeln!(
                md,
                "| `{}` | | **failed**: {} |",
                f.recipe.display(),
                cell(first)
            );
        }
        for u in self.recipes.iter().filter(|u| u.changed) {
            recipe_section(&mut md, u);
        }
        for f in &self.failures {
            let _ = write!(
                md,
                "\n### `{}`: failed\n\n```\n{}\n```\n",
                f.recipe.display(),
                f.error
            );
        }
        md
    }
}

/// A Markdown table (cells escaped), then a blank line; nothing for no rows.
fn table(md: &mut String, header: &[&str], rows: Vec<Vec<String>>) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "| {} |\n|{}",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        let _ = writeln!(md, "| {} |", cells.join(" | "));
    }
    md.push('\n');
}

fn recipe_section(md: &mut String, u: &RecipeUpdate) {
    let _ = write!(md, "\n### `{}` ({})\n\n", u.recipe.display(), u.image);
    let _ = writeln!(md, "**{}**\n", cell(&u.conclusion));
    if let Some(b) = &u.base {
        let old = b.old.as_ref().map_or("(unpinned)".to_string(), short);
        let _ = writeln!(
            md,
            "Base image `{}`: {old} → {}\n",
            b.reference,
            short(&b.new)
        );
    }
    let packages = u.packages.iter().map(|p| {
        let (old, new) = p.versions();
        let name = format!("{}:{}", p.name, p.architecture);
        vec![name, old.to_string(), new.to_string(), p.source.clone()]
    });
    table(md, &["package", "old", "new", "source"], packages.collect());
    let inputs = u.inputs.iter().map(|i| {
        let (old, new) = (i.old_version.clone(), i.new_version.clone());
        vec![i.name.clone(), old, new, short(&i.new_sha256)]
    });
    table(md, &["input", "old", "new", "sha256"], inputs.collect());
    if u.platforms.is_empty() {
        image_section(
            md,
            u.digests.as_ref(),
            u.diff.as_ref(),
            u.vulnerabilities.as_ref(),
        );
    } else {
        if let Some(d) = &u.digests {
            let _ = writeln!(md, "Index: `{}` → `{}`\n", d.before, d.after);
        }
        for p in &u.platforms {
            let _ = write!(md, "#### {}\n\n", p.platform);
            let vulnerabilities = p.vulnerabilities.as_ref();
            image_section(md, Some(&p.digests), Some(&p.diff), vulnerabilities);
        }
    }
    if !u.pinned_inputs.is_empty() {
        let _ = writeln!(
            md,
            "Pinned without an `update` rule (not checked): {}\n",
            u.pinned_inputs
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// One image's digests, diff and vulnerabilities.
fn image_section(
    md: &mut String,
    digests: Option<&ImageDigests>,
    diff: Option<&DiffSummary>,
    vulnerabilities: Option<&VulnerabilityDelta>,
) {
    if let Some(d) = digests {
        let _ = writeln!(md, "Image: `{}` → `{}`\n", d.before, d.after);
    }
    if let Some(d) = diff {
        let _ = write!(md, "Diff verdict: **{}**", d.verdict.as_str());
        let classes: Vec<String> = d
            .classes
            .iter()
            .map(|c| format!("{} ×{}", c.class.as_str(), c.count))
            .collect();
        if !classes.is_empty() {
            let _ = write!(md, " ({})", classes.join(", "));
        }
        md.push_str("\n\n");
        if !d.paths.is_empty() {
            let _ = write!(
                md,
                "<details><summary>{} that differ</summary>\n\n",
                plural(d.paths_total, "path", "paths")
            );
            let mut rows: Vec<Vec<String>> = d
                .paths
                .iter()
                .map(|p| {
                    let classes: Vec<&str> = p.classes.iter().map(|c| c.as_str()).collect();
                    vec![format!("`{}`", p.path), classes.join(", ")]
                })
                .collect();
            if d.paths_total > d.paths.len() {
                let more = format!("{} more", d.paths_total - d.paths.len());
                rows.push(vec!["…".to_string(), more]);
            }
            table(md, &["path", "classes"], rows);
            md.push_str("</details>\n\n");
        }
    }
    if let Some(v) = vulnerabilities {
        let _ = writeln!(
            md,
            "Vulnerabilities: {} fixed, {} still open, {} introduced\n",
            v.fixed.len(),
            v.still_open.len(),
            v.introduced.len()
        );
        let rows = [
            ("fixed", &v.fixed),
            ("still open", &v.still_open),
            ("introduced", &v.introduced),
        ]
        .into_iter()
        .flat_map(|(what, list)| list.iter().map(move |f| (what, f)))
        .map(|(what, f)| {
            vec![
                what.to_string(),
                vulnerability_name(f),
                format!("{} ({})", f.package, f.source),
                f.installed_version.clone(),
                f.fixed_version
                    .clone()
                    .unwrap_or_else(|| "no fix".to_string()),
                f.severity.as_str().to_string(),
            ]
        });
        let header = [
            "",
            "vulnerability",
            "package",
            "installed",
            "fixed in",
            "severity",
        ];
        table(md, &header, rows.collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deb::lock::PackageChange;
    use crate::scan::{Severity, Status};

    fn finding(id: &str, installed: &str) -> Finding {
        Finding {
            id: id.to_string(),
            aliases: vec![format!("CVE-{id}")],
            package: "libssl3".into(),
            architecture: "amd64".into(),
            source: "openssl".into(),
            installed_version: installed.into(),
            fixed_version: Some("9".into()),
            severity: Severity::High,
            score: None,
            summary: None,
            status: Status::Affected,
            note: None,
            location: String::new(),
            record: String::new(),
        }
    }

    fn updated() -> RecipeUpdate {
        RecipeUpdate {
            recipe: "r.toml".into(),
            image: "r".into(),
            changed: true,
            base: None,
            inputs: Vec::new(),
            pinned_inputs: vec!["notes".into()],
            packages: vec![PackageChange {
                name: "libssl3".into(),
                architecture: "amd64".into(),
                old: Some("1".into()),
                new: Some("2".into()),
                source: "openssl".into(),
            }],
            digests: None,
            output: None,
            diff: None,
            vulnerabilities: Some(VulnerabilityDelta::new(
                vec![finding("A", "1"), finding("B", "1")],
                vec![finding("B", "2"), finding("C|D", "2")],
            )),
            platforms: Vec::new(),
            conclusion: String::new(),
            built: Vec::new(),
        }
    }

    #[test]
    fn findings_split_into_fixed_still_open_and_introduced() {
        let v = updated().vulnerabilities.unwrap();
        let ids = |l: &[Finding]| l.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&v.fixed), ["A"]);
        assert_eq!(ids(&v.still_open), ["B"]);
        // Still open is reported as found in the updated image.
        assert_eq!(v.still_open[0].installed_version, "2");
        assert_eq!(ids(&v.introduced), ["C|D"]);
    }

    #[test]
    fn conclusion_and_markdown_name_every_change_and_escape_cells() {
        let mut u = updated();
        u.conclusion = conclusion(&u);
        assert_eq!(
            u.conclusion,
            "updated 1 package; fixes 1 vulnerability (A (CVE-A)), 1 still open, 1 introduced \
             (C|D (CVE-C|D)) (1 input stays pinned without an `update` rule: notes)"
        );
        let report = UpdateReport {
            schema: SCHEMA,
            recipes: vec![u],
            failures: vec![RecipeFailure {
                recipe: "bad.toml".into(),
                error: "failed to update bad.toml\ncaused by: no".into(),
            }],
        };
        let md = report.markdown();
        for want in [
            "| `r.toml` | r | updated 1 package; fixes 1 vulnerability (A (CVE-A)), 1 still open, 1 introduced (C\\|D (CVE-C\\|D))",
            "| `bad.toml` | | **failed**: failed to update bad.toml |",
            "| package | old | new | source |\n|---|---|---|---|\n| libssl3:amd64 | 1 | 2 | openssl |\n",
            "| introduced | C\\|D (CVE-C\\|D) | libssl3 (openssl) | 2 | 9 | high |",
            "Pinned without an `update` rule (not checked): `notes`",
            "### `bad.toml`: failed\n\n```\nfailed to update bad.toml\ncaused by: no\n```",
        ] {
            assert!(md.contains(want), "missing {want:?} in:\n{md}");
        }
    }
}
