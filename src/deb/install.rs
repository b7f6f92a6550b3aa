//! Installing locked `.deb`s into a file tree the way distroless does: each package's
//! `data.tar.*` unpacked in lock order (sorted by name), no maintainer scripts, and a dpkg
//! record per package at `/var/lib/dpkg/status.d/NAME` (its control stanza with
//! `Status: install ok installed`) with its file list at `/var/lib/dpkg/status.d/NAME.md5sums`,
//! which is where syft, Trivy and Grype look for packages in distroless images.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::lockfile::LockedPackage;
use crate::layer::decompress::{self, DecompressError};
use crate::layer::from_tar::{AddTarError, AddTarOptions};
use crate::layer::read::{ReadError, ReadLimits, TarKind, TarReader};
use crate::layer::tree::{Content, Entry, EntryKind, FileTree, Metadata, TreeError};

/// Where distroless keeps one dpkg record per package.
pub const STATUS_DIR: &str = "/var/lib/dpkg/status.d";

/// The largest `control` or `md5sums` member read into memory.
const MAX_CONTROL_FILE: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("failed to open {path} ({package})")]
    Open {
        package: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to open the .deb of {package}")]
    Decompress {
        package: String,
        #[source]
        source: DecompressError,
    },
    #[error("failed to unpack the data of {package}")]
    Data {
        package: String,
        #[source]
        source: AddTarError,
    },
    #[error("failed to read the control member of {package}")]
    Control {
        package: String,
        #[source]
        source: ReadError,
    },
    #[error("the control member of {package} has no `control` file")]
    NoControl { package: String },
    #[error(
        "the control file of {package} says {field} `{found}`, the lock says `{locked}`: \
         the .deb is not the locked package"
    )]
    ControlMismatch {
        package: String,
        field: &'static str,
        found: String,
        locked: String,
    },
    #[error("the control member of {package} has a member larger than {MAX_CONTROL_FILE} bytes")]
    ControlTooLarge { package: String },
    #[error("failed to write the dpkg record of {package}")]
    Record {
        package: String,
        #[source]
        source: TreeError,
    },
}

/// Unpacks each `(package, verified .deb path)` in the order given, then writes the dpkg
/// records.
pub fn install(
    tree: &mut FileTree,
    debs: &[(LockedPackage, PathBuf)],
    epoch: i64,
    scratch: &Path,
) -> Result<(), InstallError> {
    for (package, path) in debs {
        let name = &package.name;
        let open = || {
            fs_err::File::open(path)
                .map(BufReader::new)
                .map_err(|source| InstallError::Open {
                    package: name.clone(),
                    path: path.clone(),
                    source,
                })
        };
        let label = format!("{name}_{}_{}.deb", package.version, package.architecture);
        let data = decompress::open_archive(open()?, &label).map_err(|source| {
            InstallError::Decompress {
                package: name.clone(),
                source,
            }
        })?;
        let mut reader = TarReader::new(data, ReadLimits::default());
        tree.add_tar(
            &mut reader,
            "/",
            &AddTarOptions {
                epoch,
                spill_dir: scratch,
                whiteouts: false,
            },
        )
        .map_err(|source| InstallError::Data {
            package: name.clone(),
            source,
        })?;
        let (control, md5sums) = read_control(open()?, &label, name)?;
        let record = status_record(&control, package)?;
        let file = |bytes: Vec<u8>| Entry {
            kind: EntryKind::File(Content::Inline(Arc::from(bytes))),
            meta: Metadata::new(0o644, 0, 0, epoch),
        };
        let record_err = |source| InstallError::Record {
            package: name.clone(),
            source,
        };
        ensure_dirs(tree, &format!("{STATUS_DIR}/{name}"), epoch).map_err(record_err)?;
        tree.insert(&format!("{STATUS_DIR}/{name}"), file(record.into_bytes()))
            .map_err(record_err)?;
        if let Some(sums) = md5sums {
            tree.insert(&format!("{STATUS_DIR}/{name}.md5sums"), file(sums))
                .map_err(record_err)?;
        }
    }
    Ok(())
}

/// Makes every missing parent directory of `path` an entry of its own (0755, root), as
/// scanners walk the layer's entries, not an implied tree.
pub(crate) fn ensure_dirs(tree: &mut FileTree, path: &str, epoch: i64) -> Result<(), TreeError> {
    let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
    let mut dir = String::new();
    for part in parent
        .trim_start_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
    {
        dir = format!("{dir}/{part}");
        if tree.get(&dir).is_none() {
            let entry = Entry {
                kind: EntryKind::Dir,
                meta: Metadata::new(0o755, 0, 0, epoch),
            };
            tree.insert(&dir, entry)?;
        }
    }
    Ok(())
}

/// The `control` and `md5sums` files of a `.deb`'s control member.
fn read_control(
    deb: impl Read + Send,
    label: &str,
    package: &str,
) -> Result<(String, Option<Vec<u8>>), InstallError> {
    let stream =
        decompress::open_deb_control(deb, label).map_err(|source| InstallError::Decompress {
            package: package.to_string(),
            source,
        })?;
    let mut reader = TarReader::new(stream, ReadLimits::default());
    let control_err = |source| InstallError::Control {
        package: package.to_string(),
        source,
    };
    let (mut control, mut md5sums) = (None, None);
    while let Some(entry) = reader.next_entry().map_err(control_err)? {
        let name = entry.path.trim_start_matches("./");
        if entry.kind != TarKind::File || !matches!(name, "control" | "md5sums") {
            continue;
        }
        if entry.size > MAX_CONTROL_FILE {
            return Err(InstallError::ControlTooLarge {
                package: package.to_string(),
            });
        }
        let mut bytes = Vec::new();
        reader.read_data(&mut bytes).map_err(control_err)?;
        if name == "control" {
            control = Some(String::from_utf8_lossy(&bytes).into_owned());
        } else {
            md5sums = Some(bytes);
        }
    }
    let control = control.ok_or_else(|| InstallError::NoControl {
        package: package.to_string(),
    })?;
    Ok((control, md5sums))
}

/// The control stanza with `Status: install ok installed` after `Package:`, checked against
/// the lock (the sha256 already proved the file; this catches a repository whose index lied
/// about what the file is).
fn status_record(control: &str, locked: &LockedPackage) -> Result<String, InstallError> {
    let stanza = control.trim_end_matches('\n');
    let field = |name: &str| {
        stanza.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    for (name, want) in [
        ("Package", &locked.name),
        ("Version", &locked.version),
        ("Architecture", &locked.architecture),
    ] {
        let found = field(name).unwrap_or_default();
        if &found != want {
            return Err(InstallError::ControlMismatch {
                package: locked.name.clone(),
                field: match name {
                    "Package" => "Package",
                    "Version" => "Version",
                    _ => "Architecture",
                },
                found,
                locked: want.clone(),
            });
        }
    }
    let mut out = String::with_capacity(stanza.len() + 32);
    for line in stanza.lines() {
        if line.starts_with("Status:") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if line.starts_with("Package:") {
            out.push_str("Status: install ok installed\n");
        }
    }
    Ok(out)
}
