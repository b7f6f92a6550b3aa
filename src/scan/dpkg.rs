//! The installed Debian packages of an image, from its dpkg records, and the release they come
//! from, from its os-release.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Result, ScanError};
use crate::deb::control::Stanza;
use crate::deb::version::Version;
use crate::diff::{scan_layer_capturing, AppliedFs, Capture};
use crate::image::layout::digest_of;
use crate::image::OpenedImage;

/// dpkg records and os-release files larger than this are refused, not read.
pub const MAX_RECORD_FILE: u64 = 64 * 1024 * 1024;

const STATUS: &str = "var/lib/dpkg/status";
const STATUS_D: &str = "var/lib/dpkg/status.d/";
const OS_RELEASE: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];
const COPYRIGHT_PREFIX: &str = "usr/share/doc/";

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstalledPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// The source package (the name itself when the record has no `Source`).
    pub source: String,
    /// The source version (`Source: NAME (VERSION)`, else the package's version).
    pub source_version: String,
    /// Where the record is: `/var/lib/dpkg/status.d/NAME`, or the lock file.
    pub location: String,
}

/// What `kiln scan` and `kiln sbom` read from an image.
#[derive(Debug, Clone, Default)]
pub struct ImagePackages {
    /// Sorted by name, then architecture.
    pub packages: Vec<InstalledPackage>,
    /// `ID` and `VERSION_ID` of os-release, when present.
    pub os_id: Option<String>,
    pub os_version_id: Option<String>,
    /// Machine-readable copyright files (`usr/share/doc/NAME/copyright`), by package name.
    pub copyright: BTreeMap<String, String>,
}

impl ImagePackages {
    /// The OSV ecosystem of these packages: `Debian:VERSION_ID`.
    pub fn ecosystem(&self) -> Option<String> {
        match (self.os_id.as_deref(), self.os_version_id.as_deref()) {
            (Some("debian") | None, Some(v)) => Some(format!("Debian:{v}")),
            _ => None,
        }
    }
}

/// A distroless record `status.d/NAME` (not its `NAME.md5sums` beside it).
fn is_status_d_record(path: &str) -> bool {
    path.strip_prefix(STATUS_D)
        .is_some_and(|n| !n.is_empty() && !n.contains('/') && !n.ends_with(".md5sums"))
}

fn wanted(path: &str) -> bool {
    path == STATUS
        || OS_RELEASE.contains(&path)
        || is_status_d_record(path)
        || path
            .strip_prefix(COPYRIGHT_PREFIX)
            .and_then(|r| r.strip_suffix("/copyright"))
            .is_some_and(|n| !n.is_empty() && !n.contains('/'))
}

/// Reads the image's layers once each (verifying digests and diff_ids), stacks them, and
/// parses the dpkg records and os-release of the result. Only regular files are read; a
/// symlinked `etc/os-release` falls back to `usr/lib/os-release`.
pub fn read_image_packages(img: &OpenedImage) -> Result<ImagePackages> {
    let layers_err = |source| ScanError::Layers {
        reference: img.reference.clone(),
        source: Box::new(source),
    };
    let mut capture = Capture {
        wanted: &wanted,
        max_size: MAX_RECORD_FILE,
        contents: BTreeMap::new(),
        too_large: Default::default(),
    };
    let diff_ids = img.diff_ids();
    let mut scans = Vec::new();
    for (index, layer) in img.manifest.layers().iter().enumerate() {
        let digest = digest_of(layer).map_err(|source| {
            layers_err(crate::diff::DiffError::Image {
                what: format!("layer {index}"),
                source,
            })
        })?;
        let scan =
            scan_layer_capturing(img, &digest, layer.size(), &mut capture).map_err(layers_err)?;
        let expected = diff_ids.get(index).cloned().unwrap_or_default();
        if scan.diff_id.to_string() != expected {
            return Err(ScanError::DiffId {
                reference: img.reference.clone(),
                index,
                expected,
                actual: scan.diff_id.to_string(),
            });
        }
        scans.push(scan);
    }
    let fs = AppliedFs::apply(&scans).map_err(layers_err)?;
    let read = |path: &str| -> Result<Option<String>> {
        let Some(node) = fs.nodes.get(path) else {
            return Ok(None);
        };
        let crate::diff::NodeKind::File(crate::diff::FileDigest { sha256, .. }) = &node.node.kind
        else {
            return Ok(None);
        };
        if capture.too_large.contains(path) {
            return Err(ScanError::TooLarge {
                path: format!("/{path}"),
                limit: MAX_RECORD_FILE,
            });
        }
        Ok(capture
            .contents
            .get(sha256)
            .map(|b| String::from_utf8_lossy(b).into_owned()))
    };
    let mut out = ImagePackages::default();
    let mut records: Vec<(String, String)> = Vec::new();
    if let Some(text) = read(STATUS)? {
        records.push((format!("/{STATUS}"), text));
    }
    for path in fs.nodes.keys().filter(|p| is_status_d_record(p)) {
        if let Some(text) = read(path)? {
            records.push((format!("/{path}"), text));
        }
    }
    for (path, text) in &records {
        out.packages.extend(parse_records(text, path)?);
    }
    out.packages.sort_by(|a, b| {
        (&a.name, &a.architecture, &a.version).cmp(&(&b.name, &b.architecture, &b.version))
    });
    out.packages.dedup();
    for path in OS_RELEASE {
        if let Some(text) = read(path)? {
            let fields = parse_os_release(&text);
            out.os_id = fields.get("ID").cloned();
            out.os_version_id = fields.get("VERSION_ID").cloned();
            break;
        }
    }
    for p in &out.packages {
        if let Some(text) = read(&format!("{COPYRIGHT_PREFIX}{}/copyright", p.name))? {
            out.copyright.insert(p.name.clone(), text);
        }
    }
    Ok(out)
}

