//! `Packages` indexes: one stanza per binary package, read as a stream.
//!
//! Only the fields resolution and the lock need are kept (dependency fields stay unparsed
//! strings until the resolver looks at them), so a whole suite's index fits in modest memory;
//! the stanza reader caps any single stanza. A `Filename` is a path under the repository root
//! and is refused when absolute or when it has a `..` component: it becomes a URL and a cache
//! label, never a way out of the repository.

use std::collections::BTreeMap;
use std::io::BufRead;

use super::control::{ControlError, Stanza, StanzaReader};
use super::version::{Version, VersionError};
use crate::digest::Sha256Digest;

#[derive(Debug, thiserror::Error)]
pub enum PackagesError {
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("{index} line {line}: package `{package}` has no `{field}` field")]
    MissingField {
        index: String,
        line: u64,
        package: String,
        field: &'static str,
    },
    #[error("{index} line {line}: package `{package}` has an unreadable `{field}`: `{value}`")]
    BadField {
        index: String,
        line: u64,
        package: String,
        field: &'static str,
        value: String,
    },
    #[error("{index} line {line}: package `{package}` has a bad version")]
    BadVersion {
        index: String,
        line: u64,
        package: String,
        #[source]
        source: VersionError,
    },
    #[error(
        "{index} line {line}: package `{package}` has Filename `{filename}`, which is absolute \
         or leaves the repository (`..`); refused"
    )]
    UnsafeFilename {
        index: String,
        line: u64,
        package: String,
        filename: String,
    },
}

/// One binary package of an index.
#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    pub version: Version,
    pub architecture: String,
    pub essential: bool,
    pub priority: String,
    /// Source package name and version (`Source: name (version)`, defaulting to the binary's).
    pub source: String,
    pub source_version: String,
    pub filename: String,
    pub size: u64,
    pub sha256: Sha256Digest,
    /// Unparsed relationship fields.
    pub depends: String,
    pub pre_depends: String,
    pub provides: String,
}

/// Reads every package of an index. `index` names the index in errors.
pub fn read_packages(
    reader: impl BufRead,
    index: &str,
    mut each: impl FnMut(Package),
) -> Result<(), PackagesError> {
    let mut stanzas = StanzaReader::new(reader, index);
    while let Some(stanza) = stanzas.next_stanza()? {
        each(package(&stanza, index)?);
    }
    Ok(())
}

fn package(s: &Stanza, index: &str) -> Result<Package, PackagesError> {
    let name = s.get("Package").unwrap_or("").to_string();
    let missing = |field| PackagesError::MissingField {
        index: index.to_string(),
        line: s.line,
        package: name.clone(),
        field,
    };
    let bad = |field, value: &str| PackagesError::BadField {
        index: index.to_string(),
        line: s.line,
        package: name.clone(),
        field,
        value: value.to_string(),
    };
    if name.is_empty() {
        return Err(missing("Package"));
    }
    let version_text = s.get("Version").ok_or_else(|| missing("Version"))?;
    let version = Version::parse(version_text).map_err(|source| PackagesError::BadVersion {
        index: index.to_string(),
        line: s.line,
        package: name.clone(),
        source,
    })?;
    let filename = s.get("Filename").ok_or_else(|| missing("Filename"))?;
    if !is_safe_filename(filename) {
        return Err(PackagesError::UnsafeFilename {
            index: index.to_string(),
            line: s.line,
            package: name.clone(),
            filename: filename.to_string(),
        });
    }
    let size_text = s.get("Size").ok_or_else(|| missing("Size"))?;
    let size = size_text.parse().map_err(|_| bad("Size", size_text))?;
    let sha_text = s.get("SHA256").ok_or_else(|| missing("SHA256"))?;
    let sha256 = Sha256Digest::from_hex(sha_text).map_err(|_| bad("SHA256", sha_text))?;
    let (source, source_version) = match s.get("Source") {
        None => (name.clone(), version.to_string()),
        Some(src) => match src.split_once('(') {
            Some((n, v)) => (
                n.trim().to_string(),
                v.trim_end_matches(')').trim().to_string(),
            ),
            None => (src.trim().to_string(), version.to_string()),
        },
    };
    let field = |f| s.get(f).unwrap_or("").to_string();
    Ok(Package {
        architecture: s
            .get("Architecture")
            .ok_or_else(|| missing("Architecture"))?
            .to_string(),
        essential: s.get("Essential").is_some_and(|v| v == "yes"),
        priority: field("Priority"),
        source,
        source_version,
        filename: filename.to_string(),
        size,
        sha256,
        depends: field("Depends"),
        pre_depends: field("Pre-Depends"),
        provides: field("Provides"),
        name,
        version,
    })
}

/// A relative path with no `..`, empty or `.`-only escape.
pub fn is_safe_filename(f: &str) -> bool {
    !f.is_empty()
        && !f.starts_with('/')
        && !f.contains('\\')
        && !f.contains('\0')
        && f.split('/').all(|c| !c.is_empty() && c != "..")
}

/// All packages of a suite for one architecture, by name; each name's candidates sorted newest
/// first (ties keep index order).
#[derive(Debug, Default)]
pub struct PackageIndex {
    pub by_name: BTreeMap<String, Vec<Package>>,
}

impl PackageIndex {
    pub fn add(&mut self, p: Package) {
        let list = self.by_name.entry(p.name.clone()).or_default();
        let at = list.partition_point(|q| q.version >= p.version);
        list.insert(at, p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "Package: hello\nVersion: 2.10-3\nArchitecture: amd64\n\
        Source: hello-src (2.10-2)\nDepends: libc6 (>= 2.34)\nFilename: pool/main/h/hello.deb\n\
        Size: 10\nSHA256: 0000000000000000000000000000000000000000000000000000000000000000\n";

    #[test]
    fn reads_a_package() {
        let mut got = Vec::new();
        read_packages(ONE.as_bytes(), "t", |p| got.push(p)).unwrap();
        let p = &got[0];
        assert_eq!((p.name.as_str(), p.version.as_str()), ("hello", "2.10-3"));
        assert_eq!(
            (p.source.as_str(), p.source_version.as_str()),
            ("hello-src", "2.10-2")
        );
        assert_eq!(p.depends, "libc6 (>= 2.34)");
    }

    #[test]
    fn refuses_filenames_that_leave_the_repository() {
        for f in ["../../x", "/etc/passwd", "pool/../../x", "", "pool//x"] {
            let text = ONE.replace("pool/main/h/hello.deb", f);
            let err = read_packages(text.as_bytes(), "t", |_| {}).unwrap_err();
            assert!(
                matches!(
                    err,
                    PackagesError::UnsafeFilename { .. } | PackagesError::MissingField { .. }
                ),
                "{f}: {err}"
            );
        }
    }
}
