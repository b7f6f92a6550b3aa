//! User and group id mappings of the sandbox's user namespace.
//!
//! Ownership inside a layer matters (`chown 65532:65532` must be recorded as such), so the
//! mapping decides what a build can express:
//!
//! - as host root, container ids 0..65536 map to the *same* host ids, so files the step
//!   chowns land in the upper directory with their real numeric owner;
//! - rootless with a range in `/etc/subuid` + `/etc/subgid`, `newuidmap`/`newgidmap` map
//!   container 0 to the caller and 1..=N to the subordinate range;
//! - rootless without one, only container 0 exists (it is the caller). A `chown` to any other
//!   id fails inside the step with `EINVAL` instead of silently changing the owner, and a spec
//!   asking to run as another id is refused up front.
//!
//! The caller reading the upper directory translates host owners back with
//! [`IdMap::uid_to_container`] / [`IdMap::gid_to_container`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How the caller wants ids mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdMapping {
    /// `Identity` when running as root, else `Subordinate` when the caller has a range of at
    /// least 65536 ids in `/etc/subuid` and `/etc/subgid` and the helpers exist, else `Single`.
    #[default]
    Auto,
    /// Container ids 0..65536 are host ids 0..65536 (needs host root).
    Identity,
    /// Only container id 0, mapped to the caller's uid and gid.
    Single,
    /// Container 0 is the caller, 1..=N the caller's subordinate range (needs
    /// `newuidmap`/`newgidmap`).
    Subordinate,
}

/// One line of a `uid_map` / `gid_map`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub container: u32,
    pub host: u32,
    pub count: u32,
}

/// A resolved mapping: what the sandbox's user namespace will contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMap {
    mapping: IdMapping,
    uids: Vec<IdRange>,
    gids: Vec<IdRange>,
    /// Whether setgroups(2) is allowed in the new namespace.
    setgroups: bool,
}

/// The number of ids an identity or subordinate mapping covers.
pub const FULL_RANGE: u32 = 65536;

impl IdMap {
    /// Resolves `mapping` for the calling process (reads `/etc/subuid` and `/etc/subgid`).
    pub fn resolve(mapping: IdMapping) -> Result<IdMap, IdMapError> {
        // SAFETY: geteuid/getegid cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        match mapping {
            IdMapping::Auto if uid == 0 => IdMap::resolve(IdMapping::Identity),
            IdMapping::Auto => match IdMap::subordinate(uid, gid) {
                Ok(map) => Ok(map),
                Err(_) => Ok(IdMap::single(uid, gid)),
            },
            IdMapping::Identity if uid != 0 => Err(IdMapError::IdentityNeedsRoot { uid }),
            IdMapping::Identity => {
                // Inside kiln's own user namespace (see `enter_user_namespace`) fewer ids may
                // exist, in several extents: map those, extent by extent (the kernel wants
                // each line of a child's map inside one extent of the parent's).
                let read = |path: &str| {
                    fs_err::read_to_string(path).map_err(|source| IdMapError::ReadIdFile {
                        path: path.into(),
                        source,
                    })
                };
                let setgroups = read("/proc/self/setgroups")?.trim() == "allow";
                Ok(IdMap {
                    mapping,
                    uids: identity_ranges(&read("/proc/self/uid_map")?),
                    gids: identity_ranges(&read("/proc/self/gid_map")?),
                    setgroups,
                })
            }
            IdMapping::Single => Ok(IdMap::single(uid, gid)),
            IdMapping::Subordinate => IdMap::subordinate(uid, gid),
        }
    }

    fn single(uid: u32, gid: u32) -> IdMap {
        let one = |host| {
            vec![IdRange {
                container: 0,
                host,
                count: 1,
            }]
        };
        IdMap {
            mapping: IdMapping::Single,
            uids: one(uid),
            gids: one(gid),
            setgroups: false,
        }
    }

    fn subordinate(uid: u32, gid: u32) -> Result<IdMap, IdMapError> {
        let user = user_name(uid);
        let group_owner = user.clone();
        let sub_uid = read_subid(Path::new("/etc/subuid"), user.as_deref(), uid)?;
        let sub_gid = read_subid(Path::new("/etc/subgid"), group_owner.as_deref(), uid)?;
        for helper in ["newuidmap", "newgidmap"] {
            find_helper(helper)?;
        }
        let ranges = |own: u32, start: u32| {
            vec![
                IdRange {
                    container: 0,
                    host: own,
                    count: 1,
                },
                IdRange {
                    container: 1,
                    host: start,
                    count: FULL_RANGE - 1,
                },
            ]
        };
        Ok(IdMap {
            mapping: IdMapping::Subordinate,
            uids: ranges(uid, sub_uid),
            gids: ranges(gid, sub_gid),
            setgroups: true,
        })
    }

    /// The kind of mapping this resolved to (never `Auto`).
    pub fn mapping(&self) -> IdMapping {
        self.mapping
    }

    pub fn uid_ranges(&self) -> &[IdRange] {
        &self.uids
    }

    pub fn gid_ranges(&self) -> &[IdRange] {
        &self.gids
    }

    pub fn uid_to_host(&self, uid: u32) -> Option<u32> {
        to_host(&self.uids, uid)
    }

    pub fn gid_to_host(&self, gid: u32) -> Option<u32> {
        to_host(&self.gids, gid)
    }

    /// The container uid of a file the step left in the upper directory.
    pub fn uid_to_container(&self, host: u32) -> Option<u32> {
        to_container(&self.uids, host)
    }

    pub fn gid_to_container(&self, host: u32) -> Option<u32> {
        to_container(&self.gids, host)
    }

    /// Writes the maps of the user namespace of process `pid` (a number, or `self`).
    pub(crate) fn apply_to(&self, pid: &str) -> Result<(), IdMapError> {
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        match self.mapping {
            IdMapping::Subordinate => {
                run_helper("newuidmap", pid, &self.uids)?;
                run_helper("newgidmap", pid, &self.gids)?;
            }
            _ => {
                if self.mapping == IdMapping::Single {
                    // An unprivileged writer may map its own gid only after giving up
                    // setgroups(2) in the namespace (user_namespaces(7)).
                    write_proc(&proc_dir.join("setgroups"), "deny")?;
                }
                write_proc(&proc_dir.join("uid_map"), &render(&self.uids))?;
                write_proc(&proc_dir.join("gid_map"), &render(&self.gids))?;
            }
        }
        Ok(())
    }

    /// Whether the step may call setgroups(2) (not with a `Single` mapping, nor inside a
    /// namespace that already denies it).
    pub(crate) fn allows_setgroups(&self) -> bool {
        self.setgroups
    }
}

