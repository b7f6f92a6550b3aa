//! SBOMs of an image: SPDX 2.3 JSON and CycloneDX 1.5 JSON, from its dpkg records and, when the
//! image carries kiln's provenance, the recipe's resolved inputs (base image, urls, paths).
//!
//! The bytes are deterministic: the only time is the image's own `created`, the document
//! namespace and serial number derive from the manifest digest, and everything is sorted.
//! Licenses come from machine-readable copyright files ([`super::license`]); a package without
//! one is `NOASSERTION` (SPDX) or lists none (CycloneDX).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{json, Value};

use super::dpkg::{read_image_packages, ImagePackages, InstalledPackage};
use super::license::{declared, Declared};
use super::ScanError;
use crate::attest::provenance::SLSA_PROVENANCE_V1;
use crate::attest::{PredicateType, Statement};
use crate::digest::Sha256Digest;
use crate::image::referrer::{self, referrer_statements};
use crate::image::{self, ImageError, ImageRef, Layout, OpenedImage};

/// The SBOM formats kiln writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SbomFormat {
    SpdxJson,
    CyclonedxJson,
}

impl SbomFormat {
    /// The predicate type an SBOM in this format is attested as.
    pub fn predicate_type(self) -> PredicateType {
        match self {
            Self::SpdxJson => PredicateType::SpdxJson,
            Self::CyclonedxJson => PredicateType::CycloneDx,
        }
    }
}

/// The SBOM of `img` in `format`, naming the image `name`: its dpkg records, and the inputs of
/// kiln's provenance when the image has it as a referrer.
pub fn image_sbom(img: &OpenedImage, name: &str, format: SbomFormat) -> Result<Value, ScanError> {
    let packages = read_image_packages(img)?;
    let inputs = provenance_inputs(img)?;
    let created = img.config.created().clone();
    let subject = SbomSubject {
        reference: name,
        digest: img.manifest_digest,
        created: created.as_deref(),
        packages: &packages,
        inputs: &inputs,
    };
    Ok(match format {
        SbomFormat::SpdxJson => spdx(&subject),
        SbomFormat::CyclonedxJson => cyclonedx(&subject),
    })
}

/// `kiln build --sbom`: both SBOMs of the image `digest` in the layout `dir` (read back from
/// the layout, with the provenance already there, so they equal `kiln sbom … --name NAME`),
/// attached as in-toto statements about it, as the provenance is (OCI 1.1 referrers). Returns
/// the predicates, for `--sign-key` to attest.
pub fn attach_sboms(
    dir: &Path,
    digest: &Sha256Digest,
    name: &str,
) -> Result<Vec<(PredicateType, Value)>, ScanError> {
    let attach_err = |source| ScanError::AttachSbom {
        dir: dir.to_path_buf(),
        source: Box::new(source),
    };
    let reference = ImageRef::Oci {
        path: dir.to_path_buf(),
        tag: None,
        digest: Some(*digest),
    };
    let img = image::open_image(&reference, None).map_err(attach_err)?;
    let layout = Layout::open(dir).map_err(attach_err)?;
    let subject = referrer::Subject {
        media_type: &img.manifest_media_type,
        digest,
        size: img.manifest_bytes.len() as u64,
    };
    let mut out = Vec::new();
    for format in [SbomFormat::SpdxJson, SbomFormat::CyclonedxJson] {
        let kind = format.predicate_type();
        let doc = image_sbom(&img, name, format)?;
        let statement = Statement::new(name, digest, &kind, doc.clone()).to_json();
        referrer::attach_statement(&layout, subject, &statement, kind.uri()).map_err(attach_err)?;
        out.push((kind, doc));
    }
    Ok(out)
}

