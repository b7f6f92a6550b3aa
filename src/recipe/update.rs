//! `[inputs.NAME] update = { url-template, checksums | index }`: how `kiln update` finds a
//! newer release of a `url` input. Checked when the recipe is read, so a typo is a
//! `file:line:column` error then, not a surprise on the scheduled run.
//!
//! The template's last path segment (`foo-{version}.tar.gz`) is what kiln looks for in the
//! list of releases: a `checksums` file (`sha256sum` output, whose hash is then required to
//! match the download) or an `index` page (any text: a directory listing, an HTML page). A
//! version is digits separated by dots; the highest one wins, compared number by number.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::error::RecipeError;
use super::table::Tbl;

const UPDATE_KEYS: &[&str] = &["url-template", "checksums", "index"];
const PLACEHOLDER: &str = "{version}";

/// Where the list of releases comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionSource {
    /// A `sha256sum`-style file: `HEX  NAME` lines.
    Checksums(String),
    /// Any text that names the release files (a directory listing, a download page).
    Index(String),
}

impl VersionSource {
    pub fn url(&self) -> &str {
        match self {
            VersionSource::Checksums(u) | VersionSource::Index(u) => u,
        }
    }
}

/// A validated `update` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct UpdateRule {
    /// The input's URL with `{version}` (exactly once, in the last path segment).
    pub url_template: String,
    pub versions: VersionSource,
    /// The version the input's `url` names now.
    pub current: String,
}

impl UpdateRule {
    /// The URL of release `version`.
    pub fn url(&self, version: &str) -> String {
        self.url_template.replace(PLACEHOLDER, version)
    }

    /// The file name the releases are listed under, split around `{version}`.
    fn file_pattern(&self) -> (&str, &str) {
        let last = self
            .url_template
            .rsplit('/')
            .next()
            .unwrap_or(&self.url_template);
        last.split_once(PLACEHOLDER).unwrap_or((last, ""))
    }

    /// Every version `text` (a checksums file or an index page) names, with the sha256 the
    /// checksums file gives for it, sorted from the lowest to the highest version.
    pub fn versions_in(&self, text: &str) -> Vec<(String, Option<String>)> {
        let (prefix, suffix) = self.file_pattern();
        let mut out: Vec<(String, Option<String>)> = Vec::new();
        match &self.versions {
            VersionSource::Checksums(_) => {
                for line in text.lines() {
                    let mut words = line.split_whitespace();
                    let (Some(hex), Some(name)) = (words.next(), words.next()) else {
                        continue;
                    };
                    let name = name.trim_start_matches('*');
                    let name = name.rsplit('/').next().unwrap_or(name);
                    let version = name
                        .strip_prefix(prefix)
                        .and_then(|r| r.strip_suffix(suffix))
                        .filter(|v| is_version(v));
                    if let Some(v) = version {
                        out.push((v.to_string(), Some(hex.to_ascii_lowercase())));
                    }
                }
            }
            VersionSource::Index(_) => {
                let mut from = 0;
                while let Some(i) = text[from..].find(prefix).map(|i| from + i) {
                    from = i + prefix.len().max(1);
                    let rest = &text[i + prefix.len()..];
                    let run = rest
                        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                        .unwrap_or(rest.len());
                    // The shortest version the suffix follows: `1.2` in `foo-1.2.tar.gz`.
                    let found = (1..=run)
                        .find(|&n| rest[n..].starts_with(suffix) && is_version(&rest[..n]));
                    if let Some(n) = found {
                        out.push((rest[..n].to_string(), None));
                    }
                }
            }
        }
        out.sort_by(|a, b| compare_versions(&a.0, &b.0).then_with(|| a.1.cmp(&b.1)));
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }
}

/// Digits separated by single dots: `1`, `1.36`, `2024.01.5`.
pub fn is_version(v: &str) -> bool {
    !v.is_empty()
        && v.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Number by number (`1.10` > `1.9`); a longer version is higher when the rest is equal.
/// Numbers of any length compare exactly (as digit strings without leading zeros).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |v: &str| -> Vec<(usize, String)> {
        v.split('.')
            .map(|p| p.trim_start_matches('0'))
            .map(|p| (p.len(), p.to_string()))
            .collect()
    };
    parts(a).cmp(&parts(b))
}