impl fmt::Display for IdMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdMapping::Auto => "auto",
            IdMapping::Identity => "identity",
            IdMapping::Single => "single id",
            IdMapping::Subordinate => "subordinate range",
        })
    }
}

/// Identity ranges for every id below [`FULL_RANGE`] that a `uid_map`/`gid_map` maps.
fn identity_ranges(map: &str) -> Vec<IdRange> {
    let mut ranges: Vec<IdRange> = map
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace().map(|f| f.parse::<u64>().ok());
            let (inside, count) = (fields.next()??, fields.nth(1)??);
            let end = (inside + count).min(u64::from(FULL_RANGE));
            (inside < end).then(|| IdRange {
                container: inside as u32,
                host: inside as u32,
                count: (end - inside) as u32,
            })
        })
        .collect();
    ranges.sort_by_key(|r| r.container);
    ranges
}

fn to_host(ranges: &[IdRange], id: u32) -> Option<u32> {
    ranges
        .iter()
        .find(|r| id >= r.container && id - r.container < r.count)
        .map(|r| r.host + (id - r.container))
}

fn to_container(ranges: &[IdRange], id: u32) -> Option<u32> {
    ranges
        .iter()
        .find(|r| id >= r.host && id - r.host < r.count)
        .map(|r| r.container + (id - r.host))
}

fn render(ranges: &[IdRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("{} {} {}\n", r.container, r.host, r.count))
        .collect()
}

fn write_proc(path: &Path, content: &str) -> Result<(), IdMapError> {
    fs_err::write(path, content).map_err(|source| IdMapError::WriteMap {
        path: path.to_owned(),
        content: content.to_owned(),
        source,
    })
}

