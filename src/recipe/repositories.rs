//! `[repositories.NAME]`: Debian-format package repositories that `packages` steps install from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::RecipeError;
use super::span::Span;
use super::table::Tbl;
use super::values::check_input_name;

const REPOSITORY_KEYS: &[&str] = &["url", "suite", "components", "keyring"];

/// `[repositories.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repository {
    pub name: String,
    /// The repository root (the directory holding `dists/` and `pool/`), without a trailing `/`.
    pub url: String,
    pub suite: String,
    /// Default `["main"]`.
    pub components: Vec<String>,
    /// The keyring as written (relative to the recipe, or absolute).
    pub keyring: PathBuf,
    /// The keyring's path on this machine.
    pub keyring_resolved: PathBuf,
    pub span: Span,
}

pub(crate) fn parse_repositories(
    root: &Tbl<'_>,
    dir: &Path,
) -> Result<BTreeMap<String, Repository>, RecipeError> {
    let mut out = BTreeMap::new();
    let Some(all) = root.table("repositories", "[repositories]")? else {
        return Ok(out);
    };
    for name in all.keys() {
        check_input_name(name).map_err(|reason| RecipeError::InvalidValue {
            at: all.at_key(name),
            key: name.to_string(),
            table: "[repositories]".to_string(),
            reason,
        })?;
        let label = format!("[repositories.{name}]");
        let t = all.table(name, &label)?.expect("key listed by the table");
        t.check_keys(REPOSITORY_KEYS)?;
        let bad = |key: &'static str, reason: &'static str| RecipeError::InvalidRepository {
            at: t.at_value(key),
            repository: name.to_string(),
            key,
            reason,
        };
        let url = t.required_string("url")?.trim_end_matches('/');
        let scheme_ok = ["http://", "https://", "file://"]
            .iter()
            .any(|p| url.strip_prefix(p).is_some_and(|r| !r.is_empty()));
        if !scheme_ok || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("url", "expected an http://, https:// or file:// URL"));
        }
        let suite = t.required_string("suite")?;
        if !plain_path(suite) {
            return Err(bad("suite", "expected a suite name such as \"bookworm\""));
        }
        let components = t
            .strings("components")?
            .unwrap_or_else(|| vec!["main".to_string()]);
        if components.is_empty() || !components.iter().all(|c| plain_path(c)) {
            return Err(bad("components", "expected names such as [\"main\"]"));
        }
        let keyring = t.required_string("keyring")?;
        if keyring.is_empty() || keyring.contains('\0') {
            return Err(bad(
                "keyring",
                "expected the path of an OpenPGP keyring file",
            ));
        }
        out.insert(
            name.to_string(),
            Repository {
                name: name.to_string(),
                url: url.to_string(),
                suite: suite.to_string(),
                components,
                keyring: PathBuf::from(keyring),
                keyring_resolved: dir.join(keyring),
                span: t.span,
            },
        );
    }
    Ok(out)
}

/// A relative path of plain components (suites may be `bookworm/updates`).
fn plain_path(s: &str) -> bool {
    !s.is_empty()
        && s.split('/').all(|c| {
            !c.is_empty()
                && c != ".."
                && c != "."
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_.+~".contains(ch))
        })
}

/// A Debian package name (deb-control(5)): lowercase letters, digits, `+ - .`, at least two
/// characters, starting with a letter or digit.
pub(crate) fn is_package_name(s: &str) -> bool {
    s.len() >= 2
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

/// A file a package's maintainer script would make (no script runs), which a `packages` step
/// asks kiln to make instead: `generate = ["ca-certificates"]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Generated {
    /// `/etc/ssl/certs/ca-certificates.crt`, as `update-ca-certificates` makes it from the
    /// `ca-certificates` package with the default configuration.
    CaCertificates,
}

impl Generated {
    pub const ALL: [Generated; 1] = [Generated::CaCertificates];

    pub fn name(self) -> &'static str {
        match self {
            Generated::CaCertificates => "ca-certificates",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.name() == name)
    }
}
