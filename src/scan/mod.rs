//! What is in an image and which known vulnerabilities that brings, answered offline.
//!
//! The packages come from the image's dpkg records (`var/lib/dpkg/status` and the distroless
//! `var/lib/dpkg/status.d/*`, read from the applied filesystem of the layers, never extracted)
//! or from a `RECIPE.lock` before anything is built. They are matched against OSV records
//! ([`osv`]) in a directory or an osv.dev zip, with Debian's version order
//! ([`crate::deb::version`]). Every record kiln cannot read or evaluate is named: a warning
//! when it concerns no installed package, an `unevaluated` finding (which fails any gate) when
//! it does.

pub mod cvss;
pub mod dpkg;
pub mod ignore;
pub mod import;
pub mod license;
pub mod osv;
pub mod report;
pub mod sbom;
pub mod vuln;

pub use dpkg::{read_image_packages, InstalledPackage};
pub use ignore::IgnoreList;
pub use osv::{match_packages, Database, Finding, Status};
pub use report::{Report, Severity};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("failed to read the layers of {reference}")]
    Layers {
        reference: String,
        #[source]
        source: Box<crate::diff::DiffError>,
    },
    #[error("failed to read the referrers of {reference}")]
    Referrers {
        reference: String,
        #[source]
        source: Box<crate::image::ImageError>,
    },
    #[error("failed to attach the SBOMs to the image in {}", dir.display())]
    AttachSbom {
        dir: PathBuf,
        #[source]
        source: Box<crate::image::ImageError>,
    },
    #[error("layer {index} of {reference} has diff_id {actual}, the config says {expected}")]
    DiffId {
        reference: String,
        index: usize,
        expected: String,
        actual: String,
    },
    #[error("{path} is larger than {limit} bytes; kiln reads dpkg records up to that size")]
    TooLarge { path: String, limit: u64 },
    #[error("failed to parse the dpkg records in {path}")]
    Control {
        path: String,
        #[source]
        source: crate::deb::control::ControlError,
    },
    #[error("package `{package}` in {path} has no {field} field")]
    MissingField {
        path: String,
        package: String,
        field: &'static str,
    },
    #[error("package `{package}` in {path} has a version dpkg refuses")]
    BadInstalledVersion {
        path: String,
        package: String,
        #[source]
        source: crate::deb::version::VersionError,
    },
    #[error("cannot tell which Debian release {what} is: no VERSION_ID in its os-release")]
    NoEcosystem { what: String },
    #[error("failed to read the vulnerability database {path}")]
    Database {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the vulnerability database {path} holds no OSV records (*.json)")]
    EmptyDatabase { path: PathBuf },
    #[error("failed to read the zip {path}")]
    Zip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    #[error("failed to read the ignore file {path}")]
    IgnoreRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the ignore file {path} is not valid: {message}")]
    IgnoreParse { path: PathBuf, message: String },
    #[error("the ignore entry for {id} in {path} expired on {expires}")]
    IgnoreExpired {
        path: PathBuf,
        id: String,
        expires: String,
    },
}

impl ScanError {
    /// What the user can do about it, when kiln knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::NoEcosystem { .. } => Some(
                "pass --ecosystem Debian:12 (or the release the packages come from)".to_string(),
            ),
            Self::IgnoreExpired { .. } => {
                Some("fix the finding, or review the reason and move the expiry date".to_string())
            }
            _ => None,
        }
    }
}

pub type Result<T, E = ScanError> = std::result::Result<T, E>;