/// `update` of an input whose `url` is `url` (`None` for a `path` input).
pub(crate) fn parse_update(
    t: &Tbl<'_>,
    input: &str,
    url: Option<&str>,
) -> Result<Option<UpdateRule>, RecipeError> {
    let label = format!("[inputs.{input}.update]");
    let Some(u) = t.table("update", &label)? else {
        return Ok(None);
    };
    let bad = |key: &str, reason: String| RecipeError::InvalidUpdate {
        at: u.at_value(key),
        input: input.to_string(),
        reason,
    };
    let Some(url) = url else {
        return Err(RecipeError::InvalidUpdate {
            at: t.at_key("update"),
            input: input.to_string(),
            reason: "only a `url` input can be updated".to_string(),
        });
    };
    u.check_keys(UPDATE_KEYS)?;
    let template = u.required_string("url-template")?;
    let (head, tail) = match template.split_once(PLACEHOLDER) {
        Some((h, t)) if !t.contains(PLACEHOLDER) && !t.contains('/') => (h, t),
        _ => {
            let reason = "expected `{version}` exactly once, in the file name".to_string();
            return Err(bad("url-template", reason));
        }
    };
    if !super::parse::url_ok(&template.replace(PLACEHOLDER, "1")) {
        let reason = "expected an http://, https:// or file:// URL".to_string();
        return Err(bad("url-template", reason));
    }
    let current = url
        .strip_prefix(head)
        .and_then(|r| r.strip_suffix(tail))
        .filter(|v| is_version(v))
        .ok_or_else(|| {
            bad(
                "url-template",
                format!(
                    "the input's url `{url}` does not match it with a version (digits and \
                     dots) in place of `{{version}}`"
                ),
            )
        })?;
    let versions = match (u.string("checksums")?, u.string("index")?) {
        (Some(c), None) => VersionSource::Checksums(c.to_string()),
        (None, Some(i)) => VersionSource::Index(i.to_string()),
        _ => {
            return Err(RecipeError::InvalidUpdate {
                at: u.at(),
                input: input.to_string(),
                reason: "give exactly one of `checksums` (a sha256sum file) or `index` (a \
                         page listing the releases)"
                    .to_string(),
            })
        }
    };
    if !super::parse::url_ok(versions.url()) {
        let key = match versions {
            VersionSource::Checksums(_) => "checksums",
            VersionSource::Index(_) => "index",
        };
        return Err(bad(
            key,
            "expected an http://, https:// or file:// URL".into(),
        ));
    }
    Ok(Some(UpdateRule {
        url_template: template.to_string(),
        versions,
        current: current.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(versions: VersionSource) -> UpdateRule {
        UpdateRule {
            url_template: "https://example.org/dl/foo-{version}.tar.gz".into(),
            versions,
            current: "1.2".into(),
        }
    }

    #[test]
    fn versions_compare_number_by_number() {
        for (a, b, want) in [
            ("1.10", "1.9", Ordering::Greater),
            ("1.2", "1.2.0", Ordering::Less),
            ("01.2", "1.2", Ordering::Equal),
            ("2", "10", Ordering::Less),
            (
                "1.99999999999999999999999999999999999999999",
                "1.2",
                Ordering::Greater,
            ),
        ] {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
        }
        for (v, ok) in [
            ("1", true),
            ("1.36.1", true),
            ("1..2", false),
            ("1.2rc1", false),
            ("", false),
        ] {
            assert_eq!(is_version(v), ok, "{v}");
        }
    }

    #[test]
    fn an_index_page_lists_versions_whatever_surrounds_them() {
        let r = rule(VersionSource::Index("https://example.org/dl/".into()));
        let page =
            "<a href=\"foo-1.2.tar.gz\">foo-1.2.tar.gz</a>\n<a href=\"/dl/foo-1.10.tar.gz\">\
                    </a> foo-1.9.tar.gz.asc foo-2.0rc1.tar.gz foo-1.11.zip bar-9.tar.gz";
        let got: Vec<String> = r.versions_in(page).into_iter().map(|v| v.0).collect();
        assert_eq!(got, ["1.2", "1.9", "1.10"]);
    }

    #[test]
    fn a_checksums_file_gives_versions_and_their_hashes() {
        let r = rule(VersionSource::Checksums(
            "https://example.org/SHA256SUMS".into(),
        ));
        let text = "AB12  foo-1.3.tar.gz\ncd34 *./foo-1.4.tar.gz\nef56  foo-1.5.zip\nnot a line\n";
        assert_eq!(
            r.versions_in(text),
            [
                ("1.3".to_string(), Some("ab12".to_string())),
                ("1.4".to_string(), Some("cd34".to_string()))
            ]
        );
        assert_eq!(r.url("1.4"), "https://example.org/dl/foo-1.4.tar.gz");
    }
}
