//! Promotion policies: which evidence an image must carry before it may enter a repository of
//! verified images (`kiln promote`) or be deployed (`kiln verify --policy`).
//!
//! A policy is a TOML file (see `examples/policy.toml` and the README's "Review and
//! promotion"). Every table present is a rule the image must pass; `signers` is always
//! required. Parsing is strict: an unknown key, a verdict or severity kiln does not know, or a
//! key file that does not load is an error naming the file, line and column.
//!
//! [`evaluate`] applies the rules to the signature and attestation layers attached to one
//! image digest and says, per rule, what evidence it used and why it passed or failed. It fails
//! closed: evidence that does not verify with a listed key does not count, and a statement by a
//! listed key about another image fails the rule it belongs to.

mod evaluate;

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::attest::keys::{self, KeyError, VerifyingKey};
use crate::digest::Sha256Digest;

pub use evaluate::{
    approval_predicate, evaluate, parse_rfc3339, promotions, Evaluation, Evidence, Promotion,
    RuleResult, APPROVAL_PREDICATE_TYPE, PROMOTION_PREDICATE_TYPE,
};

/// The largest policy file read.
const MAX_POLICY_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("failed to read policy {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("policy {} is larger than {MAX_POLICY_BYTES} bytes", path.display())]
    TooLarge { path: PathBuf },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}:{line}:{column}: failed to load public key {}", path.display(), key.display())]
    Key {
        path: PathBuf,
        line: usize,
        column: usize,
        key: PathBuf,
        #[source]
        source: Box<KeyError>,
    },
}

/// How far a rebuild verdict may be from `identical` and still pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AcceptedVerdict {
    Identical,
    SameLayers,
    Equivalent,
}

impl AcceptedVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identical => "identical",
            Self::SameLayers => "same-layers",
            Self::Equivalent => "equivalent",
        }
    }
}

/// Vulnerability severities, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Only for `max-severity`: no finding at all is allowed.
    None,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// The severities findings are counted under, lowest first.
    pub const FINDINGS: [Severity; 4] = [Self::Low, Self::Medium, Self::High, Self::Critical];
}