fn run_helper(helper: &'static str, pid: &str, ranges: &[IdRange]) -> Result<(), IdMapError> {
    let program = find_helper(helper)?;
    let mut cmd = Command::new(&program);
    cmd.arg(pid);
    for r in ranges {
        cmd.args([r.container, r.host, r.count].map(|n| n.to_string()));
    }
    let output = cmd.output().map_err(|source| IdMapError::SpawnHelper {
        helper: program.clone(),
        source,
    })?;
    if !output.status.success() {
        return Err(IdMapError::HelperFailed {
            helper: program,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

fn find_helper(helper: &'static str) -> Result<PathBuf, IdMapError> {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(helper))
        .find(|p| p.is_file())
        .ok_or(IdMapError::MissingHelper { helper })
}

fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: passwd is plain data; getpwuid_r writes into it and into buf (of the given
    // length), and sets result to null or to &pwd.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr(pwd.pw_name);
        Some(name.to_string_lossy().into_owned())
    }
}

fn read_subid(path: &Path, user: Option<&str>, uid: u32) -> Result<u32, IdMapError> {
    let text = fs_err::read_to_string(path).map_err(|source| IdMapError::ReadIdFile {
        path: path.to_owned(),
        source,
    })?;
    parse_subid(&text, user, uid, FULL_RANGE - 1).ok_or_else(|| IdMapError::NoSubordinateRange {
        path: path.to_owned(),
        user: user.map_or_else(|| uid.to_string(), str::to_owned),
        needed: FULL_RANGE - 1,
    })
}

/// Finds the first `name:start:count` line for `user` (or the numeric `uid`) with at least
/// `needed` ids, as shadow-utils does.
fn parse_subid(text: &str, user: Option<&str>, uid: u32, needed: u32) -> Option<u32> {
    let uid_text = uid.to_string();
    text.lines().find_map(|line| {
        let mut fields = line.trim().split(':');
        let (owner, start, count) = (fields.next()?, fields.next()?, fields.next()?);
        if fields.next().is_some() || !(Some(owner) == user || owner == uid_text) {
            return None;
        }
        let (start, count): (u32, u32) = (start.parse().ok()?, count.parse().ok()?);
        (count >= needed && start.checked_add(count).is_some()).then_some(start)
    })
}

#[derive(Debug, thiserror::Error)]
pub enum IdMapError {
    #[error("an identity id mapping needs host root, but kiln runs as uid {uid}")]
    IdentityNeedsRoot { uid: u32 },
    #[error("failed to read {path}")]
    ReadIdFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} grants {user} no range of at least {needed} ids")]
    NoSubordinateRange {
        path: PathBuf,
        user: String,
        needed: u32,
    },
    #[error("{helper} not found (install the uidmap package)")]
    MissingHelper { helper: &'static str },
    #[error("failed to run {helper}")]
    SpawnHelper {
        helper: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{helper} failed with {status}: {stderr}")]
    HelperFailed {
        helper: PathBuf,
        status: String,
        stderr: String,
    },
    #[error("failed to write {content:?} to {path}")]
    WriteMap {
        path: PathBuf,
        content: String,
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_subid_table() {
        let text = "alice:100000:65536\nbob:200000:1000\n1001:300000:65536\nbob:400000:70000\n";
        let cases: &[(Option<&str>, u32, Option<u32>)] = &[
            (Some("alice"), 1000, Some(100000)),
            (Some("bob"), 1002, Some(400000)), // the first range is too small
            (Some("carol"), 1001, Some(300000)), // by numeric uid
            (Some("dave"), 1003, None),
            (None, 1001, Some(300000)),
        ];
        for (user, uid, expected) in cases {
            assert_eq!(
                parse_subid(text, *user, *uid, 65535),
                *expected,
                "{user:?} {uid}"
            );
        }
        assert_eq!(parse_subid("x:1:2:3\nx:a:65536", Some("x"), 5, 1), None);
        assert_eq!(parse_subid("x:4294967295:65536", Some("x"), 5, 1), None);
    }

    #[test]
    fn identity_ranges_table() {
        let r = |container, count| IdRange {
            container,
            host: container,
            count,
        };
        let cases = [
            ("         0          0 4294967295\n", vec![r(0, 65536)]),
            ("0 1001 1\n", vec![r(0, 1)]),
            ("1 100000 65535\n0 1001 1\n", vec![r(0, 1), r(1, 65535)]),
            ("0 1001 1\n70000 5 10\n", vec![r(0, 1)]),
            ("65530 5 100\n", vec![r(65530, 6)]),
            ("", vec![]),
        ];
        for (map, expected) in cases {
            assert_eq!(identity_ranges(map), expected, "{map:?}");
        }
    }

    #[test]
    fn translation_both_ways() {
        let map = IdMap {
            mapping: IdMapping::Subordinate,
            uids: vec![
                IdRange {
                    container: 0,
                    host: 1000,
                    count: 1,
                },
                IdRange {
                    container: 1,
                    host: 100000,
                    count: 65535,
                },
            ],
            gids: vec![IdRange {
                container: 0,
                host: 1000,
                count: 1,
            }],
            setgroups: true,
        };
        assert_eq!(map.uid_to_host(0), Some(1000));
        assert_eq!(map.uid_to_host(65532), Some(165531));
        assert_eq!(map.uid_to_host(65536), None);
        assert_eq!(map.uid_to_container(165531), Some(65532));
        assert_eq!(map.uid_to_container(1000), Some(0));
        assert_eq!(map.uid_to_container(0), None);
        assert_eq!(map.gid_to_host(1), None);
        assert_eq!(render(&map.uids), "0 1000 1\n1 100000 65535\n");
    }
}
