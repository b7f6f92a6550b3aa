//! Checks of `[config]` against the image the layers make: an image whose config names a user
//! its /etc/passwd lacks, or whose entrypoint a recipe step made non-executable, builds fine
//! and then fails in every runtime (`unable to find user ghost`, `permission denied`). Those are
//! refused here, at the recipe line that causes them, before anything is written.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use super::inputs::{InputBytes, ResolvedInput};
use super::observer::{BuildEvent, BuildObserver, BuildWarning};
use super::{Blob, BuildError, Result};
use crate::layer::member::{self, MemberKind, Names, Role};
use crate::layer::read::{ReadLimits, TarKind, TarReader};
use crate::layer::tree;
use crate::recipe::{Recipe, StepKind};

/// The most of /etc/passwd or /etc/group kiln reads to check a user (real ones are a few KiB).
const MAX_DB: u64 = 1 << 20;

pub fn check_config(
    recipe: &Recipe,
    inputs: &BTreeMap<String, ResolvedInput>,
    layers: &[Blob],
    observer: &dyn BuildObserver,
) -> Result<()> {
    check_user(recipe, layers, observer)?;
    check_entrypoint(recipe, inputs)
}

/// `[config] user`: numeric ids are always accepted (the runtime needs no database for them);
/// a name must be in the image's /etc/passwd (a group name in /etc/group).
fn check_user(recipe: &Recipe, layers: &[Blob], observer: &dyn BuildObserver) -> Result<()> {
    let Some(spec) = &recipe.config.user else {
        return Ok(());
    };
    let location = match recipe.config.at.get("user") {
        Some(span) => format!("{}:{span}", recipe.file.display()),
        None => recipe.file.display().to_string(),
    };
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec.as_str(), None),
    };
    let named = |s: &str| !s.is_empty() && s.parse::<u32>().is_err();
    let checks = [("etc/passwd", Some(user)), ("etc/group", group)];
    for (db, name) in checks {
        let Some(name) = name.filter(|n| named(n)) else {
            continue;
        };
        let unknown = |reason: String| BuildError::UnknownUser {
            location: location.clone(),
            user: spec.clone(),
            reason,
        };
        match final_file(layers, db) {
            FinalFile::Regular(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                if super::user::parse_db(&text, |f| f[0] == name).is_none() {
                    return Err(unknown(format!("the image's /{db} has no entry `{name}`")));
                }
            }
            FinalFile::Absent => {
                return Err(unknown(format!(
                    "the image has no /{db} to find `{name}` in"
                )))
            }
            FinalFile::Unknown(reason) => {
                observer.event(BuildEvent::Warning(&BuildWarning::UserUnchecked {
                    location: location.clone(),
                    user: spec.clone(),
                    reason: format!("/{db} {reason}"),
                }));
            }
        }
    }
    Ok(())
}

/// What the finished image has at a path.
#[derive(Debug, PartialEq, Eq)]
enum FinalFile {
    Regular(Vec<u8>),
    Absent,
    /// There is something, but not a regular file kiln reads (a symlink, a hard link, a
    /// FIFO, too large, an unreadable layer): the reason.
    Unknown(String),
}

/// The file at `key` in the image the `layers` (bottom first) make: the topmost layer that has
/// it, or hides it with a whiteout or an opaque directory, decides. Only regular files of at
/// most [`MAX_DB`] bytes are read; nothing is materialized or followed.
fn final_file(layers: &[Blob], key: &str) -> FinalFile {
    for blob in layers.iter().rev() {
        match in_layer(blob, key) {
            Ok(None) => continue,
            Ok(Some(found)) => return found,
            Err(e) => return FinalFile::Unknown(format!("could not be read: {e}")),
        }
    }
    FinalFile::Absent
}

/// What one layer says about `key`: `None` when it leaves the lower layers' version alone.
fn in_layer(
    blob: &Blob,
    key: &str,
) -> std::result::Result<Option<FinalFile>, Box<dyn std::error::Error>> {
    let ancestors: Vec<&str> = key
        .match_indices('/')
        .map(|(i, _)| &key[..i])
        .chain([""])
        .collect();
    let mut tar = TarReader::new(super::run::open_layer(blob)?, ReadLimits::default());
    let mut found = None;
    let mut hidden = false;
    while let Some(e) = tar.next_entry()? {
        // The same rules as every reader of layers: a layer they refuse cannot be checked.
        let member = member::classify(&e, Names::Layer)?;
        let path = member.name.as_str();
        match member.role {
            Role::Root => {}
            Role::Opaque { dir } => hidden |= ancestors.contains(&dir.as_str()),
            Role::Whiteout { target } => {
                hidden |= target == key || ancestors.contains(&target.as_str());
            }
            Role::Entry(_) if path == key => {
                found = Some(match e.kind {
                    TarKind::File if e.size > MAX_DB => {
                        FinalFile::Unknown(format!("is larger than {MAX_DB} bytes"))
                    }
                    TarKind::File => {
                        let mut bytes = Vec::new();
                        tar.data_reader().take(MAX_DB).read_to_end(&mut bytes)?;
                        FinalFile::Regular(bytes)
                    }
                    kind => FinalFile::Unknown(format!("is not a regular file ({kind:?})")),
                });
            }
            Role::Entry(kind) if ancestors.contains(&path) && kind != MemberKind::Dir => {
                found = Some(FinalFile::Unknown(format!(
                    "is below `/{path}`, a {:?}",
                    e.kind
                )));
            }
            Role::Entry(_) => {}
        }
    }
    Ok(found.or(hidden.then_some(FinalFile::Absent)))
}

