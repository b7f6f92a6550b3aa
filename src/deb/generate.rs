//! Files that maintainer scripts would make, made by kiln instead (no script runs in a package
//! image): what a `packages` step lists in `generate`.
//!
//! `ca-certificates` is the bundle `/etc/ssl/certs/ca-certificates.crt`. On a fresh install
//! the package's `config` script lists every regular `*.crt` file under
//! `/usr/share/ca-certificates` (`find . -type f -name '*.crt'`, then `sort`), its `postinst`
//! enables them all in `/etc/ca-certificates.conf` in that order, and `update-ca-certificates`
//! concatenates them in the order of that file, adding a final newline to a certificate that
//! lacks one (`sed -e '$a\'`). The order is bytewise (`sort` in the C locale, as dpkg runs
//! scripts without a locale in image builds). Only the bundle is made: the per-certificate
//! `*.pem` links and `openssl rehash` links in `/etc/ssl/certs` are not (distroless ships the
//! bundle alone, and TLS libraries read it through the bundle path).

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::install::ensure_dirs;
use super::lockfile::LockedPackage;
use crate::layer::decompress;
use crate::layer::read::{ReadLimits, TarKind, TarReader};
use crate::layer::tree::{Content, Entry, EntryKind, FileTree, Metadata};
use crate::recipe::Generated;

/// Where `update-ca-certificates` writes the bundle.
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The package whose certificates go into the bundle.
const CA_PACKAGE: &str = "ca-certificates";

/// Where that package keeps them.
const CA_DIR: &str = "usr/share/ca-certificates/";

/// The largest certificate file read, and the largest bundle made.
const MAX_CERT: u64 = 1 << 20;
const MAX_BUNDLE: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(
        "`generate = [\"{}\"]` needs the {package} package in the same step's closure",
        what.name()
    )]
    MissingPackage {
        what: Generated,
        package: &'static str,
    },
    #[error("failed to read {path} ({package})")]
    Open {
        package: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read the certificates of {package}")]
    Read {
        package: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{package} has a certificate `{path}` larger than {MAX_CERT} bytes, or more than {MAX_BUNDLE} bytes of them")]
    TooLarge { package: String, path: String },
    #[error("failed to write {path}")]
    Write {
        path: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl GenerateError {
    /// What the user can do about it, when kiln knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::MissingPackage { package, .. } => {
                Some(format!("add \"{package}\" to its `packages`"))
            }
            _ => None,
        }
    }
}

/// Adds each of `generate` to `tree`, made from the `.deb`s of the step (`debs`: each locked
/// package and its verified file).
pub fn generate(
    tree: &mut FileTree,
    generate: &[Generated],
    debs: &[(LockedPackage, PathBuf)],
    epoch: i64,
) -> Result<(), GenerateError> {
    for &what in generate {
        match what {
            Generated::CaCertificates => {
                let (package, path) = debs.iter().find(|(p, _)| p.name == CA_PACKAGE).ok_or(
                    GenerateError::MissingPackage {
                        what,
                        package: CA_PACKAGE,
                    },
                )?;
                let bundle = ca_bundle(package, path)?;
                let write_err =
                    |source: Box<dyn std::error::Error + Send + Sync>| GenerateError::Write {
                        path: CA_BUNDLE,
                        source,
                    };
                ensure_dirs(tree, CA_BUNDLE, epoch).map_err(|e| write_err(Box::new(e)))?;
                let entry = Entry {
                    kind: EntryKind::File(Content::Inline(Arc::from(bundle))),
                    meta: Metadata::new(0o644, 0, 0, epoch),
                };
                tree.insert(CA_BUNDLE, entry)
                    .map_err(|e| write_err(Box::new(e)))?;
            }
        }
    }
    Ok(())
}

