//! The `user` of a `run` step: numeric `uid[:gid]`, or names looked up in the image's own
//! /etc/passwd and /etc/group. Those files are read from the materialized rootfs with every
//! path component resolved inside it (`openat2` with `RESOLVE_IN_ROOT`), so an image whose
//! /etc/passwd is a symlink to `/etc/shadow` reads its own file, never the host's.

use std::path::Path;

use rustix::fs::{Mode, OFlags};

use crate::layer::{read_regular, ReadInRootError};

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("failed to use `user = {user:?}`: {reason}")]
    BadUser { user: String, reason: String },
    #[error("failed to read {path} in the rootfs to resolve `user = {user:?}`")]
    ReadUserDb {
        user: String,
        path: &'static str,
        #[source]
        source: ReadInRootError,
    },
}

/// `uid[:gid]` or `name[:group]`; names are looked up in the rootfs's /etc/passwd and
/// /etc/group. Without a group, the user's primary group (or 0 for an unknown numeric uid).
pub fn resolve_user(user: Option<&str>, rootfs: &Path) -> Result<(u32, u32), UserError> {
    let Some(spec) = user else {
        return Ok((0, 0));
    };
    let bad = |reason: String| UserError::BadUser {
        user: spec.to_string(),
        reason,
    };
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if u.is_empty() || g == Some("") {
        return Err(bad("expected uid[:gid] or name[:group]".into()));
    }
    let passwd = || read_in_root(rootfs, "etc/passwd", spec);
    let (uid, primary) = match u.parse::<u32>() {
        Ok(uid) => {
            let primary = if g.is_none() {
                parse_db(&passwd().unwrap_or_default(), |f| f[2] == u)
                    .and_then(|f| f[3].parse().ok())
            } else {
                None
            };
            (uid, primary)
        }
        Err(_) => {
            let db = passwd()?;
            let fields = parse_db(&db, |f| f[0] == u)
                .ok_or_else(|| bad(format!("no user `{u}` in the rootfs's /etc/passwd")))?;
            let uid = fields[2]
                .parse()
                .map_err(|_| bad(format!("/etc/passwd has an invalid uid for `{u}`")))?;
            (uid, fields[3].parse().ok())
        }
    };
    let gid = match g {
        None => primary.unwrap_or(0),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let db = read_in_root(rootfs, "etc/group", spec)?;
                let fields = parse_db(&db, |f| f[0] == g)
                    .ok_or_else(|| bad(format!("no group `{g}` in the rootfs's /etc/group")))?;
                fields[2]
                    .parse()
                    .map_err(|_| bad(format!("/etc/group has an invalid gid for `{g}`")))?
            }
        },
    };
    Ok((uid, gid))
}

/// The first line of a colon-separated database (at least 4 fields) that `matches`.
pub(super) fn parse_db(db: &str, matches: impl Fn(&[&str]) -> bool) -> Option<Vec<&str>> {
    db.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && matches(f))
}

/// The most of /etc/passwd or /etc/group read to resolve a name.
const MAX_USER_DB: u64 = 16 << 20;

/// Reads `rel` inside `rootfs`, resolving symlinks inside it (an image's /etc/passwd that is a
/// symlink to `/etc/shadow` reads the image's file, never the host's). Only a regular file of
/// at most [`MAX_USER_DB`] bytes is read: a FIFO there must not block the build forever.
fn read_in_root(rootfs: &Path, rel: &'static str, user: &str) -> Result<String, UserError> {
    let path = if rel == "etc/passwd" {
        "/etc/passwd"
    } else {
        "/etc/group"
    };
    let root = rustix::fs::open(
        rootfs,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UserError::ReadUserDb {
        user: user.to_string(),
        path,
        source: ReadInRootError::Open(e.into()),
    })?;
    let bytes = read_regular(&root, rel, MAX_USER_DB).map_err(|source| UserError::ReadUserDb {
        user: user.to_string(),
        path,
        source,
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_from_the_rootfs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs_err::create_dir(root.join("etc")).unwrap();
        fs_err::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65533::/home/nonroot:/bin/sh\n",
        )
        .unwrap();
        fs_err::write(root.join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        type Case<'a> = (Option<&'a str>, Result<(u32, u32), &'a str>);
        let cases: &[Case] = &[
            (None, Ok((0, 0))),
            (Some("0"), Ok((0, 0))),
            (Some("1000:1001"), Ok((1000, 1001))),
            (Some("1000"), Ok((1000, 0))),
            (Some("65532"), Ok((65532, 65533))),
            (Some("nonroot"), Ok((65532, 65533))),
            (Some("nonroot:staff"), Ok((65532, 50))),
            (Some("nonroot:7"), Ok((65532, 7))),
            (Some("nobody"), Err("no user `nobody`")),
            (Some("0:wheel"), Err("no group `wheel`")),
            (Some(":5"), Err("expected uid[:gid]")),
            (Some("5:"), Err("expected uid[:gid]")),
        ];
        for (user, want) in cases {
            let got = resolve_user(*user, root);
            match (want, got) {
                (Ok(w), Ok(g)) => assert_eq!(*w, g, "{user:?}"),
                (Err(w), Err(e)) => assert!(e.to_string().contains(w), "{user:?}: {e}"),
                (w, g) => panic!("{user:?}: want {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn passwd_symlink_resolves_inside_the_rootfs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs_err::create_dir(root.join("etc")).unwrap();
        // Absolute, pointing at the host's file: must read the rootfs's own (absent) one.
        std::os::unix::fs::symlink("/etc/passwd", root.join("etc/passwd")).unwrap();
        let err = resolve_user(Some("root"), root).unwrap_err();
        assert!(matches!(err, UserError::ReadUserDb { .. }), "{err}");
    }

    #[test]
    fn passwd_that_is_not_a_regular_file_is_refused_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs_err::create_dir(root.join("etc")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("etc/passwd"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        fs_err::create_dir(root.join("etc/group")).unwrap();
        let err = resolve_user(Some("nobody"), root).unwrap_err();
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(
            chain.contains("/etc/passwd") && chain.contains("fifo"),
            "{chain}"
        );
        let err = resolve_user(Some("0:staff"), root).unwrap_err();
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(
            chain.contains("/etc/group") && chain.contains("directory"),
            "{chain}"
        );
    }
}
