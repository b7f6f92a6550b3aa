//! Test context: a temp dir holding a busybox rootfs (the lower dir) and fresh upper/work dirs.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kiln_sandbox::{IdMap, IdMapping, Outcome, SandboxError, SandboxSpec};

pub struct Ctx {
    pub dir: tempfile::TempDir,
    pub lower: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
}

fn busybox() -> PathBuf {
    let found = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    // Never skip: these tests are the sandbox's proof. Install Debian's busybox-static.
    found
        .expect("busybox-static is required for the sandbox tests (apt-get install busybox-static)")
}

impl Ctx {
    pub fn new() -> Ctx {
        let dir = tempfile::tempdir().unwrap();
        // The unprivileged user must be able to reach the tree (tempdir makes it 0700).
        fs_err::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let lower = dir.path().join("lower");
        let upper = dir.path().join("upper");
        let work = dir.path().join("work");
        for d in [&lower, &upper, &work] {
            fs_err::create_dir(d).unwrap();
        }
        for d in ["bin", "etc", "root", "mnt", "var", "data"] {
            fs_err::create_dir(lower.join(d)).unwrap();
        }
        fs_err::create_dir(lower.join("tmp")).unwrap();
        fs_err::set_permissions(lower.join("tmp"), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
        let bb = busybox();
        fs_err::copy(&bb, lower.join("bin/busybox")).unwrap();
        let list = Command::new(&bb).arg("--list").output().unwrap();
        for applet in String::from_utf8(list.stdout).unwrap().lines() {
            if applet != "busybox" && !applet.contains('/') {
                symlink("busybox", lower.join("bin").join(applet)).unwrap();
            }
        }
        fs_err::write(lower.join("etc/hostname"), "image-hostname\n").unwrap();
        fs_err::write(lower.join("data/keep"), "lower content\n").unwrap();
        Ctx {
            dir,
            lower,
            upper,
            work,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn spec(&self, script: &str) -> SandboxSpec {
        let mut spec = SandboxSpec::new(
            vec![self.lower.clone()],
            &self.upper,
            &self.work,
            vec!["/bin/sh".into(), "-c".into(), script.into()],
        );
        spec.env = vec![("PATH".into(), "/bin".into())];
        spec.hostname = "kiln-test".into();
        spec.timeout = Duration::from_secs(60);
        spec.id_mapping = requested_mapping();
        spec
    }

    pub fn run(&self, script: &str) -> Result<Outcome, SandboxError> {
        kiln_sandbox::run(&self.spec(script))
    }

    /// Runs `script`, which must succeed, and returns its stdout.
    pub fn stdout(&self, script: &str) -> String {
        match self.run(script) {
            Ok(outcome) => String::from_utf8(outcome.stdout_tail).unwrap(),
            Err(e) => panic!(
                "step failed: {e:?}\nstderr: {}",
                e.stderr_tail()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default()
            ),
        }
    }
}

/// The mapping the tests ask for: `KILN_SANDBOX_TEST_MAPPING` (auto, identity, single,
/// subordinate), `auto` by default. `run-unprivileged.sh` runs the suite once per mapping.
pub fn requested_mapping() -> IdMapping {
    match std::env::var("KILN_SANDBOX_TEST_MAPPING").as_deref() {
        Err(_) | Ok("auto") => IdMapping::Auto,
        Ok("identity") => IdMapping::Identity,
        Ok("single") => IdMapping::Single,
        Ok("subordinate") => IdMapping::Subordinate,
        Ok(other) => panic!("unknown KILN_SANDBOX_TEST_MAPPING {other:?}"),
    }
}

/// The id mapping the tests' steps actually get.
pub fn mapping() -> IdMapping {
    IdMap::resolve(requested_mapping()).unwrap().mapping()
}

/// Host processes whose command line contains `marker`.
pub fn host_processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs_err::read_dir("/proc").unwrap().flatten() {
        let cmdline = entry.path().join("cmdline");
        if let Ok(bytes) = std::fs::read(&cmdline) {
            let text = String::from_utf8_lossy(&bytes).replace('\0', " ");
            if text.contains(marker) {
                found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}
