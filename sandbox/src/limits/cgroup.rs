//! The step's cgroups: where kiln may make them, making them, and reading whether a limit
//! was hit. A step gets a fresh cgroup (`kiln-step-<pid>-<n>`) under kiln's own in each
//! hierarchy that carries a controller it needs; the sandbox's init joins it before the step
//! starts, so every process of the step is counted, and it is removed when the step is over.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use super::{CgroupSupport, Hierarchy, LimitPlan, Resource};

/// Where each controller could be used, from `/proc/self/cgroup` and `/proc/self/mountinfo`:
/// cgroup v2 when the controller is enabled for kiln's cgroup's children
/// (`cgroup.subtree_control`), else the controller's v1 hierarchy. Whether kiln may write
/// there is found out by trying ([`StepCgroups::create`]).
pub(crate) fn candidates(
    proc_cgroup: &str,
    mountinfo: &str,
    subtree_control: impl Fn(&Path) -> String,
) -> CgroupSupport {
    let mounts: Vec<(String, String, String)> = mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?.to_string();
            let mut right = right.split(' ');
            let fstype = right.next()?.to_string();
            let options = right.nth(1).unwrap_or("").to_string();
            Some((mount_point, fstype, options))
        })
        .collect();
    let mut support = CgroupSupport::default();
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = path.trim_start_matches('/');
        if controllers.is_empty() {
            let Some((mount, ..)) = mounts.iter().find(|(_, fs, _)| fs == "cgroup2") else {
                continue;
            };
            let dir = Path::new(mount).join(path);
            let enabled = subtree_control(&dir);
            let enabled: Vec<&str> = enabled.split_whitespace().collect();
            for (name, slot) in [("pids", &mut support.pids), ("memory", &mut support.memory)] {
                if enabled.contains(&name) {
                    *slot = Some(Hierarchy {
                        v2: true,
                        dir: dir.clone(),
                    });
                }
            }
            continue;
        }
        for name in controllers.split(',') {
            let slot = match name {
                "pids" => &mut support.pids,
                "memory" => &mut support.memory,
                _ => continue,
            };
            if slot.as_ref().is_some_and(|h| h.v2) {
                continue;
            }
            let mount = mounts
                .iter()
                .find(|(_, fs, opts)| fs == "cgroup" && opts.split(',').any(|o| o == name));
            if let Some((mount, ..)) = mount {
                *slot = Some(Hierarchy {
                    v2: false,
                    dir: Path::new(mount).join(path),
                });
            }
        }
    }
    support
}

/// The cgroup support of this process, found from /proc.
pub(crate) fn probe() -> CgroupSupport {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    candidates(
        &read(Path::new("/proc/self/cgroup")),
        &read(Path::new("/proc/self/mountinfo")),
        |dir| read(&dir.join("cgroup.subtree_control")),
    )
}

/// The cgroups made for one step; removed on drop.
#[derive(Debug)]
pub(crate) struct StepCgroups {
    /// One directory per hierarchy used, each with the resources it limits.
    dirs: Vec<(PathBuf, bool, Vec<Resource>)>,
}

impl StepCgroups {
    /// Makes the step's cgroups. A hierarchy kiln may not write to is dropped from `support`
    /// (its limit then falls back to an rlimit) rather than failing the step.
    pub(crate) fn create(support: &mut CgroupSupport) -> StepCgroups {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "kiln-step-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut cgroups = StepCgroups { dirs: Vec::new() };
        for (resource, slot) in [
            (Resource::Pids, &mut support.pids),
            (Resource::Memory, &mut support.memory),
        ] {
            let Some(h) = slot.as_ref() else { continue };
            let dir = h.dir.join(&name);
            if let Some(entry) = cgroups.dirs.iter_mut().find(|(d, ..)| *d == dir) {
                entry.2.push(resource);
                continue;
            }
            match std::fs::create_dir(&dir) {
                Ok(()) => cgroups.dirs.push((dir, h.v2, vec![resource])),
                Err(_) => *slot = None,
            }
        }
        cgroups
    }

    /// Writes the plan's limit files; a hierarchy whose file cannot be written fails the step
    /// (an unenforced limit must not pass silently).
    pub(crate) fn configure(&self, plan: &LimitPlan) -> std::io::Result<()> {
        for (h, file, value) in &plan.cgroup_files {
            let Some((dir, ..)) = self.dirs.iter().find(|(d, ..)| d.parent() == Some(&h.dir))
            else {
                continue;
            };
            fs_err::write(dir.join(file), value.to_string())?;
            if *file == "memory.max" {
                // No swapping around the limit either (absent without swap accounting).
                let _ = std::fs::write(dir.join("memory.swap.max"), "0");
            }
        }
        Ok(())
    }

    /// Moves `pid` (the sandbox's init, before it starts the step) into every step cgroup.
    pub(crate) fn attach(&self, pid: libc::pid_t) -> std::io::Result<()> {
        for (dir, ..) in &self.dirs {
            fs_err::write(dir.join("cgroup.procs"), pid.to_string())?;
        }
        Ok(())
    }

    /// The first resource whose limit the step hit, by the cgroup's own count.
    pub(crate) fn hit(&self) -> Option<Resource> {
        let count = |dir: &Path, file: &str, key: &str| -> u64 {
            let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            text.lines()
                .filter_map(|l| l.split_once(' '))
                .find(|(k, _)| *k == key)
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0)
        };
        for (dir, v2, resources) in &self.dirs {
            for resource in resources {
                let hits = match (resource, v2) {
                    (Resource::Pids, _) => count(dir, "pids.events", "max"),
                    (Resource::Memory, true) => count(dir, "memory.events", "oom_kill"),
                    (Resource::Memory, false) => count(dir, "memory.oom_control", "oom_kill"),
                    (Resource::Write, _) => 0,
                };
                if hits > 0 {
                    return Some(*resource);
                }
            }
        }
        None
    }
}

impl Drop for StepCgroups {
    fn drop(&mut self) {
        for (dir, ..) in &self.dirs {
            // The last processes of the pid namespace may still be on their way out.
            for _ in 0..100 {
                match std::fs::remove_dir(dir) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(10))
                    }
                    _ => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_CGROUP: &str = "9:name=systemd:/\n8:pids:/\n4:memory:/ci/job1\n0::/\n";
    const HYBRID_MOUNTS: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
33 30 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 30 0:34 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 30 0:36 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_host_uses_v1_hierarchies_when_v2_has_no_controllers() {
        let got = candidates(HYBRID_CGROUP, HYBRID_MOUNTS, |_| "hugetlb\n".into());
        assert_eq!(
            got,
            CgroupSupport {
                pids: Some(Hierarchy {
                    v2: false,
                    dir: "/sys/fs/cgroup/pids/".into()
                }),
                memory: Some(Hierarchy {
                    v2: false,
                    dir: "/sys/fs/cgroup/memory/ci/job1".into()
                }),
            }
        );
    }

    #[test]
    fn delegated_v2_controllers_win() {
        let mounts = "40 30 0:36 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let got = candidates("0::/user.slice/kiln\n", mounts, |dir| {
            assert_eq!(dir, Path::new("/sys/fs/cgroup/user.slice/kiln"));
            "cpu memory pids\n".into()
        });
        let h = Hierarchy {
            v2: true,
            dir: "/sys/fs/cgroup/user.slice/kiln".into(),
        };
        assert_eq!(got.pids, Some(h.clone()));
        assert_eq!(got.memory, Some(h));
        // Not delegated: nothing to use.
        let got = candidates("0::/user.slice/kiln\n", mounts, |_| String::new());
        assert_eq!(got, CgroupSupport::default());
    }
}
