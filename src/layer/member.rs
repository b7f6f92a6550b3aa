//! What one tar member of a layer means: the single set of rules every reader of layers uses
//! (the tree reader [`super::from_tar`], the extractor [`super::extract`], `kiln diff`'s
//! scanner and the build's index of lower layers), so that `build`, `diff` and `extract`
//! never disagree about the same layer.
//!
//! Why one place: each reader used to carry its own copy of these rules, and the copies
//! drifted (a root opaque marker was accepted by one and refused by another, one validated
//! nothing), so the same hostile layer meant different trees to different commands.
//!
//! The rules follow the OCI image spec (`layer.md`, "Whiteouts") and what containerd
//! (`archive/tar.go`) and umoci (`oci/layer/tar_extract.go`) do; where those accept something
//! that can only be an attack or a broken writer, kiln refuses it, with an error naming the
//! member and its byte offset (the caller adds the layer's digest):
//!
//! | member | meaning |
//! | --- | --- |
//! | a name is normalized lexically | a leading `/` and `.` components are dropped, `..` is clamped at the root (`../x`, `/../x` are `x`), as containerd and umoci clean names |
//! | a NUL byte in a name or link target | refused |
//! | `./`, `/`, `` (the root) as a directory | the root's own metadata: not an entry of the layer |
//! | the root as anything else (`.` as a symlink, file, hardlink …) | refused: the root is never replaced (umoci refuses it too; CVE-2021-29136) |
//! | `DIR/.wh..wh..opq` | opaque marker: hides what lower layers hold in `DIR`; at the root it hides every lower layer (containerd and umoci both accept it); it acts on lower layers only, wherever it sits in the archive |
//! | `DIR/.wh.NAME` | whiteout: removes `DIR/NAME` from lower layers; an entry of the same layer at that path stays, and a directory of the same layer there keeps only this layer's contents (umoci's rule) |
//! | `.wh.`, `.wh..`, `.wh...` | refused: a whiteout of the directory holding it, of its parent or of the root |
//! | `.wh..wh.NAME` other than the opaque marker | refused: reserved for AUFS metadata (`.wh..wh.plnk`), never a valid layer member |
//! | a whiteout or opaque marker that is not an empty regular file | refused: the spec defines a whiteout as an empty file, and a directory, link or data carried by one would be hidden by readers that apply it and shown by readers that do not |
//! | a `.wh.` name as a parent component (`.wh.x/y`) | refused: the spec says no file or directory can be named `.wh.*`, so nothing lies below one |
//! | a symlink with an empty target | refused: no filesystem can hold it |
//! | a hardlink to the root (`.`, `/`, `..`) | refused: a link names an entry |
//! | the same path twice | the last member wins (type changes replace the earlier entry and what was below it) |
//!
//! In plain archives (the input of an `extract` step), `.wh.` names have no meaning: any
//! member with a `.wh.` component is refused, since the layer it would build would carry it
//! as a whiteout. For the same reason the tar writer refuses an entry with a `.wh.` component
//! whatever step made it (a `write` to `/.wh.etc` would otherwise delete the base's `/etc`).

use super::kind::Kind;
use super::read::{TarEntry, TarKind};
use super::tree::{self, TreeError};

/// The OCI whiteout prefix.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The OCI opaque-directory marker.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// How `.wh.` names are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Names {
    /// An image layer: `.wh.` names are OCI whiteouts and opaque markers.
    Layer,
    /// A plain archive (an `extract` step's input): `.wh.` names are refused.
    Plain,
}

/// The type of a member that is an entry of the layer, with what identifies it besides its
/// metadata and contents (a file's contents are still to be read from the archive; a
/// hardlink's target is normalized).
pub type MemberKind = Kind<()>;

/// What a member does to the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The root directory's own entry (`./`): not part of the layer's entries.
    Root,
    /// `DIR/.wh..wh..opq`: hides the lower contents of `dir` (`""`: the root).
    Opaque { dir: String },
    /// `DIR/.wh.NAME`: removes `target` (`DIR/NAME`) from lower layers.
    Whiteout { target: String },
    /// An entry at the member's name.
    Entry(MemberKind),
}

/// One classified member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The member's name, normalized (`""`: the root).
    pub name: String,
    pub role: Role,
}

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("failed to read tar member `{path}` (byte {offset}): its name contains a NUL byte")]
    NulInName { path: String, offset: u64 },
    #[error("failed to read tar member `{path}` (byte {offset}): a {kind} cannot replace the image root")]
    RootEntry {
        path: String,
        offset: u64,
        kind: &'static str,
    },
    #[error("failed to read tar member `{path}` (byte {offset}): whiteout names are not allowed in this archive")]
    WhiteoutNotAllowed { path: String, offset: u64 },
    #[error("failed to read tar member `{path}` (byte {offset}): invalid whiteout: {reason}")]
    InvalidWhiteout {
        path: String,
        offset: u64,
        reason: &'static str,
    },
    #[error("failed to read tar member `{path}` (byte {offset}): `{component}` is a whiteout name, nothing can lie below it")]
    BelowWhiteout {
        path: String,
        offset: u64,
        component: String,
    },
    #[error("failed to read tar member `{path}` (byte {offset}): {reason}")]
    BadLinkTarget {
        path: String,
        offset: u64,
        reason: &'static str,
    },
}