/// Parses dpkg records: every stanza with a `Package` field whose `Status` (when present) says
/// installed. Versions are checked with dpkg's rules.
pub fn parse_records(text: &str, path: &str) -> Result<Vec<InstalledPackage>> {
    let stanzas = Stanza::parse_all(text, path).map_err(|source| ScanError::Control {
        path: path.to_string(),
        source,
    })?;
    let mut out = Vec::new();
    for s in stanzas {
        let Some(name) = s.get("Package") else {
            continue;
        };
        if let Some(status) = s.get("Status") {
            if !status.split_whitespace().any(|w| w == "installed") {
                continue;
            }
        }
        let missing = |field| ScanError::MissingField {
            path: path.to_string(),
            package: name.to_string(),
            field,
        };
        let version = s.get("Version").ok_or_else(|| missing("Version"))?;
        let check = |v: &str| {
            Version::parse(v).map_err(|source| ScanError::BadInstalledVersion {
                path: path.to_string(),
                package: name.to_string(),
                source,
            })
        };
        check(version)?;
        let architecture = s.get("Architecture").unwrap_or("").to_string();
        let (source, source_version) = match s.get("Source") {
            Some(field) => match field.split_once('(') {
                Some((n, v)) => (
                    n.trim().to_string(),
                    v.trim().trim_end_matches(')').trim().to_string(),
                ),
                None => (field.trim().to_string(), version.to_string()),
            },
            None => (name.to_string(), version.to_string()),
        };
        check(&source_version)?;
        out.push(InstalledPackage {
            name: name.to_string(),
            version: version.to_string(),
            architecture,
            source,
            source_version,
            location: path.to_string(),
        });
    }
    Ok(out)
}

/// `KEY=value` lines, values unquoted.
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim().split_once('='))
        .filter(|(k, _)| !k.starts_with('#'))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_with_version_and_status() {
        let text = "Package: libssl3\nStatus: install ok installed\nVersion: 3.0.11-1~deb12u2+b1\n\
                    Architecture: amd64\nSource: openssl (3.0.11-1~deb12u2)\n\n\
                    Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n\
                    Package: zlib1g\nVersion: 1:1.2.13.dfsg-1\nArchitecture: amd64\nSource: zlib\n";
        let p = parse_records(text, "/var/lib/dpkg/status").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].source, "openssl");
        assert_eq!(p[0].source_version, "3.0.11-1~deb12u2");
        assert_eq!(p[1].source, "zlib");
        assert_eq!(p[1].source_version, "1:1.2.13.dfsg-1");
    }

    #[test]
    fn a_version_dpkg_refuses_is_named() {
        let err = parse_records("Package: x\nVersion: 1_0\n", "/s").unwrap_err();
        assert!(err.to_string().contains("`x`"), "{err}");
    }

    #[test]
    fn os_release_values_are_unquoted() {
        let f = parse_os_release("ID=debian\nVERSION_ID=\"12\"\n# c\n");
        assert_eq!(f["VERSION_ID"], "12");
        assert_eq!(f["ID"], "debian");
    }
}
