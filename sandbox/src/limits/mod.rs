//! Resource limits of a step: how many processes it may run, how much memory they may use,
//! how many bytes it may write. Policy (the numbers) comes from the caller in
//! [`crate::SandboxSpec::limits`]; this module decides how each is enforced on this host:
//!
//! - processes and memory by a cgroup made for the step (cgroup v2 where the controller is
//!   delegated to kiln's cgroup, else the cgroup v1 hierarchy of that controller) when kiln
//!   may create one, which is usually as root; otherwise by an rlimit of the step
//!   (`RLIMIT_NPROC`, counted per user in the step's own user namespace, and `RLIMIT_DATA`,
//!   the private writable memory of each process);
//! - written bytes by `RLIMIT_FSIZE` (no single file grows past the limit: the writer gets
//!   `SIGXFSZ`) and by the parent summing the sizes of the upper directory's files while the
//!   step runs, killing it once the total passes the limit.
//!
//! A cgroup says afterwards whether its limit was hit (`pids.events`, `memory.events`,
//! `memory.oom_control`), so the error can say so; an rlimit leaves no such trace, so a failed
//! step under one names the rlimits it ran with.

pub(crate) mod cgroup;
pub(crate) mod upper;

use std::fmt;
use std::path::PathBuf;

/// Resource limits of one step; `None` leaves the resource unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Processes (and threads) alive at once, the init included.
    pub pids_max: Option<u64>,
    /// Bytes of memory: the cgroup's total, or each process's private writable memory.
    pub memory_max: Option<u64>,
    /// Bytes in the upper directory (the sum of its regular files' sizes), and in any file.
    pub write_max: Option<u64>,
}

/// A limited resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    Pids,
    Memory,
    Write,
}

impl Resource {
    /// `64 processes`, `67108864 bytes of memory`, `1048576 written bytes`.
    pub fn amount(self, n: u64) -> String {
        match self {
            Resource::Pids => format!("{n} processes"),
            Resource::Memory => format!("{n} bytes of memory"),
            Resource::Write => format!("{n} written bytes"),
        }
    }
}

/// How a limit is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    CgroupV2,
    CgroupV1,
    Rlimit(&'static str),
    /// The parent's sum of the upper directory's file sizes.
    UpperScan,
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mechanism::CgroupV2 => f.write_str("cgroup v2"),
            Mechanism::CgroupV1 => f.write_str("cgroup v1"),
            Mechanism::Rlimit(name) => f.write_str(name),
            Mechanism::UpperScan => f.write_str("the size of the upper directory"),
        }
    }
}

/// One limit and how it is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enforced {
    pub resource: Resource,
    pub limit: u64,
    pub mechanism: Mechanism,
}

impl fmt::Display for Enforced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({})",
            self.resource.amount(self.limit),
            self.mechanism
        )
    }
}

/// A cgroup hierarchy kiln can make a step's cgroup in: the directory of kiln's own cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hierarchy {
    pub v2: bool,
    pub dir: PathBuf,
}

/// Where each controller is usable (`None`: not at all, use an rlimit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CgroupSupport {
    pub pids: Option<Hierarchy>,
    pub memory: Option<Hierarchy>,
}

/// How the limits of one step are enforced: plain data, made before the sandbox starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LimitPlan {
    /// Files to write in the step's cgroup under each hierarchy: (hierarchy, file, value).
    pub cgroup_files: Vec<(Hierarchy, &'static str, u64)>,
    /// `setrlimit` calls of the step process: (resource, value), soft and hard.
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
    pub enforced: Vec<Enforced>,
    /// Sum the upper directory's file sizes against this while the step runs.
    pub upper_max: Option<u64>,
}

