//! The test context: a private temporary directory, the real `kiln` binary, and the real
//! external tools (skopeo, umoci, podman, busybox, …). A missing tool fails the test: these
//! tests never pass by skipping. `scripts/setup.sh` installs every tool they use.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A private temporary directory, removed on drop. Its name is lowercase: podman derives image
/// names from `oci:` paths and refuses upper case.
pub struct TestContext {
    dir: PathBuf,
}

impl Drop for TestContext {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestContext {
    pub fn new() -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("kiln-it-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test directory");
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.join(rel)
    }

    /// Writes a file (creating parents) and returns its path.
    pub fn write(&self, rel: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// A `kiln` command running in this context's directory with a private cache.
    pub fn kiln(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
        cmd.current_dir(self.path())
            .env("XDG_CACHE_HOME", self.join("xdg-cache"))
            .env("HOME", self.join("home"))
            .env_remove("KILN_PASSWORD")
            .env_remove("COSIGN_PASSWORD");
        cmd
    }
}

/// Runs `cmd`, asserts it succeeded, and returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("failed to start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs `cmd` expecting failure; returns the whole output.
pub fn run_err(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("failed to start {cmd:?}: {e}"));
    assert!(
        !out.status.success(),
        "{cmd:?} unexpectedly succeeded\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The last line of stdout: `kiln build` prints the manifest digest there.
pub fn last_line(stdout: &str) -> String {
    stdout.lines().last().unwrap_or_default().trim().to_string()
}

/// The path of an external tool; panics (fails the test) when it is not installed.
pub fn require_tool(name: &str) -> PathBuf {
    let candidates = [
        format!("/usr/bin/{name}"),
        format!("/usr/sbin/{name}"),
        format!("/bin/{name}"),
    ];
    for c in &candidates {
        if Path::new(c).is_file() {
            return PathBuf::from(c);
        }
    }
    if let Ok(out) = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
    {
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    panic!("this test needs `{name}`, which is not installed: run scripts/setup.sh");
}

/// A command for an external tool (which must be installed).
pub fn tool(name: &str) -> Command {
    Command::new(require_tool(name))
}

/// `podman` configured the way this machine needs it: runc, no default rlimits, private storage.
pub fn podman(ctx: &TestContext) -> Command {
    let conf = ctx.write(
        "containers/containers.conf",
        "[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = \"runc\"\n",
    );
    let mut cmd = tool("podman");
    cmd.env("CONTAINERS_CONF", conf)
        .arg("--runtime")
        .arg(require_tool("runc"))
        .arg("--root")
        .arg(ctx.join("podman/root"))
        .arg("--runroot")
        .arg(ctx.join("podman/run"))
        .arg("--storage-driver")
        .arg("vfs");
    cmd
}

/// A copy of the repository's `recipes/` directory in `ctx` (`ctx/recipes/…`).
pub fn copy_recipes(ctx: &TestContext) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    run_ok(
        Command::new("cp")
            .arg("-r")
            .arg(repo.join("recipes"))
            .arg(ctx.path()),
    );
}

/// Lists a directory tree as `path mode uid gid kind extra` lines, sorted, for comparisons.
pub fn listing(root: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let md = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let ft = md.file_type();
            let extra = if ft.is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_file() {
                format!("{} bytes nlink={}", md.len(), md.nlink())
            } else {
                String::new()
            };
            out.push(format!(
                "{rel} {:o} {}:{} {extra}",
                md.mode(),
                md.uid(),
                md.gid()
            ));
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// The start of a recipe for a minimal runnable image: the host's static busybox (copied beside
/// the recipe in `dir` as a `path` input) at `/bin/busybox`, `/bin/sh` linking to it, and
/// `/tmp`. Callers append their own steps and sections.
pub const BUSYBOX_RECIPE_HEAD: &str = r#"
[image]
name = "bb"
epoch = 1700000000
[inputs.busybox]
path = "busybox"
[[layer]]
[[layer.step]]
copy = "busybox"
dest = "/bin/busybox"
mode = "0755"
[[layer.step]]
symlink = "/bin/sh"
target = "busybox"
[[layer.step]]
mkdir = "/tmp"
mode = "1777"
"#;

/// Writes `dir/recipe.toml` as [`BUSYBOX_RECIPE_HEAD`] followed by `rest`, with the host's
/// busybox beside it; returns the recipe's path.
pub fn busybox_recipe(ctx: &TestContext, dir: &str, rest: &str) -> PathBuf {
    std::fs::create_dir_all(ctx.join(dir)).unwrap();
    std::fs::copy(require_tool("busybox"), ctx.join(dir).join("busybox")).unwrap();
    ctx.write(
        format!("{dir}/recipe.toml"),
        format!("{BUSYBOX_RECIPE_HEAD}{rest}"),
    )
}

/// The entries of the OCI layout at `layout` as kiln lists them (README "Output layout"):
/// `index.json`'s, then those of the side index that an entry names in its
/// `build.kiln.referrers` annotation (referrers and `.sig`/`.att` tags), except those an
/// `index.json` entry of the same tag (untagged: digest) overrides.
pub fn layout_entries(layout: &Path) -> Vec<serde_json::Value> {
    let read = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
    };
    let index = read(layout.join("index.json"));
    let mut entries: Vec<serde_json::Value> = index["manifests"].as_array().unwrap().clone();
    let side: Vec<serde_json::Value> = entries
        .iter()
        .filter_map(|e| e["annotations"]["build.kiln.referrers"].as_str())
        .flat_map(|d| {
            let hex = d.trim_start_matches("sha256:");
            read(layout.join("blobs/sha256").join(hex))["manifests"]
                .as_array()
                .unwrap()
                .clone()
        })
        .collect();
    let key = |e: &serde_json::Value| {
        let name = &e["annotations"]["org.opencontainers.image.ref.name"];
        if name.is_string() {
            name.clone()
        } else {
            e["digest"].clone()
        }
    };
    for e in side {
        if !entries.iter().any(|x| key(x) == key(&e)) {
            entries.push(e);
        }
    }
    entries
}