/// The policy file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PolicyFile {
    signers: Spanned<Vec<Spanned<PathBuf>>>,
    provenance: Option<ProvenanceFile>,
    rebuild: Option<RebuildFile>,
    scan: Option<ScanFile>,
    sbom: Option<SbomFile>,
    approvals: Option<ApprovalsFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ProvenanceFile {
    #[serde(default)]
    recipe_sha256: Vec<Spanned<String>>,
    builder_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RebuildFile {
    accept: Spanned<Vec<AcceptedVerdict>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ScanFile {
    max_severity: Severity,
    max_age_days: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SbomFile {
    required: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ApprovalsFile {
    count: Spanned<usize>,
    reviewers: Spanned<Vec<Spanned<PathBuf>>>,
}

/// A public key named by the policy.
#[derive(Debug, Clone)]
pub struct PolicyKey {
    /// sha256 of the SPKI DER, hex.
    pub id: String,
    pub key: VerifyingKey,
}

#[derive(Debug, Clone)]
pub struct ProvenanceRule {
    /// The recipes the provenance may name; empty: any.
    pub recipe_sha256: Vec<Sha256Digest>,
    /// The builder id the provenance must name (`runDetails.builder.id`), when set.
    pub builder_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ScanRule {
    pub max_severity: Severity,
    pub max_age_seconds: i64,
}

#[derive(Debug, Clone)]
pub struct ApprovalRule {
    pub count: usize,
    pub reviewers: Vec<PolicyKey>,
}

/// A parsed, checked policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub path: PathBuf,
    /// sha256 of the file's bytes: what promotion statements record.
    pub sha256: Sha256Digest,
    pub signers: Vec<PolicyKey>,
    pub provenance: Option<ProvenanceRule>,
    pub rebuild: Option<Vec<AcceptedVerdict>>,
    pub scan: Option<ScanRule>,
    pub sbom: bool,
    pub approvals: Option<ApprovalRule>,
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl Policy {
    /// Reads and checks the policy at `path`; key paths are relative to its directory.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        use std::io::Read as _;
        let read_err = |source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut bytes = Vec::new();
        fs_err::File::open(path)
            .map_err(read_err)?
            .take(MAX_POLICY_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        if bytes.len() as u64 > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        let dir = path.parent().unwrap_or(Path::new(""));
        Self::parse(path, &bytes, |p| fs_err::read_to_string(dir.join(p)))
    }

    /// Parses policy `bytes` (read from `path`, for messages); `read_key` reads a key file
    /// named in the policy.
    pub fn parse(
        path: &Path,
        bytes: &[u8],
        read_key: impl Fn(&Path) -> std::io::Result<String>,
    ) -> Result<Self, PolicyError> {
        let text = String::from_utf8_lossy(bytes);
        let invalid = |span: Option<Range<usize>>, message: String| {
            let (line, column) = line_column(&text, span.map_or(0, |s| s.start));
            PolicyError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        };
        let file: PolicyFile = toml::from_str(&text).map_err(|e| {
            let span = e.span();
            invalid(span, e.message().to_string())
        })?;
        let load_keys = |list: &Spanned<Vec<Spanned<PathBuf>>>, what: &str| {
            if list.get_ref().is_empty() {
                return Err(invalid(Some(list.span()), format!("`{what}` lists no key")));
            }
            let mut keys: Vec<PolicyKey> = Vec::new();
            for entry in list.get_ref() {
                let key_err = |source: KeyError| {
                    let (line, column) = line_column(&text, entry.span().start);
                    PolicyError::Key {
                        path: path.to_path_buf(),
                        line,
                        column,
                        key: entry.get_ref().clone(),
                        source: Box::new(source),
                    }
                };
                let pem = read_key(entry.get_ref()).map_err(|e| key_err(KeyError::Io(e)))?;
                let key = keys::load_public_key(&pem).map_err(key_err)?;
                let id = keys::key_id(&key);
                if keys.iter().any(|k| k.id == id) {
                    return Err(invalid(
                        Some(entry.span()),
                        format!("`{what}` lists key {id} twice"),
                    ));
                }
                keys.push(PolicyKey { id, key });
            }
            Ok(keys)
        };
        let signers = load_keys(&file.signers, "signers")?;
        let provenance = match file.provenance {
            None => None,
            Some(p) => {
                let recipe_sha256 =
                    p.recipe_sha256
                        .iter()
                        .map(|s| {
                            let hex = s.get_ref();
                            Sha256Digest::from_hex(hex.strip_prefix("sha256:").unwrap_or(hex))
                                .map_err(|_| {
                                    invalid(
                                        Some(s.span()),
                                        format!("`{hex}` is not a sha256 (64 hex digits)"),
                                    )
                                })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                Some(ProvenanceRule {
                    recipe_sha256,
                    builder_id: p.builder_id,
                })
            }
        };
        let rebuild = match file.rebuild {
            None => None,
            Some(r) if r.accept.get_ref().is_empty() => {
                return Err(invalid(
                    Some(r.accept.span()),
                    "`accept` lists no verdict".into(),
                ))
            }
            Some(r) => Some(r.accept.into_inner()),
        };
        let scan = file.scan.map(|s| ScanRule {
            max_severity: s.max_severity,
            max_age_seconds: i64::try_from(s.max_age_days.saturating_mul(86_400))
                .unwrap_or(i64::MAX),
        });
        let approvals = match file.approvals {
            None => None,
            Some(a) => {
                let reviewers = load_keys(&a.reviewers, "reviewers")?;
                let count = *a.count.get_ref();
                if count == 0 || count > reviewers.len() {
                    return Err(invalid(
                        Some(a.count.span()),
                        format!(
                            "`count` is {count}: it must be between 1 and the {} listed \
                             reviewer(s)",
                            reviewers.len()
                        ),
                    ));
                }
                Some(ApprovalRule { count, reviewers })
            }
        };
        Ok(Policy {
            path: path.to_path_buf(),
            sha256: Sha256Digest::of(bytes),
            signers,
            provenance,
            rebuild,
            scan,
            sbom: file.sbom.is_some_and(|s| s.required),
            approvals,
        })
    }
}

#[cfg(test)]
mod tests;