/// The `resolvedDependencies` of kiln's SLSA provenance referrer, when the image has one.
fn provenance_inputs(img: &OpenedImage) -> Result<Vec<Input>, ScanError> {
    let statements =
        referrer_statements(img, SLSA_PROVENANCE_V1).map_err(|source: ImageError| {
            ScanError::Referrers {
                reference: img.reference.clone(),
                source: Box::new(source),
            }
        })?;
    let mut out = Vec::new();
    for (_, statement) in statements {
        let deps = statement
            .pointer("/predicate/buildDefinition/resolvedDependencies")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for d in deps {
            let s = |p: &str| {
                d.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            out.push(Input {
                name: s("/name"),
                uri: s("/uri"),
                sha256: s("/digest/sha256"),
            });
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// One resolved input from the provenance (`resolvedDependencies`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Input {
    pub name: String,
    pub uri: String,
    pub sha256: String,
}

/// What an SBOM describes.
pub struct SbomSubject<'a> {
    /// The reference the user gave.
    pub reference: &'a str,
    pub digest: Sha256Digest,
    /// The config's `created` (RFC 3339), if any.
    pub created: Option<&'a str>,
    pub packages: &'a ImagePackages,
    pub inputs: &'a [Input],
}

/// Percent-encodes what a purl segment may not hold as is (`+` → `%2B`); `:` (an epoch) is
/// kept, as syft and the purl examples write it.
fn purl_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=debian-12`.
pub fn purl(p: &InstalledPackage, packages: &ImagePackages) -> String {
    let vendor = packages.os_id.as_deref().unwrap_or("debian");
    let mut q = Vec::new();
    if !p.architecture.is_empty() {
        q.push(format!("arch={}", purl_escape(&p.architecture)));
    }
    if let Some(v) = &packages.os_version_id {
        q.push(format!("distro={}-{}", purl_escape(vendor), purl_escape(v)));
    }
    let mut s = format!(
        "pkg:deb/{}/{}@{}",
        purl_escape(vendor),
        purl_escape(&p.name),
        purl_escape(&p.version)
    );
    if !q.is_empty() {
        s.push('?');
        s.push_str(&q.join("&"));
    }
    s
}

/// `YYYY-MM-DDThh:mm:ssZ` (what SPDX requires), from the image's `created`.
fn timestamp(created: Option<&str>) -> String {
    match created {
        Some(c) if c.len() >= 19 && c.is_char_boundary(19) => format!("{}Z", &c[..19]),
        _ => "1970-01-01T00:00:00Z".to_string(),
    }
}

/// SPDX ids allow letters, digits, `.` and `-`.
fn spdx_id(prefix: &str, parts: &[&str]) -> String {
    let body: String = parts
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("SPDXRef-{prefix}-{body}")
}

/// The provenance's `.deb` input of a package (`REPO:NAME_VERSION_ARCH.deb`).
fn deb_input<'a>(s: &SbomSubject<'a>, p: &InstalledPackage) -> Option<&'a Input> {
    let label = format!(":{}_{}_{}.deb", p.name, p.version, p.architecture);
    s.inputs.iter().find(|i| i.name.ends_with(&label))
}

/// SPDX 2.3 JSON.
pub fn spdx(s: &SbomSubject<'_>) -> Value {
    let hex = s.digest.hex();
    let image_id = "SPDXRef-Image".to_string();
    let mut packages = vec![json!({
        "SPDXID": image_id,
        "name": s.reference,
        "versionInfo": s.digest.to_string(),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": format!("pkg:oci/image@sha256%3A{hex}"),
        }],
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": image_id,
    })];
    let mut license_refs: BTreeMap<String, (String, BTreeSet<&str>)> = BTreeMap::new();
    for (i, p) in s.packages.packages.iter().enumerate() {
        let id = spdx_id("Package-deb", &[&p.name, &p.architecture, &i.to_string()]);
        let declared = declared_license(s.packages, p);
        for (id, name) in declared.iter().flat_map(|d| &d.refs) {
            let entry = license_refs
                .entry(id.clone())
                .or_insert_with(|| (name.clone(), BTreeSet::new()));
            entry.1.insert(&p.name);
        }
        let mut package = json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": declared.as_ref().map_or("NOASSERTION", |d| d.expression.as_str()),
            "copyrightText": "NOASSERTION",
            "sourceInfo": format!("built from the Debian source package {} {}", p.source, p.source_version),
            "primaryPackagePurpose": "LIBRARY",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl(p, s.packages),
            }],
        });
        if let Some(deb) = deb_input(s, p) {
            package["downloadLocation"] = json!(deb.uri);
            package["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": deb.sha256}]);
        }
        packages.push(package);
        relationships.push(json!({
            "spdxElementId": image_id,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    for (i, input) in s.inputs.iter().enumerate() {
        let id = spdx_id("Input", &[&input.name, &i.to_string()]);
        packages.push(json!({
            "SPDXID": id,
            "name": input.name,
            "downloadLocation": if input.uri.contains("://") { input.uri.as_str() } else { "NOASSERTION" },
            "filesAnalyzed": false,
            "checksums": [{"algorithm": "SHA256", "checksumValue": input.sha256}],
            "sourceInfo": format!("recipe input {}", input.uri),
        }));
        relationships.push(json!({
            "spdxElementId": id,
            "relationshipType": "BUILD_DEPENDENCY_OF",
            "relatedSpdxElement": image_id,
        }));
    }
    let extracted: Vec<Value> = license_refs
        .into_iter()
        .map(|(id, (name, packages))| {
            let files: Vec<String> = packages
                .iter()
                .map(|p| format!("/usr/share/doc/{p}/copyright"))
                .collect();
            json!({
                "licenseId": id,
                "name": name,
                "extractedText": format!(
                    "The license Debian names `{name}` in {}",
                    files.join(", ")
                ),
            })
        })
        .collect();
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": s.reference,
        "documentNamespace": format!("https://spdx.org/spdxdocs/kiln-image-sha256-{hex}"),
        "creationInfo": {
            "created": timestamp(s.created),
            "creators": [format!("Tool: kiln-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": relationships,
    });
    if !extracted.is_empty() {
        doc["hasExtractedLicensingInfos"] = json!(extracted);
    }
    doc
}

/// The declared license of `p`, from its DEP-5 copyright file (see [`super::license`]).
fn declared_license(packages: &ImagePackages, p: &InstalledPackage) -> Option<Declared> {
    packages.copyright.get(&p.name).and_then(|t| declared(t))
}

/// A name-based-looking UUID (version 5 bits) from the image digest.
fn serial(digest: &Sha256Digest) -> String {
    let mut b = *Sha256Digest::of(format!("kiln sbom {digest}").as_bytes()).as_bytes();
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b[..16].iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// CycloneDX 1.5 JSON.
pub fn cyclonedx(s: &SbomSubject<'_>) -> Value {
    let mut components = Vec::new();
    for p in &s.packages.packages {
        let purl = purl(p, s.packages);
        let mut component = json!({
            "type": "library",
            "bom-ref": purl,
            "name": p.name,
            "version": p.version,
            "purl": purl,
            "properties": [
                {"name": "kiln:deb:architecture", "value": p.architecture},
                {"name": "kiln:deb:source", "value": p.source},
                {"name": "kiln:deb:source-version", "value": p.source_version},
            ],
        });
        if let Some(deb) = deb_input(s, p) {
            component["hashes"] = json!([{"alg": "SHA-256", "content": deb.sha256}]);
        }
        if let Some(d) = declared_license(s.packages, p) {
            component["licenses"] = json!([{"expression": d.expression}]);
        }
        components.push(component);
    }
    for (i, input) in s.inputs.iter().enumerate() {
        components.push(json!({
            "type": "file",
            "bom-ref": format!("input-{i}-{}", input.name),
            "name": input.name,
            "hashes": [{"alg": "SHA-256", "content": input.sha256}],
            "properties": [{"name": "kiln:input:uri", "value": input.uri}],
        }));
    }
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": serial(&s.digest),
        "version": 1,
        "metadata": {
            "timestamp": timestamp(s.created),
            "tools": {"components": [{
                "type": "application",
                "name": "kiln",
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": {
                "type": "container",
                "bom-ref": "image",
                "name": s.reference,
                "version": s.digest.to_string(),
            },
        },
        "components": components,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_escape_plus_and_epoch() {
        let pkgs = ImagePackages {
            os_id: Some("debian".into()),
            os_version_id: Some("12".into()),
            ..Default::default()
        };
        let p = InstalledPackage {
            name: "libstdc++6".into(),
            version: "1:12.2.0-14+deb12u1".into(),
            architecture: "amd64".into(),
            source: "gcc-12".into(),
            source_version: "12.2.0-14+deb12u1".into(),
            location: String::new(),
        };
        assert_eq!(
            purl(&p, &pkgs),
            "pkg:deb/debian/libstdc%2B%2B6@1:12.2.0-14%2Bdeb12u1?arch=amd64&distro=debian-12"
        );
    }

    #[test]
    fn serials_are_uuids() {
        let s = serial(&Sha256Digest::of(b"x"));
        assert_eq!(s.len(), "urn:uuid:".len() + 36);
        assert_eq!(&s[9 + 14..9 + 15], "5");
    }
}