/// The bundle `update-ca-certificates` makes from the certificates in the `.deb` at `path`.
fn ca_bundle(package: &LockedPackage, path: &Path) -> Result<Vec<u8>, GenerateError> {
    let name = &package.name;
    let file = fs_err::File::open(path).map_err(|source| GenerateError::Open {
        package: name.clone(),
        path: path.to_path_buf(),
        source,
    })?;
    let label = format!("{name}_{}_{}.deb", package.version, package.architecture);
    let read_err = |source: Box<dyn std::error::Error + Send + Sync>| GenerateError::Read {
        package: name.clone(),
        source,
    };
    let data = decompress::open_archive(BufReader::new(file), &label)
        .map_err(|e| read_err(Box::new(e)))?;
    let certs = certificates(data).map_err(|e| match e {
        Certs::Read(source) => read_err(source),
        Certs::TooLarge(path) => GenerateError::TooLarge {
            package: name.clone(),
            path,
        },
    })?;
    Ok(concatenate(certs))
}

enum Certs {
    Read(Box<dyn std::error::Error + Send + Sync>),
    TooLarge(String),
}

/// Every regular `*.crt` file under `usr/share/ca-certificates/` of a data tar, by its path
/// below that directory, sorted bytewise.
fn certificates(data: impl Read) -> Result<Vec<(String, Vec<u8>)>, Certs> {
    let mut reader = TarReader::new(data, ReadLimits::default());
    let mut out = Vec::new();
    let mut total = 0usize;
    while let Some(entry) = reader.next_entry().map_err(|e| Certs::Read(Box::new(e)))? {
        let path = entry.path.trim_start_matches("./").trim_start_matches('/');
        let Some(relative) = path.strip_prefix(CA_DIR) else {
            continue;
        };
        if entry.kind != TarKind::File || !relative.ends_with(".crt") {
            continue;
        }
        total += entry.size as usize;
        if entry.size > MAX_CERT || total > MAX_BUNDLE {
            return Err(Certs::TooLarge(path.to_string()));
        }
        let relative = relative.to_string();
        let mut bytes = Vec::new();
        reader
            .read_data(&mut bytes)
            .map_err(|e| Certs::Read(Box::new(e)))?;
        out.push((relative, bytes));
    }
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

/// The certificates one after the other, each ending in a newline (`sed -e '$a\'`: an empty
/// file adds nothing).
fn concatenate(certs: Vec<(String, Vec<u8>)>) -> Vec<u8> {
    let mut bundle = Vec::new();
    for (_, bytes) in certs {
        bundle.extend_from_slice(&bytes);
        if bytes.last().is_some_and(|&b| b != b'\n') {
            bundle.push(b'\n');
        }
    }
    bundle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_adds_a_missing_final_newline_and_keeps_empty_files_empty() {
        let certs = vec![
            ("a.crt".to_string(), b"A\n".to_vec()),
            ("b.crt".to_string(), b"B".to_vec()),
            ("c.crt".to_string(), Vec::new()),
            ("d.crt".to_string(), b"D\r\n".to_vec()),
        ];
        assert_eq!(concatenate(certs), b"A\nB\nD\r\n");
    }

    #[test]
    fn certificates_are_the_regular_crt_files_below_the_directory_in_bytewise_order() {
        let mut tar = crate::layer::testtar::Tar::new();
        for (path, body) in [
            ("./usr/share/ca-certificates/mozilla/b_B.crt", "b"),
            ("./usr/share/ca-certificates/mozilla/bB.crt", "B"),
            ("./usr/share/ca-certificates/mozilla/README", "no"),
            ("./usr/share/ca-certificates/local/a.crt", "a"),
            ("./usr/share/doc/x.crt", "no"),
        ] {
            tar.file(path, body.as_bytes());
        }
        tar.symlink("./usr/share/ca-certificates/mozilla/link.crt", "bB.crt");
        let certs = match certificates(&tar.finish()[..]) {
            Ok(c) => c,
            Err(_) => panic!("readable"),
        };
        let names: Vec<&str> = certs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["local/a.crt", "mozilla/bB.crt", "mozilla/b_B.crt"]);
    }
}