impl LimitPlan {
    pub(crate) fn new(limits: &Limits, support: &CgroupSupport) -> LimitPlan {
        let mut plan = LimitPlan::default();
        let cgroup_or_rlimit = |plan: &mut LimitPlan,
                                resource,
                                limit: u64,
                                hierarchy: &Option<Hierarchy>,
                                (v2_file, v1_file),
                                (rlimit, rlimit_name)| {
            let mechanism = match hierarchy {
                Some(h) => {
                    plan.cgroup_files.push((
                        h.clone(),
                        if h.v2 { v2_file } else { v1_file },
                        limit,
                    ));
                    if h.v2 {
                        Mechanism::CgroupV2
                    } else {
                        Mechanism::CgroupV1
                    }
                }
                None => {
                    plan.rlimits.push((rlimit, limit));
                    Mechanism::Rlimit(rlimit_name)
                }
            };
            plan.enforced.push(Enforced {
                resource,
                limit,
                mechanism,
            });
        };
        if let Some(n) = limits.pids_max {
            cgroup_or_rlimit(
                &mut plan,
                Resource::Pids,
                n,
                &support.pids,
                ("pids.max", "pids.max"),
                (libc::RLIMIT_NPROC, "RLIMIT_NPROC"),
            );
        }
        if let Some(n) = limits.memory_max {
            cgroup_or_rlimit(
                &mut plan,
                Resource::Memory,
                n,
                &support.memory,
                ("memory.max", "memory.limit_in_bytes"),
                (libc::RLIMIT_DATA, "RLIMIT_DATA"),
            );
        }
        if let Some(n) = limits.write_max {
            plan.rlimits.push((libc::RLIMIT_FSIZE, n));
            plan.upper_max = Some(n);
            for mechanism in [Mechanism::Rlimit("RLIMIT_FSIZE"), Mechanism::UpperScan] {
                plan.enforced.push(Enforced {
                    resource: Resource::Write,
                    limit: n,
                    mechanism,
                });
            }
        }
        plan
    }

    /// The limits enforced by an rlimit, which leaves no trace when it stops a step.
    pub(crate) fn by_rlimit(&self) -> Vec<Enforced> {
        self.enforced
            .iter()
            .filter(|e| matches!(e.mechanism, Mechanism::Rlimit(_)))
            .copied()
            .collect()
    }

    /// How `resource` is enforced, preferring a cgroup.
    pub(crate) fn enforced(&self, resource: Resource) -> Option<Enforced> {
        self.enforced
            .iter()
            .find(|e| e.resource == resource)
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_where_available_rlimits_elsewhere() {
        let limits = Limits {
            pids_max: Some(64),
            memory_max: Some(1 << 26),
            write_max: Some(1 << 20),
        };
        let v1 = Hierarchy {
            v2: false,
            dir: "/sys/fs/cgroup/pids/k".into(),
        };
        let v2 = Hierarchy {
            v2: true,
            dir: "/sys/fs/cgroup/k".into(),
        };
        let cases = [
            (
                CgroupSupport::default(),
                "64 processes (RLIMIT_NPROC), 67108864 bytes of memory (RLIMIT_DATA)",
            ),
            (
                CgroupSupport {
                    pids: Some(v1.clone()),
                    memory: None,
                },
                "64 processes (cgroup v1), 67108864 bytes of memory (RLIMIT_DATA)",
            ),
            (
                CgroupSupport {
                    pids: Some(v2.clone()),
                    memory: Some(v2.clone()),
                },
                "64 processes (cgroup v2), 67108864 bytes of memory (cgroup v2)",
            ),
        ];
        for (support, want) in cases {
            let plan = LimitPlan::new(&limits, &support);
            let got: Vec<String> = plan.enforced[..2].iter().map(|e| e.to_string()).collect();
            assert_eq!(got.join(", "), want);
            assert_eq!(plan.upper_max, Some(1 << 20));
            assert!(plan.rlimits.contains(&(libc::RLIMIT_FSIZE, 1 << 20)));
        }
        let plan = LimitPlan::new(
            &limits,
            &CgroupSupport {
                pids: Some(v1.clone()),
                memory: Some(v2.clone()),
            },
        );
        assert_eq!(
            plan.cgroup_files,
            [(v1, "pids.max", 64), (v2, "memory.max", 1 << 26)]
        );
        assert_eq!(plan.rlimits, [(libc::RLIMIT_FSIZE, 1 << 20)]);
        assert_eq!(
            plan.by_rlimit()
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>(),
            ["1048576 written bytes (RLIMIT_FSIZE)"]
        );
        assert_eq!(
            LimitPlan::new(&Limits::default(), &CgroupSupport::default()),
            LimitPlan::default()
        );
    }
}