/// The entrypoint (or, without one and without a base image whose entrypoint the command
/// would be arguments to, the command) when the last recipe step that places it is a `copy`
/// or `write` giving it no execute bit.
fn check_entrypoint(recipe: &Recipe, inputs: &BTreeMap<String, ResolvedInput>) -> Result<()> {
    let config = &recipe.config;
    let (key, program) = match (&config.entrypoint, &config.cmd) {
        (Some(e), _) if !e.is_empty() => ("entrypoint", &e[0]),
        (None, Some(c)) if !c.is_empty() && recipe.base.is_none() => ("cmd", &c[0]),
        _ => return Ok(()),
    };
    if !program.starts_with('/') {
        return Ok(());
    }
    let target = tree::normalize_dir(program).unwrap_or_default();
    let same = |p: &str| tree::normalize_dir(p).is_ok_and(|p| p == target);
    let below = |p: &str| {
        tree::normalize_dir(p).is_ok_and(|p| p.is_empty() || target.starts_with(&format!("{p}/")))
    };
    // The last step that decides the program's mode, and that mode when kiln knows it.
    let mut last: Option<(&crate::recipe::Step, Option<u32>)> = None;
    for step in recipe.layers.iter().flat_map(|l| &l.steps) {
        let mode = match &step.kind {
            StepKind::Copy {
                input, dest, mode, ..
            } if same(dest.as_str()) => match (mode, &inputs.get(input).map(|i| &i.bytes)) {
                (Some(m), _) => Some(m.bits()),
                (None, Some(InputBytes::Stored(_))) => Some(0o644),
                (None, Some(InputBytes::HostFile(p))) => {
                    let exec =
                        fs_err::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
                    Some(if exec { 0o755 } else { 0o644 })
                }
                (None, _) => None,
            },
            StepKind::Write { path, mode, .. } if same(path.as_str()) => Some(mode.bits()),
            StepKind::Copy { dest, .. } | StepKind::Extract { dest, .. }
                if below(dest.as_str()) =>
            {
                None
            }
            StepKind::Symlink { path, .. }
            | StepKind::Remove { path }
            | StepKind::Mkdir { path, .. }
                if same(path.as_str()) =>
            {
                None
            }
            StepKind::Run { .. } => None,
            _ => continue,
        };
        last = Some((step, mode));
    }
    if let Some((step, Some(mode))) = last {
        if mode & 0o111 == 0 {
            return Err(BuildError::NotExecutable {
                location: format!("{}:{}", recipe.file.display(), step.span),
                step: step.kind.name(),
                key,
                program: program.clone(),
                mode: format!("{mode:04o}"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Sha256Digest;
    use crate::layer::testtar::Tar;

    fn blob(dir: &std::path::Path, tar: &Tar) -> Blob {
        let bytes = tar.finish();
        let digest = Sha256Digest::of(&bytes);
        let path = dir.join(digest.hex());
        fs_err::write(&path, &bytes).unwrap();
        Blob {
            media_type: crate::media::OCI_LAYER_TAR.into(),
            digest,
            size: bytes.len() as u64,
            path,
        }
    }

    #[test]
    fn the_topmost_layer_that_has_or_hides_the_file_decides() {
        let tmp = tempfile::tempdir().unwrap();
        let b = |t: &mut Tar| blob(tmp.path(), t);
        let base = b(Tar::new()
            .dir("etc", 0o755)
            .file("etc/passwd", b"root:x:0:0::/:/bin/sh\n"));
        let other = b(Tar::new().file("etc/motd", b"hi\n"));
        let replaced = b(Tar::new().file("./etc/passwd", b"app:x:1:1::/:/bin/sh\n"));
        let whiteout = b(Tar::new().file("etc/.wh.passwd", b""));
        let opaque = b(Tar::new().file("etc/.wh..wh..opq", b""));
        let gone_dir = b(Tar::new().file(".wh.etc", b""));
        let symlink = b(Tar::new().symlink("etc/passwd", "/etc/shadow"));
        let fifo = b(Tar::new().raw(
            crate::layer::testtar::header(b"etc/passwd", b'6', 0, 0o644, b""),
            b"",
        ));
        let etc_link = b(Tar::new().symlink("etc", "/private"));
        let big = b(Tar::new().file("etc/passwd", &vec![b'x'; MAX_DB as usize + 1]));
        let regular = |s: &str| FinalFile::Regular(s.as_bytes().to_vec());
        let unknown = |s: &str| FinalFile::Unknown(s.to_string());
        let cases: Vec<(Vec<&Blob>, FinalFile)> = vec![
            (vec![], FinalFile::Absent),
            (vec![&other], FinalFile::Absent),
            (vec![&base, &other], regular("root:x:0:0::/:/bin/sh\n")),
            (
                vec![&base, &replaced, &other],
                regular("app:x:1:1::/:/bin/sh\n"),
            ),
            (vec![&base, &whiteout], FinalFile::Absent),
            (
                vec![&base, &whiteout, &replaced],
                regular("app:x:1:1::/:/bin/sh\n"),
            ),
            (vec![&base, &opaque], FinalFile::Absent),
            (vec![&base, &gone_dir], FinalFile::Absent),
            (
                vec![&base, &symlink],
                unknown("is not a regular file (Symlink)"),
            ),
            (vec![&base, &fifo], unknown("is not a regular file (Fifo)")),
            (
                vec![&base, &etc_link],
                unknown("is below `/etc`, a Symlink"),
            ),
            (vec![&big], unknown("is larger than 1048576 bytes")),
        ];
        for (i, (layers, want)) in cases.into_iter().enumerate() {
            let layers: Vec<Blob> = layers.into_iter().cloned().collect();
            assert_eq!(final_file(&layers, "etc/passwd"), want, "case {i}");
        }
    }
}