impl MemberError {
    /// The member's name as written in the archive.
    #[cfg(test)]
    pub fn path(&self) -> &str {
        match self {
            MemberError::NulInName { path, .. }
            | MemberError::RootEntry { path, .. }
            | MemberError::WhiteoutNotAllowed { path, .. }
            | MemberError::InvalidWhiteout { path, .. }
            | MemberError::BelowWhiteout { path, .. }
            | MemberError::BadLinkTarget { path, .. } => path,
        }
    }
}

/// Classifies one member under the rules of the module docs.
pub fn classify(entry: &TarEntry, names: Names) -> Result<Member, MemberError> {
    let path = || entry.path.clone();
    let offset = entry.offset;
    // Normalizing fails only on a NUL byte.
    let name = tree::normalize_dir(&entry.path).map_err(|_| MemberError::NulInName {
        path: path(),
        offset,
    })?;
    let kind = member_kind(entry)?;
    if name.is_empty() {
        return match kind {
            MemberKind::Dir => Ok(Member {
                name,
                role: Role::Root,
            }),
            other => Err(MemberError::RootEntry {
                path: path(),
                offset,
                kind: other.name(),
            }),
        };
    }
    let (parent, base) = name.rsplit_once('/').unwrap_or(("", name.as_str()));
    if let Some(component) = parent.split('/').find(|c| c.starts_with(WHITEOUT_PREFIX)) {
        return Err(match names {
            Names::Plain => MemberError::WhiteoutNotAllowed {
                path: path(),
                offset,
            },
            Names::Layer => MemberError::BelowWhiteout {
                path: path(),
                offset,
                component: component.to_string(),
            },
        });
    }
    let Some(victim) = base.strip_prefix(WHITEOUT_PREFIX) else {
        return Ok(Member {
            role: Role::Entry(kind),
            name,
        });
    };
    let invalid = |reason| MemberError::InvalidWhiteout {
        path: path(),
        offset,
        reason,
    };
    if names == Names::Plain {
        return Err(MemberError::WhiteoutNotAllowed {
            path: path(),
            offset,
        });
    }
    let role = if base == OPAQUE_MARKER {
        Role::Opaque {
            dir: parent.to_string(),
        }
    } else if victim.is_empty() {
        return Err(invalid("it names no entry"));
    } else if victim == "." || victim == ".." {
        return Err(invalid("it names the directory holding it or its parent"));
    } else if victim.starts_with(WHITEOUT_PREFIX) {
        return Err(invalid(
            "`.wh..wh.` names are reserved (only `.wh..wh..opq` is defined)",
        ));
    } else {
        Role::Whiteout {
            target: tree::join(parent, victim),
        }
    };
    if kind != MemberKind::File(()) || entry.size != 0 {
        return Err(invalid("a whiteout must be an empty regular file"));
    }
    Ok(Member { name, role })
}

fn member_kind(entry: &TarEntry) -> Result<MemberKind, MemberError> {
    let bad_target = |reason| MemberError::BadLinkTarget {
        path: entry.path.clone(),
        offset: entry.offset,
        reason,
    };
    let target = entry.link_name.as_str();
    Ok(match entry.kind {
        TarKind::Dir => MemberKind::Dir,
        TarKind::File => MemberKind::File(()),
        TarKind::Symlink if target.is_empty() => {
            return Err(bad_target("a symlink needs a target"))
        }
        TarKind::Symlink if target.contains('\0') => {
            return Err(bad_target("a symlink target cannot contain a NUL byte"))
        }
        TarKind::Symlink => MemberKind::Symlink(target.to_string()),
        TarKind::Hardlink => match tree::normalize(target) {
            Ok(target) => MemberKind::Hardlink(target),
            Err(TreeError::RootPath { .. }) => {
                return Err(bad_target("a hardlink cannot name the image root"))
            }
            Err(_) => return Err(bad_target("a hardlink target cannot contain a NUL byte")),
        },
        TarKind::CharDevice => MemberKind::CharDevice {
            major: entry.dev_major,
            minor: entry.dev_minor,
        },
        TarKind::BlockDevice => MemberKind::BlockDevice {
            major: entry.dev_major,
            minor: entry.dev_minor,
        },
        TarKind::Fifo => MemberKind::Fifo,
    })
}

#[cfg(test)]
#[path = "member_tests.rs"]
mod tests;
